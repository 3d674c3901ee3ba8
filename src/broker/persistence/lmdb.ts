import { Readable } from 'node:stream'
import type { Database } from 'lmdb'
import { Packr } from 'msgpackr'
import { QlobberTrue } from 'qlobber'
import QlobberSub from 'qlobber/aedes/qlobber-sub.js'
import PacketFn from 'aedes-packet'
import { openDataEnv, type DataEnv } from '../../storage/env.js'
import type { Journal } from '../../journal/types.js'
import { startsWithWildcard } from '../create.js'
import { DropCounter } from './drops.js'
import { isLongTopic, literalPrefix, topicHash, topicKey } from './keys.js'

/** The packet shape Aedes hands a persistence (aedes-packet plus whatever mqtt-packet carried). */
export interface StoredPacket {
  cmd: string
  topic?: string
  payload?: Buffer | string
  qos?: number
  retain?: boolean
  dup?: boolean
  messageId?: number
  brokerId?: string
  brokerCounter?: number
  clientId?: string
  [k: string]: unknown
}
interface ClientRef { readonly id: string }
interface Sub { topic: string; qos: number; rh?: number; rap?: boolean; nl?: boolean; subscriptionIdentifier?: number }
type SubRecord = Omit<Sub, 'topic'>
/** what Aedes gives `setup`: only these members are used */
interface BrokerRef { id: string; counter: number; clients?: Record<string, unknown> }
/** the connection a QoS 1 message was published on: Aedes' own route of a prepared message comes only while it is open */
export interface Publisher { readonly closed?: boolean }
/** pending: prepared, and Aedes' route of it (outgoingEnqueueCombi) is still to come, from this publisher */
interface OutEntry { readonly seq: number; packet: StoredPacket; pending: Publisher | undefined }

const Packet = PacketFn as unknown as new (o: object, broker?: BrokerRef) => StoredPacket
/** prepared messages awaiting their route at which those of closed publishers are swept out */
const PREPARED_SWEEP = 256
const QLOBBER = { wildcard_one: '+', wildcard_some: '#', separator: '/' }

export interface LmdbPersistenceOptions {
  readonly dataDir: string
  /** offline QoS 1/2 messages kept per client; more are dropped and journaled */
  readonly maxQueuedPerClient?: number
  /** retained topics kept; a new topic beyond it is not retained, and journaled */
  readonly maxRetained?: number
  readonly journal?: Journal
  /** how often prepared messages whose publisher closed before their route are forgotten (default 10 s) */
  readonly preparedSweepMs?: number
}

/**
 * Aedes persistence (aedes-persistence 11, promise API) on the data dir's shared LMDB
 * environment. Everything Aedes reads on the hot path — subscriptions (a qlobber trie),
 * outgoing queues, incoming QoS 2 packets, wills — is also held in memory and loaded from
 * LMDB at setup; LMDB is the durable copy. Retained messages are read from LMDB (prefix
 * range scans), so their payloads are not held twice.
 *
 * What is awaited (durable before Aedes acknowledges): enqueued QoS 1/2 messages (so a
 * PUBACK means the queued copy survives kill -9), retained messages, subscriptions,
 * incoming QoS 2 packets and PUBREL state. What is not (one group commit later, a crash
 * in between only causes a redelivery): clearing acknowledged messages and wills.
 * A publish's in-flight messageId is not stored at all: a resumed session gets new ones.
 */
export class LmdbPersistence {
  readonly #env: DataEnv
  readonly #retainedDb: Database<StoredPacket, string>
  readonly #retainedLongDb: Database<StoredPacket, string>
  readonly #subsDb: Database<Sub, [string, string]>
  readonly #outDb: Database<Buffer, [string, number]>
  readonly #inDb: Database<StoredPacket, [string, number]>
  readonly #willDb: Database<StoredPacket, string>
  readonly #packr = new Packr({ copyBuffers: true })
  readonly #maxQueued: number
  readonly #maxRetained: number
  readonly drops: DropCounter

