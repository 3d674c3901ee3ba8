import { randomUUID } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { Aedes, AedesPublishPacket, Client, ConnectPacket, PublishPacket, Subscription } from 'aedes'
import type { Config } from './config/types.js'
import type { Clock } from './clock.js'
import type { Logger } from './logger.js'
import type { Journal, JournalEntry } from './journal/types.js'
import type { Action, Decision, DecisionInput, PolicyEngine } from './policy/types.js'
import type { Approvals } from './hold/approvals.js'
import type { Grants } from './hold/grants.js'
import type { HeldMessage } from './hold/types.js'
import { isReservedTopic } from './policy/reserved.js'
import { Authenticator } from './identity/authenticate.js'
import { ExpiryWheel } from './identity/expiry-wheel.js'
import type { KeyStore } from './identity/keys.js'
import type { AuthFailure, AuthResult, Identity } from './identity/types.js'
import { journalUsername } from './identity/username.js'
import { MAX_CLIENT_ID, oversizedConnect } from './identity/connect-size.js'
import { RecordLimiter } from './listeners/record-limiter.js'
import { Admission, createListener, ParserGuard, type ConnectionMeta, type GuardableParser, type Listener, type RefusalReason } from './listeners/index.js'
import { createAedes, DENIED_TOPIC } from './broker/create.js'
import type { ClusterGate } from './broker/cluster.js'
import { DeliveryLimits, type SlowInfo } from './broker/delivery-limits.js'
import { malformedTopic } from './broker/topic-check.js'
import { describeFault, guarded, isFaultError, isolateHooks, type HookName } from './broker/isolate.js'
import type { Metrics } from './admin/metrics.js'
import { REDACTED_ALL } from './mask/apply.js'
import type { Masker, PublishMasking } from './mask/masker.js'
import { isMonitored, MONITOR_ALLOW, wouldType } from './policy/monitor.js'
import { EFFECT_INDEX, type Inventory, type SessionTracker } from './inventory/index.js'
import { matchTopic } from './bridge/topic.js'
import PacketFn from 'aedes-packet'

/** Per-connection state, attached once authentication succeeds. */
interface Session {
  readonly identity: Identity
  readonly id: string
  readonly meta: ConnectionMeta
  readonly connectedAt: number
  /** the expiry wheel's slot while the session is due to be closed at token expiry */
  expirySlot?: number
  /** the end of this session is journaled already (expiry, kick) */
  closeJournaled?: boolean
  /** inventory counters of this session (absent when the inventory is off) */
  inv?: SessionTracker
  /** while a QoS 1 message of this session waits to be routed after its commit: settles once the last such one is routed (later ones queue behind it) */
  routeTail?: Promise<unknown>
}

/** A retained message's place among its topic's stores: issued after `prev` is; `end` lets the next one be issued. */
interface RetainTurn { readonly prev: Promise<void> | undefined; readonly end: () => void }

interface Pending {
  readonly emptyClientId: boolean
  readonly clean: boolean
  /** mqtt-packet keeps the CONNECT packet (parser.settings) for the connection's life */
  readonly packet: ConnectPacket
}

export interface GatewayParts {
  readonly config: Config
  readonly logger: Logger
  readonly clock: Clock
  readonly journal: Journal
  readonly policy: PolicyEngine
  readonly keys: KeyStore
  readonly metrics: Metrics
  /** time-bound allows granted by approvers (widen default deny only) */
  readonly grants?: Grants
  /** the approval queue for publishes a rule holds; without it a hold is a deny */
  readonly approvals?: Approvals
  /** an aedes-persistence instance (src/broker/persistence); absent → Aedes' in-memory store */
  readonly persistence?: object
  /** the site cluster (broker.cluster.redis): the shared emitter, and the fail-closed gate while Redis is away */
  readonly cluster?: ClusterGate
  /** payload masking (SPEC §5 masks); absent → payloads pass unmasked */
  readonly masker?: Masker
  /** who is on the site and what they do (src/inventory); absent → not kept */
  readonly inventory?: Inventory
}

/** What the cloud bridge (src/bridge) offers the publish path; Aedes stays spoken only here. */
export interface PublishTap {
  /** why a publish must be refused (a `block` outbox is full and the topic is bridged), or undefined */
  refusal(topic: string): string | undefined
  /** queues the packet for the cloud when a mapping takes it; resolves once safe (acknowledged by the cloud, or written), never rejects (the QoS 1 path waits for it only after the journal's commit: a rejection meanwhile would go unhandled) */
  accept(packet: { readonly topic: string; readonly payload: Buffer | string; readonly qos: number; readonly retain: boolean }): Promise<unknown> | undefined
}

type AuthError = Error & { returnCode: number }
/** where refused publishes go: nowhere (see #drop) */
const noop = (): void => {}
/** aedes-packet: numbers a packet as Aedes' publish does (brokerId, ++counter) */
const Packet = PacketFn as unknown as new (o: object, broker: object) => object
/** the LMDB persistence's durable queueing of QoS 1 messages, as the gateway uses it */
interface DurableQueue {
  /** `publisher`: the connection it came on (Aedes routes it only while that is open) */
  prepare(packet: object, publisher: { readonly closed?: boolean }): Promise<void> | undefined
  /** whether prepare() would queue it: a persistent session's subscription matches */
  queuesDurably(packet: object): boolean
}
/** Aedes.publish as the broker's PUBLISH handler calls it (its typings leave out the client) */
type AedesPublishFrom = (packet: PublishPacket, client: Client, done: (err?: Error | null) => void) => void
const EMPTY = Buffer.alloc(0)

/**
 * The one place that speaks Aedes: turns stage results (Identity, Decision, journal
 * commits) into CONNACK / SUBACK codes, PUBACK timing and disconnects.
 */
export class GatewayCore {
  readonly aedes: Aedes
  readonly listeners: Listener[]
  readonly admission: Admission
  readonly #auth: Authenticator
  /** sessions to close when their token expires (auth.jwt.disconnectOnExpiry) */
  readonly #expiry: ExpiryWheel<Client>
  /** per-subscriber bound on undelivered messages (limits.maxQueued*, slowConsumerTimeoutSec) */
  readonly #delivery: DeliveryLimits
  /** records a peer can trigger at will (refusals, malformed packets): a few per second per address */
  readonly #limited: RecordLimiter
  /** the LMDB persistence: it queues a QoS 1 message durably before the PUBACK (src/broker/persistence/lmdb.ts prepare) */
  readonly #durableQueue?: DurableQueue
  readonly #sessions = new WeakMap<Client, Session>()
  readonly #pending = new WeakMap<Client, Pending>()
  readonly #meta = new WeakMap<Duplex, ConnectionMeta>()
  /** limits.maxPacketBytes in front of every connection's parser (a number on the parser, no closure) */
  readonly #packetSize: ParserGuard
  /** every stream's one close listener, shared: `this` is the stream, Aedes set `stream.client` */
  readonly #onClose: (this: Duplex) => void
  #policy: PolicyEngine
  #closing = false
  readonly #maskCounters = new Map<string, { inc(): void }>()
  /** per topic, while retained stores of it are pending: the last one's turn (#retainTurn) */
  readonly #retainTurns = new Map<string, Promise<void>>()
  /** policies.mode: monitor — refusals, holds and masks are journaled as would_*, not enforced */
  readonly #monitor: boolean
  /** the cloud bridge's side of the publish path, set when `upstream` is configured */
  bridgeTap: PublishTap | undefined

