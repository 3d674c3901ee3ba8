import type { Database } from 'lmdb'
import { openDataEnv, type DataEnv } from '../storage/env.js'
import type { Clock } from '../clock.js'

/** A message waiting for the cloud, as the bridge rendered it. */
export interface OutboxMessage {
  readonly seq: number
  readonly topic: string
  readonly payload: Buffer
  readonly qos: 0 | 1
  readonly retain: boolean
  /** when it was queued, ms since the epoch */
  readonly ts: number
}

export interface OutboxLimits {
  readonly maxMessages: number
  readonly maxBytes: number
  readonly onFull: 'block' | 'drop-oldest'
}

/** stored value: [ts, topic, payload, flags (bit 0 qos 1, bit 1 retain)] */
type Stored = [number, string, Buffer, number]

const GONE = -1
const COMPACT_AT = 4096
/** payload bytes of queued messages also kept in memory, so the drain need not read them back */
const HOT_MAX_BYTES = 8 * 1024 * 1024

// where a message is: only in memory (sent ahead of any write), being written, or in LMDB
const MEMORY = 0
const WRITING = 1
const DISK = 2

/** what a queued message's promise settles with, once it and every message before it are settled */
type Outcome = boolean | Error

/** what enqueue() returns a promise of; settled in queue order */
interface Waiter { resolve(safe: boolean): void; reject(err: Error): void; outcome: Outcome | undefined }

/**
 * The store-and-forward queue (LMDB named DB `outbox` in the shared data env, key =
 * monotonic sequence, msgpackr values). Every message gets a sequence and leaves only when
 * ack(seq) says the cloud acknowledged it, or when drop-oldest makes room. The promise
 * enqueue() returns is what the local PUBACK waits for; it resolves once the message is
 * safe: written to LMDB, or acknowledged by the cloud.
 *
 * Two ways in (enqueue's `viaCloud`):
 *  - store first: the message is written, and taken for sending once the write committed;
 *  - via the cloud (the link is up): the message is held in memory and taken at once; the
 *    cloud's PUBACK resolves it and nothing is written. A message the cloud has not
 *    acknowledged in time (storeUnacknowledged(), the bridge's sweep and the link going
 *    down) or when the outbox closes is written after all, under its own sequence, so
 *    order on disk is still queue order.
 * Either way an acknowledged message is in the cloud or on disk (a QoS 0 mapping's: written
 * to the cloud's socket). The promises settle in queue order, so the PUBACKs that wait for
 * them go out in the order the messages came (MQTT-4.6.0-2), whichever way each one went.
 *
 * An in-memory index (sizes and times per sequence) keeps depth, bytes and the oldest age
 * exact without reading LMDB, and tells which handed-out or dropped sequences are gone
 * while their removal is still being committed. Messages queued by this process are also
 * held in memory until first taken (up to HOT_MAX_BYTES): with the cloud up, the drain
 * sends them without reading LMDB back; the rest (a long outage, a previous run, a resend
 * after a rewind) is read from LMDB.
 */
export class Outbox {
  readonly #env: DataEnv
  readonly #db: Database<Stored, number>
  readonly #clock: Clock
  readonly limits: OutboxLimits
  // index: entry i describes sequence base + i; sizes[i] === GONE once acked or dropped
  #base = 1
  #head = 0
  #sizes: number[] = []
  #times: number[] = []
  /** the message itself while it is held in memory (queued by this process, not yet taken; or not yet written) */
  #hot: (OutboxMessage | undefined)[] = []
  /** MEMORY, WRITING or DISK */
  #where: number[] = []
  /** what the promise enqueue() returned waits for, until it is settled (none for what a previous run left) */
  #waiting: (Waiter | undefined)[] = []
  /** the next sequence whose promise settles: none settles before the ones ahead of it */
  #release = 1
  #hotBytes = 0
  #count = 0
  #bytes = 0
  /** sequences below this may be taken: written, or held in memory via the cloud (puts resolve in order) */
  #committed = 1
  /** next sequence take() looks at */
  #cursor = 1
  /** highest sequence ever handed out: taking one at or below it again is a resend */
  #handedOut = 0
  /** sequences queued via the cloud, oldest first, for storeUnacknowledged() (stale entries skipped there) */
  #viaCloud: number[] = []
  #viaCloudHead = 0
  #closed = false
  /** called on every committed enqueue (the drainer wakes up) */
  onCommitted: (() => void) | undefined
  /** called when drop-oldest (or an oversized message) drops messages */
  onDrop: ((count: number, bytes: number) => void) | undefined
  /** called when writing a message held in memory failed (it stays in memory, its PUBACK waits for the cloud) */
  onWriteFailed: ((err: Error) => void) | undefined
  /** messages handed out again after a rewind (sent twice: QoS 1 duplicates) */
  resent = 0
  /** messages written to LMDB (stored first, or written after all), counted when the write commits */
  written = 0

