import type { Config } from '../config/types.js'
import type { Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import type { Journal } from '../journal/types.js'
import type { PolicyEngine } from '../policy/types.js'
import { BundleStore } from './store.js'
import { FleetReceiver, loadFleetKey, type FleetLink } from './receiver.js'

export { signBundle, checkBundle, type BundlePayload } from './bundle.js'
export { FleetReceiver, type FleetLink } from './receiver.js'

export interface Fleet {
  readonly receiver: FleetReceiver
  /** the stored bundle's policy, when one was applied before this boot */
  readonly restored?: PolicyEngine
  /** true once a fleet bundle is in force: local policy files no longer apply */
  inForce(): boolean
  start(link: FleetLink | undefined): void
  close(): Promise<void>
}

/**
 * Fleet policy push (SPEC §8), when `fleet.publicKey` and `fleet.policyTopic` are set.
 * Local files in `policies.dir` are the baseline until the first bundle is applied; from
 * then on the stored bundle is in force, at every boot, with or without network.
 */
export async function setupFleet(config: Config, d: { journal: Journal; logger: Logger; clock: Clock; apply(p: PolicyEngine): void }): Promise<Fleet | undefined> {
  const f = config.fleet
  if (!f?.publicKey || !f.policyTopic) return undefined
  const store = new BundleStore(config.gateway.dataDir)
  const receiver = new FleetReceiver({
    gatewayId: config.gateway.id, fleet: config.gateway.fleet, policyTopic: f.policyTopic, publicJwk: loadFleetKey(f.publicKey),
    store, journal: d.journal, logger: d.logger, clock: d.clock, apply: d.apply,
  })
  const restored = await receiver.restore()
  return {
    receiver, restored,
    inForce: () => receiver.version > 0,
    start: (link) => { if (link) receiver.start(link) },
    close: () => store.close(),
  }
}
