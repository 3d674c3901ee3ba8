import './broker/quiet-debug.js'
import { mkdirSync } from 'node:fs'
import { loadConfig, type LoadConfigOptions } from './config/load.js'
import type { Config } from './config/types.js'
import { systemClock, type Clock } from './clock.js'
import { createLogger, type Logger } from './logger.js'
import { ensureDevKey, type DevKey } from './identity/devkey.js'
import { KeyStore } from './identity/keys.js'
import { loadPolicyEngine, startPolicyWatch } from './policy/index.js'
import { createJournal, createShipper, LmdbJournal } from './journal/index.js'
import type { Journal } from './journal/types.js'
import { GatewayCore } from './gateway.js'
import { createPersistence } from './broker/persistence/index.js'
import { SiteCluster } from './broker/cluster.js'
import { createMetrics, type Metrics } from './admin/metrics.js'
import { AdminServer, sendJson } from './admin/server.js'
import { VERSION } from './version.js'
import { LmdbHoldStore } from './hold/lmdb-store.js'
import { Approvals } from './hold/approvals.js'
import { Grants } from './hold/grants.js'
import { Authenticator } from './identity/authenticate.js'
import { bearerVerifier } from './admin/auth.js'
import { registerApprovalRoutes, holdView } from './admin/approvals-api.js'
import { registerConsole } from './admin/console.js'
import { registerSessionRoutes } from './admin/sessions-api.js'
import { registerAuditRoutes } from './admin/audit-api.js'
import { registerInventoryRoutes } from './admin/inventory-api.js'
import { Inventory } from './inventory/index.js'
import { inventoryMetrics } from './inventory/metrics.js'
import { registerJournalMetrics } from './journal/metrics.js'
import { createWebhook } from './admin/webhook.js'
import { Bridge } from './bridge/bridge.js'
import { createMasker, masksFromPolicy } from './mask/index.js'
import { setupFleet } from './fleet/index.js'

export interface GatewayOptions {
  readonly logger?: Logger
  readonly clock?: Clock
  readonly journal?: Journal
}

export interface Gateway {
  readonly config: Config
  readonly logger: Logger
  readonly metrics: Metrics
  readonly journal: Journal
  /** the dev token-signing key, when no key source is configured */
  readonly devKey?: DevKey
  readonly core: GatewayCore
  /** the cloud bridge and its link (shipper, fleet channel), when `upstream` is configured */
  readonly bridge?: Bridge
  start(): Promise<void>
  stop(): Promise<void>
  /** bound address of a listener (by type, or `admin`) */
  address(name: 'mqtt' | 'mqtts' | 'ws' | 'wss' | 'admin'): { host: string; port: number } | undefined
}

