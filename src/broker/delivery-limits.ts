import type { Client } from 'aedes'
import { Counter, type Registry } from 'prom-client'
import type { Writable } from 'node:stream'
import type { Journal } from '../journal/types.js'
import { batchWrites } from './write-batch.js'

type Deliver = (packet: DeliverPacket, cb: () => void) => void
interface DeliverPacket { readonly topic: string; readonly payload: Buffer | string; readonly qos: number; readonly brokerId?: string | null; readonly brokerCounter?: number }
interface Wrappable { deliver0: Deliver; deliverQoS: Deliver; readonly clean: boolean; readonly closed: boolean; readonly conn: Writable; readonly duplicates: Record<string, number | undefined>; readonly subscriptions: Record<string, { readonly qos: number } | undefined> }

export type DropReason = 'max_queued_messages' | 'max_queued_bytes'

export interface DeliveryLimitsOptions {
  readonly maxMessages: number
  readonly maxBytes: number
  /** over the bound this long → onSlow; 0 disables the disconnect (drops still apply) */
  readonly slowTimeoutMs: number
  readonly journal: Journal
  readonly registry: Registry
  /** who a client is, for journal records (undefined before authentication) */
  readonly describe: (client: Client) => { session?: string; clientId?: string; sub?: string } | undefined
  /** the client stayed over its bound for slowTimeoutMs */
  readonly onSlow: (client: Client, info: SlowInfo) => void
  /**
   * A persistent session had QoS 1 messages left in its session store while over the bound,
   * then caught up: it must reconnect to receive them (Aedes sends a session's stored queue
   * only at CONNECT), so it is disconnected.
   */
  readonly onBacklog: (client: Client, info: SlowInfo) => void
  /** journal drop records at most this often per client */
  readonly dropIntervalMs?: number
}

export interface SlowInfo { readonly queued: number; readonly queuedBytes: number; readonly dropped: number; readonly stored: number }

interface Held { readonly orig: Deliver; readonly packet: DeliverPacket; readonly qos: number }

interface State {
  /** a persistent session resuming: live deliveries wait here until its queue has been sent */
  held: Held[] | undefined
  heldBytes: number
  /** messages its queue sent while resuming (brokerId, brokerCounter): their live copies are not sent again */
  fromQueue: Set<string> | undefined
  count: number
  bytes: number
  /** a timer runs while the client is over its bound */
  timer: NodeJS.Timeout | undefined
  dropped: number
  /** QoS 1 messages of a persistent session left in its session store (not written) */
  stored: number
  /** the message (brokerId, brokerCounter) last handed over or refused: overlapping subscriptions deliver one message once per subscription, one after the other */
  lastId: string | null | undefined
  lastCounter: number | undefined
  /** the QoS its copy was handed over at (-1: none handed over) */
  lastQos: number
  /** the last message refused over the bound, counted (once, whatever its copies) on the next tick or at the next message */
  refused: Refused | undefined
}

interface Refused { readonly id: string | null | undefined; readonly counter: number | undefined; readonly reason: DropReason; readonly topic: string; readonly qos: number; stored: boolean }

/**
 * Per-client bound on what waits to be written to a subscriber (SPEC §3 limits.maxQueued*).
 *
 * Aedes 1.2 completes a delivery only when the subscriber's socket has taken the bytes (it
 * waits for 'drain'), and MQEmitter (concurrency 100) waits for every subscriber of a message
 * before routing the next: one subscriber that stops reading stalls every subscriber, and
 * every publisher behind them, until Aedes' 60 s drainTimeout. Here each client's deliver
 * functions are wrapped so routing never waits on one connection; what that connection has
 * not taken yet is counted instead. Over the bound, QoS 0 messages (and QoS 1 to a clean
 * session, which has no store) are dropped and counted; QoS 1 to a persistent session is not written and stays in the session
 * store Aedes put it in. Over the bound for slowTimeoutMs, the client is handed to onSlow.
 */
export class DeliveryLimits {
  readonly #o: DeliveryLimitsOptions
  readonly #dropped: Counter<'reason' | 'qos'>
  readonly #slow: Counter
  readonly #pending = new Map<Client, { reason: DropReason; topic: string; qos: number; count: number }>()
  #flushTimer: NodeJS.Timeout | undefined
  readonly #lowMessages: number
  readonly #lowBytes: number
  readonly #states = new WeakMap<Client, State>()
  /** clients with a refusal not counted yet (see #count) */
  readonly #uncounted = new Map<Client, State>()

