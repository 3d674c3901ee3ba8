import './quiet-debug.js'
import type { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import { Redis, type RedisOptions } from 'ioredis'
import MQEmitterRedis from 'mqemitter-redis'
import { createRequire } from 'node:module'
import AsyncRedisPersistence, { type OutgoingPacket } from 'aedes-persistence-redis/asyncPersistence.js'
import type { Config } from '../config/types.js'
import type { Journal } from '../journal/types.js'
import type { Logger } from '../logger.js'
import type { Clock } from '../clock.js'
import { ewError } from '../errors.js'
import type { BrokerPersistence } from './persistence/index.js'

/** What the gateway's publish and connect paths ask of a site cluster (src/gateway.ts). */
export interface ClusterGate {
  /** the Aedes emitter: every message of the site crosses Redis pub/sub */
  readonly mq: object
  /** undefined while Redis answers; else the reason a publish or CONNECT is refused */
  refusal(): string | undefined
}

export interface ClusterStatus {
  readonly redis: 'up' | 'down'
  /** ISO time of the last change */
  readonly since: string
}

export interface ClusterOptions {
  readonly journal: Journal
  readonly logger: Logger
  readonly clock: Clock
  /** how long start() waits for Redis before it fails (ms) */
  readonly connectTimeoutMs?: number
  /** called when Redis is reachable again after an outage (the gateway republishes its status) */
  readonly onUp?: () => void
}

const REFUSAL = 'cluster_unavailable'

/**
 * `broker.cluster.redis`: the gateways of one site become one broker. Messages cross through
 * Redis pub/sub (mqemitter-redis), retained messages, subscriptions, persistent sessions and
 * their queues live in Redis (aedes-persistence-redis), so a device may reconnect to any
 * gateway. Three connections (publish, subscribe, store) are opened here with fail-fast
 * options; while any of them is down the site's shared state is out of reach and the gateway
 * fails closed: publishes and CONNECTs are refused (journaled by the gateway), and the
 * outage itself is journaled as `cluster_down` / `cluster_up`.
 */
export class SiteCluster implements ClusterGate {
  readonly mq: MQEmitterRedis.MQEmitterRedis
  readonly persistence: BrokerPersistence
  readonly #conns: readonly Redis[]
  readonly #ready = new Set<Redis>()
  readonly #o: ClusterOptions
  readonly #scrub: (s: string) => string
  #up = false
  #wasUp = false
  #since: number
  #lastError = ''
  #closed = false
  readonly #id: string

  constructor(config: Config, o: ClusterOptions) {
    const secret = config.broker.cluster?.redis
    if (!secret) throw ewError('EW_CONFIG_INVALID', 'broker.cluster.redis is not set')
    this.#o = o
    this.#since = o.clock.now()
    // revealed here only: the URL (and its password) never reaches a log, record or error
    const url = secret.reveal()
    this.#scrub = scrubber(url)
    const id = config.gateway.id
    this.#id = id
    const open = (role: string): Redis => {
      const conn = new Redis(url, redisOptions(`edgewarden:${id}:${role}`))
      conn.on('ready', () => this.#onReady(conn))
      conn.on('close', () => this.#onClose(conn))
      // ioredis would print unhandled errors to the console, URL details included
      conn.on('error', (err: Error) => { this.#lastError = this.#describe(err) })
      return conn
    }
    const pub = open('pub')
    const sub = open('sub')
    const store = open('store')
    this.#conns = [pub, sub, store]
    this.mq = MQEmitterRedis({ pubConn: handled(pub), subConn: handled(sub), matchEmptyLevels: true /* [MQTT-4.7.1-3], as Aedes' default emitter */ } as never)
    // its close() QUITs and waits for both connections to end: during an outage neither happens
    // (a reconnecting connection emits no 'end'), so there the connections are dropped and the
    // emitter closed directly, and a gateway stops while Redis is away
    const close = this.mq.close.bind(this.mq)
    this.mq.close = (cb: () => void): void => {
      if (this.#up) return void close(cb)
      const m = this.mq as unknown as { closing?: boolean; closed?: boolean; _close(cb: () => void): void }
      if (m.closed || m.closing) return cb()
      m.closing = true
      for (const c of [pub, sub]) c.disconnect()
      m._close(cb)
    }
    // mqemitter-redis re-emits connection errors on `state`: unheard, an EventEmitter 'error' throws
    ;(this.mq as unknown as { state: EventEmitter }).state.on('error', (err: Error) => { this.#lastError = this.#describe(err) })
    this.persistence = new SitePersistence({
      conn: handled(store),
      // a resumed session is sent at most this many queued messages at once (the rest next time)
      maxSessionDelivery: config.broker.maxQueuedPerClient,
    })
  }

  refusal(): string | undefined {
    return this.#up ? undefined : REFUSAL
  }

  status(): ClusterStatus {
    return { redis: this.#up ? 'up' : 'down', since: new Date(this.#since).toISOString() }
  }

  /** Opens the three connections; fails with EW_CLUSTER_UNAVAILABLE (no URL in it) when Redis does not answer. */
  async connect(): Promise<void> {
    const timeoutMs = this.#o.connectTimeoutMs ?? 10_000
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('timed out')), timeoutMs) })
    try {
      await Promise.race([Promise.all(this.#conns.map((c) => c.connect())), timeout])
    } catch (err) {
      const reason = this.#lastError || this.#describe(err as Error)
      await this.close()
      throw ewError('EW_CLUSTER_UNAVAILABLE', `broker.cluster.redis: Redis did not answer within ${timeoutMs} ms (${reason})`)
    } finally {
      clearTimeout(timer)
    }
    await this.#uniqueId()
  }

  /**
   * Aedes tells gateways apart by their id (clientId takeover, wills, packet identity): a second
   * gateway with the same gateway.id on one Redis would corrupt sessions, so it may not start.
   * Connection names show who is there; a Redis that refuses CLIENT LIST (ACLs) skips the check.
   * A gateway back from a power cut may meet its own dead connection and is refused until
   * that connection has been idle 90 s (its service manager restarts it).
   */
  async #uniqueId(): Promise<void> {
    const name = `name=edgewarden:${this.#id}:pub `
    let list: string
    try {
      list = String(await this.#conns[2]!.client('LIST'))
    } catch {
      return
    }
    // a live gateway publishes its heartbeat every 60 s; a connection idle longer is a dead host's (power cut)
    const live = list.split('\n').filter((l) => l.includes(name) && Number(/ idle=(\d+)/.exec(l)?.[1] ?? 0) < 90)
    if (live.length > 1) {
      await this.close()
      throw ewError('EW_CONFIG_INVALID', `gateway.id '${this.#id}' is already used by another gateway of this site cluster: each gateway needs its own id`)
    }
  }

  /** Aedes emits 'error' when its store fails (e.g. the wills sweep during an outage): logged, never a crash. */
  attach(aedes: EventEmitter): void {
    aedes.on('error', (err: Error) => this.#o.logger.error({ event: 'broker_error', err: this.#describe(err) }, 'broker store operation failed'))
  }

  /** Releases every connection (after the broker and the persistence closed, or after a failed start). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const c of this.#conns) c.disconnect()
  }

  #onReady(conn: Redis): void {
    this.#ready.add(conn)
    if (this.#up || this.#ready.size < this.#conns.length) return
    this.#up = true
    const downMs = this.#o.clock.now() - this.#since
    this.#since = this.#o.clock.now()
    if (!this.#wasUp) { this.#wasUp = true; return }
    this.#o.logger.info({ event: 'cluster_up', downSec: Math.round(downMs / 1000) }, 'Redis is reachable again: the site cluster accepts publishes and connections')
    this.#o.journal.record({ type: 'cluster_up', reason: 'redis_reachable', downMs })
    this.#o.onUp?.()
  }

  #onClose(conn: Redis): void {
    this.#ready.delete(conn)
    if (!this.#up) return
    this.#up = false
    this.#since = this.#o.clock.now()
    if (this.#closed) return
    const reason = this.#lastError || 'connection_closed'
    this.#o.logger.error({ event: 'cluster_down', reason }, 'Redis is unreachable: refusing publishes and connections until it is back')
    this.#o.journal.record({ type: 'cluster_down', reason })
  }

  #describe(err: Error): string {
    const code = (err as { code?: unknown }).code
    return this.#scrub(typeof code === 'string' ? code : err.message).slice(0, 200)
  }
}

/** Fail fast: a command during an outage errors after one retry instead of waiting ~20 reconnects. */
function redisOptions(connectionName: string): RedisOptions {
  return {
    lazyConnect: true,
    connectionName,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    // keep reconnecting for as long as the gateway runs: the site recovers when Redis does
    retryStrategy: (times) => Math.min(times * 100, 2000),
  }
}

/**
 * aedes-persistence-redis fires some writes without awaiting them (will list upkeep, stale
 * queue entries): during an outage their rejections would be unhandled, which ends a Node
 * process. Every command's promise gets a no-op catch here; callers that await still see the error.
 */
function handled(conn: Redis): Redis {
  const cache = new Map<PropertyKey, unknown>()
  return new Proxy(conn, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown
      if (typeof v !== 'function') return v
      let f = cache.get(prop)
      if (!f) {
        f = (...args: unknown[]): unknown => {
          const r = Reflect.apply(v as (...a: unknown[]) => unknown, target, args)
          if (r instanceof Promise) r.catch(() => {})
          return r
        }
        cache.set(prop, f)
      }
      return f
    },
  })
}

/**
 * KEYS: the session's queue, the shared packet, its count, the entry the acknowledgement
 * removes (the packet's key, or the session's own QoS 2 copy). Decrements the count by the
 * entries removed from this session's queue only: a second acknowledgement of one message
 * removes nothing and changes nothing. Returns {removed, the stored packet}.
 */
const CLEAR_ACK_LUA = `
local removed = redis.call('LREM', KEYS[1], 0, KEYS[2])
local stored
if KEYS[4] ~= KEYS[2] then
  removed = removed + redis.call('LREM', KEYS[1], 0, KEYS[4])
  stored = redis.call('GET', KEYS[4])
  redis.call('DEL', KEYS[4])
else
  stored = redis.call('GET', KEYS[2])
end
if removed > 0 and redis.call('DECRBY', KEYS[3], removed) <= 0 then
  redis.call('DEL', KEYS[2], KEYS[3])
end
return {removed, stored}
`

/** acknowledgements the persistence can match to a queue entry (as its own cache: 100,000) */
const MAX_INFLIGHT = 100_000

// the persistence's own encoding of stored packets (its dependency, resolved from it)
const msgpack = createRequire(createRequire(import.meta.url).resolve('aedes-persistence-redis/asyncPersistence.js'))('msgpack-lite') as { decode(buf: Buffer): unknown }

/** how long a subscription change waits for the client's previous one (whose broadcast may never come back) */
const SERIAL_WAIT_MS = 10_000

function noop(): void {}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** What the persistence reads of Aedes at setup: its id and its message counter (aedes-packet numbers with ++counter). */
interface BrokerRef { readonly id: string; counter: number }

/** Removes the URL and its credentials from any text (ioredis messages may name the target). */
function scrubber(url: string): (s: string) => string {
  const parts = [url]
  try {
    const u = new URL(url)
    if (u.password) parts.push(decodeURIComponent(u.password), u.password)
    if (u.username) parts.push(decodeURIComponent(u.username), u.username)
  } catch { /* the schema checked the scheme; an unparsable rest is still scrubbed whole */ }
  const needles = parts.filter((p) => p.length > 0).sort((a, b) => b.length - a.length)
  return (s) => needles.reduce((acc, n) => acc.split(n).join('[secret]'), s)
}

/**
 * aedes-persistence-redis 12 (the promise API Aedes 1.2 needs). Its streams are async
 * iterables, while Aedes 1.2 pipes them (`stream.pipe`): they become Readables here, as the
 * package's own callback wrapper does. destroy() is safe before setup() (a start that failed)
 * and never hangs a stop when Redis is already gone.
 */
class SitePersistence extends AsyncRedisPersistence implements BrokerPersistence {
  #setUp = false
  readonly #conn: Redis | undefined
  /** a SUBSCRIBE's list → its one store (Aedes calls addSubscriptions with it once per filter) */
  readonly #storing = new WeakMap<object, Promise<void>>()
  /** the last subscription change per client: a client's changes reach Redis in the order they were made */
  readonly #tails = new Map<string, Promise<void>>()
  /** filters the gateway refused (denied()): left out of the list a store writes */
  readonly #refused = new WeakSet<object>()
  /** filters a store has begun to write: refused after that, they are removed again */
  readonly #written = new WeakSet<object>()
  /** (clientId, messageId) in flight → the queue entry its acknowledgement removes */
  readonly #inflight = new Map<string, { packetKey: string; entry: string }>()
  constructor(opts: ConstructorParameters<typeof AsyncRedisPersistence>[0] & { conn: Redis }) {
    super(opts)
    this.#conn = opts.conn
    opts.conn.defineCommand('ewClearAck', { numberOfKeys: 4, lua: CLEAR_ACK_LUA })
  }
  // a Readable is also the async iterable the type names
  override createRetainedStream(pattern: string): Readable { return Readable.from(super.createRetainedStream(pattern)) }
  override createRetainedStreamCombi(patterns: string[]): Readable { return Readable.from(super.createRetainedStreamCombi(patterns)) }
  override outgoingStream(client: object): Readable { return Readable.from(super.outgoingStream(client)) }
  override streamWill(brokers?: object): Readable { return Readable.from(super.streamWill(brokers)) }
  override getClientList(topic: string): Readable { return Readable.from(super.getClientList(topic)) }
  /**
   * On a cluster, a subscription change is stored, broadcast to every gateway
   * (aedes-persistence's BroadcastPersistence, `$SYS/sub/add|rm`) and waited for until the
   * broadcast comes back; the waiter is keyed by clientId and the *first* filter of the call,
   * and a second waiter with that key replaces the first, whose call then never returns.
   * Aedes stores a SUBSCRIBE's whole list once per filter of it, so a SUBSCRIBE listing two
   * filters (or two SUBSCRIBEs with the same first filter in flight) never got its SUBACK.
   * Here the calls for one SUBSCRIBE (the same list) share one store, and a client's stores and
   * removals run one after the other, in the order they were asked for (#inTurn).
   *
   * A store writes Redis in two steps (SADD, then HMSET after its reply): a removal sent in
   * between (a refusal, see denied(), or an UNSUBSCRIBE in the same read as the SUBSCRIBE:
   * Aedes handles those in parallel) ran its HDEL first and the HMSET wrote the filter back,
   * for every gateway started later to load, and queue the refused topic's messages for.
   *
   * The list is filtered when the store starts, never in the call: Aedes calls this as soon as
   * a SUBSCRIBE's first filter is granted, before the filters after it are checked (the
   * gateway checks them all in that same turn), so the ones refused are never written.
   */
  override addSubscriptions(client: { id: string }, subs: ReadonlyArray<{ topic: string }>): Promise<void> {
    let stored = this.#storing.get(subs)
    if (!stored) {
      stored = this.#inTurn(client.id, () => {
        const kept = subs.some((x) => this.#refused.has(x)) ? subs.filter((x) => !this.#refused.has(x)) : subs
        for (const x of kept) this.#written.add(x)
        return kept.length > 0 ? super.addSubscriptions(client, kept) : Promise.resolve()
      })
      this.#storing.set(subs, stored)
    }
    return stored
  }

  override removeSubscriptions(client: { id: string }, topics: readonly string[]): Promise<void> {
    return this.#inTurn(client.id, () => super.removeSubscriptions(client, topics))
  }

  /**
   * The gateway refused `sub` (create.ts): a store not yet started leaves it out; one already
   * writing it (a check that called back later), or a resumed session's stored subscription
   * (the policy changed), has it removed, after that store.
   */
  denied(clientId: string, sub: object & { topic: string }, restoring: boolean): void {
    this.#refused.add(sub)
    if (restoring || this.#written.has(sub)) this.removeSubscriptions({ id: clientId }, [sub.topic]).catch(noop)
  }

  /**
   * Runs `run` once the client's previous subscription change has settled, and never in this
   * turn (the rest of a SUBSCRIBE is checked first). A predecessor whose broadcast never came
   * back (Redis dropped the subscribe connection in between) would hang this one forever: it
   * is waited for at most SERIAL_WAIT_MS, then left to hang alone (as it would anyway).
   */
  #inTurn(clientId: string, run: () => Promise<void>): Promise<void> {
    const prev = this.#tails.get(clientId)
    let result: Promise<void>
    if (prev) {
      let timer: NodeJS.Timeout | undefined
      const bounded = Promise.race([prev, new Promise<void>((resolve) => { timer = setTimeout(resolve, SERIAL_WAIT_MS).unref() })])
      result = bounded.then(() => { clearTimeout(timer); return run() })
    } else {
      result = Promise.resolve().then(run)
    }
    const tail: Promise<void> = result.then(noop, noop)
    this.#tails.set(clientId, tail)
    void tail.then(() => { if (this.#tails.get(clientId) === tail) this.#tails.delete(clientId) })
    return result
  }

  /**
   * Remembers which queue entry an acknowledgement of this messageId removes: the shared
   * `packet:<broker>:<counter>`, or for a PUBRELed QoS 2 message the session's own copy (the
   * persistence keeps the same in a private cache, read by its outgoingClearMessageId, which
   * is replaced below).
   */
  override outgoingUpdate(client: { id: string }, packet: OutgoingPacket): Promise<void> {
    const updating = super.outgoingUpdate(client, packet)
    // a PUBREL gets its brokerId / brokerCounter from the PUBLISH's, synchronously, in the call above
    if (packet.brokerId && packet.brokerCounter) {
      const packetKey = `packet:${packet.brokerId}:${packet.brokerCounter}`
      const entry = packet.cmd && packet.cmd !== 'pubrel' ? packetKey : `outgoing:${encodeURIComponent(client.id)}:${packet.brokerId}:${packet.brokerCounter}`
      const key = `${client.id}\0${packet.messageId}`
      this.#inflight.delete(key) // re-inserted last: the oldest entries go first when full
      this.#inflight.set(key, { packetKey, entry })
      if (this.#inflight.size > MAX_INFLIGHT) this.#inflight.delete(this.#inflight.keys().next().value!)
    }
    return updating
  }

  /**
   * An acknowledgement (PUBACK, PUBCOMP) removes the message from the session's queue. A
   * queued packet is stored once for every session it is queued for, with a count of them
   * (`:offlineCount`), and deleted when the count reaches 0. aedes-persistence-redis
   * decrements the count on every acknowledgement, even one whose entry was already gone
   * from the session's queue; a session sent one message twice (a resumed session gets a
   * queued message whose pub/sub copy arrives after Aedes re-subscribed it) and
   * acknowledging both copies took the packet from another session that still had it queued:
   * lost for that one, silently. Here the count goes down by the entries actually removed from
   * this session's queue, in one script (atomic against other gateways).
   */
  override async outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<object | undefined> {
    const key = `${client.id}\0${packet.messageId}`
    const sent = this.#inflight.get(key)
    this.#inflight.delete(key)
    if (!sent || !this.#conn) return undefined
    const conn = this.#conn as Redis & { ewClearAckBuffer(...keys: string[]): Promise<[number, Buffer | null]> }
    const [, stored] = await conn.ewClearAckBuffer(`outgoing:${encodeURIComponent(client.id)}`, sent.packetKey, `${sent.packetKey}:offlineCount`, sent.entry)
    if (!stored) return undefined
    // what the persistence returns (Aedes emits it with its 'ack' event)
    const orig = msgpack.decode(stored) as { messageId?: number }
    orig.messageId = packet.messageId
    return orig
  }

  override async setup(broker: object): Promise<void> {
    await this.#counterPastStored(broker as BrokerRef)
    await super.setup(broker)
    this.#setUp = true
  }

  /**
   * Queued packets are stored as `packet:<broker id>:<counter>` (and a per-session copy
   * `outgoing:<client>:<broker id>:<counter>` once a QoS 2 one is PUBRECed), the counter being
   * Aedes' message counter, which starts at 0 in every process. A gateway restarted with the
   * same gateway.id would write its new packets over the ones still queued for offline
   * sessions (lost for them, the new ones delivered twice). Like the LMDB persistence, the
   * counter continues after the highest one this id stored. Read from Redis, not derived from
   * the clock: an edge device may boot without a real-time clock.
   */
  async #counterPastStored(broker: BrokerRef): Promise<void> {
    const conn = this.#conn
    if (!conn) return
    const packetPrefix = `packet:${broker.id}:`
    const perSession = new RegExp(`^outgoing:[^:]*:${escapeRegExp(broker.id)}:(\\d+)$`)
    let max = 0
    let cursor = '0'
    do {
      // gateway.id has no glob characters ([A-Za-z0-9._-]); client ids are URI-encoded (no ':')
      const [next, keys] = await conn.scan(cursor, 'MATCH', `*:${broker.id}:*`, 'COUNT', 1000)
      cursor = next
      for (const key of keys) {
        const m = key.startsWith(packetPrefix) ? /^(\d+)(?::offlineCount)?$/.exec(key.slice(packetPrefix.length)) : perSession.exec(key)
        if (m) max = Math.max(max, Number(m[1]))
      }
    } while (cursor !== '0')
    if (max > broker.counter) broker.counter = max
  }
  override async destroy(): Promise<void> {
    // before setup, or with Redis away (nothing to unsubscribe there): just drop the connection
    if (!this.#setUp || this.#conn?.status !== 'ready') { this.#conn?.disconnect(); return }
    this.#setUp = false
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      super.destroy().catch(() => {}),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, 2000) }),
    ])
    clearTimeout(timer)
    this.#conn?.disconnect()
  }
}