/** Builds a gateway from a Config or from load options (file, env, overrides). */
export async function createGateway(input: Config | LoadConfigOptions = {}, opts: GatewayOptions = {}): Promise<Gateway> {
  const config = 'listeners' in input && 'source' in input ? (input as Config) : loadConfig(input as LoadConfigOptions)
  const logger = opts.logger ?? createLogger(config.log.level)
  const clock = opts.clock ?? systemClock
  mkdirSync(config.gateway.dataDir, { recursive: true })

  const jwt = config.auth.jwt
  const hasKeySource = !!(jwt.jwksFile || jwt.jwksUrl || jwt.publicKey || jwt.secret)
  const devKey = hasKeySource ? undefined : await ensureDevKey(config.gateway.dataDir)
  if (devKey) logger.warn({ event: 'dev_key', path: devKey.path, created: devKey.created }, 'no auth.jwt key source configured: verifying tokens with the development key in the data dir')
  const keys = await KeyStore.create({ jwt, logger, clock, devPublicJwk: devKey?.publicJwk as never })
  const policy = await loadPolicyEngine(config, logger, { clock })
  // the LMDB journal in the data dir unless one is passed in (tests pass a MemoryJournal)
  const journal = opts.journal ?? await createJournal(config, { logger, clock })
  const metrics = createMetrics()
  if (journal instanceof LmdbJournal) registerJournalMetrics(metrics.registry, journal)
  // approvals and grants: durable in the data dir's LMDB, whatever broker.persistence says
  const holdStore = new LmdbHoldStore(config.gateway.dataDir)
  const webhook = config.admin.webhook ? createWebhook({ ...config.admin.webhook, logger }) : undefined
  let coreRef: GatewayCore | undefined
  const approvals = new Approvals({
    store: holdStore, journal, clock, logger,
    deliver: (h) => coreRef!.deliverHeld(h),
    observeLatency: (sec) => metrics.approvalSeconds.observe(sec),
    notify: (event, h) => {
      metrics.holdsPending.set(approvals.pending().length)
      const body = { event, gateway: config.gateway.id, ...holdView(h, preview) }
      coreRef?.aedes.publish({ cmd: 'publish', topic: '$warden/approvals/pending', payload: Buffer.from(JSON.stringify(body)), qos: 1, retain: false, dup: false }, () => {})
      webhook?.(body)
    },
  })
  const grants = new Grants(holdStore, journal, clock, () => void coreRef?.recheckSubscriptions('grant_expired'))
  // broker.cluster.redis → the site's gateways are one broker, emitter and broker state in Redis
  // (docs/cluster.md); else broker.persistence: lmdb → retained, sessions and QoS 1/2 queues in the data dir's LMDB
  const cluster = config.broker.cluster?.redis ? new SiteCluster(config, { journal, logger, clock, onUp: () => { if (started && coreRef) publishStatus(coreRef, config, { ...status(), status: 'up' }) } }) : undefined
  const persistence = cluster?.persistence ?? createPersistence(config, journal)
  // payload masks (SPEC §5 `masks`) from the same policy files; bad masks fail the start (exit 2)
  const masker = createMasker(config, logger)
  // inventory (who is on the site, shadow flags): aggregated in memory, flushed to the data dir's LMDB
  let inventory: Inventory | undefined
  const onFlag = inventoryMetrics(metrics.registry, () => inventory)
  inventory = config.inventory.enabled ? new Inventory({ dataDir: config.gateway.dataDir, config: config.inventory, clock, journal, logger, onFlag }) : undefined
  const core = new GatewayCore({ config, logger, clock, journal, policy, keys, metrics, approvals, grants, persistence, cluster, masker, inventory })
  coreRef = core
  cluster?.attach(core.aedes)
  const preview = (topic: string, payload: Buffer): Buffer => core.maskedView({ topic, payload })
  // the cloud bridge (SPEC §3 upstream), only when configured; a full `block` outbox refuses bridged publishes
  const bridge = config.upstream ? new Bridge({ config, aedes: core.aedes, policy: () => core.policy, journal, logger, clock, registry: metrics.registry, view: maskedViewOf(core) }) : undefined
  if (bridge) {
    core.bridgeTap = bridge
    const announce = (): void => publishStatus(core, config, { ...status(), status: 'up' })
    bridge.link.on('up', announce)
    bridge.link.on('down', announce)
  }
  // audit batches with signed checkpoints go up the same link
  const shipper = bridge && journal instanceof LmdbJournal ? await createShipper(config, journal, bridge.link, { logger, clock }) : undefined
  // hot reload: a new policy is one reference swap; live subscriptions it denies are removed
  // fleet bundles (SPEC §8): a stored bundle, re-verified, replaces the local files at boot
  const fleet = await setupFleet(config, { journal, logger, clock, apply: (p) => { swapMasks(p); core.setPolicy(p); void core.recheckSubscriptions('policy_changed') } })
  if (fleet?.restored) { swapMasks(fleet.restored); core.setPolicy(fleet.restored) }
  const policyWatch = startPolicyWatch(config, { logger, journal, clock, current: () => core.policy.revision, apply: (p) => { if (fleet?.inForce()) return logger.warn({ event: 'policy_local_ignored', fleetVersion: fleet.receiver.version }, 'local policy files changed, but a fleet bundle is in force: ignored'); swapMasks(p); core.setPolicy(p); void core.recheckSubscriptions('policy_changed') } })
  // masks follow the policy document they came with; invalid masks keep the running ones
  function swapMasks(p: { readonly revision: string }): void {
    try {
      masksFromPolicy(masker, config, logger, p)
    } catch (err) {
      const reason = (err as Error).message
      logger.error({ event: 'masks_rejected', err: reason }, 'masks in the new policy are invalid: keeping the running masks')
      journal.record({ type: 'policy_rejected', reason: `masks: ${reason}`.slice(0, 500), policyRev: p.revision })
    }
  }
  const admin = config.admin.enabled ? new AdminServer(config.admin.host, config.admin.port) : undefined
  if (admin) admin.onError = (err, route) => logger.error({ event: 'admin_error', route, err: err.message }, 'admin API handler failed')
  const startedAt = clock.now()

  const status = () => ({
    status: 'ok',
    gateway: config.gateway.id,
    fleet: config.gateway.fleet,
    version: VERSION,
    uptimeSec: Math.round((clock.now() - startedAt) / 1000),
    connections: core.admission.open,
    policyRevision: core.policy.revision,
    journalWritable: journal.writable,
    ...(cluster ? { cluster: cluster.status() } : {}),
    ...(bridge ? { upstream: bridge.status() } : {}),
  })
  if (admin) {
    const verify = bearerVerifier(new Authenticator(config.auth.jwt, keys, clock))
    registerApprovalRoutes(admin, { approvals, grants, grantors: config.admin.approvers, verify, preview })
    registerSessionRoutes(admin, { core, verify, admins: config.admin.admins })
    registerInventoryRoutes(admin, { inventory, verify, admins: config.admin.admins })
    registerAuditRoutes(admin, { dataDir: config.gateway.dataDir, gatewayId: config.gateway.id, verify, admins: config.admin.admins, available: () => journal instanceof LmdbJournal })
    registerConsole(admin)
    // liveness: the process answers (a full journal is not fixed by a restart, so it stays 200 here)
    admin.route('GET', '/healthz', (_req, res) => sendJson(res, 200, status()))
    // readiness: listeners bound and the journal accepting records
    admin.route('GET', '/readyz', (_req, res) => {
      const ready = started && journal.writable
      sendJson(res, ready ? 200 : 503, { ready, journalWritable: journal.writable, started })
    })
    admin.route('GET', '/metrics', async (_req, res) => {
      const text = await metrics.registry.metrics()
      res.writeHead(200, { 'content-type': metrics.registry.contentType })
      res.end(text)
    })
  }

  let started = false
  const gw: Gateway = {
    config, logger, metrics, journal, devKey, core, bridge,
    async start() {
      try {
        await cluster?.connect()
        await core.listen()
        await admin?.listen()
        fleet?.start(bridge?.link)
        await bridge?.start()
        shipper?.start()
      } catch (err) {
        await core.close().catch(() => {})
        await bridge?.stop().catch(() => {})
        await admin?.close()
        await persistence?.destroy()
        await cluster?.close()
        await inventory?.close()
        keys.close()
        throw err
      }
      await approvals.start()
      grants.start()
      inventory?.start()
      metrics.holdsPending.set(approvals.pending().length)
      started = true
      publishStatus(core, config, { ...status(), status: 'up' })
      logger.info({ event: 'started', listeners: core.listeners.map((l) => ({ name: l.name, ...l.address() })), admin: admin?.address() }, 'edgewarden started')
    },
    async stop() {
      if (!started) return
      started = false
      policyWatch?.close()
      approvals.stop()
      grants.stop()
      await core.close()
      // after the broker: the last sessions' counts are in; before the journal: flags are records
      await inventory?.close()
      await shipper?.stop()
      // after the broker: messages still being routed reach the outbox; then it closes durably
      await bridge?.stop()
      // after the broker: it may still clear queues while closing clients; drop counts go to the journal
      await persistence?.destroy()
      await cluster?.close()
      await admin?.close()
      await holdStore.close()
      await fleet?.close()
      keys.close()
      await journal.flush()
      await journal.close()
      logger.info({ event: 'stopped' }, 'edgewarden stopped')
    },
    address(name) {
      if (name === 'admin') return admin?.address()
      return core.listeners.find((l) => l.spec.type === name)?.address()
    },
  }
  return gw
}

/** the cloud sees the masked view of a message (masking stage: core.maskedView), else the payload as routed */
function maskedViewOf(core: GatewayCore): ((p: { readonly topic: string; readonly payload: Buffer | string }) => Buffer) | undefined {
  const c = core as unknown as { maskedView?: (p: { readonly topic: string; readonly payload: Buffer | string }) => Buffer }
  return typeof c.maskedView === 'function' ? (p) => c.maskedView!(p) : undefined
}

/** on a site cluster the retained store is shared: each gateway keeps its own status topic */
function statusTopic(config: Config): string {
  return config.broker.cluster?.redis ? `$warden/status/${config.gateway.id}` : '$warden/status'
}

function publishStatus(core: GatewayCore, config: Config, body: object): void {
  core.aedes.publish({ cmd: 'publish', topic: statusTopic(config), payload: Buffer.from(JSON.stringify({ ...body, at: new Date().toISOString() })), qos: 0, retain: true, dup: false }, () => {})
}

export { loadConfig } from './config/load.js'
export type { Config } from './config/types.js'
export { mintToken } from './identity/mint.js'
