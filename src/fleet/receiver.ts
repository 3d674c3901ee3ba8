import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { JWK } from 'jose'
import type { Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import type { Journal } from '../journal/types.js'
import { compilePolicy, lintPolicyFiles, formatIssue, type CompiledPolicy } from '../policy/index.js'
import type { MessageHandler } from '../bridge/link.js'
import { ewError } from '../errors.js'
import { checkBundle, type BundlePayload } from './bundle.js'
import type { BundleStore } from './store.js'

/** What the receiver needs of the upstream link. */
export interface FleetLink {
  subscribe(filter: string, qos: 0 | 1, handler: MessageHandler): void
  publish(topic: string, payload: Buffer, opts: { qos: 0 | 1; retain?: boolean }): Promise<void>
}

export interface FleetReceiverDeps {
  readonly gatewayId: string
  readonly fleet: string
  readonly policyTopic: string
  readonly publicJwk: JWK
  readonly store: BundleStore
  readonly journal: Journal
  readonly logger: Logger
  readonly clock: Clock
  /** swaps the running policy (and re-checks live subscriptions) */
  readonly apply: (policy: CompiledPolicy) => void
}

export interface FleetStatus {
  readonly version: number
  readonly applied: boolean
  readonly error?: string
  readonly rejectedVersion?: number
  readonly policyRev?: string
  readonly at: string
}

export function loadFleetKey(path: string): JWK {
  try {
    const jwk = JSON.parse(readFileSync(path, 'utf8')) as JWK
    if ('d' in jwk) throw new Error('fleet.publicKey holds a private key; give the gateway only the public half')
    return jwk
  } catch (err) {
    throw ewError('EW_CONFIG_INVALID', `fleet.publicKey: cannot load ${path}: ${(err as Error).message}`, { key: 'fleet.publicKey' })
  }
}

/**
 * Receives signed policy bundles (SPEC §8) on `<policyTopic>` and `<policyTopic>/<gateway id>`,
 * applies one only when signature, fleet, target, version and lint all pass, persists it
 * for reboots without network, and reports retained on `<policyTopic>/status/<gateway id>`.
 * A bundle that fails changes nothing and is journaled `policy_rejected`.
 */
export class FleetReceiver {
  #version = 0
  #digest: string | undefined
  #queue: Promise<void> = Promise.resolve()
  #link: FleetLink | undefined

  constructor(private readonly d: FleetReceiverDeps) {}

  get version(): number { return this.#version }

  /** The persisted bundle's policy, re-verified (the LMDB copy is not trusted blindly). */
  async restore(): Promise<CompiledPolicy | undefined> {
    const active = this.d.store.active()
    if (!active) return undefined
    const r = await checkBundle(active.jws, { publicJwk: this.d.publicJwk, fleet: this.d.fleet, gatewayId: this.d.gatewayId, runningVersion: 0 })
    if (!r.ok) {
      this.d.logger.error({ event: 'fleet_bundle_invalid', reason: r.reason }, 'the stored fleet bundle does not verify: running the local policy files')
      return undefined
    }
    const compiled = this.#compile(r.bundle)
    if ('error' in compiled) return undefined
    this.#version = r.bundle.version
    this.#digest = r.digest
    this.d.logger.info({ event: 'fleet_bundle_restored', version: this.#version, policyRev: compiled.policy.revision }, 'running the stored fleet policy bundle')
    return compiled.policy
  }

  start(link: FleetLink): void {
    this.#link = link
    const handler: MessageHandler = (_topic, payload) => this.receive(payload.toString('utf8'))
    link.subscribe(this.d.policyTopic, 1, handler)
    link.subscribe(`${this.d.policyTopic}/${this.d.gatewayId}`, 1, handler)
  }

  /** Serialized: two bundles arriving together are checked one after the other. */
  receive(jws: string): Promise<void> {
    this.#queue = this.#queue.then(() => this.#receive(jws)).catch((err: Error) => {
      this.d.logger.error({ event: 'fleet_bundle_error', err: err.message }, 'fleet bundle handling failed')
    })
    return this.#queue
  }

  async #receive(jws: string): Promise<void> {
    // the retained copy of the bundle we run comes back on every reconnect: not news
    if (this.#digest !== undefined && createHash('sha256').update(jws.trim()).digest('hex') === this.#digest) return
    const r = await checkBundle(jws, { publicJwk: this.d.publicJwk, fleet: this.d.fleet, gatewayId: this.d.gatewayId, runningVersion: this.#version })
    if (!r.ok) {
      return this.#reject(r.reason + (r.detail ? `: ${r.detail}` : ''), r.version)
    }
    const compiled = this.#compile(r.bundle)
    if ('error' in compiled) return this.#reject(`lint: ${compiled.error}`, r.bundle.version)
    await this.d.store.save({ version: r.bundle.version, jws: jws.trim(), appliedAt: this.d.clock.now(), digest: r.digest })
    this.d.apply(compiled.policy)
    this.#version = r.bundle.version
    this.#digest = r.digest
    await this.d.journal.append({ type: 'policy_applied', source: 'fleet', version: r.bundle.version, policyRev: compiled.policy.revision, files: Object.keys(r.bundle.files) })
    this.d.logger.info({ event: 'fleet_bundle_applied', version: r.bundle.version, policyRev: compiled.policy.revision }, 'fleet policy bundle applied')
    this.#report({ version: r.bundle.version, applied: true, policyRev: compiled.policy.revision, at: new Date(this.d.clock.now()).toISOString() })
  }

  #compile(b: BundlePayload): { policy: CompiledPolicy } | { error: string } {
    const files = Object.entries(b.files).map(([name, text]) => ({ name, path: `bundle v${b.version}/${name}`, text }))
    const lint = lintPolicyFiles(files)
    if (!lint.doc) {
      const first = lint.issues.find((i) => i.severity === 'error')
      return { error: first ? formatIssue(first) : 'invalid policy' }
    }
    try {
      return { policy: compilePolicy(lint.doc, { clock: this.d.clock }) }
    } catch (err) {
      return { error: (err as Error).message }
    }
  }

  async #reject(reason: string, version?: number): Promise<void> {
    const short = reason.slice(0, 300)
    await this.d.journal.append({ type: 'policy_rejected', source: 'fleet', version, reason: short })
    this.d.logger.warn({ event: 'fleet_bundle_rejected', version, reason: short }, 'fleet policy bundle rejected')
    this.#report({ version: this.#version, applied: false, error: short, rejectedVersion: version, at: new Date(this.d.clock.now()).toISOString() })
  }

  /**
   * Not awaited by the caller: bundles arrive inside the link's message handler, and the
   * cloud's PUBACK for this publish is read only after that handler returns.
   */
  #report(s: FleetStatus): void {
    if (!this.#link) return
    const topic = `${this.d.policyTopic}/status/${this.d.gatewayId}`
    void this.#link.publish(topic, Buffer.from(JSON.stringify(s)), { qos: 1, retain: true }).catch((err: Error) => {
      this.d.logger.warn({ event: 'fleet_status_unsent', err: err.message }, 'fleet status not published (upstream down?)')
    })
  }
}