  constructor(private readonly p: GatewayParts) {
    const { config, clock } = p
    this.#policy = p.policy
    this.#monitor = config.policies.mode === 'monitor'
    this.#auth = new Authenticator(config.auth.jwt, p.keys, clock)
    this.#expiry = new ExpiryWheel(clock, (c) => this.#onExpiry(c))
    this.admission = new Admission(config.limits.maxConnections, config.limits.connectRatePerAddress, clock)
    // crash isolation: an exception while handling one client's packet disconnects that client
    const fault = (c: Client | null, hook: HookName, err: unknown): void => this.#onFault(c, hook, err)
    this.aedes = createAedes(config, isolateHooks({
      preConnect: (c, pk, cb) => this.#preConnect(c, pk, cb),
      authenticate: (c, u, pw, done) => this.#authenticate(c, u, pw, done),
      authorizePublish: (c, pk, cb) => this.#authorizePublish(c, pk, cb),
      authorizeSubscribe: (c, sub, cb) => this.#authorizeSubscribe(c, sub, cb),
      authorizeForward: (c, pk) => this.#authorizeForward(c, pk),
      persistence: p.persistence,
      ...(p.cluster ? { mq: p.cluster.mq } : {}),
    }, fault))
    const persistence = p.persistence as Partial<DurableQueue> | undefined
    if (typeof persistence?.prepare === 'function' && typeof persistence.queuesDurably === 'function') this.#durableQueue = persistence as DurableQueue
    this.#limited = new RecordLimiter(p.journal)
    this.#delivery = new DeliveryLimits({
      maxMessages: config.limits.maxQueuedMessages,
      maxBytes: config.limits.maxQueuedBytes,
      slowTimeoutMs: Math.round(config.limits.slowConsumerTimeoutSec * 1000),
      journal: p.journal,
      registry: p.metrics.registry,
      describe: (c) => { const s = this.#sessions.get(c); return s && { session: s.id, clientId: s.identity.clientId, sub: s.identity.sub } },
      onSlow: (c, i) => this.#closeSlow(c, 'slow_consumer', i),
      onBacklog: (c, i) => this.#closeSlow(c, 'resume_session_backlog', i),
    })
    this.aedes.on('clientReady', (c) => guarded(c, fault, (x) => this.#onReady(x), c))
    this.aedes.on('clientDisconnect', (c) => guarded(c, fault, (x) => this.#onDisconnect(x), c))
    this.aedes.on('clientError', (c, err) => guarded(c, fault, (x) => this.#onClientError(x, err), c))
    this.aedes.on('connectionError', (c, err) => guarded(c, fault, (x) => this.#onClientError(x, err), c))
    const deps = {
      admission: this.admission,
      connectTimeoutMs: Math.round(config.limits.connectTimeoutSec * 1000),
      maxPacketBytes: config.limits.maxPacketBytes,
      onConnection: (stream: Duplex, meta: ConnectionMeta) => this.#onConnection(stream, meta),
      onRefused: (meta: ConnectionMeta, reason: RefusalReason, detail?: string) => this.#onRefused(meta, reason, detail),
    }
    this.listeners = config.listeners.map((l) => createListener(l, deps))
    this.#packetSize = new ParserGuard(config.limits.maxPacketBytes, (parser) => this.#packetTooLarge(parser))
    const core = this
    this.#onClose = function (this: Duplex): void { core.#onStreamClose((this as Duplex & { client: Client }).client) }
  }

  /** Swaps the compiled policy atomically (hot reload, fleet bundle). */
  setPolicy(policy: PolicyEngine): void {
    this.#policy = policy
  }

  get policy(): PolicyEngine { return this.#policy }

  async listen(): Promise<void> {
    // Aedes sets up its persistence and emitter in listen(); sockets come after
    await this.aedes.listen()
    // the verify worker starts before the first CONNECT: its isolate is a one-time cost, not the first client's wait
    this.#auth.warm()
    for (const l of this.listeners) await l.listen()
  }

  /** Stops accepting, closes every client cleanly, then destroys stragglers. */
  async close(): Promise<void> {
    this.#closing = true
    await Promise.all(this.listeners.map((l) => l.stopAccepting()))
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()))
    for (const l of this.listeners) l.destroyAll()
    this.#delivery.flush()
    this.#limited.flush()
    this.#auth.close()
    this.#expiry.close()
  }

  sessionOf(client: Client): Session | undefined {
    return this.#sessions.get(client)
  }

  #journal(e: JournalEntry): void {
    this.p.journal.record(e)
  }

  #onConnection(stream: Duplex, meta: ConnectionMeta): void {
    if (this.#closing) {
      stream.destroy()
      return
    }
    this.#meta.set(stream, meta)
    this.p.metrics.connections.inc()
    const client = this.aedes.handle(stream)
    // one shared close listener for all of the gateway's per-connection state: each `once` or
    // arrow costs a closure (and a wrapper) per idle connection; Aedes' Client set stream.client
    stream.on('close', this.#onClose)
    // Aedes has no packet size limit: watch fixed headers before its parser buffers a body
    const parser = (client as unknown as { _parser?: GuardableParser })._parser
    if (parser) this.#packetSize.install(parser)
    // the delivery bound is attached at the first SUBSCRIBE (or CONNECT of a persistent
    // session, which may restore subscriptions): a publish-only device never needs it
  }

  #onStreamClose(client: Client): void {
    this.p.metrics.connections.dec()
    this.#delivery.detach(client)
    // a connection that ends before Aedes registers it (closed mid-CONNECT) never sees
    // clientDisconnect: without this the expiry wheel would keep the client until the token expires
    const s = this.#sessions.get(client)
    if (s) this.#disarm(client, s)
  }

  /** A fixed header declared more than limits.maxPacketBytes: journaled (rate-limited), the connection closed before its body is buffered. */
  #packetTooLarge(parser: GuardableParser): void {
    // Aedes' Client set parser.client; the client's conn is the stream it was handed
    const client = (parser as GuardableParser & { client: Client }).client
    const stream = client.conn as Duplex
    const meta = this.#meta.get(stream)
    this.p.metrics.protocolErrors.inc({ reason: 'packet_too_large' })
    const s = this.#sessions.get(client)
    this.#limited.record('protocol_error\0' + (meta?.remoteAddress ?? ''), 'packet_too_large', { type: 'protocol_error', reason: 'packet_too_large', listener: meta?.listener, remote: meta?.remoteAddress, session: s?.id, clientId: s?.identity.clientId, sub: s?.identity.sub })
    this.p.logger.warn({ event: 'packet_too_large', listener: meta?.listener, remote: meta?.remoteAddress, clientId: s?.identity.clientId, limit: this.#packetSize.maxBytes }, 'closing connection: packet larger than limits.maxPacketBytes')
    stream.destroy()
  }

  /** A subscriber that does not take its messages is disconnected (limits.slowConsumerTimeoutSec). */
  #closeSlow(client: Client, reason: 'slow_consumer' | 'resume_session_backlog', i: SlowInfo): void {
    const s = this.#sessions.get(client)
    if (s) s.closeJournaled = true
    this.#journal({ type: 'disconnect', reason, session: s?.id, clientId: s?.identity.clientId ?? client.id, sub: s?.identity.sub, kind: s?.identity.kind, queued: i.queued, queuedBytes: i.queuedBytes, dropped: i.dropped, stored: i.stored })
    this.p.logger.warn({ event: reason, clientId: s?.identity.clientId ?? client.id, ...i }, reason === 'slow_consumer' ? 'disconnecting a subscriber over its delivery bound for limits.slowConsumerTimeoutSec' : 'disconnecting a persistent session so it resumes the messages kept in its session store')
    client.close()
  }

  /** An exception while handling a client: journaled with the error's type and place, the client closed. */
  #onFault(client: Client | null, hook: HookName, err: unknown): void {
    const s = client ? this.#sessions.get(client) : undefined
    const meta = client ? this.#meta.get(client.conn as Duplex) : undefined
    const d = describeFault(err)
    this.p.metrics.protocolErrors.inc({ reason: 'internal_error' })
    this.#journal({ type: 'protocol_error', reason: 'internal_error', hook, ...d, session: s?.id, clientId: s?.identity.clientId ?? client?.id ?? undefined, sub: s?.identity.sub, listener: meta?.listener, remote: meta?.remoteAddress })
    this.p.logger.error({ event: 'client_fault', hook, clientId: s?.identity.clientId ?? client?.id, ...d }, 'exception while handling a client: disconnecting it')
    // after the hook has returned: Aedes may be mid-way through this client's packet
    if (client) setImmediate(() => client.close())
  }

  /** Invalid UTF-8 or U+0000 in a topic: a protocol error, the connection is closed (MQTT-1.5.3-1/2). */
  #invalidTopic(s: Session): Error {
    this.p.metrics.protocolErrors.inc({ reason: 'invalid_topic' })
    this.#limited.record('protocol_error\0' + s.meta.remoteAddress, 'invalid_topic', { type: 'protocol_error', reason: 'invalid_topic', session: s.id, clientId: s.identity.clientId, sub: s.identity.sub, listener: s.meta.listener, remote: s.meta.remoteAddress })
    // `fault`: journaled here, not again as a client error
    return Object.assign(new Error('invalid UTF-8 or NUL in topic'), { fault: true })
  }

  #onRefused(meta: ConnectionMeta, reason: RefusalReason, detail?: string): void {
    this.p.metrics.refused.inc({ reason })
    this.#limited.record('connection_refused\0' + meta.remoteAddress, reason, { type: 'connection_refused', reason, listener: meta.listener, remote: meta.remoteAddress, ...(detail ? { detail } : {}) })
  }

  #preConnect(client: Client, packet: ConnectPacket, cb: (err: Error | null, ok: boolean) => void): void {
    // keepalive bounds: MQTT 3.1.1 cannot tell the client, so the server side timer is clamped
    const { min, max } = this.p.config.limits.keepaliveSec
    if (!packet.keepalive || packet.keepalive > max) packet.keepalive = max
    else if (packet.keepalive < min) packet.keepalive = min
    this.#pending.set(client, { emptyClientId: !packet.clientId, clean: packet.clean !== false, packet })
    cb(null, true)
  }

