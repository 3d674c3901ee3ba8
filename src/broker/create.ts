import './quiet-debug.js'
import { Aedes, type AedesOptions } from 'aedes'
import { createRequire } from 'node:module'
import type { Readable } from 'node:stream'
import { matchTopic } from '../bridge/topic.js'
import type { Config } from '../config/types.js'
import { createEmitter } from './emitter.js'

// Aedes' own in-memory store (a CommonJS function: its typings' default export does not reach ESM)
const memoryPersistence = createRequire(import.meta.url)('aedes-persistence') as () => object

/**
 * Where a publish goes that is acknowledged but delivered to nobody: refused (PUBACKed and
 * dropped), or a QoS 1 message the gateway already routed before its commit (gateway.ts).
 */
export const DENIED_TOPIC = '$warden/denied'

interface Preparing { prepare(packet: object, publisher: { readonly closed?: boolean }): Promise<void> | undefined }
interface Revoking {
  /** `restoring`: refused while Aedes restores a resumed session's stored subscriptions (it may be stored) */
  denied(clientId: string, sub: object & { topic: string }, restoring: boolean): void
}

/**
 * Builds the Aedes instance from config. Persistence comes from `createPersistence`
 * (src/broker/persistence): the LMDB one for `broker.persistence: lmdb`, or none for
 * `memory`, in which case Aedes uses its built-in in-memory store. Aedes calls the
 * persistence's `setup()` in `listen()`; the gateway destroys it on stop.
 */
export function createAedes(config: Config, hooks: Partial<AedesOptions>): Aedes {
  const opts: Partial<AedesOptions> = {
    id: config.gateway.id,
    connectTimeout: Math.round(config.limits.connectTimeoutSec * 1000),
    // MQTT 3.1.1 lets a server accept clientIds longer than 23 characters; UUIDs and subs need it
    maxClientsIdLength: 256,
    heartbeatInterval: 60_000,
    ...hooks,
    // Aedes' in-memory store unless one is given, made here so that it is wrapped too
    persistence: followDollarRule(hooks.persistence ?? memoryPersistence()),
    // a site cluster brings its Redis emitter; alone, the local one with a bounded-stack drain
    mq: hooks.mq ?? createEmitter(),
  }
  // a site cluster's router and stores span the site: only a gateway alone knows locally who gets a message
  const nobodyGets = hooks.mq ? undefined : nobodyLocal(opts.mq as Emitter, offlineCount(opts.persistence as object))
  const persistence = hooks.persistence as Partial<Preparing> | undefined
  const authorize = hooks.authorizePublish
  if (authorize && typeof persistence?.prepare === 'function') {
    const p = persistence as Preparing
    // Aedes writes a QoS 1 PUBACK as soon as this callback allows the publish, before it
    // queues the message: queue it durably first, so a PUBACK survives a crash (lmdb.ts prepare)
    opts.authorizePublish = (client, packet, cb) => authorize(client, packet, (err) => {
      if (err || !client || packet.qos !== 1) return cb(err)
      const queued = p.prepare(packet, client)
      if (!queued) return cb(null)
      queued.then(() => cb(null), (e: Error) => cb(e))
    })
  }
  const authorizeSub = hooks.authorizeSubscribe
  if (authorizeSub) {
    const store = opts.persistence as object
    const p = typeof (store as Partial<Revoking>).denied === 'function' ? store as Revoking : leaveOutRefused(store)
    // a refused subscription must not be stored with its granted siblings, nor survive in a
    // resumed session (Aedes re-authorizes restored subscriptions but never un-stores them)
    opts.authorizeSubscribe = (client, sub, cb) => authorizeSub(client, sub, (err, granted) => {
      if (!err && !granted && !client.clean) p.denied(client.id, sub, !(client as { connected?: boolean }).connected)
      cb(err, granted)
    })
  }
  const forward = hooks.authorizeForward
  if (forward) {
    // Aedes sends a resumed session's queue with the packet it passed in, using the hook's
    // result only as yes/no: a per-subscriber view (mask) would be lost there. Each packet
    // handed to this hook is that subscriber's own copy, so the view is copied into it.
    opts.authorizeForward = (client, packet) => {
      const out = forward(client, packet)
      if (out && out !== packet && out.payload !== packet.payload) packet.payload = out.payload
      return out
    }
  }
  return publishingSomewhere(new Aedes(opts), nobodyGets)
}

