import type { Aedes, AedesPublishPacket } from 'aedes'
import type { Registry } from 'prom-client'
import type { Config, UpstreamConfig } from '../config/types.js'
import type { Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import type { Journal } from '../journal/types.js'
import type { PolicyEngine } from '../policy/types.js'
import { gatewayMadeOnly } from '../broker/create.js'
import type { Identity } from '../identity/types.js'
import { UpstreamLink, type LinkStatus, type Timers } from './link.js'
import { Outbox } from './outbox.js'
import { compileMappings, type CompiledMappings, type InMapping, type OutMapping } from './mappings.js'
import { createBridgeMetrics, type BridgeMetrics } from './metrics.js'
import { isValidTopic, matchTopic } from './topic.js'

/** The identity cloud messages are judged as (SPEC: kind service, group cloud). */
export const UPSTREAM_IDENTITY: Identity = Object.freeze({
  sub: 'upstream', clientId: 'upstream', groups: Object.freeze(['cloud']), kind: 'service', claims: Object.freeze({}), listener: 'upstream',
})

export interface BridgeDeps {
  readonly config: Config
  readonly aedes: Aedes
  /** the current policy (it is swapped on reload, so a getter) */
  readonly policy: () => PolicyEngine
  readonly journal: Journal
  readonly logger: Logger
  readonly clock: Clock
  readonly registry: Registry
  /** the payload the cloud may see (masked view); default: the packet as routed */
  readonly view?: (packet: { readonly topic: string; readonly payload: Buffer | string }) => Buffer
  readonly random?: () => number
  readonly timers?: Timers
}

export interface BridgeStatus extends LinkStatus {
  readonly outbox: { readonly messages: number; readonly bytes: number; readonly oldestAgeSec: number; readonly onFull: string; readonly writable: boolean }
}

type DropReason = 'drop-oldest' | 'too_large' | 'buffer_full' | 'rejected'

/** messages on their way to the cloud at once; a window, so a slow PUBACK does not stall the drain */
const WINDOW = 512
const DROP_REPORT_MS = 1000
/** once the cloud was too slow to acknowledge in time, messages are written first this long; doubled each time it is slow again right after, up to the max */
const STORE_FIRST_MS = 1000
const STORE_FIRST_MAX_MS = 60_000

/**
 * The cloud bridge: local messages matching `upstream.out` are rendered to their cloud
 * topic, queued in the outbox and drained in order over the link, leaving the outbox only
 * when the cloud acknowledges. The local QoS 1 PUBACK waits until the message is safe (see
 * accept()): while the link is up and acknowledges in time, that is the cloud's PUBACK and
 * nothing is written; otherwise (link down, no cloud PUBACK within `buffer.storeAfterMs`)
 * it is the outbox's LMDB commit.
 * Cloud messages matching `upstream.in` are judged by policy as the `upstream` identity
 * and published into the local broker; they are never bridged back out.
 */
export class Bridge {
  readonly link: UpstreamLink
  readonly outbox: Outbox
  readonly mappings: CompiledMappings
  readonly #d: BridgeDeps
  readonly #cfg: UpstreamConfig
  readonly #log: Logger
  readonly #metrics: BridgeMetrics
  /** payload buffers that came from the cloud: never sent back (no echo loops) */
  readonly #inbound = new WeakSet<Buffer>()
  readonly #handlers: { filter: string; fn: (packet: AedesPublishPacket, cb: () => void) => void }[] = []
  readonly #drops = new Map<DropReason, { count: number; bytes: number }>()
  #dropTimer: NodeJS.Timeout | undefined
  #inflight = 0
  #pumpScheduled = false
  #resentSeen = 0
  #stopped = false
  #sweep: NodeJS.Timeout | undefined
  /** until then (clock ms) messages are written first */
  #storeFirstUntil = 0
  #storeFirstMs = STORE_FIRST_MS
  /** the sweep's marks: how far the drain had sent at a time, so it knows what the cloud has held for storeAfterMs */
  readonly #marks: { at: number; seq: number }[] = []
  #lastSweep = 0
  /** how often the sweep looks, ms (storeAfterMs / 4) */
  readonly #sweepEvery: number

  constructor(d: BridgeDeps) {
    if (!d.config.upstream) throw new Error('Bridge needs config.upstream')
    this.#d = d
    this.#cfg = d.config.upstream
    this.#log = d.logger.child({ stage: 'bridge' })
    this.mappings = compileMappings(this.#cfg, { gatewayId: d.config.gateway.id, fleet: d.config.gateway.fleet })
    this.link = new UpstreamLink({ config: this.#cfg, gatewayId: d.config.gateway.id, logger: d.logger, journal: d.journal, clock: d.clock, random: d.random, timers: d.timers })
    this.outbox = Outbox.open(d.config.gateway.dataDir, this.#cfg.buffer, d.clock)
    this.#sweepEvery = Math.max(5, Math.floor(this.#cfg.buffer.storeAfterMs / 4))
    this.outbox.onDrop = (count, bytes) => this.#noteDrop('drop-oldest', count, bytes)
    this.outbox.onCommitted = () => { if (this.#inflight <= WINDOW / 2) this.#schedulePump() }
    this.outbox.onWriteFailed = (err) => this.#log.error({ event: 'outbox_write_failed', err: err.message }, 'could not write a message for the cloud; it waits in memory for the cloud\'s PUBACK')
    this.#metrics = createBridgeMetrics(d.registry, this, d.clock)
    this.link.on('up', () => {
      // what was sent before the drop is sent again now: its age starts over
      this.#marks.length = 0
      this.outbox.rewind()
      this.#schedulePump()
    })
    // what was sent ahead of any write is written now: the link may stay down for long
    this.link.on('down', () => {
      this.outbox.rewind()
      this.outbox.storeUnacknowledged()
    })
  }

  /** Subscribes inside the broker and on the cloud, then starts the link. */
  async start(): Promise<void> {
    for (const m of this.mappings.out) {
      // a client's publish is taken in accept(): one only this handler matches goes nowhere else (create.ts)
      const fn = gatewayMadeOnly((packet: AedesPublishPacket, cb: () => void): void => this.#outbound(m, packet, cb))
      this.#handlers.push({ filter: m.local, fn })
      await new Promise<void>((resolve) => this.#d.aedes.subscribe(m.local, fn, () => resolve()))
    }
    for (const m of this.mappings.in) this.link.subscribe(m.remote, m.qos, (topic, payload, p) => this.#inboundMessage(m, topic, payload, p.qos))
    this.link.start()
    const after = this.#cfg.buffer.storeAfterMs
    if (after > 0) {
      this.#sweep = setInterval(() => setImmediate(() => this.#sweepOnce(after)), this.#sweepEvery)
      this.#sweep.unref()
    }
    if (this.outbox.depth > 0) this.#log.info({ event: 'outbox_resumed', messages: this.outbox.depth, bytes: this.outbox.bytes }, 'messages from a previous run are waiting for the cloud')
  }

  /**
   * For the gateway's publish path: a reason to refuse a local publish (a `block` outbox
   * at its limit and the topic is bridged), or undefined.
   */
  refusal(topic: string): string | undefined {
    if (this.outbox.writable || !this.mappings.bridged(topic)) return undefined
    this.#noteDrop('buffer_full', 1, 0)
    return 'upstream_buffer_full'
  }

  status(): BridgeStatus {
    const oldest = this.outbox.oldestTs
    return {
      ...this.link.status(),
      outbox: {
        messages: this.outbox.depth,
        bytes: this.outbox.bytes,
        oldestAgeSec: oldest === undefined ? 0 : Math.max(0, Math.round((this.#d.clock.now() - oldest) / 1000)),
        onFull: this.#cfg.buffer.onFull,
        writable: this.outbox.writable,
      },
    }
  }

  /** Stops the drain and the link, reports pending drops, and closes the outbox durably. */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#sweep) clearInterval(this.#sweep)
    // a closed broker routes nothing more (and its emitter may never call back)
    if (!(this.#d.aedes as { closed?: boolean }).closed) {
      for (const h of this.#handlers) await new Promise<void>((resolve) => this.#d.aedes.unsubscribe(h.filter, h.fn, () => resolve()))
    }
    await this.link.stop()
    this.#flushDrops()
    await this.outbox.close()
  }

  /**
   * The publish path (gateway.ts #authorizePublish, after policy and masking) hands every
   * allowed client publish here: each out mapping that takes it queues the cloud's view.
   * The promise resolves once the message is safe, in the cloud or in the outbox's LMDB
   * (the local PUBACK waits for it), and never rejects: a failed write is logged and
   * counted as dropped.
   */
  accept(packet: { readonly topic: string; readonly payload: Buffer | string; readonly qos: number; readonly retain: boolean }): Promise<unknown> | undefined {
    if (this.#stopped) return undefined
    let pending: Promise<unknown> | undefined
    let payload: Buffer | undefined
    let viaCloud: boolean | undefined
    for (const m of this.mappings.out) {
      if (!this.#takes(m, packet.topic)) continue
      payload ??= this.#view(packet)
      viaCloud ??= this.#viaCloud()
      const p = this.#enqueue(m, packet.topic, payload, packet.retain, viaCloud)
      pending = pending ? Promise.all([pending, p]) : p
    }
    return pending
  }

  /** internal publishes (approved held messages and other gateway-made messages) reach the bridge here */
  #outbound(m: OutMapping, packet: AedesPublishPacket, cb: () => void): void {
    // client publishes carry their clientId and were taken in accept(); inbound cloud messages never go back;
    // on a site cluster (broker.cluster.redis) another gateway's messages are that gateway's bridge's to send
    if ((packet as { clientId?: string }).clientId !== undefined || (packet as { brokerId?: string }).brokerId !== this.#d.aedes.id || this.#stopped || this.#inbound.has(packet.payload as Buffer) || !this.#takes(m, packet.topic)) return cb()
    void this.#enqueue(m, packet.topic, this.#view(packet), packet.retain).then(cb)
  }

  /**
   * Runs after the poll phase (PUBACKs that arrived while timers waited are read first). The
   * cloud is slow when the oldest waiting message was sent `after` ms ago or more and is still
   * not acknowledged: then everything held in memory is written (sent or not: behind a stalled
   * window nothing more is sent), and for a while messages are written first.
   */
  #sweepOnce(after: number): void {
    const now = this.#d.clock.now()
    const marks = this.#marks
    // a late look means this event loop was busy (a burst of intake: PUBACKs may be unread in the
    // socket, the wait was ours), and time going backwards means the clock was set: measure anew
    const gap = now - this.#lastSweep
    this.#lastSweep = now
    if (gap < 0 || gap > this.#sweepEvery + Math.max(50, after / 2)) {
      marks.length = 0
      if (gap < 0) this.#storeFirstUntil = Math.min(this.#storeFirstUntil, now + this.#storeFirstMs)
    }
    let sentBefore = 0
    while (marks.length > 0 && marks[0]!.at <= now - after) sentBefore = marks.shift()!.seq
    marks.push({ at: now, seq: this.outbox.sentUpTo })
    const oldest = this.outbox.oldestSeq
    if (oldest === undefined || sentBefore < oldest) {
      // not slow: only the list of messages held in memory is tidied
      this.outbox.storeUnacknowledged(0)
      return
    }
    this.outbox.storeUnacknowledged()
    if (now < this.#storeFirstUntil) return
    // found slow again as soon as the last while was over (a slow WAN): twice as long
    const again = now - this.#storeFirstUntil < 4 * after
    this.#storeFirstMs = again ? Math.min(this.#storeFirstMs * 2, STORE_FIRST_MAX_MS) : STORE_FIRST_MS
    this.#storeFirstUntil = now + this.#storeFirstMs
  }

  /** send ahead of any write and let the cloud's PUBACK make it safe: the link is up and acknowledging in time */
  #viaCloud(): boolean {
    // also behind a stored backlog: its PUBACK then paces the publisher to the drain, where writing
    // first under a sustained overload would grow the backlog until the buffer limits drop messages
    if (this.#cfg.buffer.storeAfterMs === 0 || !this.link.connected) return false
    return this.#d.clock.now() >= this.#storeFirstUntil
  }

  #takes(m: OutMapping, topic: string): boolean {
    // $-trees (status, held messages, $SYS) leave only through a mapping that names them
    if (topic.charCodeAt(0) === 36 && !m.dollar) return false
    return matchTopic(m.local, topic)
  }

  #view(packet: { readonly topic: string; readonly payload: Buffer | string }): Buffer {
    if (this.#d.view) return this.#d.view(packet)
    return typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  }

  #enqueue(m: OutMapping, topic: string, payload: Buffer, retain: boolean, viaCloud = false): Promise<unknown> {
    const remote = m.remote(topic)
    if (remote === undefined || !isValidTopic(remote)) {
      this.#log.warn({ event: 'bridge_topic_invalid', topic, mapping: m.local }, 'out mapping rendered no valid cloud topic; message not bridged')
      this.#noteDrop('rejected', 1, payload.length)
      return Promise.resolve()
    }
    return this.outbox.enqueue(remote, payload, m.qos, m.retain ?? retain, viaCloud).catch((err: Error) => {
      this.#log.error({ event: 'outbox_write_failed', err: err.message }, 'could not queue a message for the cloud')
      this.#noteDrop('rejected', 1, payload.length)
    })
  }

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#stopped) return
    this.#pumpScheduled = true
    setImmediate(() => {
      this.#pumpScheduled = false
      this.#pump()
    })
  }

  /** Sends queued messages in order while the link is up, at most WINDOW unacknowledged. */
  #pump(): void {
    if (this.#stopped || !this.link.connected) return
    while (this.#inflight < WINDOW && this.outbox.available && this.link.connected) {
      const batch = this.outbox.take(WINDOW - this.#inflight)
      if (batch.length === 0) break
      for (const msg of batch) {
        this.#inflight++
        const generation = this.link.generation
        this.link.send(msg.topic, msg.payload, msg.qos, msg.retain, (err) => {
          this.#inflight--
          if (!err) {
            this.outbox.ack(msg.seq)
            this.#metrics.sent.inc()
          } else {
            // a connection on its way down fails its publishes before it reports the close:
            // decide once that has run. Same connection still up → the cloud refused this one
            // message and would refuse it again; otherwise it stays queued for the rewind.
            setImmediate(() => {
              if (!this.link.connected || this.link.generation !== generation) return
              this.#log.warn({ event: 'bridge_publish_rejected', topic: msg.topic, err: err.message }, 'the cloud refused a bridged message; dropped')
              this.outbox.ack(msg.seq)
              this.#noteDrop('rejected', 1, msg.payload.length)
            })
          }
          // refill in batches: one LMDB range read per half window, not one per PUBACK
          if (this.#inflight <= WINDOW / 2 && this.outbox.available) this.#schedulePump()
        })
      }
    }
    const resent = this.outbox.resent
    if (resent > this.#resentSeen) {
      this.#metrics.resent.inc(resent - this.#resentSeen)
      this.#resentSeen = resent
    }
  }

  async #inboundMessage(m: InMapping, remoteTopic: string, payload: Buffer, qos: number): Promise<void> {
    const local = m.local(remoteTopic)
    const id = UPSTREAM_IDENTITY
    const q = Math.min(qos, m.qos) as 0 | 1
    const base = { session: 'upstream', clientId: id.clientId, sub: id.sub, kind: id.kind, qos: q, retain: false, bytes: payload.length, upstreamTopic: remoteTopic }
    if (local === undefined || !isValidTopic(local)) {
      this.#metrics.received.inc({ result: 'denied' })
      this.#d.journal.record({ type: 'publish_denied', ...base, topic: local ?? '', reason: 'in_mapping_no_topic' })
      return
    }
    const policy = this.#d.policy()
    const decision = policy.decide(id, 'publish', local, { qos: q, retain: false, payload })
    if (decision.effect !== 'allow') {
      // a hold needs a requester who can be asked: cloud messages are refused instead
      this.#metrics.received.inc({ result: 'denied' })
      this.#d.journal.record({ type: 'publish_denied', ...base, topic: local, rule: decision.ruleId, reason: decision.effect === 'hold' ? 'approval_required' : (decision.reason ?? 'policy'), policyRev: policy.revision })
      return
    }
    // a fresh Buffer object per message: its identity marks it as inbound
    const buf = payload.length === 0 ? Buffer.alloc(0) : payload
    this.#inbound.add(buf)
    await this.#d.journal.append({ type: 'publish', ...base, topic: local, rule: decision.ruleId })
    await new Promise<void>((resolve) => this.#d.aedes.publish({ cmd: 'publish', topic: local, payload: buf, qos: q, retain: false, dup: false } as never, () => resolve()))
    this.#metrics.received.inc({ result: 'delivered' })
  }

  /** buffer_dropped is journaled with counts, at most once a second per reason */
  #noteDrop(reason: DropReason, count: number, bytes: number): void {
    this.#metrics.dropped.inc({ reason }, count)
    const d = this.#drops.get(reason)
    if (d) {
      d.count += count
      d.bytes += bytes
    } else this.#drops.set(reason, { count, bytes })
    if (!this.#dropTimer) {
      this.#dropTimer = setTimeout(() => this.#flushDrops(), DROP_REPORT_MS)
      this.#dropTimer.unref()
    }
  }

  #flushDrops(): void {
    if (this.#dropTimer) clearTimeout(this.#dropTimer)
    this.#dropTimer = undefined
    for (const [reason, d] of this.#drops) {
      this.#d.journal.record({ type: 'buffer_dropped', store: 'outbox', reason, count: d.count, bytes: d.bytes, onFull: this.#cfg.buffer.onFull, queued: this.outbox.depth })
      this.#log.warn({ event: 'buffer_dropped', reason, count: d.count, onFull: this.#cfg.buffer.onFull }, `upstream outbox: ${d.count} message(s) not bridged (${reason})`)
    }
    this.#drops.clear()
  }

  /** for metrics */
  get inflight(): number { return this.#inflight }
}
