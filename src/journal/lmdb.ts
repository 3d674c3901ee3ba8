import { openDataEnv, type DataEnv } from '../storage/env.js'
import { systemClock, type Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import { GENESIS, decodeRecord, reserved, storedHash } from './codec.js'
import { BIN_PAYLOAD, JournalWriter } from './writer.js'
import { chainHead, firstSeq, openJournalDbs, readShipped, type Anchor, type JournalDbs } from './store.js'
import type { Sealer } from './seal.js'
import type { Journal, JournalEntry } from './types.js'

export interface LmdbJournalOptions {
  readonly dataDir: string
  /** gateway id, written into every record */
  readonly gw: string
  readonly maxBytes: number
  readonly retainShippedDays: number
  readonly onFull: 'block' | 'drop-oldest'
  readonly recordPayloads: 'none' | 'masked' | 'sealed'
  /** longest a record waits for its group commit (0: next event-loop turn) */
  readonly commitDelayMs: number
  /** required with recordPayloads: sealed */
  readonly sealer?: Sealer
  readonly clock?: Clock
  readonly logger?: Logger
}

/** Records kept in a group: numbered at append time, sealed and written together in one transaction by the writer thread. */
interface Group {
  /** seq of the group's first record (a group's records are consecutive) */
  first: number
  /** each record's timestamp: one per record, so also the group's record count */
  readonly ts: number[]
  /** the records' fields, flat (see WriterGroup.vals): an array of plain values clones for a third of what as many objects do */
  readonly vals: unknown[]
  /** each shape's field names in order, BIN_PAYLOAD for a payload held in `payloads` */
  readonly shapes: string[][]
  /** payload bytes back to back; the group's own ArrayBuffer */
  payloads?: Buffer
  payloadBytes: number
  readonly removes: number[]
  /** stored bytes of the removed records */
  removedBytes: number
  /** estimated stored bytes of the records (the writer reports the exact figure) */
  est: number
  readonly done: Promise<void>
  resolve(): void
  reject(err: Error): void
}

const TYPE = 'type'
/** #write's note of an entry's kept fields, reused (one append at a time: nothing in between awaits) */
const KEPT: string[] = []
/** their values, in the same order: read once, by the for-in's fast path (a keyed load by name per field, later, is a megamorphic lookup) */
const KEPT_VALUES: unknown[] = []
/** clears the first n values (a plain loop: Array.prototype.fill costs more on a dozen slots) */
function forget(n: number): void {
  for (let i = 0; i < n; i++) KEPT_VALUES[i] = undefined
}
const DROPPED_KEYS = ['count', 'reason', 'firstKept'] as const
/** seq, ts, gw's key, type's key, prev and hash entries, the map header: what every record carries */
const RECORD_OVERHEAD = 180

/** A record field's encoded size, roughly (ASCII exact, a little over): the disk bound counts it until the writer reports the exact size. */
function estimate(v: unknown, depth = 0): number {
  switch (typeof v) {
    case 'string': return v.length + 5
    case 'number': return 9
    case 'boolean': return 1
    case 'object': {
      if (v === null) return 1
      if (v instanceof Uint8Array) return v.byteLength + 5
      if (depth > 4) return 64
      let n = 5
      if (Array.isArray(v)) for (const x of v) n += estimate(x, depth + 1)
      else for (const k in v) n += k.length + 2 + estimate((v as Record<string, unknown>)[k], depth + 1)
      return n
    }
    default: return 9
  }
}
/**
 * Groups handed to the writer and not yet committed. While they are, new records keep joining
 * the next group, so group size grows with commit + fsync latency instead of paying one fsync
 * per timer tick; groups that reach the writer during a commit go into its next transaction
 * together.
 * Four rather than two: with the writer on its own thread the hand-over adds latency that a
 * deeper pipeline hides (QoS 1 fan-in, journal on/off: 74 % vs 73 % with two, noisy).
 */
const MAX_GROUPS_IN_FLIGHT = 4
/** records in one commit group at most */
const GROUP_RECORDS = 2048
const noop = (): void => {}

/**
 * The LMDB journal (SPEC §7): gapless integer keys, msgpack records, a sha256 hash chain in
 * append order, and group commit: every record appended within `commitDelayMs` goes into
 * one LMDB write transaction, and each `append()` resolves once that transaction is
 * committed and flushed to disk — so a PUBACK sent after it survives kill -9 and power loss.
 * This thread numbers the records and decides the disk bound; the writer thread
 * (writer.ts) encodes, chains and writes them, group by group, in order.
 *
 * Bounded disk: record bytes are counted; over `maxBytes`, shipped records go first, then
 * `onFull` decides (block: `writable` turns false; drop-oldest: the oldest unshipped
 * records go and a `buffer_dropped` record says how many).
 */
export class LmdbJournal implements Journal {
  readonly #o: LmdbJournalOptions
  readonly #env: DataEnv
  readonly #dbs: JournalDbs
  readonly #clock: Clock
  readonly #lowWater: number
  readonly #hardLimit: number
  #lastSeq: number
  #lastHash: string
  #firstSeq: number
  #committedSeq: number
  /** record bytes held as of the writer's last commit (exact) */
  #exact: number
  /** what uncommitted groups add (estimated) and remove */
  #pendingDelta = 0
  #writer?: JournalWriter
  #groupsCommitted = 0
  #shipped: number
  #anchor?: Anchor
  #anchorDirty = false
  #writable = true
  /** records refused while blocked and over the hard limit, reported once space returns */
  #lost = 0
  #group?: Group
  #inFlight = 0
  /** flush() waiting for the next group to settle */
  readonly #settleWaiters: (() => void)[] = []
  #deferred = false
  #sealTail: Promise<void> = Promise.resolve()
  #sealing = 0
  #retention?: NodeJS.Timeout
  #closed = false

  constructor(o: LmdbJournalOptions) {
    if (o.recordPayloads === 'sealed' && !o.sealer) throw new Error('recordPayloads: sealed needs a sealer')
    this.#o = o
    this.#clock = o.clock ?? systemClock
    this.#env = openDataEnv(o.dataDir)
    this.#dbs = openJournalDbs(this.#env)
    this.#lowWater = Math.floor(o.maxBytes * 0.9)
    // room kept past maxBytes so refusals and connects are still journaled while blocked
    this.#hardLimit = o.maxBytes + Math.max(64 * 1024, Math.floor(o.maxBytes * 0.02))
    const head = chainHead(this.#dbs)
    this.#lastSeq = head?.seq ?? 0
    this.#lastHash = head?.hash ?? GENESIS
    this.#committedSeq = this.#lastSeq
    this.#firstSeq = firstSeq(this.#dbs) ?? this.#lastSeq + 1
    this.#anchor = this.#dbs.meta.get('anchor') as Anchor | undefined
    this.#shipped = readShipped(this.#dbs)
    this.#exact = this.#countBytes()
    this.pruneExpired()
    if (this.bytes >= o.maxBytes && o.onFull === 'block') this.#makeRoom(0)
    this.#retention = setInterval(() => this.pruneExpired(), 60_000)
    this.#retention.unref()
  }

  get writable(): boolean { return this.#writable }
  get lastSeq(): number { return this.#lastSeq }
  /** the hash of the last committed record */
  get lastHash(): string { return this.#lastHash }
  get firstSeq(): number { return this.#firstSeq }
  /** highest seq durably committed (what readers and the shipper can see) */
  get committedSeq(): number { return this.#committedSeq }
  get shippedSeq(): number { return this.#shipped }
  /** commit groups written so far (one LMDB transaction each, or fewer: the writer folds groups that queued during a commit) */
  get groupsCommitted(): number { return this.#groupsCommitted }
  /** record bytes held, as far as this thread knows: exact as of the last commit, estimated since */
  get bytes(): number { return this.#exact + this.#pendingDelta }
  get dbs(): JournalDbs { return this.#dbs }
  get gw(): string { return this.#o.gw }

  append(entry: JournalEntry): Promise<number> {
    if (this.#sealing > 0 || this.#needsSeal(entry)) return this.#queued(entry).then((w) => w.p)
    return this.#committed(this.#write(entry))
  }

  commit(entry: JournalEntry): Promise<unknown> {
    if (this.#sealing > 0 || this.#needsSeal(entry)) return this.#queued(entry).then((w) => w.p)
    const seq = this.#write(entry)
    // the group's own promise: the record is in the open group (#enqueue starts a new one first when full)
    return seq < 0 ? this.#committed(seq) : this.#group!.done
  }

  record(entry: JournalEntry): void {
    if (this.#sealing > 0 || this.#needsSeal(entry)) this.#queued(entry).then((w) => w.p).catch(noop)
    // no promise per record: nothing waits for it
    else this.#write(entry)
  }

  #committed(seq: number): Promise<number> {
    if (seq < 0) return Promise.reject(new Error(this.#closed ? 'journal closed' : 'journal full'))
    return this.#group!.done.then(() => seq)
  }

  async flush(): Promise<void> {
    await this.#sealTail
    while (this.#group || this.#inFlight > 0) {
      if (this.#group && this.#inFlight < MAX_GROUPS_IN_FLIGHT) this.#flushGroup()
      // the next group to settle, whichever it is (answers may come out of order, a failure
      // before an earlier group's flush): never a promise that settled already, which would spin
      await new Promise<void>((resolve) => this.#settleWaiters.push(resolve))
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#retention)
    await this.flush()
    await this.#writer?.close()
    await this.#env.release()
  }

  /** Records the cloud's acknowledgement of everything up to seq (the shipper calls it). */
  async markShipped(seq: number): Promise<void> {
    if (seq <= this.#shipped) return
    this.#shipped = seq
    await this.#dbs.meta.put('shipped', seq)
    if (!this.#writable) this.#makeRoom(0)
  }

  /** Deletes shipped records older than `retainShippedDays`; returns how many. */
  pruneExpired(): number {
    const cutoff = this.#clock.now() - this.#o.retainShippedDays * 86_400_000
    const limit = Math.min(this.#shipped, this.#committedSeq)
    let n = 0
    while (this.#firstSeq <= limit) {
      const b = this.#dbs.records.getBinary(this.#firstSeq)
      if (b && decodeRecord(b).ts >= cutoff) break
      this.#remove(this.#firstSeq, b)
      n++
    }
    return n
  }

  #needsSeal(entry: JournalEntry): boolean {
    return this.#o.recordPayloads === 'sealed' && entry.payload !== undefined
  }

  /** Sealing is async (JWE); records queue behind it so seq order stays append order. */
  #queued(entry: JournalEntry): Promise<{ p: Promise<number> }> {
    this.#sealing++
    const sealed = this.#needsSeal(entry) ? this.#o.sealer!(entry.payload!) : undefined
    const run = this.#sealTail.then(async () => {
      let e = entry
      try {
        if (sealed) e = { ...entry, payload: undefined, sealed: await sealed }
      } catch (err) {
        this.#o.logger?.error({ event: 'journal_seal_failed', err: (err as Error).message }, 'sealing a payload failed: recorded without it')
        e = { ...entry, payload: undefined, reason: entry.reason ?? 'seal_failed' }
      } finally {
        this.#sealing--
      }
      // wrapped (not a thenable) so the queue waits for the write, not for the commit
      const p = this.#committed(this.#write(e))
      p.catch(noop)
      return { p }
    })
    this.#sealTail = run.then(noop, noop)
    return run
  }

  /** Chains and queues one record; returns its seq, or -1 when refused (closed, or full past the hard limit). */
  #write(entry: JournalEntry): number {
    if (this.#closed) return -1
    const seq = this.#lastSeq + 1
    const ts = this.#clock.now()
    let est = RECORD_OVERHEAD + this.#o.gw.length + entry.type.length
    // the fields kept, noted once for #enqueue (a scratch array: #makeRoom's own records use theirs)
    let n = 0
    for (const k in entry) {
      const v = entry[k]
      if (v === undefined || k === 'type' || reserved(k) || (k === 'payload' && this.#o.recordPayloads === 'none')) continue
      KEPT[n] = k
      KEPT_VALUES[n++] = v
      est += k.length + 2 + estimate(v)
    }
    const room = this.#makeRoom(est)
    if (room === 'refuse') {
      forget(n)
      this.#lost++
      return -1
    }
    // a buffer_dropped record went in first: this one comes after it
    if (seq !== this.#lastSeq + 1) return this.#write(entry)
    this.#enqueue(seq, ts, entry.type, est, KEPT, KEPT_VALUES, n)
    // not kept past the append: a payload here would stay reachable (with the socket chunk it
    // is a slice of) until a record with as many fields came along (found by review)
    forget(n)
    return seq
  }

  /** The journal moves on to `seq`, and the record joins the open commit group. */
  #enqueue(seq: number, ts: number, type: string, est: number, keys: readonly string[], values: readonly unknown[], nkeys: number): void {
    this.#lastSeq = seq
    this.#pendingDelta += est
    let g = this.#group
    // a full group goes now: the writer encodes it while this thread fills the next (one
    // synchronous burst of appends would otherwise reach the writer as one group, in series)
    if (g && g.ts.length >= GROUP_RECORDS) {
      this.#flushGroup(true)
      g = this.#group
    }
    g ??= this.#startGroup()
    if (g.ts.length === 0) g.first = seq
    g.est += est
    g.ts.push(ts)
    const vals = g.vals
    const at = vals.length
    vals.push(0, type)
    // the shape (field names in order) is most often the previous record's: compared name by
    // name, a new one is made only when it differs
    const last = g.shapes[g.shapes.length - 1]
    let names: string[] | undefined = last === undefined ? [TYPE] : undefined
    let n = 1
    for (let i = 0; i < nkeys; i++) {
      const k = keys[i]!
      const v = values[i]
      let name = k
      if (k === 'payload' && v instanceof Uint8Array) {
        // copied out: the payload may be a slice of a whole socket chunk, which must not travel
        name = BIN_PAYLOAD
        const need = g.payloadBytes + v.byteLength
        if (!g.payloads || need > g.payloads.length) {
          const grown = Buffer.allocUnsafeSlow(Math.max(16 * 1024, need * 2))
          g.payloads?.copy(grown, 0, 0, g.payloadBytes)
          g.payloads = grown
        }
        g.payloads.set(v, g.payloadBytes)
        vals.push(g.payloadBytes, v.byteLength)
        g.payloadBytes = need
      } else {
        vals.push(v)
      }
      if (names !== undefined) names.push(name)
      else if (last![n] !== name) (names = last!.slice(0, n)).push(name)
      n++
    }
    if (names === undefined && n !== last!.length) names = last!.slice(0, n)
    if (names !== undefined) g.shapes.push(names)
    vals[at] = g.shapes.length - 1
  }

  /** Starts the writer thread now rather than at the first commit (the gateway does, at start: a one-time isolate, not the first clients' wait). */
  warm(): JournalWriter {
    return (this.#writer ??= new JournalWriter({ path: this.#env.path, gw: this.#o.gw, prevHash: this.#lastHash, bytes: this.#exact }))
  }

  #startGroup(): Group {
    let resolve!: () => void
    let reject!: (err: Error) => void
    const done = new Promise<void>((res, rej) => { resolve = res; reject = rej })
    done.catch(noop)
    const g: Group = { first: 0, ts: [], vals: [], shapes: [], payloadBytes: 0, removes: [], removedBytes: 0, est: 0, done, resolve, reject }
    this.#group = g
    if (this.#o.commitDelayMs > 0) setTimeout(() => this.#flushGroup(), this.#o.commitDelayMs)
    else setImmediate(() => this.#flushGroup())
    return g
  }

  /** Hands the open group to the writer thread (one transaction, with whatever else queued there). */
  #flushGroup(full = false): void {
    const g = this.#group
    if (!g) return
    // the bound on groups in flight keeps partial groups growing while the writer is busy; a full
    // one goes anyway (its records are held in memory either way: here, or queued to the writer)
    if (!full && this.#inFlight >= MAX_GROUPS_IN_FLIGHT) {
      this.#deferred = true
      return
    }
    this.#group = undefined
    this.#inFlight++
    const upTo = g.ts.length ? g.first + g.ts.length - 1 : this.#committedSeq
    const anchor = this.#anchorDirty ? this.#anchor : undefined
    this.#anchorDirty = false
    const writer = this.warm()
    const payloads = g.payloads?.subarray(0, g.payloadBytes)
    const committed = writer.write({ first: g.first, ts: g.ts, vals: g.vals, shapes: g.shapes, payloads, removes: g.removes, removedBytes: g.removedBytes, firstKept: this.#firstSeq, committed: this.#committedSeq, anchor })
    void committed.then((r) => {
      if (upTo > this.#committedSeq) this.#committedSeq = upTo
      this.#lastHash = r.hash
      this.#groupsCommitted++
      // the exact size replaces this group's estimate
      this.#pendingDelta -= g.est - g.removedBytes
      this.#exact = r.bytes
      // written by the other thread: this thread's next read starts a fresh snapshot
      this.#env.root.resetReadTxn()
      g.resolve()
    }, (err: Error) => {
      this.#o.logger?.error({ event: 'journal_commit_failed', err: err.message }, 'journal commit failed')
      this.#undo(g)
      g.reject(err)
    }).finally(() => {
      for (const w of this.#settleWaiters.splice(0)) w()
      this.#inFlight--
      if (this.#deferred) {
        this.#deferred = false
        this.#flushGroup()
      }
    })
  }

  /**
   * A group whose transaction failed stored nothing (writer.ts): its records' estimate leaves
   * the byte count, and its removals did not happen, so the first record kept goes back to the
   * first of them: pruning or the disk bound removes them again when it next runs (not at once:
   * a disk that fails every commit must not turn this into a loop). Its seqs stay used: the
   * journal has a gap there, which verify reports.
   */
  #undo(g: Group): void {
    this.#pendingDelta -= g.est - g.removedBytes
    let first = this.#firstSeq
    for (const seq of g.removes) if (seq < first) first = seq
    this.#firstSeq = first
  }

  /** Record bytes held: the persisted count plus any records written after it (crash). */
  #countBytes(): number {
    const size = this.#dbs.meta.get('size') as { bytes: number; seq: number } | undefined
    let bytes = size?.bytes ?? 0
    for (const { value } of this.#dbs.records.getRange({ start: (size?.seq ?? 0) + 1 })) bytes += value.length
    return bytes
  }

  #remove(seq: number, b: Buffer | undefined): void {
    const g = this.#group ?? this.#startGroup()
    if (b) {
      this.#pendingDelta -= b.length
      g.removedBytes += b.length
      // the newest record removed anchors the chain: removals a failed group left undone
      // (#undo) and done again later must not move it back behind a later group's
      if (!this.#anchor || seq > this.#anchor.seq) this.#anchor = { seq, hash: storedHash(b) }
      this.#anchorDirty = true
    }
    g.removes.push(seq)
    this.#firstSeq = seq + 1
  }

  /** Deletes committed records from the oldest while over target, up to `limit`; returns the count. */
  #deleteOldest(target: number, limit: number): number {
    let n = 0
    const end = Math.min(limit, this.#committedSeq)
    while (this.bytes > target && this.#firstSeq <= end) {
      this.#remove(this.#firstSeq, this.#dbs.records.getBinary(this.#firstSeq))
      n++
    }
    return n
  }

  #makeRoom(size: number): 'ok' | 'refuse' {
    if (this.#writable && this.bytes + size <= this.#o.maxBytes) return 'ok'
    // shipped records go first
    if (this.bytes + size > this.#lowWater) this.#deleteOldest(this.#lowWater - size, this.#shipped)
    if (this.bytes + size <= this.#o.maxBytes) {
      if (!this.#writable && this.bytes <= this.#lowWater) this.#unblock()
      if (this.#writable) return 'ok'
    }
    if (this.#o.onFull === 'drop-oldest') {
      const n = this.#deleteOldest(this.#lowWater - size, Infinity)
      if (n === 0) return 'ok' // nothing committed yet to drop: let this one through
      this.#writeDropped(n + this.#lost, 'journal_full')
      this.#lost = 0
      return 'ok'
    }
    if (this.#writable) {
      this.#writable = false
      this.#o.logger?.error({ event: 'journal_full', bytes: this.bytes, maxBytes: this.#o.maxBytes }, 'journal full of unshipped records: refusing publishes (journal.onFull: block)')
    }
    return this.bytes + size <= this.#hardLimit ? 'ok' : 'refuse'
  }

  #unblock(): void {
    this.#writable = true
    this.#o.logger?.warn({ event: 'journal_writable', bytes: this.bytes }, 'journal has room again: accepting publishes')
    if (this.#lost > 0) {
      const n = this.#lost
      this.#lost = 0
      this.#writeDropped(n, 'journal_full')
    }
  }

  #writeDropped(count: number, reason: string): void {
    const seq = this.#lastSeq + 1
    this.#enqueue(seq, this.#clock.now(), 'buffer_dropped', RECORD_OVERHEAD + this.#o.gw.length + 80 + reason.length, DROPPED_KEYS, [count, reason, this.#firstSeq], DROPPED_KEYS.length)
    this.#o.logger?.warn({ event: 'buffer_dropped', count, firstKept: this.#firstSeq }, 'journal full: dropped the oldest unshipped records')
  }
}
