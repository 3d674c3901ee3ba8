import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { DATA_ENV_OPTIONS } from '../storage/env.js'
import { FlatSealer } from './codec.js'

/**
 * The journal's writer thread: it encodes each record, computes the hash chain and puts the
 * records into LMDB in one synchronous transaction per commit group (the groups that queued
 * while it committed go together, with one sync), and answers once the file is synced and
 * LMDB's flushed meta page written (COMMIT_FLUSHED). A synchronous transaction here rather
 * than lmdb-js' async puts: no write-instruction queue, no second thread (libuv's) per commit
 * and no promise per record — a record cost 8-9 µs of CPU over all threads instead of 12-16
 * (bench/journal-cpu.ts). The event loop (lmdb.ts) keeps everything that decides: seqs, the
 * disk bound, what to prune; it hands over each group's fields as they are. So a PUBACK still
 * waits for the disk, while encoding, hashing and lmdb-js' per-put work — most of a record's
 * cost — leave the thread that serves the clients.
 *
 * An eval'd script, like the verify pool's, so it runs the same under tsx, the tests and
 * dist/: msgpackr and lmdb are required by resolved path (an eval'd worker resolves from the
 * cwd), and records are sealed by codec.ts' own FlatSealer, embedded by source text.
 */
const WORKER_SOURCE = (lmdbPath: string, msgpackrPath: string): string => `
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads')
const { hash } = require('node:crypto')
const { open } = require(${JSON.stringify(lmdbPath)})
const { Packr } = require(${JSON.stringify(msgpackrPath)})
const __name = (f) => f
const FlatSealer = ${FlatSealer.toString()}
const packr = new Packr({ useRecords: false, mapsAsObjects: true })
const BIN_PAYLOAD = ${JSON.stringify(BIN_PAYLOAD)}
const sealer = new FlatSealer((v) => packr.pack(v), (d) => hash('sha256', d, 'hex'), BIN_PAYLOAD)
const root = open(workerData.env)
const records = root.openDB({ name: 'journal', encoding: 'binary' })
const meta = root.openDB({ name: 'journal-meta', encoding: 'msgpack' })
const checkpoints = root.openDB({ name: 'journal-checkpoints', encoding: 'string' })
const gw = workerData.gw
let prev = workerData.prev
let bytes = workerData.bytes
const sealed = []
// seqs only grow: LMDB appends each record without searching for its place
const APPEND = { append: true }
// lmdb-js' flags for a transaction that commits unsynced and then, before transactionSync
// returns, syncs the file and writes LMDB's "flushed" meta page (the one a restart after power
// loss goes back to under overlappingSync): putSync's (0x10002) with the abortable bit, which a
// fresh transaction gets anyway. A default (synced) commit writes only the toggling meta pages,
// which a later unsynced commit from the event loop's stores may overwrite before the flushed
// page is written: power lost then would roll back past it (found by review).
const COMMIT_FLUSHED = 0x10003
const queued = []
let closing = false
/** the highest seq this thread has written: a remove-only group's size record must not claim less */
let written = 0
/** set by a commit that failed after its puts: the file may hold it unsynced, so nothing more is written */
let stopped
const take = (m) => { if (m.close) closing = true; else queued.push(m) }
parentPort.on('message', (m) => {
  take(m)
  // groups that arrived during the last commit go in one transaction, with one sync
  for (let next; !closing && (next = receiveMessageOnPort(parentPort)); ) take(next.message)
  if (queued.length) writeGroups(queued.splice(0))
  if (closing) root.close().then(() => parentPort.postMessage({ closed: true }))
})
function writeGroups(groups) {
  if (stopped) {
    for (const m of groups) parentPort.postMessage({ id: m.id, error: stopped })
    return
  }
  let putsDone = false
  try {
    // sealed before the transaction: the write lock (shared with the event loop's stores) is
    // held only for the puts and the commit
    let head = prev
    let after = bytes
    let upTo = 0
    let n = 0
    const replies = []
    for (const m of groups) {
      const payloads = m.payloads && Buffer.from(m.payloads.buffer, m.payloads.byteOffset, m.payloads.byteLength)
      const vals = m.vals
      let p = 0
      for (let i = 0; i < m.ts.length; i++) {
        p = sealer.seal(m.first + i, m.ts[i], gw, m.shapes[vals[p]], vals, p + 1, payloads, head)
        head = sealer.hash
        after += sealer.bytes.length
        sealed[n++] = sealer.bytes
      }
      after -= m.removedBytes
      upTo = Math.max(upTo, written, m.ts.length ? m.first + m.ts.length - 1 : m.committed)
      replies.push({ id: m.id, hash: head, bytes: after })
    }
    root.transactionSync(() => {
      let k = 0
      for (const m of groups) {
        for (const r of m.removes) records.remove(r)
        // checkpoints of pruned records go with them (the anchor keeps the chain checkable)
        if (m.removes.length) for (const c of checkpoints.getKeys({ end: m.firstKept })) checkpoints.remove(c)
        if (m.anchor) meta.put('anchor', m.anchor)
        for (let i = 0; i < m.ts.length; i++) {
          // a refused append (a key at or past this seq is in the journal) must fail the group, not vanish
          if (records.put(m.first + i, sealed[k++], APPEND).result === false) throw new Error('journal record ' + (m.first + i) + ' not stored: the journal holds a later seq')
        }
      }
      meta.put('size', { bytes: after, seq: upTo })
      putsDone = true
    }, COMMIT_FLUSHED)
    prev = head
    bytes = after
    written = upTo
    for (const r of replies) parentPort.postMessage(r)
  } catch (err) {
    // failed in a put: nothing of these groups is stored, and the chain's head and the byte
    // count stay at the last committed record, so the next group chains to what is on disk.
    // Failed in the commit itself (a write or a sync: a failing or full disk): with these flags
    // LMDB may have made the transaction visible before its sync failed, so this thread no
    // longer knows the chain's head: it stops, and every later group fails (fail closed)
    const error = String((err && err.message) || err)
    if (putsDone) stopped = 'journal writer stopped after a failed commit: ' + error
    for (const m of groups) parentPort.postMessage({ id: m.id, error })
  } finally {
    sealed.length = 0
  }
}
`