/**
 * For a store without a denied() step of its own (Aedes' memory store; the LMDB one and the
 * cluster's Redis one have it): Aedes stores a SUBSCRIBE's whole list, refused filters
 * included, and offline messages were then queued for them (resume-policy.test.ts; the
 * gateway also checks a resumed queue against the session's subscriptions). The refused
 * filters are left out of the list stored, and a refused filter of a resumed session (the
 * policy changed) is removed from the store. A filter refused after its list was handed over
 * (listed after a granted one) is removed again at once: right for a store that writes
 * synchronously, as the memory one does, not for one whose writes can pass each other (Redis:
 * SitePersistence in cluster.ts filters when its store starts and orders a client's writes).
 */
function leaveOutRefused(store: object): Revoking {
  type Sub = object & { topic: string }
  type Store = { addSubscriptions(client: { id: string }, subs: Sub[]): Promise<void>; removeSubscriptions(client: { id: string }, topics: string[]): Promise<void> }
  const s = store as Store
  const refused = new WeakSet<object>()
  // filters handed to the store: Aedes checks a SUBSCRIBE's filters in parallel and stores the
  // whole list as soon as one is granted, possibly before the others are refused
  const handed = new WeakSet<object>()
  // one filtered list per list Aedes passes (it passes the same list once per filter: a store may key on it)
  const kept = new WeakMap<Sub[], Sub[]>()
  const add = s.addSubscriptions.bind(s)
  s.addSubscriptions = (client, subs) => {
    let list = subs
    if (subs.some((x) => refused.has(x))) {
      list = kept.get(subs) ?? subs.filter((x) => !refused.has(x))
      kept.set(subs, list)
    }
    for (const x of list) handed.add(x)
    return list.length > 0 ? add(client, list) : Promise.resolve()
  }
  return {
    denied(clientId, sub, restoring) {
      refused.add(sub)
      if (restoring || handed.has(sub)) s.removeSubscriptions({ id: clientId }, [sub.topic]).catch(() => {})
    },
  }
}

/**
 * [MQTT-4.7.2-1]: '#' and '+' filters do not match '$' topics. Aedes applies the rule to live
 * messages, but asks the persistence for offline queues (rule applied to $SYS only) and for
 * retained messages (not at all): a persistent '#' session got the gateway's $warden topics
 * queued, a '#' subscriber its retained $warden/status. Applied here for every persistence
 * (memory, LMDB, Redis); the acknowledged empty copies ($warden/denied) are never queued.
 */
export function followDollarRule<P extends object>(persistence: P): P {
  type Sub = { topic: string; clientId: string }
  const p = persistence as unknown as {
    subscriptionsByTopic(topic: string): Promise<Sub[]>
    createRetainedStreamCombi(patterns: string[]): Readable
  }
  const byTopic = p.subscriptionsByTopic.bind(p)
  const none: Sub[] = []
  p.subscriptionsByTopic = (topic: string) => {
    if (topic === DENIED_TOPIC) return Promise.resolve(none)
    if (topic.charCodeAt(0) !== 36 /* $ */) return byTopic(topic).then(oncePerClient)
    return byTopic(topic).then((subs) => oncePerClient(subs.filter((x) => !startsWithWildcard(x.topic))))
  }
  const retained = p.createRetainedStreamCombi.bind(p)
  p.createRetainedStreamCombi = (patterns: string[]) => {
    const stream = retained(patterns)
    if (!patterns.some(startsWithWildcard)) return stream
    // a $ topic only for a filter of this SUBSCRIBE that names it (matchTopic applies the rule),
    // once: a store that yields per filter (Aedes' memory one) had it from the wildcard too
    const sent = new Set<string>()
    return stream.filter(({ topic }: { topic: string }) => {
      if (topic.charCodeAt(0) !== 36) return true
      if (sent.has(topic) || !patterns.some((f) => matchTopic(f, topic))) return false
      sent.add(topic)
      return true
    })
  }
  return persistence
}