  #authenticate(client: Client, rawUsername: string | undefined, password: Buffer | undefined, done: (err: AuthError | null, ok: boolean | null) => void): void {
    // journaled and logged below: never the token, even when firmware puts it in the username
    const username = journalUsername(rawUsername, password)
    const meta = this.#meta.get(client.conn as Duplex)
    const pending = this.#pending.get(client)
    // read once: not kept for the life of the connection; nor is the raw token (Aedes reads the password only to call this)
    this.#pending.delete(client)
    if (pending) pending.packet.password = undefined
    if (!meta || !pending) return done(Object.assign(new Error('no connection metadata'), { returnCode: 3 }), null)
    // huge clientId / username: refused before any token work, journaled with a cut clientId
    const oversized = oversizedConnect(client.id, rawUsername)
    if (oversized) return this.#refuse(client, meta, client.id.length > MAX_CLIENT_ID ? client.id.slice(0, 64) + '…' : client.id, username, oversized, done)
    const started = performance.now()
    const attempt = {
      clientId: pending.emptyClientId ? '' : client.id,
      clean: pending.clean,
      username,
      password,
      listener: meta.listener,
      remoteAddress: meta.remoteAddress,
      certSubject: meta.certSubject,
      certCN: meta.certCN,
    }
    let r: ReturnType<Authenticator['authenticate']>
    try {
      r = this.#auth.authenticate(attempt)
    } catch (err) {
      return this.#internalError(client, meta, err as Error, done)
    }
    // a throw after the check (policy, inventory): a sync one reaches the isolate wrapper; an async one would be an unhandled rejection
    if (r instanceof Promise) {
      r.then((v) => {
        try { this.#authenticated(client, meta, pending, attempt.clientId, username, started, done, v) } catch (err) { this.#onFault(client, 'authenticate', err); done(Object.assign(new Error('internal error in authenticate'), { returnCode: 3, fault: true }), null) }
      }, (err: Error) => this.#internalError(client, meta, err, done))
    } else this.#authenticated(client, meta, pending, attempt.clientId, username, started, done, r)
  }

  /** The rest of a CONNECT once the token is checked: policy, cluster gate, session. A method, not a closure per CONNECT. */
  #authenticated(client: Client, meta: ConnectionMeta, pending: Pending, clientId: string, username: string | undefined, started: number, done: (err: AuthError | null, ok: boolean | null) => void, r: AuthResult): void {
    this.p.metrics.authSeconds.observe((performance.now() - started) / 1000)
    if (!r.ok) return this.#refuse(client, meta, clientId, username, r.failure, done)
    const identity = r.identity
    const decision = this.#policy.decide(identity, 'connect', '', {})
    // monitor mode: the token was verified (authentication stays enforced); the policy's refusal is reported
    if (isMonitored(decision, this.#monitor)) this.#journal({ type: 'would_deny', action: 'connect', reason: decision.reason ?? 'policy', rule: decision.ruleId, policyRev: this.#policy.revision, clientId: identity.clientId, sub: identity.sub, kind: identity.kind, groups: identity.groups, listener: meta.listener, remote: meta.remoteAddress })
    else if (decision.effect === 'deny') {
      this.p.metrics.connects.inc({ result: 'not_authorized' })
      this.#journal({ type: 'connect_denied', reason: decision.reason ?? 'policy', rule: decision.ruleId, policyRev: this.#policy.revision, clientId: identity.clientId, sub: identity.sub, kind: identity.kind, listener: meta.listener, remote: meta.remoteAddress, username })
      return done(Object.assign(new Error('not authorized'), { returnCode: 5 }), null)
    }
    // a site cluster keeps sessions and subscriptions in Redis: without it, CONNACK 3 (server unavailable)
    const down = this.p.cluster?.refusal()
    if (down) {
      this.p.metrics.connects.inc({ result: 'refused' })
      this.#journal({ type: 'connect_denied', reason: down, clientId: identity.clientId, sub: identity.sub, kind: identity.kind, listener: meta.listener, remote: meta.remoteAddress, username })
      return done(Object.assign(new Error(down), { returnCode: 3 }), null)
    }
    if (pending.emptyClientId) (client as { id: string }).id = identity.clientId
    // a persistent session may get its stored subscriptions back at this CONNECT: they capture the deliver functions
    if (!pending.clean) this.#delivery.attach(client, true)
    // every field set here, those filled later too: a literal sized for four would take a
    // property array (and a map transition) per session when expirySlot and inv arrive
    const session: Session = { identity, id: randomUUID(), meta, connectedAt: this.p.clock.now(), expirySlot: undefined, closeJournaled: false, inv: undefined, routeTail: undefined }
    this.#sessions.set(client, session)
    this.#armExpiry(client, session)
    done(null, true)
  }

  #internalError(client: Client, meta: ConnectionMeta, err: Error, done: (err: AuthError | null, ok: boolean | null) => void): void {
    // fail closed: an authentication that cannot complete is a refusal, never an admission
    this.p.logger.error({ event: 'auth_internal_error', listener: meta.listener, err: err.message }, 'authentication failed internally')
    this.#refuse(client, meta, client.id, undefined, { reason: 'keys_unavailable', code: 'EW_INTERNAL', connack: 3 }, done)
  }

  #refuse(_client: Client, meta: ConnectionMeta, clientId: string, username: string | undefined, f: AuthFailure, done: (err: AuthError | null, ok: boolean | null) => void): void {
    this.p.metrics.authFailures.inc({ reason: f.reason })
    this.p.metrics.connects.inc({ result: 'refused' })
    this.#journal({ type: 'connect_denied', reason: f.reason, clientId, sub: f.sub, listener: meta.listener, remote: meta.remoteAddress, username })
    this.p.logger.warn({ event: 'connect_denied', reason: f.reason, code: f.code, clientId, sub: f.sub, listener: meta.listener, remote: meta.remoteAddress }, `CONNECT refused: ${f.reason}`)
    done(Object.assign(new Error(f.reason), { returnCode: f.connack }), null)
  }