  // topic -> present; the count and existence test for maxRetained without a read
  readonly #retainedTopics = new Set<string>()
  #longRetained = 0
  readonly #subs = new Map<string, Map<string, SubRecord>>()
  readonly #trie = new QlobberSub(QLOBBER)
  readonly #out = new Map<string, OutEntry[]>()
  #seq = 0
  readonly #incoming = new Map<string, Map<number, StoredPacket>>()
  readonly #wills = new Map<string, StoredPacket>()
  // QoS 1 publishes made durable before their PUBACK (see prepare), by the brokerCounter
  // prepare() gave them: not by payload object, which a mask's fixed redaction shares
  readonly #prepared = new Map<number, { readonly clients: Set<string>; readonly entries: OutEntry[]; readonly publisher: Publisher }>()
  /** packets prepare() has queued: Aedes' own authorize wrapper (create.ts) asks again */
  readonly #preparedPackets = new WeakSet<object>()
  // subscriptions the gateway refused: Aedes stores a SUBSCRIBE's whole list when any one is granted
  readonly #denied = new WeakSet<object>()
  #broker: BrokerRef | undefined
  #destroyed = false
  readonly #sweepMs: number
  #sweep: NodeJS.Timeout | undefined
  #sweepAt = PREPARED_SWEEP

  constructor(opts: LmdbPersistenceOptions) {
    this.#env = openDataEnv(opts.dataDir)
    const root = this.#env.root
    this.#retainedDb = root.openDB({ name: 'broker-retained', encoding: 'msgpack' })
    this.#retainedLongDb = root.openDB({ name: 'broker-retained-long', encoding: 'msgpack' })
    this.#subsDb = root.openDB({ name: 'broker-subs', encoding: 'msgpack' })
    // encoded once per message by us, the same bytes put once per subscriber queue
    this.#outDb = root.openDB({ name: 'broker-outgoing', encoding: 'binary' })
    this.#inDb = root.openDB({ name: 'broker-incoming', encoding: 'msgpack' })
    this.#willDb = root.openDB({ name: 'broker-wills', encoding: 'msgpack' })
    this.#maxQueued = opts.maxQueuedPerClient ?? Infinity
    this.#maxRetained = opts.maxRetained ?? Infinity
    this.drops = new DropCounter(opts.journal)
    this.#sweepMs = opts.preparedSweepMs ?? 10_000
  }