/**
 * One queue entry per session, however many of its subscriptions match: with two, Aedes queued
 * the message twice, sent it twice, and its deliverQoS answered the second copy (a duplicate) by
 * clearing the message's id from the store under the first copy's write ("no such packet": the
 * client was disconnected). The delivery wrapper (delivery-limits.ts) skips that second copy.
 */
function oncePerClient<S extends { clientId: string }>(subs: S[]): S[] {
  if (subs.length < 2) return subs
  const seen = new Set<string>()
  const out: S[] = []
  for (const s of subs) {
    if (seen.has(s.clientId)) continue
    seen.add(s.clientId)
    out.push(s)
  }
  return out.length === subs.length ? subs : out
}

/** A filter that starts with '#' or '+': it matches no '$' topic ([MQTT-4.7.2-1]). */
export function startsWithWildcard(filter: string): boolean {
  return filter[0] === '#' || filter[0] === '+'
}

type Emitter = NonNullable<AedesOptions['mq']>

/**
 * What goes nowhere is not published at all: DENIED_TOPIC, and what `nobodyGets` says no one
 * would get (nobodyLocal). The gateway routes a QoS 1 message itself before its PUBACK and hands
 * Aedes, which publishes after the PUBACK, an emptied copy on DENIED_TOPIC (gateway.ts #drop), as
 * it does a refused publish: without this, each such copy still cost Aedes a packet object, its
 * series of steps and an offline-queue lookup (~1 KiB of garbage a bridged message, sampled).
 * Aedes' router (mq.emit) is reached only through here. Nothing listens for Aedes' 'publish' event.
 */
function publishingSomewhere(aedes: Aedes, nobodyGets?: (packet: Routed, fromClient: boolean) => boolean): Aedes {
  const publish = aedes.publish.bind(aedes) as (p: unknown, c: unknown, d: unknown) => void
  aedes.publish = ((packet: Routed, client: unknown, done?: (err?: Error) => void): void => {
    const cb = typeof client === 'function' ? client as (err?: Error) => void : done
    // once closed, Aedes answers every publish with its error
    const nowhere = packet.topic === DENIED_TOPIC || (!aedes.closed && nobodyGets?.(packet, !!client && client !== cb) === true)
    if (!nowhere) return publish(packet, client, done)
    cb?.()
  }) as Aedes['publish']
  return aedes
}

/** router subscriptions that take only what the gateway itself publishes (no client): see gatewayMadeOnly */
const GATEWAY_MADE_ONLY = new WeakSet<object>()

/**
 * Marks a handler given to `aedes.subscribe` as one that takes only messages the gateway
 * publishes itself (no client: an approved held message, a cloud command): a client's publish
 * matching its filter alone still counts as going nowhere. The bridge's out mappings: it takes
 * client publishes in accept(), on the publish path, and drops them in its router handler.
 */
export function gatewayMadeOnly<F extends object>(handler: F): F {
  GATEWAY_MADE_ONLY.add(handler)
  return handler
}

interface Routed { readonly topic: string; readonly qos?: number; readonly retain?: boolean; readonly brokerCounter?: number }

/**
 * A publish no local subscriber and no stored session would get is not published either: a
 * message only bridged to the cloud (the gateway hands it to the bridge itself) cost Aedes a
 * packet copy, its series of steps, two topic matches (router, offline queues), two promises
 * and a 'publish' event, ~1.2 KiB of garbage a message, for nothing. The router's own matcher
 * says whether a live subscription matches; a retained message is still stored, and a QoS 1/2
 * one goes the whole way while any stored subscription (a persistent session's) could queue it.
 */