/** A shape's name for a payload carried in WriterGroup.payloads (two values: offset, length); no field name starts with NUL. */
export const BIN_PAYLOAD = '\u0000payload'

/** One commit group as the writer takes it. */
export interface WriterGroup {
  /** seq of the first record; the records are consecutive */
  readonly first: number
  /** one per record */
  readonly ts: readonly number[]
  /**
   * The records' fields (seq, ts, gw and prev are added by the writer), flat: per record its
   * shape's index in `shapes`, then one value per name of that shape (two for BIN_PAYLOAD).
   */
  readonly vals: readonly unknown[]
  /** field names in record order, type first */
  readonly shapes: readonly (readonly string[])[]
  /** the group's payload bytes back to back; its ArrayBuffer is the group's own (moved to the writer) */
  readonly payloads?: Uint8Array
  readonly removes: readonly number[]
  /** bytes of the removed records */
  readonly removedBytes: number
  /** the first record kept: checkpoints before it go with the removed records */
  readonly firstKept: number
  /** committed seq, for the size record of a group that only removes */
  readonly committed: number
  readonly anchor?: unknown
}

/** What a committed group leaves: the chain's head and the record bytes held. */
export interface WriterResult { readonly hash: string; readonly bytes: number }

interface Pending { resolve(r: WriterResult): void; reject(err: Error): void }

export class JournalWriter {
  readonly #worker: Worker
  readonly #pending = new Map<number, Pending>()
  #next = 0
  #failed?: Error

  constructor(o: { path: string; gw: string; prevHash: string; bytes: number; mapSizeBytes?: number }) {
    const req = createRequire(import.meta.url)
    const source = WORKER_SOURCE(req.resolve('lmdb'), req.resolve('msgpackr'))
    this.#worker = new Worker(source, { eval: true, name: 'edgewarden-journal', workerData: { env: { path: o.path, ...DATA_ENV_OPTIONS(o.mapSizeBytes) }, gw: o.gw, prev: o.prevHash, bytes: o.bytes } })
    this.#worker.on('message', (m: { id: number; hash?: string; bytes?: number; error?: string }) => {
      const p = this.#pending.get(m.id)
      if (!p) return
      if (m.error !== undefined) {
        this.#pending.delete(m.id)
        p.reject(new Error(m.error))
      } else {
        // answers come in order (groups are written in turn, those that queued together in one
        // transaction); should one ever overtake another, a group on disk means every group
        // before it is too (same environment, earlier transactions): they resolve first, in
        // order, with the newest head, so no caller ever sees the chain's head go backwards
        const r = { hash: m.hash!, bytes: m.bytes! }
        for (const [id, q] of this.#pending) {
          if (id > m.id) break
          this.#pending.delete(id)
          q.resolve(r)
        }
      }
      if (this.#pending.size === 0) this.#worker.unref()
    })
    const die = (err: Error): void => {
      this.#failed ??= err
      for (const p of this.#pending.values()) p.reject(err)
      this.#pending.clear()
    }
    this.#worker.on('error', die)
    this.#worker.on('exit', (code) => die(new Error(`journal writer exited (${code})`)))
    this.#worker.unref()
  }

  /** Seals and writes one group; resolves once its transaction is on disk. */
  write(g: WriterGroup): Promise<WriterResult> {
    if (this.#failed) return Promise.reject(this.#failed)
    const id = this.#next++
    return new Promise<WriterResult>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#worker.ref()
      this.#worker.postMessage({ id, ...g }, g.payloads ? [g.payloads.buffer as ArrayBuffer] : [])
    })
  }

  async close(): Promise<void> {
    if (!this.#failed) {
      this.#worker.ref()
      await new Promise<void>((resolve) => {
        // the close's own answer, not a group's that was still on its way
        const closed = (m: { closed?: boolean }): void => { if (m.closed) done() }
        const done = (): void => {
          this.#worker.off('message', closed)
          this.#worker.off('exit', done)
          resolve()
        }
        this.#worker.on('message', closed)
        this.#worker.once('exit', done)
        this.#worker.postMessage({ close: true })
      })
    }
    await this.#worker.terminate()
  }
}