  private constructor(env: DataEnv, limits: OutboxLimits, clock: Clock, name: string) {
    this.#env = env
    this.#clock = clock
    this.limits = limits
    this.#db = env.root.openDB<Stored, number>({ name, encoding: 'msgpack' })
    this.#load()
  }

  /** Opens (or creates) the outbox of a data dir; what a previous run left is kept, in order. */
  static open(dataDir: string, limits: OutboxLimits, clock: Clock, name = 'outbox'): Outbox {
    return new Outbox(openDataEnv(dataDir), limits, clock, name)
  }

  #load(): void {
    let first = true
    for (const { key, value } of this.#db.getRange({})) {
      if (first) {
        this.#base = key
        first = false
      }
      // gaps (acked out of order before a crash) are gone entries
      while (this.#base + this.#sizes.length < key) this.#push(GONE, 0, undefined, DISK, undefined)
      const size = value[1].length + value[2].length
      this.#push(size, value[0], undefined, DISK, undefined)
      this.#count++
      this.#bytes += size
    }
    this.#committed = this.#tail
    this.#cursor = this.#base
    this.#release = this.#tail
  }

  #push(size: number, ts: number, hot: OutboxMessage | undefined, where: number, waiting: Waiter | undefined): void {
    this.#sizes.push(size)
    this.#times.push(ts)
    this.#hot.push(hot)
    this.#where.push(where)
    this.#waiting.push(waiting)
  }

  get #tail(): number { return this.#base + this.#sizes.length }

  /** messages waiting (queued or sent and not yet acknowledged) */
  get depth(): number { return this.#count }
  get bytes(): number { return this.#bytes }

  /** false while a `block` outbox is at its limit: the gateway refuses new mapped publishes */
  get writable(): boolean {
    return this.limits.onFull !== 'block' || (this.#count < this.limits.maxMessages && this.#bytes < this.limits.maxBytes)
  }

  /** queue time of the oldest waiting message */
  get oldestTs(): number | undefined {
    this.#skipGone()
    return this.#head < this.#sizes.length ? this.#times[this.#head] : undefined
  }

  /** true when committed messages are waiting to be taken */
  get available(): boolean {
    return this.#cursor < this.#committed
  }

  /**
   * Queues a message; resolves once it is safe (the local PUBACK waits for this): written
   * to LMDB, or, with `viaCloud`, acknowledged by the cloud (or written after all). Via the
   * cloud applies only while no write is pending ahead of it and the memory budget allows;
   * otherwise the message is stored first. Under drop-oldest, the oldest messages make
   * room first; a message larger than the whole byte budget is dropped itself (resolves
   * false), as is one dropped while it waited in memory.
   */
  enqueue(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean, viaCloud = false): Promise<boolean> {
    if (this.#closed) return Promise.reject(new Error('outbox closed'))
    const size = topic.length + payload.length
    if (size > this.limits.maxBytes) {
      this.onDrop?.(1, size)
      return Promise.resolve(false)
    }
    if (this.limits.onFull === 'drop-oldest') this.#makeRoom(size)
    const seq = this.#tail
    const ts = this.#clock.now()
    this.#count++
    this.#bytes += size
    let waiter!: Waiter
    const settled = new Promise<boolean>((resolve, reject) => { waiter = { resolve, reject, outcome: undefined } })
    if (viaCloud && this.#committed === seq && this.#hotBytes + size <= HOT_MAX_BYTES) {
      // not copied: it leaves memory when the cloud acknowledges it or it is written, soon either way
      this.#push(size, ts, { seq, ts, topic, payload, qos, retain }, MEMORY, waiter)
      this.#hotBytes += size
      this.#viaCloud.push(seq)
      this.#committed = seq + 1
      this.onCommitted?.()
      return settled
    }
    let hot: OutboxMessage | undefined
    if (this.#hotBytes + size <= HOT_MAX_BYTES) {
      // a copy: the payload may be a slice of a whole socket chunk, which must not be held
      hot = { seq, ts, topic, payload: Buffer.from(payload), qos, retain }
      this.#hotBytes += size
    }
    this.#push(size, ts, hot, DISK, waiter)
    this.#db.put(seq, [ts, topic, payload, (qos ? 1 : 0) | (retain ? 2 : 0)]).then(() => {
      this.written++
      if (seq + 1 > this.#committed) this.#committed = seq + 1
      this.onCommitted?.()
      this.#settle(seq, true)
    }, (err: Error) => {
      // not stored (map full, closed env): the index must not wait for it forever
      const i = seq - this.#base
      if (i >= 0 && this.#sizes[i] !== GONE) {
        this.#count--
        this.#bytes -= this.#sizes[i]!
        this.#sizes[i] = GONE
        this.#cool(i)
      }
      // settled before the index may drop the entry (and its waiter) from the front
      this.#settle(seq, err)
      this.#skipGone()
    })
    return settled
  }

  #makeRoom(size: number): void {
    let count = 0
    let bytes = 0
    while (this.#count > 0 && (this.#count + 1 > this.limits.maxMessages || this.#bytes + size > this.limits.maxBytes)) {
      this.#skipGone()
      const seq = this.#base + this.#head
      bytes += this.#sizes[this.#head]!
      this.#remove(seq, false)
      count++
    }
    if (count > 0) this.onDrop?.(count, bytes)
  }

  /**
   * Up to `n` committed messages not yet handed out, in sequence order. The cursor moves
   * past them: they come back only after rewind().
   */
  take(n: number): OutboxMessage[] {
    const out: OutboxMessage[] = []
    let seq = this.#cursor
    while (seq < this.#committed && out.length < n) {
      const i = seq - this.#base
      if (this.#sizes[i] === GONE) { seq++; continue }
      const m = this.#hot[i]
      if (m === undefined) { seq = this.#read(seq, n, out); continue }
      // held in memory: no LMDB read (a message not yet written stays there until it is safe)
      if (this.#where[i] === DISK) this.#cool(i)
      this.#handOut(seq)
      out.push(m)
      seq++
    }
    this.#cursor = seq
    return out
  }

  /** Reads written messages from `seq` on into `out`; returns where take() goes on: a message held in memory, or the end. */
  #read(seq: number, n: number, out: OutboxMessage[]): number {
    let expect = seq
    for (const { key, value } of this.#db.getRange({ start: seq, end: this.#committed })) {
      // a waiting message with no record is one held in memory: take() hands it out from there
      for (; expect < key; expect++) if (this.#live(expect)) return expect
      expect = key + 1
      const i = key - this.#base
      if (i < 0 || this.#sizes[i] === GONE) continue
      if (out.length === n || this.#hot[i] !== undefined) return key
      this.#handOut(key)
      const flags = value[3]
      out.push({ seq: key, ts: value[0], topic: value[1], payload: value[2], qos: (flags & 1) as 0 | 1, retain: (flags & 2) !== 0 })
    }
    for (; expect < this.#committed; expect++) if (this.#live(expect)) return expect
    return this.#committed
  }

  /** waiting and held in memory (a waiting message neither there nor in LMDB cannot be sent: skipped) */
  #live(seq: number): boolean {
    const i = seq - this.#base
    return this.#sizes[i] !== GONE && this.#hot[i] !== undefined
  }

  #handOut(seq: number): void {
    if (seq <= this.#handedOut) this.resent++
    else this.#handedOut = seq
  }

  /** the message is no longer held in memory (taken, removed or failed): a resend reads LMDB */
  #cool(i: number): void {
    const m = this.#hot[i]
    if (m === undefined) return
    this.#hot[i] = undefined
    this.#hotBytes -= m.topic.length + m.payload.length
  }

  /** The cloud acknowledged `seq` (or, QoS 0, it was written): it leaves the outbox. */
  ack(seq: number): void {
    const i = seq - this.#base
    if (i < 0 || i >= this.#sizes.length || this.#sizes[i] === GONE) return
    this.#remove(seq, true)
  }

  /** The link dropped: every handed-out, unacknowledged message is taken again, in order. */
  rewind(): void {
    this.#skipGone()
    this.#cursor = this.#base + this.#head
  }

  /** the highest sequence handed out so far: every message up to it has been sent at least once */
  get sentUpTo(): number { return this.#handedOut }

  /**
   * Writes the messages held in memory via the cloud, up to sequence `upTo` (default: all of
   * them). Their PUBACKs go out once written. Returns how many were written.
   */
  storeUnacknowledged(upTo = Infinity): number {
    let n = 0
    const q = this.#viaCloud
    while (this.#viaCloudHead < q.length) {
      const seq = q[this.#viaCloudHead]!
      const i = seq - this.#base
      // acknowledged, dropped or written already: gone from the list whatever upTo says
      if (i >= 0 && this.#sizes[i] !== GONE && this.#where[i] === MEMORY) {
        if (seq > upTo) break
        this.#write(seq, i)
        n++
      }
      this.#viaCloudHead++
    }
    if (this.#viaCloudHead >= COMPACT_AT && this.#viaCloudHead * 2 >= q.length) {
      q.splice(0, this.#viaCloudHead)
      this.#viaCloudHead = 0
    }
    return n
  }

  /** the oldest waiting message's sequence, or undefined when none waits */
  get oldestSeq(): number | undefined {
    this.#skipGone()
    return this.#head < this.#sizes.length ? this.#base + this.#head : undefined
  }

  #write(seq: number, i: number): void {
    const m = this.#hot[i]!
    this.#where[i] = WRITING
    this.#db.put(seq, [m.ts, m.topic, m.payload, (m.qos ? 1 : 0) | (m.retain ? 2 : 0)]).then(() => {
      this.written++
      const j = seq - this.#base
      if (j < 0 || this.#sizes[j] === GONE || this.#where[j] !== WRITING) return
      this.#where[j] = DISK
      // from now on read back from LMDB if it has to be sent again
      this.#cool(j)
      this.#settle(seq, true)
    }, (err: Error) => {
      const j = seq - this.#base
      if (j >= 0 && this.#sizes[j] !== GONE && this.#where[j] === WRITING) {
        // back in memory, and on the list again: the next sweep, a link drop or close() tries once more
        this.#where[j] = MEMORY
        this.#viaCloud.push(seq)
      }
      this.onWriteFailed?.(err)
    })
  }

  /** `seq`'s promise may settle with `outcome`: it does once every message before it has */
  #settle(seq: number, outcome: Outcome): void {
    const i = seq - this.#base
    const w = i >= 0 ? this.#waiting[i] : undefined
    if (w === undefined || w.outcome !== undefined) return
    w.outcome = outcome
    if (seq === this.#release) this.#releaseSettled()
  }

  #releaseSettled(): void {
    const tail = this.#tail
    while (this.#release < tail) {
      const i = this.#release - this.#base
      const w = i >= 0 ? this.#waiting[i] : undefined
      if (w !== undefined) {
        if (w.outcome === undefined) return
        this.#waiting[i] = undefined
        if (w.outcome instanceof Error) w.reject(w.outcome)
        else w.resolve(w.outcome)
      }
      this.#release++
    }
  }

  #remove(seq: number, delivered: boolean): void {
    const i = seq - this.#base
    this.#count--
    this.#bytes -= this.#sizes[i]!
    this.#sizes[i] = GONE
    this.#cool(i)
    // not awaited: lmdb-js batches removals (after the put, if one is still pending); the
    // index already says gone (a failed removal only means the message comes back after a
    // restart: a QoS 1 duplicate, never a loss)
    if (this.#where[i] !== MEMORY) this.#db.remove(seq).catch(() => {})
    this.#settle(seq, delivered)
    this.#skipGone()
  }

  #skipGone(): void {
    while (this.#head < this.#sizes.length && this.#sizes[this.#head] === GONE) this.#head++
    if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#sizes.length) {
      this.#sizes.splice(0, this.#head)
      this.#times.splice(0, this.#head)
      this.#hot.splice(0, this.#head)
      this.#where.splice(0, this.#head)
      this.#waiting.splice(0, this.#head)
      this.#base += this.#head
      this.#head = 0
    }
  }

  /** Writes what is held only in memory, waits for every queued write and removal, then releases the data env. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.storeUnacknowledged()
    this.#closed = true
    await this.#db.committed
    await this.#env.release()
  }
}