  get broker(): BrokerRef | undefined { return this.#broker }

  /** Loads the in-memory indexes from LMDB; called by Aedes' listen(). */
  async setup(broker: BrokerRef): Promise<void> {
    this.#broker = broker
    this.#sweep = setInterval(() => this.#sweepPrepared(), this.#sweepMs).unref()
    for (const key of this.#retainedDb.getKeys()) this.#retainedTopics.add(key)
    for (const { value } of this.#retainedLongDb.getRange()) {
      this.#retainedTopics.add(value.topic!)
      this.#longRetained++
    }
    for (const { key: [clientId], value } of this.#subsDb.getRange()) {
      const { topic, ...record } = value
      this.#addSub(clientId, topic, record)
    }
    let maxCounter = 0
    for (const { key: [clientId, seq], value } of this.#outDb.getRange()) {
      const packet = this.#packr.unpack(value) as StoredPacket
      listOf(this.#out, clientId).push({ seq, packet, pending: undefined })
      if (seq > this.#seq) this.#seq = seq
      if (packet.brokerId === broker.id && (packet.brokerCounter ?? 0) > maxCounter) maxCounter = packet.brokerCounter!
    }
    // a packet queued by prepare() before it numbered packets itself (older versions): number it now
    for (const queue of this.#out.values()) {
      for (const e of queue) {
        if (e.packet.cmd === 'publish' && !e.packet.brokerCounter) {
          e.packet.brokerId = broker.id
          e.packet.brokerCounter = ++maxCounter
        }
      }
    }
    // Aedes matches a queued packet by (brokerId, brokerCounter) and restarts its counter at 0
    // with the same id: continue after the stored ones so new packets never collide with them
    if (maxCounter > broker.counter) broker.counter = maxCounter
    for (const { key: [clientId, messageId], value } of this.#inDb.getRange()) {
      mapOf(this.#incoming, clientId).set(messageId, value)
    }
    for (const { key, value } of this.#willDb.getRange()) this.#wills.set(key, value)
  }

  // ── retained ────────────────────────────────────────────────────────────────────────

  async storeRetained(pkt: StoredPacket): Promise<void> {
    const topic = pkt.topic!
    const long = isLongTopic(topic)
    const db = long ? this.#retainedLongDb : this.#retainedDb
    const key = long ? topicHash(topic) : topic
    if (!pkt.payload || pkt.payload.length === 0) {
      if (!this.#retainedTopics.delete(topic)) return
      if (long) this.#longRetained--
      await db.remove(key)
      return
    }
    if (!this.#retainedTopics.has(topic)) {
      if (this.#retainedTopics.size >= this.#maxRetained) {
        // the message is still delivered live; only its retention is refused
        this.drops.add('max_retained', pkt.clientId, topic)
        return
      }
      this.#retainedTopics.add(topic)
      if (long) this.#longRetained++
    }
    await db.put(key, { ...pkt })
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return Readable.from(this.#retainedMatching(patterns))
  }

  /** deprecated in aedes-persistence, kept for the interface */
  createRetainedStream(pattern: string): Readable {
    return Readable.from(this.#retainedMatching([pattern]))
  }

  get retainedCount(): number { return this.#retainedTopics.size }

  *#retainedMatching(patterns: string[]): Generator<StoredPacket> {
    // one SUBSCRIBE may name overlapping filters: each retained message is sent once
    const seen = patterns.length > 1 ? new Set<string>() : undefined
    for (const pattern of patterns) {
      for (const p of this.#retainedByPattern(pattern)) {
        if (seen) {
          if (seen.has(p.topic!)) continue
          seen.add(p.topic!)
        }
        yield p
      }
    }
  }

  *#retainedByPattern(pattern: string): Generator<StoredPacket> {
    const { prefix, wildcardAt } = literalPrefix(pattern)
    if (wildcardAt === -1) {
      const v = this.#getRetained(pattern)
      if (v) yield v
      return
    }
    const matcher = new QlobberTrue(QLOBBER).add(pattern)
    // 'a/b/#' also matches 'a/b' itself, which sorts before the 'a/b/' range
    if (pattern[wildcardAt] === '#' && wildcardAt > 0) {
      const parent = pattern.slice(0, wildcardAt - 1)
      const v = this.#getRetained(parent)
      if (v && matcher.test(parent)) yield v
    }
    // keys are topics in UTF-8 byte order: every topic starting with 'a/b/' lies in ['a/b/', 'a/b0');
    // no short topic starts with a long prefix
    if (!isLongTopic(prefix)) {
      const range = prefix === '' ? {} : { start: prefix, end: prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1) }
      for (const { key, value } of this.#retainedDb.getRange(range)) {
        if (matcher.test(key)) yield value
      }
    }
    if (this.#longRetained > 0) {
      for (const { value } of this.#retainedLongDb.getRange()) {
        if (matcher.test(value.topic!)) yield value
      }
    }
  }

  #getRetained(topic: string): StoredPacket | undefined {
    return isLongTopic(topic) ? this.#retainedLongDb.get(topicHash(topic)) : this.#retainedDb.get(topic)
  }

  // ── subscriptions ───────────────────────────────────────────────────────────────────

  #addSub(clientId: string, topic: string, record: SubRecord): void {
    const stored = mapOf(this.#subs, clientId)
    const prev = stored.get(topic)
    // only QoS > 0 subscriptions are matched for offline queueing (as in the memory persistence)
    if (record.qos > 0) this.#trie.add(topic, { clientId, topic, qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl })
    else if (prev && prev.qos > 0) this.#trie.remove(topic, { clientId, topic })
    stored.set(topic, record)
  }

  async addSubscriptions(client: ClientRef, subs: Sub[]): Promise<void> {
    mapOf(this.#subs, client.id)
    let last: Promise<boolean> | undefined
    for (const sub of subs) {
      if (this.#denied.has(sub)) continue
      const record: SubRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl }
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier
      this.#addSub(client.id, sub.topic, record)
      last = this.#subsDb.put([client.id, topicKey(client.id, sub.topic)], { topic: sub.topic, ...record })
    }
    await last
  }

  async removeSubscriptions(client: ClientRef, topics: string[]): Promise<void> {
    const stored = this.#subs.get(client.id)
    if (!stored) return
    let last: Promise<boolean> | undefined
    for (const topic of topics) {
      const sub = stored.get(topic)
      if (!sub) continue
      if (sub.qos > 0) this.#trie.remove(topic, { clientId: client.id, topic })
      stored.delete(topic)
      last = this.#subsDb.remove([client.id, topicKey(client.id, topic)])
    }
    if (stored.size === 0) this.#subs.delete(client.id)
    await last
  }

  /**
   * The gateway refused `sub` (policy): it is never stored, and if the session had it stored
   * (a session resumed under a changed policy) it is removed, with the queued messages that
   * no remaining subscription of the session covers — journaled as dropped. Aedes re-checks
   * a resumed session's subscriptions before it sends the queue, so nothing refused leaks.
   */
  denied(clientId: string, sub: object & { topic: string }): void {
    this.#denied.add(sub)
    const stored = this.#subs.get(clientId)
    if (!stored?.has(sub.topic)) return
    this.removeSubscriptions({ id: clientId }, [sub.topic]).catch(unawaited)
    const queue = this.#out.get(clientId)
    if (!queue) return
    const remaining = new QlobberTrue(QLOBBER)
    for (const topic of this.#subs.get(clientId)?.keys() ?? []) remaining.add(topic)
    let dropped = 0
    for (let i = queue.length - 1; i >= 0; i--) {
      const e = queue[i]!
      if (e.packet.cmd !== 'publish' || remaining.test(e.packet.topic!)) continue
      queue.splice(i, 1)
      this.#outDb.remove([clientId, e.seq]).catch(unawaited)
      dropped++
    }
    if (queue.length === 0) this.#out.delete(clientId)
    if (dropped) this.drops.add('subscription_revoked', clientId, sub.topic, dropped)
  }

  async subscriptionsByClient(client: ClientRef): Promise<Sub[]> {
    const stored = this.#subs.get(client.id)
    if (!stored) return []
    const subs: Sub[] = []
    for (const [topic, record] of stored) subs.push({ topic, ...record })
    return subs
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return { subsCount: this.#trie.subscriptionsCount, clientsCount: this.#subs.size }
  }

  async subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos?: number }>> {
    return this.#trie.match(topic)
  }

  /** called on every clean-session CONNECT: free when the client has nothing stored */
  async cleanSubscriptions(client: ClientRef): Promise<void> {
    const stored = this.#subs.get(client.id)
    if (!stored) return
    let last: Promise<boolean> | undefined
    for (const [topic, sub] of stored) {
      if (sub.qos > 0) this.#trie.remove(topic, { clientId: client.id, topic })
      last = this.#subsDb.remove([client.id, topicKey(client.id, topic)])
    }
    this.#subs.delete(client.id)
    await last
  }

  getClientList(topic: string): Readable {
    const ids: string[] = []
    for (const [clientId, stored] of this.#subs) if (stored.has(topic)) ids.push(clientId)
    return Readable.from(ids)
  }

  // ── outgoing QoS 1/2 ────────────────────────────────────────────────────────────────

  async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    return this.outgoingEnqueueCombi([sub], packet)
  }

  async outgoingEnqueueCombi(subs: ReadonlyArray<{ clientId: string }>, packet: StoredPacket): Promise<void> {
    const counter = packet.brokerId === this.#broker?.id ? packet.brokerCounter : undefined
    const prep = counter ? this.#prepared.get(counter) : undefined
    if (prep) {
      // queued durably before the PUBACK, under the number prepare() gave it, which the route
      // carries. Routed now: the live copies are on their way, and a resumed queue sends these
      // entries again (outgoingStream)
      this.#prepared.delete(counter!)
      for (const e of prep.entries) e.pending = undefined
    }
    let bytes: Buffer | undefined
    let last: Promise<boolean> | undefined
    for (let i = 0; i < subs.length; i++) {
      const clientId = subs[i]!.clientId
      if (prep?.clients.has(clientId)) continue
      const queue = listOf(this.#out, clientId)
      // the bound is on what waits for an offline client; a connected one is draining its queue
      if (queue.length >= this.#maxQueued && !this.#online(clientId)) {
        this.drops.add('max_queued_per_client', clientId, packet.topic ?? '')
        continue
      }
      const seq = ++this.#seq
      const p = new Packet(packet)
      queue.push({ seq, packet: p, pending: undefined })
      bytes ??= this.#packr.pack(p)
      last = this.#outDb.put([clientId, seq], bytes)
    }
    // resolves when the batch holding these puts is committed (group commit)
    await last
  }

  /**
   * Aedes 1.2 writes a QoS 1 PUBACK *before* it routes the message (and so before
   * outgoingEnqueueCombi/storeRetained run). Called from the authorizePublish hook, this
   * queues the message for the matching persistent sessions and resolves once that is
   * committed, so a PUBACK means "survives kill -9". When Aedes then routes the same packet
   * (recognised by the number given here), those queues are skipped. Returns undefined when
   * there is nothing to queue (no persistent session matches, or already prepared). A
   * retained message is stored by the gateway (gateway.ts #storeRetained), not here.
   *
   * The packet is numbered here, (brokerId, brokerCounter) as Aedes would: Aedes keeps a
   * number the packet carries when it routes it, so the queued entries, their stored copy,
   * the live copies and a resumed queue all name the message alike. (Queued unnumbered, an
   * entry a resumed session read before the route got a fresh number from Aedes' emptyQueue,
   * outgoingUpdate found no such packet, and the session was disconnected.) Until the route
   * the entries are pending: see outgoingStream. `publisher` is the connection the message
   * came on: once it has closed, Aedes' own route (after the PUBACK's write, create.ts'
   * wrapper) never comes, and a resumed queue sends the entries. (The gateway routes the
   * messages it prepares itself, gateway.ts #routeAfterCommit, publisher gone or not.)
   */
  prepare(packet: StoredPacket, publisher: Publisher): Promise<void> | undefined {
    const payload = packet.payload
    if (packet.qos !== 1 || typeof payload !== 'object' || payload.length === 0 || this.#preparedPackets.has(packet)) return undefined
    const subs = this.#matchQueued(packet.topic!)
    // nothing to make durable: no allocation, Aedes' own enqueue handles any late subscriber
    if (subs.length === 0) return undefined
    this.#preparedPackets.add(packet)
    if (this.#prepared.size >= this.#sweepAt) this.#sweepPrepared()
    if (!packet.brokerCounter || packet.brokerId !== this.#broker!.id) {
      const broker = this.#broker!
      packet.brokerId = broker.id
      packet.brokerCounter = ++broker.counter
    }
    return this.#prepare(packet, subs, publisher)
  }

  /**
   * Whether prepare() would queue this message: a persistent session's subscription matches
   * it. (A retained message's store is the gateway's: gateway.ts #storeRetained, in the order
   * the messages were read; prepare() stored it too once, after the commit, and a QoS 0 one read
   * later could be overwritten by it.)
   */
  queuesDurably(packet: StoredPacket): boolean {
    const payload = packet.payload
    if (packet.qos !== 1 || typeof payload !== 'object' || payload.length === 0) return false
    return this.#matchQueued(packet.topic!).length > 0
  }

  /**
   * A prepared message whose publisher closed before its PUBACK's write is never routed by
   * Aedes (create.ts' wrapper: held messages): its entry, keyed by number, would stay for good.
   * (The gateway routes the ones it prepares itself, and passes a publisher that closes when
   * that route is over: swept before, the route would queue the message a second time.) Its
   * queue entries stay, and a resumed queue sends them (outgoingStream). Every sweep interval,
   * and when many are waiting.
   */
  #sweepPrepared(): void {
    for (const [n, p] of this.#prepared) if (p.publisher.closed) this.#prepared.delete(n)
    // many waiting with open publishers (QoS 1 fan-in to persistent sessions): not a scan per prepare()
    this.#sweepAt = Math.max(PREPARED_SWEEP, 2 * this.#prepared.size)
  }

  /** prepared messages waiting for their route */
  get preparedCount(): number { return this.#prepared.size }

  /** The persistent subscriptions a message is queued for: [MQTT-4.7.2-1], as for Aedes' own enqueue (create.ts followDollarRule). */
  #matchQueued(topic: string): ReturnType<QlobberSub['match']> {
    const subs = this.#trie.match(topic)
    return topic[0] === '$' && subs.length > 0 ? subs.filter((s) => !startsWithWildcard(s.topic)) : subs
  }

  async #prepare(packet: StoredPacket, subs: ReturnType<QlobberSub['match']>, publisher: Publisher): Promise<void> {
    const clients = new Set<string>()
    const entries: OutEntry[] = []
    let bytes: Buffer | undefined
    let last: Promise<unknown> | undefined
    for (const sub of subs) {
      const clientId = sub.clientId
      if (clients.has(clientId)) continue
      clients.add(clientId)
      const queue = listOf(this.#out, clientId)
      if (queue.length >= this.#maxQueued && !this.#online(clientId)) {
        this.drops.add('max_queued_per_client', clientId, packet.topic!)
        continue
      }
      const entry: OutEntry = { seq: ++this.#seq, packet: new Packet(packet), pending: publisher }
      queue.push(entry)
      entries.push(entry)
      bytes ??= this.#packr.pack(entry.packet)
      last = this.#outDb.put([clientId, entry.seq], bytes)
    }
    const counter = packet.brokerCounter!
    this.#prepared.set(counter, { clients, entries, publisher })
    try {
      await last
    } catch (err) {
      // not acknowledged (the publisher is closed on this error): no route will come for it
      this.#prepared.delete(counter)
      throw err
    }
  }

  async outgoingUpdate(client: ClientRef, packet: StoredPacket): Promise<void> {
    const queue = this.#out.get(client.id)
    if (queue) {
      for (let i = 0; i < queue.length; i++) {
        const e = queue[i]!
        const temp = e.packet
        if (temp.brokerId === packet.brokerId) {
          // messageIds wrap at 65535: (brokerId, brokerCounter) names the packet
          if (temp.brokerCounter === packet.brokerCounter) {
            temp.messageId = packet.messageId
            return
          }
        } else if (temp.messageId === packet.messageId) {
          // PUBREC: the publish becomes a PUBREL, which must survive a restart (QoS 2 exactly once)
          e.packet = { ...packet }
          await this.#outDb.put([client.id, e.seq], this.#packr.pack(e.packet))
          return
        }
      }
    }
    throw new Error('no such packet')
  }

  async outgoingClearMessageId(client: ClientRef, packet: StoredPacket): Promise<StoredPacket | undefined> {
    const queue = this.#out.get(client.id)
    if (!queue || !packet) return undefined
    // Aedes clears a never-sent packet (authorizeForward said no) by the packet itself,
    // before it has a messageId: match that one by (brokerId, brokerCounter)
    const byCounter = packet.messageId === undefined || packet.messageId === null
    if (byCounter && packet.brokerId === undefined) return undefined
    for (let i = 0; i < queue.length; i++) {
      const e = queue[i]!
      const hit = byCounter
        ? e.packet.brokerId === packet.brokerId && e.packet.brokerCounter === packet.brokerCounter
        : e.packet.messageId === packet.messageId
      if (!hit) continue
      queue.splice(i, 1)
      if (queue.length === 0) this.#out.delete(client.id)
      // not awaited: a crash before this commits only redelivers an acknowledged message
      this.#outDb.remove([client.id, e.seq]).catch(unawaited)
      return e.packet
    }
    return undefined
  }

  /**
   * The queue Aedes sends a resumed session, less the entries still pending (prepared, their
   * route to come): Aedes restores the session's subscriptions before it reads this, so the
   * route delivers them live (held by the delivery wrapper until the queue has gone, then
   * sent in order), and they stay queued until acknowledged. Sent from here as well, the
   * session could acknowledge this copy before the route, whose live copy then finds no
   * entry (outgoingUpdate: "no such packet", the session is disconnected), or get the live
   * copy a second time after the wrapper's hold. Once their publisher's connection has
   * closed Aedes will not route them: they are sent from here.
   */
  outgoingStream(client: ClientRef): Readable {
    // a snapshot: Aedes clears entries while it reads the stream
    const queue = this.#out.get(client.id)
    const packets: StoredPacket[] = []
    if (queue) {
      for (const e of queue) {
        if (e.pending !== undefined) {
          if (!e.pending.closed) continue
          e.pending = undefined
        }
        packets.push(e.packet)
      }
    }
    return Readable.from(packets)
  }

  /** queued + in-flight messages of a client */
  queuedCount(clientId: string): number { return this.#out.get(clientId)?.length ?? 0 }

  #online(clientId: string): boolean {
    return this.#broker?.clients?.[clientId] !== undefined
  }

  // ── incoming QoS 2 ──────────────────────────────────────────────────────────────────

  async incomingStorePacket(client: ClientRef, packet: StoredPacket): Promise<void> {
    const p = new Packet(packet)
    p.messageId = packet.messageId
    mapOf(this.#incoming, client.id).set(packet.messageId!, p)
    await this.#inDb.put([client.id, packet.messageId!], p)
  }

  async incomingGetPacket(client: ClientRef, packet: { messageId?: number }): Promise<StoredPacket> {
    const p = this.#incoming.get(client.id)?.get(packet.messageId!)
    if (!p) throw new Error('no such packet')
    return p
  }

  async incomingDelPacket(client: ClientRef, packet: { messageId?: number }): Promise<void> {
    const store = this.#incoming.get(client.id)
    if (!store?.delete(packet.messageId!)) throw new Error('no such packet')
    if (store.size === 0) this.#incoming.delete(client.id)
    // awaited: a PUBREL replayed after a crash must not publish the message a second time
    await this.#inDb.remove([client.id, packet.messageId!])
  }

  /** called on every clean-session CONNECT and close: free when nothing is stored */
  async cleanIncoming(client: ClientRef): Promise<void> {
    const store = this.#incoming.get(client.id)
    if (!store) return
    this.#incoming.delete(client.id)
    let last: Promise<boolean> | undefined
    for (const messageId of store.keys()) last = this.#inDb.remove([client.id, messageId])
    await last
  }

  // ── wills ───────────────────────────────────────────────────────────────────────────

  async putWill(client: ClientRef, packet: StoredPacket): Promise<void> {
    packet.brokerId = this.#broker!.id
    packet.clientId = client.id
    this.#wills.set(client.id, packet)
    this.#willDb.put(client.id, packet).catch(unawaited)
  }

  async getWill(client: ClientRef): Promise<StoredPacket | undefined> {
    return this.#wills.get(client.id)
  }

  /** called on every CONNECT: free when the client had no will */
  async delWill(client: ClientRef): Promise<StoredPacket | undefined> {
    const will = this.#wills.get(client.id)
    if (!will) return undefined
    this.#wills.delete(client.id)
    this.#willDb.remove(client.id).catch(unawaited)
    return will
  }

  streamWill(brokers: Record<string, unknown> = {}): Readable {
    const wills: StoredPacket[] = []
    for (const will of this.#wills.values()) if (!brokers[will.brokerId!]) wills.push(will)
    return Readable.from(wills)
  }

  // ── lifecycle ───────────────────────────────────────────────────────────────────────

  /** Journals pending drop counts, waits for pending writes, releases the LMDB environment. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return
    this.#destroyed = true
    clearInterval(this.#sweep)
    this.drops.flush()
    await this.#env.root.flushed
    await this.#env.release()
  }
}

/**
 * For writes nothing waits on (an acknowledged message's removal, wills): a failure only
 * means a redelivery after a restart, and must not become an unhandled rejection that
 * kills the process. A broken environment still fails the next awaited write loudly.
 */
function unawaited(): void {}

function mapOf<K, V>(m: Map<string, Map<K, V>>, key: string): Map<K, V> {
  let v = m.get(key)
  if (!v) m.set(key, (v = new Map()))
  return v
}

function listOf<V>(m: Map<string, V[]>, key: string): V[] {
  let v = m.get(key)
  if (!v) m.set(key, (v = []))
  return v
}
