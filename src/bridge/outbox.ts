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

/**
 * The durable store-and-forward queue (LMDB named DB `outbox` in the shared data env,
 * key = monotonic sequence, msgpackr values). A message is acknowledged to the local
 * publisher once its put has committed, and leaves only when ack(seq) says the cloud
 * acknowledged it, or when drop-oldest makes room.
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
  /** the message itself while it is held in memory (queued by this process, not yet taken) */
  #hot: (OutboxMessage | undefined)[] = []
  #hotBytes = 0
  #count = 0
  #bytes = 0
  /** sequences below this are durably in LMDB (puts resolve in order) */
  #committed = 1
  /** next sequence take() looks at */
  #cursor = 1
  /** highest sequence ever handed out: taking one at or below it again is a resend */
  #handedOut = 0
  #closed = false
  /** called on every committed enqueue (the drainer wakes up) */
  onCommitted: (() => void) | undefined
  /** called when drop-oldest (or an oversized message) drops messages */
  onDrop: ((count: number, bytes: number) => void) | undefined
  /** messages handed out again after a rewind (sent twice: QoS 1 duplicates) */
  resent = 0

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
      while (this.#base + this.#sizes.length < key) {
        this.#sizes.push(GONE)
        this.#times.push(0)
        this.#hot.push(undefined)
      }
      const size = value[1].length + value[2].length
      this.#sizes.push(size)
      this.#times.push(value[0])
      this.#hot.push(undefined)
      this.#count++
      this.#bytes += size
    }
    this.#committed = this.#tail
    this.#cursor = this.#base
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
   * Queues a message; resolves once it is durable (the local PUBACK waits for this).
   * Under drop-oldest, the oldest messages make room first; a message larger than the
   * whole byte budget is dropped itself (resolves false).
   */
  enqueue(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean): Promise<boolean> {
    if (this.#closed) return Promise.reject(new Error('outbox closed'))
    const size = topic.length + payload.length
    if (size > this.limits.maxBytes) {
      this.onDrop?.(1, size)
      return Promise.resolve(false)
    }
    if (this.limits.onFull === 'drop-oldest') this.#makeRoom(size)
    const seq = this.#tail
    const ts = this.#clock.now()
    this.#sizes.push(size)
    this.#times.push(ts)
    this.#count++
    this.#bytes += size
    const value: Stored = [ts, topic, payload, (qos ? 1 : 0) | (retain ? 2 : 0)]
    if (this.#hotBytes + size <= HOT_MAX_BYTES) {
      // a copy: the payload may be a slice of a whole socket chunk, which must not be held
      this.#hot.push({ seq, ts, topic, payload: Buffer.from(payload), qos, retain })
      this.#hotBytes += size
    } else this.#hot.push(undefined)
    return this.#db.put(seq, value).then(() => {
      if (seq + 1 > this.#committed) this.#committed = seq + 1
      this.onCommitted?.()
      return true
    }, (err: unknown) => {
      // not stored (map full, closed env): the index must not wait for it forever
      const i = seq - this.#base
      if (i >= 0 && this.#sizes[i] !== GONE) {
        this.#count--
        this.#bytes -= this.#sizes[i]!
        this.#sizes[i] = GONE
        this.#cool(i)
        this.#skipGone()
      }
      throw err
    })
  }

  #makeRoom(size: number): void {
    let count = 0
    let bytes = 0
    while (this.#count > 0 && (this.#count + 1 > this.limits.maxMessages || this.#bytes + size > this.limits.maxBytes)) {
      this.#skipGone()
      const seq = this.#base + this.#head
      bytes += this.#sizes[this.#head]!
      this.#remove(seq)
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
    // held in memory: no LMDB read
    for (; seq < this.#committed && out.length < n; seq++) {
      const i = seq - this.#base
      if (this.#sizes[i] === GONE) continue
      const m = this.#hot[i]
      if (m === undefined) break
      this.#cool(i)
      this.#handOut(seq)
      out.push(m)
    }
    if (seq < this.#committed && out.length < n) {
      let next = this.#committed
      for (const { key, value } of this.#db.getRange({ start: seq, end: this.#committed })) {
        const i = key - this.#base
        if (i < 0 || this.#sizes[i] === GONE) continue
        if (out.length === n) {
          next = key
          break
        }
        this.#cool(i)
        this.#handOut(key)
        const flags = value[3]
        out.push({ seq: key, ts: value[0], topic: value[1], payload: value[2], qos: (flags & 1) as 0 | 1, retain: (flags & 2) !== 0 })
      }
      seq = next
    }
    this.#cursor = seq
    return out
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
    this.#remove(seq)
  }

  /** The link dropped: every handed-out, unacknowledged message is taken again, in order. */
  rewind(): void {
    this.#skipGone()
    this.#cursor = this.#base + this.#head
  }

  #remove(seq: number): void {
    const i = seq - this.#base
    this.#count--
    this.#bytes -= this.#sizes[i]!
    this.#sizes[i] = GONE
    this.#cool(i)
    // not awaited: lmdb-js batches removals; the index already says gone (a failed removal
    // only means the message comes back after a restart: a QoS 1 duplicate, never a loss)
    this.#db.remove(seq).catch(() => {})
    this.#skipGone()
  }

  #skipGone(): void {
    while (this.#head < this.#sizes.length && this.#sizes[this.#head] === GONE) this.#head++
    if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#sizes.length) {
      this.#sizes.splice(0, this.#head)
      this.#times.splice(0, this.#head)
      this.#hot.splice(0, this.#head)
      this.#base += this.#head
      this.#head = 0
    }
  }

  /** Waits for every queued write and removal, then releases the data env. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#db.committed
    await this.#env.release()
  }
}