function nobodyLocal(mq: Emitter, offline: { none(): boolean }): (packet: Routed, fromClient: boolean) => boolean {
  type Matcher = { match(topic: string): readonly object[]; add(...a: unknown[]): unknown; remove(...a: unknown[]): unknown; clear(...a: unknown[]): unknown }
  const matcher = (mq as unknown as { _matcher: Matcher })._matcher
  // per topic, what the router's subscriptions say (NOBODY_* bits): a topic's match split it
  // into levels and walked the tree (3 % of the event loop on a bridged stream). Forgotten at
  // every change of the subscriptions, and whole when it holds VERDICTS_MAX topics; topics
  // longer than VERDICT_TOPIC_MAX are not kept.
  const verdicts = new Map<string, number>()
  for (const method of ['add', 'remove', 'clear'] as const) {
    const base = matcher[method].bind(matcher)
    matcher[method] = (...a: unknown[]) => {
      verdicts.clear()
      return base(...a)
    }
  }
  const verdict = (topic: string): number => {
    let v = verdicts.get(topic)
    if (v !== undefined) return v
    let handlers: readonly object[]
    try {
      handlers = matcher.match(topic)
    } catch {
      // qlobber throws on a topic of too many levels: Aedes' publish refuses it with an error
      return 0
    }
    v = handlers.length === 0 ? NOBODY_AT_ALL | NOBODY_FOR_CLIENTS : NOBODY_FOR_CLIENTS
    for (let i = 0; i < handlers.length; i++) if (!GATEWAY_MADE_ONLY.has(handlers[i]!)) v = 0
    // a long topic is matched anew each time: kept, 10,000 of up to 64 KiB each would be 600 MB (found by review)
    if (topic.length > VERDICT_TOPIC_MAX) return v
    if (verdicts.size >= VERDICTS_MAX) verdicts.clear()
    verdicts.set(topic, v)
    return v
  }
  return (packet, fromClient) => {
    // numbered already: the LMDB store's prepare() queued it for a persistent session, and Aedes'
    // route tells the store so (outgoingEnqueueCombi) even should that subscription be gone now
    if (packet.retain || packet.brokerCounter !== undefined || (packet.qos !== 0 && !offline.none())) return false
    return (verdict(packet.topic) & (fromClient ? NOBODY_FOR_CLIENTS : NOBODY_AT_ALL)) !== 0
  }
}

const NOBODY_AT_ALL = 1
const NOBODY_FOR_CLIENTS = 2
const VERDICTS_MAX = 10_000
const VERDICT_TOPIC_MAX = 256

interface OfflineStore {
  setup?(broker: unknown): Promise<void>
  addSubscriptions(client: unknown, subs: unknown[]): Promise<void>
  removeSubscriptions(client: unknown, topics: string[]): Promise<void>
  cleanSubscriptions(client: unknown): Promise<void>
  countOffline(): Promise<{ subsCount: number }>
}

/**
 * Whether the store holds no subscription that queues messages for an offline session (QoS > 0
 * of a persistent one), known without waiting. Unknown (so: some may) until the store is set up
 * and counted, from the moment an add starts until a count taken after every add has ended, and
 * whenever a count fails. Counted again after every add, remove and clean.
 */
export function offlineCount(store: object): { none(): boolean } {
  const s = store as OfflineStore
  let none = false
  let adding = 0
  // changes with every add's start and end: a count begun before one of them says nothing
  let gen = 0
  let ready = !s.setup
  const recount = (): void => {
    if (!ready || adding > 0) return
    const at = gen
    s.countOffline().then((c) => { if (gen === at && adding === 0) none = c.subsCount === 0 }, () => { none = false })
  }
  const after = <T>(p: Promise<T>): Promise<T> => {
    p.then(recount, recount)
    return p
  }
  if (s.setup) {
    const setup = s.setup.bind(s)
    // async: Aedes refuses a setup that is not an AsyncFunction
    s.setup = async (broker) => {
      await setup(broker)
      ready = true
      recount()
    }
  }
  const add = s.addSubscriptions.bind(s)
  s.addSubscriptions = (client, subs) => {
    none = false
    adding++
    gen++
    let p: Promise<void>
    try { p = add(client, subs) } catch (err) { p = Promise.reject(err) }
    const settled = (): void => { adding--; gen++; recount() }
    p.then(settled, settled)
    return p
  }
  const remove = s.removeSubscriptions.bind(s)
  s.removeSubscriptions = (client, topics) => after(remove(client, topics))
  const clean = s.cleanSubscriptions.bind(s)
  s.cleanSubscriptions = (client) => after(clean(client))
  recount()
  return { none: () => none }
}