  #armExpiry(client: Client, s: Session): void {
    // closed while its token was being checked: no close event will come to clear a timer
    if (s.identity.exp === undefined || !this.p.config.auth.jwt.disconnectOnExpiry || (client.conn as Duplex).destroyed) return
    // the token stays valid for clockToleranceSec past exp (as at CONNECT): a token accepted
    // inside the tolerance is not closed the moment it connects
    // one wheel for all sessions (closed at most 250 ms after exp + tolerance): no timer per connection
    s.expirySlot = this.#expiry.add(client, s.identity.exp + this.p.config.auth.jwt.clockToleranceSec * 1000)
  }

  #disarm(client: Client, s: Session): void {
    if (s.expirySlot === undefined) return
    this.#expiry.remove(client, s.expirySlot)
    s.expirySlot = undefined
  }

  #onExpiry(client: Client): void {
    const s = this.#sessions.get(client)
    if (!s || s.expirySlot === undefined) return
    s.expirySlot = undefined
    s.closeJournaled = true
    this.p.metrics.expired.inc()
    this.#journal({ type: 'session_expired', session: s.id, clientId: s.identity.clientId, sub: s.identity.sub, kind: s.identity.kind, reason: 'token expired' })
    client.close()
  }

  #onReady(client: Client): void {
    // a resumed session's queue has been sent: the live messages held meanwhile follow it
    this.#delivery.release(client)
    const s = this.#sessions.get(client)
    if (!s) return
    this.p.metrics.connects.inc({ result: 'accepted' })
    if (this.p.inventory) s.inv = this.p.inventory.connect(s.identity, s.meta, s.id)
    this.#journal({ type: 'connect', session: s.id, clientId: s.identity.clientId, sub: s.identity.sub, kind: s.identity.kind, listener: s.meta.listener, remote: s.meta.remoteAddress, username: s.identity.username, policyRev: this.#policy.revision })
  }

  #onDisconnect(client: Client): void {
    const s = this.#sessions.get(client)
    if (!s) return
    this.#disarm(client, s)
    this.#sessions.delete(client)
    if (s.inv) this.p.inventory?.disconnect(s.inv)
    this.#policy.release?.(s.identity.clientId)
    if (!s.closeJournaled) this.#journal({ type: 'disconnect', session: s.id, clientId: s.identity.clientId, sub: s.identity.sub, kind: s.identity.kind })
  }

  #onClientError(client: Client, err: Error): void {
    const s = this.#sessions.get(client)
    const meta = this.#meta.get(client.conn as Duplex)
    const message = err.message.slice(0, 200)
    // a hook's exception was journaled by #onFault
    if (isFaultError(err)) return
    // a refused CONNECT was journaled as connect_denied already
    if ((err as { errorCode?: number }).errorCode !== undefined && !s) return
    // ordinary ends of connections are not protocol errors
    if (/ECONNRESET|EPIPE|keep alive timeout|connection closed|premature close/i.test(message)) return
    // limits.connectTimeoutSec tripping gets a stable reason; other errors keep Aedes' message
    const timeout = message === 'connect did not arrive in time'
    this.p.metrics.protocolErrors.inc({ reason: timeout ? 'connect_timeout' : 'client_error' })
    this.#limited.record('protocol_error\0' + (meta?.remoteAddress ?? ''), message, { type: 'protocol_error', reason: timeout ? 'connect_timeout' : message, session: s?.id, clientId: s?.identity.clientId ?? client.id, sub: s?.identity.sub, listener: meta?.listener, remote: meta?.remoteAddress })
    this.p.logger.info({ event: 'client_error', clientId: s?.identity.clientId ?? client.id, listener: meta?.listener, err: message }, 'connection closed on error')
  }

  #authorizePublish(client: Client | null, packet: PublishPacket, cb: (err?: Error | null) => void): void {
    if (!client) return cb(null)
    const s = this.#sessions.get(client)
    if (!s) return cb(new Error('not authenticated'))
    const id = s.identity
    const topic = packet.topic
    if (malformedTopic(topic)) return cb(this.#invalidTopic(s))
    const payload = packet.payload as Buffer
    let decision = this.#decide(id, 'publish', topic, { qos: packet.qos, retain: packet.retain, payload })
    if (decision.effect !== 'allow' && isMonitored(decision, this.#monitor)) decision = this.#would(s, 'publish', topic, decision, packet)
    s.inv?.publish(topic, payload, EFFECT_INDEX[decision.effect])
    const gated = decision.effect === 'allow' ? (this.bridgeTap?.refusal(topic) ?? this.p.cluster?.refusal()) : undefined
    if (decision.effect === 'deny' || gated !== undefined || !this.p.journal.writable) {
      const reason = decision.effect === 'deny' ? (decision.reason ?? 'policy') : (gated ?? 'journal_full')
      this.p.metrics.publishes.inc('deny')
      this.#journal({ type: 'publish_denied', session: s.id, clientId: id.clientId, sub: id.sub, kind: id.kind, topic, qos: packet.qos, retain: packet.retain, bytes: payload.length, rule: decision.ruleId, reason, policyRev: this.#policy.revision })
      // MQTT 3.1.1 has no negative PUBACK ([MQTT-3.3.5-2]): acknowledge and drop (default), or close
      // without Redis nothing can be routed, not even nowhere: a cluster outage closes the connection
      if (this.p.config.policies.deniedPublish === 'disconnect' || reason === 'cluster_unavailable') return cb(new Error(`publish denied: ${reason}`))
      return this.#drop(packet, cb)
    }
    // masks apply before anything keeps the payload (broker, retained store, hold queue, journal)
    let masked = this.p.masker?.onPublish(topic, payload)
    // monitor mode: what masking would do is journaled (would_mask / would_deny); subscribers get the payload as sent
    if (masked && this.#monitor) masked = this.#wouldMask(s, packet, masked)
    if (masked && !masked.ok) return this.#refuseUnmaskable(s, packet, masked, decision.ruleId, cb)
    if (masked) {
      packet.payload = masked.payload
      for (const m of masked.masks) this.#maskCounter(m).inc()
    }
    if (decision.effect === 'hold') return this.#hold(s, packet, decision, cb)
    this.p.metrics.publishes.inc('allow')
    // payload: the journal keeps, seals or drops it per journal.recordPayloads (session replay)
    // masked messages: the journal keeps the masked view, or under `sealed` the raw payload it encrypts to the auditors
    const entry: JournalEntry = masked
      ? { type: 'publish', session: s.id, clientId: id.clientId, sub: id.sub, kind: id.kind, topic, qos: packet.qos, retain: packet.retain, bytes: payload.length, rule: decision.ruleId, payload: this.p.config.journal.recordPayloads === 'sealed' ? payload : this.maskedView(packet), masks: masked.masks, masked: masked.counts }
      : { type: 'publish', session: s.id, clientId: id.clientId, sub: id.sub, kind: id.kind, topic, qos: packet.qos, retain: packet.retain, bytes: payload.length, rule: decision.ruleId, payload: this.#monitor && this.p.masker && this.p.config.journal.recordPayloads !== 'sealed' ? this.maskedView(packet) : payload }
    // the PUBACK waits until the bridge has the cloud's view safe (the cloud's PUBACK, or the outbox's commit): QoS 1 end to end
    const bridged = this.bridgeTap?.accept(packet)
    if (packet.qos > 0) {
      // Aedes writes PUBACK right after this callback: acknowledge only what the journal holds (and the cloud or the outbox)
      // chained, not Promise.all: the bridge's promise never rejects (accept()), and this is two
      // promises a message fewer
      const journaled = this.p.journal.commit(entry)
      const durable = bridged ? journaled.then(() => bridged) : journaled
      if (packet.qos === 1) return this.#routeQos1(client, s, packet, durable, cb)
      durable.then(() => cb(null), (err: Error) => cb(err))
    } else {
      this.p.journal.record(entry)
      if (packet.retain) return this.#routeRetained0(client, packet, cb)
      cb(null)
    }
  }

  #authorizeSubscribe(client: Client, sub: Subscription, cb: (err: Error | null, sub?: Subscription | null) => void): void {
    const s = this.#sessions.get(client)
    if (!s) return cb(new Error('not authenticated'))
    if (malformedTopic(sub.topic)) return cb(this.#invalidTopic(s))
    const id = s.identity
    let decision = this.#decide(id, 'subscribe', sub.topic, { qos: sub.qos })
    if (decision.effect !== 'allow' && isMonitored(decision, this.#monitor)) decision = this.#would(s, 'subscribe', sub.topic, decision, sub)
    if (s.inv) this.p.inventory?.subscribed(s.inv, sub.topic, EFFECT_INDEX[decision.effect])
    if (decision.effect !== 'allow') {
      this.p.metrics.subscribes.inc({ effect: 'deny' })
      this.#journal({ type: 'subscribe_denied', session: s.id, clientId: id.clientId, sub: id.sub, kind: id.kind, topic: sub.topic, qos: sub.qos, rule: decision.ruleId, reason: decision.reason ?? 'policy', policyRev: this.#policy.revision })
      return cb(null, null)
    }
    const qos = Math.min(sub.qos, decision.maxQos ?? 2) as Subscription['qos']
    // before Aedes reads client.deliverQoS / deliver0 for this subscription (idempotent)
    this.#delivery.attach(client)
    this.p.metrics.subscribes.inc({ effect: 'allow' })
    this.#journal({ type: 'subscribe', session: s.id, clientId: id.clientId, sub: id.sub, kind: id.kind, topic: sub.topic, qos, rule: decision.ruleId })
    // in place: Aedes persists packet.subscriptions (restored sessions), not the returned object.
    // Aedes 1.2 still reports the requested QoS in SUBACK; delivery uses this granted one.
    if (qos !== sub.qos) sub.qos = qos
    cb(null, sub)
  }

  /** one labelled child per mask id, so the publish path does no label lookup */
  #maskCounter(id: string): { inc(): void } {
    let c = this.#maskCounters.get(id)
    if (!c) this.#maskCounters.set(id, (c = this.p.metrics.masksApplied.labels(id)))
    return c
  }

  /**
   * QoS 1: the PUBACK waits until the record (and the outbox copy) is on disk; the message
   * itself goes to subscribers at once (`journal.deliverAfterCommit: false`, the default) or
   * after that too. Aedes 1.2 writes PUBACK before it routes, so routing at once means the
   * gateway routes the message itself and, once it is durable, lets Aedes acknowledge an
   * emptied copy that goes nowhere: the disk's latency leaves the delivery path (under load a
   * record waits milliseconds for its group's commit and fsync).
   *
   * A message the LMDB persistence must queue for a persistent session (or store as retained)
   * is routed after its commit, as is every message of the session after such a one until it
   * has gone ([MQTT-4.6.0-6]: one client's messages on a topic arrive in order; routed at once,
   * a later message would overtake it, or a resumed session's queue still being sent).
   */
  #routeQos1(client: Client, s: Session, packet: PublishPacket, durable: Promise<unknown>, cb: (err?: Error | null) => void): void {
    if (this.p.config.journal.deliverAfterCommit || s.routeTail || this.#durableQueue?.queuesDurably(packet)) return this.#routeAfterCommit(client, s, packet, durable, cb)
    // a method of its own: a branch written in here cost the plain QoS 1 path 1–2 µs a message (fan-in 93 → 83 %)
    if (packet.retain) return this.#routeQos1Retained(client, s, packet, durable, cb)
    let routeErr: Error | null | undefined
    let routed = false
    let acknowledge: (() => void) | undefined
    // as Aedes' own handler calls it: with the client, which tags the message with its clientId
    ;(this.aedes.publish as unknown as AedesPublishFrom).call(this.aedes, packet, client, (err?: Error | null) => {
      routeErr = err
      routed = true
      acknowledge?.()
    })
    durable.then(() => {
      // on a site cluster the route writes Redis (persistent sessions' queues, the retained
      // store) and has no prepare step: the PUBACK waits for those writes too. No named
      // closure on the common path: run from source (tsx keeps names), each costs a defineProperty
      if (routed || !this.p.cluster) {
        if (routeErr) cb(routeErr)
        else this.#drop(packet, cb)
      } else acknowledge = () => (routeErr ? cb(routeErr) : this.#drop(packet, cb))
    }, (err: Error) => cb(err))
  }

  /**
   * Aedes routes a retained message only once its retained store has taken it (asynchronous:
   * an LMDB commit, a Redis round trip), so the messages read behind it from the same socket
   * overtook it ([MQTT-4.6.0-6]: one client's messages on a topic arrive in order). The gateway
   * stores it itself and routes it at once as subscribers with an established subscription get
   * it anyway (retain 0, [MQTT-3.3.1-9]; Aedes 1.2 speaks MQTT 3.1/3.1.1 only, no
   * retain-as-published). The stores of one topic apply in the order their messages were read
   * (#retainTurn), whenever each may start: a QoS 1 one waiting for its commit
   * (deliverAfterCommit, a persistent session's queue) is not overwritten by a QoS 0 one read
   * after it and stored at once, nor does it overwrite that one. Earlier (d577133) each
   * retained message was routed after the previous one had been stored: one commit each, and
   * a retained flood piled up in memory as Aedes read on.
   */
  #storeRetained(packet: PublishPacket, turn: RetainTurn = this.#retainTurn(packet.topic)): Promise<unknown> {
    // numbered now: the caller empties the packet (#drop) once routed
    const retained = new Packet({ cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: packet.qos, retain: true, dup: false }, this.aedes)
    const persistence = (this.aedes as unknown as { persistence: { storeRetained(p: object): Promise<void> } }).persistence
    const store = (): Promise<void> => {
      let stored: Promise<void>
      try { stored = persistence.storeRetained(retained) } catch (err) { stored = Promise.reject(err) }
      // issued: every store applies its writes in the order called (LMDB puts, one Redis
      // connection), so the topic's next one may be issued now, without waiting for a commit
      turn.end()
      return stored
    }
    return turn.prev ? turn.prev.then(store) : store()
  }

  /** The place of a retained message among its topic's stores, taken as it is read (see #storeRetained). */
  #retainTurn(topic: string): RetainTurn {
    const prev = this.#retainTurns.get(topic)
    let end!: () => void
    const mine = new Promise<void>((resolve) => { end = resolve })
    this.#retainTurns.set(topic, mine)
    void mine.then(() => { if (this.#retainTurns.get(topic) === mine) this.#retainTurns.delete(topic) })
    return { prev, end }
  }

  /** A retained message that will not be stored (not acknowledged): the topic's next store waits only for those before it. */
  #passRetainTurn(turn: RetainTurn): void {
    if (turn.prev) void turn.prev.then(turn.end)
    else turn.end()
  }

  /**
   * QoS 0, retained: stored (#storeRetained) and routed now; Aedes' own route of the packet is
   * emptied. Its callback waits for the store: Aedes reads the socket on once a read's packets
   * are done, so a retained flood goes at the store's pace, held in memory one read at a time.
   */
  #routeRetained0(client: Client, packet: PublishPacket, cb: (err?: Error | null) => void): void {
    const stored = this.#storeRetained(packet)
    const routed = this.#publishCopy(client, packet, false)
    Promise.all([stored, routed]).then(([, err]) => (err ? cb(err) : this.#drop(packet, cb)), (err: Error) => cb(err))
  }

  /**
   * QoS 1, retained, routed at once: stored once its record is committed (a message the journal
   * refused is not acknowledged, so not retained either), in its topic's turn; the PUBACK waits
   * for the store too.
   */
  #routeQos1Retained(client: Client, s: Session, packet: PublishPacket, durable: Promise<unknown>, cb: (err?: Error | null) => void): void {
    const turn = this.#retainTurn(packet.topic)
    const stored = durable.then(() => this.#storeRetained(packet, turn), (err: Error) => {
      this.#passRetainTurn(turn)
      throw err
    })
    packet.retain = false
    this.#routeQos1(client, s, packet, stored, cb)
  }

  /**
   * Routes a copy of the packet as the client's (Aedes tags it with the clientId); resolves with
   * the route's error, if any. A number the packet carries (LMDB's prepare() numbers the
   * messages it queues) goes with it: Aedes keeps it, so queue entries and live copies agree.
   */
  #publishCopy(client: Client, packet: PublishPacket, retain: boolean): Promise<Error | null | undefined> {
    const n = packet as PublishPacket & { brokerId?: string; brokerCounter?: number }
    const copy = (n.brokerCounter
      ? { cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: packet.qos, retain, dup: false, brokerId: n.brokerId, brokerCounter: n.brokerCounter }
      : { cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: packet.qos, retain, dup: false }) as PublishPacket
    return new Promise((resolve) => (this.aedes.publish as unknown as AedesPublishFrom).call(this.aedes, copy, client, resolve))
  }

  /**
   * Routed (and acknowledged) once durable, in the session's order: the gateway routes a copy
   * itself once the message is ready, each after the session's previous one has started its
   * route, and the PUBACK waits for the route. Left to Aedes, the route would follow the
   * PUBACK's write: on a site cluster the PUBACK would go before Redis holds the message (the
   * route writes persistent sessions' queues there, with no prepare step), and a retained
   * message stored beside its route (#storeRetained) would overtake the ones before it. The
   * LMDB store recognises a prepared message by the number prepare() gave it, which the copy
   * carries (#publishCopy).
   */
  #routeAfterCommit(client: Client, s: Session, packet: PublishPacket, durable: Promise<unknown>, cb: (err?: Error | null) => void): void {
    // the persistence queues it only once its record is committed (a refused record queues nothing)
    const queue = this.#durableQueue
    // the gateway routes it, publisher gone or not: the persistence may forget a prepared
    // message only once this route is over (lmdb.ts #sweepPrepared), not when the client closes
    const routing = { closed: false }
    const ready = queue ? durable.then(() => queue.prepare(packet, routing)) : durable
    const mine = s.routeTail ? Promise.all([s.routeTail, ready]) : ready
    // a retained message's place among its topic's stores is the order it was read in
    const turn = packet.retain ? this.#retainTurn(packet.topic) : undefined
    // (the route's promise in an object: one returned from then() would be waited for)
    const started = mine.then(() => {
      const stored = turn ? this.#storeRetained(packet, turn) : undefined
      const routed = this.#publishCopy(client, packet, false)
      return { done: stored ? Promise.all([stored, routed]).then(([, err]) => err) : routed }
    })
    // the session's next message starts its route once this one's has started: in order
    const tail = (s.routeTail = started.then(noop, noop))
    const settle = (err?: Error | null): void => {
      // the last one waiting: the session's next message may go at once again
      if (s.routeTail === tail) s.routeTail = undefined
      routing.closed = true
      cb(err)
    }
    started.then(({ done }) => done.then((err) => (err ? settle(err) : this.#drop(packet, settle)), (err: Error) => settle(err)), (err: Error) => {
      if (turn) this.#passRetainTurn(turn)
      settle(err)
    })
  }

  /**
   * A refused publish (or the copy of one the gateway routed itself) is acknowledged as usual
   * (PUBACK/PUBREC) but routed nowhere: emptied, not retained, on DENIED_TOPIC, which Aedes
   * does not publish (createAedes), no store queues and every subscriber's forward refuses.
   */
  #drop(packet: PublishPacket, cb: (err?: Error | null) => void): void {
    packet.topic = DENIED_TOPIC
    packet.payload = EMPTY
    packet.retain = false
    cb(null)
  }

  #authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    if (packet.topic === DENIED_TOPIC) return null
    // before the client is ready, only its resumed queue is forwarded (live messages are held)
    if (!(client as { connected?: boolean }).connected && packet.brokerId) {
      // only what one of the session's subscriptions covers, each re-checked by the policy at this
      // CONNECT (a store may hold filters the policy refuses now; refused here, their messages
      // leave the queue). Not once the connection closed: Aedes empties client.subscriptions
      // then, and a refusal would clear the rest of the queue from the store, unsent
      const c = client as unknown as { closed?: boolean; subscriptions: Record<string, unknown> }
      if (!c.closed && !coveredBy(c.subscriptions, packet.topic)) return null
      this.#delivery.noteQueued(client, packet)
    }
    const s = this.#sessions.get(client)
    // reserved trees reach only subscribers whose own subscription a rule allowed
    if (isReservedTopic(packet.topic) && !s) return null
    if (!this.p.masker || this.#monitor) return packet
    // each subscriber gets its view; one masking per (message, view), however many subscribers
    const payload = this.p.masker.forSubscriber(s?.identity, packet.topic, packet.payload as Buffer)
    if (payload === undefined) return null
    return payload === packet.payload ? packet : { ...packet, payload }
  }

  /**
   * The payload of a packet held by the broker as the world outside may see it (bridge,
   * journal): every mask applied. A payload that cannot be masked becomes `[REDACTED]`.
   */
  maskedView(packet: { readonly topic: string; readonly payload: Buffer | string }): Buffer {
    const raw = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    if (!this.p.masker) return raw
    return this.p.masker.maskedView(packet.topic, raw) ?? REDACTED_ALL
  }

  /** A payload a mask cannot read under onParseError: block is refused like a deny. */
  #refuseUnmaskable(s: Session, packet: PublishPacket, m: Exclude<PublishMasking, { ok: true }>, rule: string | undefined, cb: (err?: Error | null) => void): void {
    const id = s.identity
    this.p.metrics.publishes.inc('deny')
    this.#journal({ type: 'publish_denied', session: s.id, clientId: id.clientId, sub: id.sub, kind: id.kind, topic: packet.topic, qos: packet.qos, retain: packet.retain, bytes: (packet.payload as Buffer).length, rule, reason: m.reason, masks: [m.mask], detail: m.detail, policyRev: this.#policy.revision })
    if (this.p.config.policies.deniedPublish === 'disconnect') return cb(new Error(`publish denied: ${m.reason}`))
    this.#drop(packet, cb)
  }

  /** A refusal or hold in monitor mode: journaled as would_deny / would_hold, and the packet proceeds. */
  #would(s: Session, action: 'publish' | 'subscribe', topic: string, d: Decision, p: { readonly qos: number; readonly retain?: boolean; readonly payload?: unknown }): Decision {
    const id = s.identity
    const type = wouldType(d)
    s.inv?.count(EFFECT_INDEX[type])
    this.#journal({ type, action, session: s.id, clientId: id.clientId, sub: id.sub, kind: id.kind, groups: id.groups, topic, qos: p.qos, retain: p.retain, bytes: (p.payload as Buffer | undefined)?.length, rule: d.ruleId, reason: d.reason ?? 'policy', policyRev: this.#policy.revision })
    return MONITOR_ALLOW
  }

  /** Monitor mode and masks: report what masking would change or refuse; the payload stays as sent. */
  #wouldMask(s: Session, packet: PublishPacket, m: PublishMasking): undefined {
    const id = s.identity
    const base = { session: s.id, clientId: id.clientId, sub: id.sub, kind: id.kind, groups: id.groups, topic: packet.topic, qos: packet.qos, bytes: (packet.payload as Buffer).length, policyRev: this.#policy.revision }
    if (!m.ok) {
      s.inv?.count(EFFECT_INDEX.would_deny)
      this.#journal({ type: 'would_deny', action: 'publish', ...base, reason: m.reason, masks: [m.mask], detail: m.detail })
    } else if (m.masks.length > 0 && Object.keys(m.counts).length > 0) {
      s.inv?.count(EFFECT_INDEX.would_mask)
      this.#journal({ type: 'would_mask', action: 'publish', ...base, masks: m.masks, masked: m.counts })
    }
    return undefined
  }

  /** Policy first; a grant can only turn a default deny (no rule matched) into an allow. */
  #decide(id: Identity, action: Action, topic: string, input: DecisionInput): Decision {
    const d = this.#policy.decide(id, action, topic, input)
    if (d.effect !== 'deny' || d.ruleId !== undefined || action === 'connect' || !this.p.grants) return d
    const g = this.p.grants.allows(id.sub, action, topic)
    return g ? { effect: 'allow', ruleId: `grant:${g.id}`, reason: 'grant' } : d
  }

  /**
   * Parks a publish until approved. The client gets its PUBACK once the hold is durable;
   * the packet itself is routed to `$warden/held/<id>`, a topic no subscriber reaches
   * unless a rule names it, and never retained — delivery happens on approval.
   */
  #hold(s: Session, packet: PublishPacket, decision: Decision, cb: (err?: Error | null) => void): void {
    const id = s.identity
    const spec = decision.hold
    if (!this.p.approvals || !spec) {
      this.p.metrics.publishes.inc('deny')
      this.#journal({ type: 'publish_denied', session: s.id, clientId: id.clientId, sub: id.sub, kind: id.kind, topic: packet.topic, qos: packet.qos, rule: decision.ruleId, reason: 'approval_unavailable' })
      return cb(new Error('publish denied: approval unavailable'))
    }
    this.p.metrics.publishes.inc('hold')
    this.p.approvals.hold({
      topic: packet.topic, payload: Buffer.from(packet.payload as Buffer), qos: packet.qos, retain: packet.retain,
      requester: { sub: id.sub, clientId: id.clientId, kind: id.kind, groups: id.groups }, session: s.id,
      ruleId: decision.ruleId ?? 'unknown',
      approval: { approvers: spec.approvers as HeldMessage['approval']['approvers'], quorum: spec.quorum, ttlMs: spec.ttlMs, selfApproval: spec.selfApproval },
    }).then((h) => {
      packet.topic = `$warden/held/${h.id}`
      packet.retain = false
      cb(null)
    }, (err: Error) => cb(err))
  }

  /** Publishes an approved held message with its original QoS and retain flag. */
  deliverHeld(h: HeldMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      this.aedes.publish({ cmd: 'publish', topic: h.topic, payload: Buffer.from(h.payload), qos: h.qos, retain: h.retain, dup: false }, (err?: Error) => (err ? reject(err) : resolve()))
    })
  }

  /**
   * Re-checks every live subscription against the current policy and grants (policy swap,
   * grant expiry) and removes the ones now denied, journaled. Returns how many went.
   */
  async recheckSubscriptions(reason: string): Promise<number> {
    let removed = 0
    const clients = (this.aedes as unknown as { clients: Record<string, Client> }).clients
    for (const client of Object.values(clients)) {
      const s = this.#sessions.get(client)
      const subs = (client as unknown as { subscriptions?: Record<string, { qos: number }> }).subscriptions
      if (!s || !subs) continue
      const denied = Object.keys(subs).filter((topic) => { const d = this.#decide(s.identity, 'subscribe', topic, { qos: subs[topic]!.qos }); return d.effect !== 'allow' && !isMonitored(d, this.#monitor) })
      if (denied.length === 0) continue
      await this.removeSubscriptions(client, denied)
      removed += denied.length
      for (const topic of denied) this.#journal({ type: 'subscribe_denied', session: s.id, clientId: s.identity.clientId, sub: s.identity.sub, kind: s.identity.kind, topic, reason, policyRev: this.#policy.revision })
    }
    return removed
  }

  /** Server-side unsubscribe (no UNSUBACK is sent; the session store forgets them too). */
  async removeSubscriptions(client: Client, topics: string[]): Promise<void> {
    await new Promise<void>((resolve) => (client as unknown as { unsubscribe(p: object, cb: () => void): void }).unsubscribe({ unsubscriptions: topics }, () => resolve()))
    if (!client.clean) await (this.aedes as unknown as { persistence: { removeSubscriptions(c: Client, t: string[]): Promise<void> } }).persistence.removeSubscriptions(client, topics)
  }

  /** Live sessions for the admin API (no tokens, no claims beyond identity basics). */
  listSessions(): SessionInfo[] {
    const out: SessionInfo[] = []
    for (const client of Object.values((this.aedes as unknown as { clients: Record<string, Client> }).clients)) {
      const s = this.#sessions.get(client)
      if (!s) continue
      const subs = (client as unknown as { subscriptions?: Record<string, { qos: number }> }).subscriptions ?? {}
      out.push({
        clientId: s.identity.clientId, sub: s.identity.sub, kind: s.identity.kind, groups: s.identity.groups,
        session: s.id, listener: s.meta.listener, remote: s.meta.remoteAddress,
        connectedAt: new Date(s.connectedAt).toISOString(), expiresAt: s.identity.exp ? new Date(s.identity.exp).toISOString() : undefined,
        subscriptions: Object.keys(subs),
      })
    }
    return out
  }

  /** A connected client's delivery backlog: messages and bytes it has not taken, drops so far. */
  deliveryBacklog(clientId: string): SlowInfo | undefined {
    const client = (this.aedes as unknown as { clients: Record<string, Client> }).clients[clientId]
    return client && this.#delivery.backlog(client)
  }

  /** Journals the delivery drops counted so far (normally once a second). */
  flushDeliveryDrops(): void {
    this.#delivery.flush()
  }

  /** Disconnects a client (admin kick), journaled with who asked. */
  kick(clientId: string, by: string): boolean {
    const client = (this.aedes as unknown as { clients: Record<string, Client> }).clients[clientId]
    const s = client && this.#sessions.get(client)
    if (!client || !s) return false
    this.#journal({ type: 'disconnect', session: s.id, clientId, sub: s.identity.sub, kind: s.identity.kind, reason: 'kicked', by })
    s.closeJournaled = true
    client.close()
    return true
  }
}

export interface SessionInfo {
  readonly clientId: string
  readonly sub: string
  readonly kind: string
  readonly groups: readonly string[]
  readonly session: string
  readonly listener: string
  readonly remote: string
  readonly connectedAt: string
  readonly expiresAt?: string
  readonly subscriptions: readonly string[]
}

function coveredBy(subscriptions: Record<string, unknown>, topic: string): boolean {
  for (const filter in subscriptions) if (matchTopic(filter, topic)) return true
  return false
}