  constructor(o: DeliveryLimitsOptions) {
    this.#o = o
    // back under half the bound counts as caught up: a client hovering at the bound stays "over"
    this.#lowMessages = Math.floor(o.maxMessages / 2)
    this.#lowBytes = Math.floor(o.maxBytes / 2)
    this.#dropped = new Counter({ name: 'edgewarden_delivery_dropped_total', help: 'messages not delivered to a slow subscriber over limits.maxQueuedMessages / maxQueuedBytes', labelNames: ['reason', 'qos'] as const, registers: [o.registry] })
    this.#slow = new Counter({ name: 'edgewarden_slow_consumers_disconnected_total', help: 'subscribers disconnected after limits.slowConsumerTimeoutSec over their delivery bound', registers: [o.registry] })
  }

  /**
   * Wraps a client's deliver functions; call it before any subscription captures them (at its
   * first SUBSCRIBE, or at CONNECT for a session whose subscriptions may be restored), and
   * detach once its connection closes. A client that never subscribes is never wrapped: its
   * two closures and its state are not kept per idle connection. Calling it again is a no-op.
   */
  attach(client: Client, resuming = false): void {
    if (this.#states.has(client)) return
    const c = client as unknown as Wrappable
    const orig0 = c.deliver0
    const origQ = c.deliverQoS
    const st: State = { held: resuming ? [] : undefined, heldBytes: 0, fromQueue: undefined, count: 0, bytes: 0, timer: undefined, dropped: 0, stored: 0, lastId: undefined, lastCounter: undefined, lastQos: -1, refused: undefined }
    this.#states.set(client, st)
    // deliver0 serves QoS 0 subscriptions whatever the message's QoS: nothing of it is stored
    c.deliver0 = (packet, cb) => this.#deliver(client, c, st, orig0, packet, cb, 0)
    c.deliverQoS = (packet, cb) => this.#deliver(client, c, st, packet.qos === 0 ? orig0 : origQ, packet, cb, packet.qos)
  }

  /**
   * A persistent session resuming (attach(client, true) at its CONNECT) has its subscriptions
   * restored before its CONNACK and before Aedes sends the queue it kept while offline: live
   * messages would go out before the CONNACK [MQTT-3.2.0-1], ahead of older queued ones
   * [MQTT-4.6.0-6], and a second time when the queue holds them too (every QoS 1 message
   * for a persistent session is queued, online or not). They are held until the client is
   * ready (Aedes' clientReady, after the queue), then delivered in order, except those the
   * queue sent. A connection that closes before drops what was held: QoS 1 messages are in
   * the session's queue for the next resume, QoS 0 ones were for this connection only.
   */
  release(client: Client): void {
    const st = this.#states.get(client)
    const held = st?.held
    if (!st || held === undefined) return
    st.held = undefined
    st.heldBytes = 0
    const sent = st.fromQueue
    st.fromQueue = undefined
    const c = client as unknown as Wrappable
    for (const h of held) {
      if (sent !== undefined && h.packet.brokerId && sent.has(queueKey(h.packet))) continue
      this.#deliver(client, c, st, h.orig, h.packet, noop, h.qos)
    }
    // refused while held, then nothing left in flight: no delivery callback would report it caught up
    if (st.timer !== undefined && st.count <= this.#lowMessages && st.bytes <= this.#lowBytes) this.#caughtUp(client, st)
  }

  /** For the authorizeForward hook while the client is not connected yet: what its queue sends. */
  noteQueued(client: Client, packet: { readonly brokerId?: string | null; readonly brokerCounter?: number }): void {
    const st = this.#states.get(client)
    if (st?.held === undefined || !packet.brokerId) return
    ;(st.fromQueue ??= new Set()).add(queueKey(packet))
  }

  // a method, not one more closure per connection
  #deliver(client: Client, c: Wrappable, st: State, orig: Deliver, packet: DeliverPacket, cb: () => void, qos: number): void {
    const r = st.refused
    if (r !== undefined) {
      if (packet.brokerId && packet.brokerId === r.id && packet.brokerCounter === r.counter) {
        // another copy (overlapping subscriptions) of a message refused over the bound: it
        // counts once, as stored when any copy is a persistent session's QoS 1, else as dropped
        if (qos > 0 && !c.clean) r.stored = true
        process.nextTick(cb)
        return
      }
      this.#count(client, st)
    }
    if (st.held !== undefined) {
      // resuming (see release): held within the bound, refused beyond it as for a reader that does not keep up
      const n = sizeOf(packet)
      const reason = st.held.length >= this.#o.maxMessages ? 'max_queued_messages' : st.heldBytes + n > this.#o.maxBytes ? 'max_queued_bytes' : undefined
      if (reason === undefined) {
        st.held.push({ orig, packet, qos })
        st.heldBytes += n
      } else this.#refuse(client, c, st, packet, qos, reason)
      process.nextTick(cb)
      return
    }
    const copy = !!packet.brokerId && packet.brokerId === st.lastId && packet.brokerCounter === st.lastCounter
    if (!copy) {
      st.lastId = packet.brokerId
      st.lastCounter = packet.brokerCounter
      st.lastQos = -1
    } else if (qos > st.lastQos && (c.subscriptions[packet.topic]?.qos ?? qos) >= qos) {
      // [MQTT-3.3.5-1]: the client must get the message at the highest QoS of its matching
      // subscriptions, and a copy at a lower one went first (Aedes' guard would drop this one,
      // and a persistent session got the message again from its store at the next resume):
      // this copy goes too, as the spec allows a further copy per matching subscription. Not
      // when a subscription to exactly this topic has the lower QoS: Aedes' deliverQoS writes
      // every copy at that subscription's QoS (docs/persistence.md, known limits)
      c.duplicates[packet.brokerId!] = packet.brokerCounter! - 1
    }
    if (!inOrderForDedupe(c, packet) && qos > 0 && !c.clean) {
      // a second copy (overlapping subscriptions) of what this persistent session just got:
      // Aedes' deliverQoS would clear the message's id from the session's store, under the
      // first copy's write ("no such packet", and the client is disconnected); the store holds
      // the message once (create.ts, oncePerClient)
      process.nextTick(cb)
      return
    }
    // retained messages sent on SUBSCRIBE (Aedes marks them brokerId null) come from a stream
    // paced by this callback: kept paced, they never pile up, and none is dropped
    if (packet.brokerId === null) return orig(packet, cb)
    const n = sizeOf(packet)
    // a copy of a message handed over is not held against the bound: Aedes' guard drops it
    const reason = copy ? undefined : this.#over(st, n)
    if (reason !== undefined) {
      this.#refuse(client, c, st, packet, qos, reason)
    } else {
      st.count++
      st.bytes += n
      st.lastQos = qos
      orig(packet, () => {
        st.count--
        st.bytes -= n
        if (st.timer !== undefined && st.count <= this.#lowMessages && st.bytes <= this.#lowBytes) this.#caughtUp(client, st)
      })
      // QoS 1/2 to a persistent session is written after its store's update (async): not in
      // Aedes' immediate, so it goes out on its own
      if (qos === 0 || c.clean) batchWrites(c.conn)
    }
    // routing goes on whatever this connection does; nextTick, not a sync call: MQEmitter's
    // queue would otherwise recurse once per queued message
    process.nextTick(cb)
  }

  /** The client's connection closed: its slow-consumer timer goes (the caller's one close listener, not one more per connection here). */
  detach(client: Client): void {
    const st = this.#states.get(client)
    if (st?.timer === undefined) return
    clearTimeout(st.timer)
    st.timer = undefined
  }

  /** What a client has not taken yet, and what it lost (admin API, tests); nothing for one not attached (it never subscribed). */
  backlog(client: Client): SlowInfo {
    const st = this.#states.get(client)
    if (st?.refused !== undefined) this.#count(client, st)
    return st ? info(st) : NOTHING
  }

  /**
   * Why this delivery is over the bound, or undefined. Not only while the transport is backed
   * up: publishers are no longer held back by subscribers, so one event-loop turn can route a
   * whole socket buffer of messages before any write shows back-pressure.
   */
  #over(st: State, n: number): DropReason | undefined {
    if (st.count === 0) return undefined
    if (st.count >= this.#o.maxMessages) return 'max_queued_messages'
    if (st.bytes + n > this.#o.maxBytes) return 'max_queued_bytes'
    return undefined
  }

  #refuse(client: Client, c: Wrappable, st: State, packet: DeliverPacket, qos: number, reason: DropReason): void {
    if (st.timer === undefined && this.#o.slowTimeoutMs > 0 && !c.closed) {
      st.timer = setTimeout(() => this.#timedOut(client, c, st), this.#o.slowTimeoutMs)
      st.timer.unref()
    }
    // counted once its copies (overlapping subscriptions) have come: on the next tick at the latest
    st.refused = { id: packet.brokerId, counter: packet.brokerCounter, reason, topic: packet.topic, qos, stored: qos > 0 && !c.clean }
    if (this.#uncounted.size === 0) process.nextTick(() => { for (const [cl, s] of this.#uncounted) this.#count(cl, s) })
    this.#uncounted.set(client, st)
  }

  #count(client: Client, st: State): void {
    const r = st.refused
    this.#uncounted.delete(client)
    if (r === undefined) return
    st.refused = undefined
    if (r.stored) {
      // Aedes queued it in the session store before delivering: it waits there
      st.stored++
      return
    }
    const { reason, qos } = r
    st.dropped++
    this.#dropped.inc({ reason, qos })
    const p = this.#pending.get(client)
    if (p) p.count++
    else this.#pending.set(client, { reason, topic: r.topic, qos, count: 1 })
    if (this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(() => this.flush(), this.#o.dropIntervalMs ?? 1000)
      this.#flushTimer.unref()
    }
  }

  #caughtUp(client: Client, st: State): void {
    if (st.refused !== undefined) this.#count(client, st)
    clearTimeout(st.timer)
    st.timer = undefined
    if (st.stored > 0) this.#o.onBacklog(client, info(st))
  }

  #timedOut(client: Client, c: Wrappable, st: State): void {
    st.timer = undefined
    if (c.closed) return
    if (st.refused !== undefined) this.#count(client, st)
    this.#slow.inc()
    this.flush()
    this.#o.onSlow(client, info(st))
  }

  /** Journals the drops counted since the last flush: one `buffer_dropped` per client. */
  flush(): void {
    for (const [client, st] of this.#uncounted) this.#count(client, st)
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    for (const [client, p] of this.#pending) {
      const who = this.#o.describe(client)
      // topic and qos: the first message dropped in this interval
      this.#o.journal.record({ type: 'buffer_dropped', store: 'delivery', reason: p.reason, session: who?.session, clientId: who?.clientId ?? client.id, sub: who?.sub, topic: p.topic, qos: p.qos, count: p.count })
    }
    this.#pending.clear()
  }
}

/**
 * Aedes drops a delivery whose brokerCounter is not above the last one the client got from
 * the same broker: its guard against overlapping subscriptions delivering one message twice.
 * But counters are taken when a message is received, and a retained one is routed only after
 * the retained store has taken it (asynchronously), so a message received after it (from the
 * same client, in the same read, or from any other) is routed first, and the retained one was
 * then dropped for every live subscriber (bare Aedes 1.2 does the same:
 * test/e2e/retained-live.test.ts). Only the same message — the same counter — is a duplicate:
 * an older one is let through. Returns false for a duplicate.
 */
function inOrderForDedupe(c: Wrappable, packet: DeliverPacket): boolean {
  const id = packet.brokerId
  if (!id) return true
  const last = c.duplicates[id]
  if (last === packet.brokerCounter) return false
  if (last !== undefined && packet.brokerCounter! < last) c.duplicates[id] = packet.brokerCounter! - 1
  return true
}

function queueKey(p: { readonly brokerId?: string | null; readonly brokerCounter?: number }): string {
  return `${p.brokerId}\u0000${p.brokerCounter}`
}

function noop(): void {}

const NOTHING: SlowInfo = Object.freeze({ queued: 0, queuedBytes: 0, dropped: 0, stored: 0 })

function info(st: State): SlowInfo {
  return { queued: st.count, queuedBytes: st.bytes, dropped: st.dropped, stored: st.stored }
}

function sizeOf(p: DeliverPacket): number {
  const payload = p.payload
  const n = typeof payload === 'string' ? Buffer.byteLength(payload) : (payload?.length ?? 0)
  return n + p.topic.length
}
