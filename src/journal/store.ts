import type { Database } from 'lmdb'
import type { DataEnv } from '../storage/env.js'
import { storedHash } from './codec.js'

/**
 * The journal's named databases in the shared data-dir environment:
 * - `journal`: seq (integer key) → record bytes (see codec.ts), gapless
 * - `journal-meta`: small state — `shipped` (highest seq the cloud acknowledged),
 *   `anchor` ({seq, hash} of the last pruned record, so the first kept record still
 *   verifies), `size` ({bytes, seq}: record bytes held as of seq)
 * - `journal-checkpoints`: seq → signed checkpoint JWS
 */
export interface JournalDbs {
  readonly records: Database<Buffer, number>
  /**
   * The same records, each value read as a view of LMDB's shared read buffer (its length is the
   * value's, its ArrayBuffer larger) instead of a Buffer of its own: valid only until the next
   * read on this thread, and every value read is that same object. For scans that copy each
   * record once, straight where it goes (the shipper); anything else reads `records`.
   */
  readonly recordViews: Database<Uint8Array, number>
  readonly meta: Database<unknown, string>
  readonly checkpoints: Database<string, number>
}

export interface Anchor { readonly seq: number; readonly hash: string }

/**
 * A decoder that keeps what it is given: lmdb-js then hands it the shared buffer, unsliced (it
 * counts on decoders to copy). `binary`: a value larger than that buffer (16 MiB) comes as a copy
 * of its own instead of growing the shared buffer for good (found by review).
 */
const RECORD_VIEWS = { name: 'journal', encoding: 'binary' as const, encoder: { encode: (v: Uint8Array): Uint8Array => v, decode: (bytes: Uint8Array): Uint8Array => bytes } }

export function openJournalDbs(env: DataEnv): JournalDbs {
  return {
    records: env.root.openDB<Buffer, number>({ name: 'journal', encoding: 'binary' }),
    recordViews: env.root.openDB<Uint8Array, number>(RECORD_VIEWS),
    meta: env.root.openDB<unknown, string>({ name: 'journal-meta', encoding: 'msgpack' }),
    checkpoints: env.root.openDB<string, number>({ name: 'journal-checkpoints', encoding: 'string' }),
  }
}

export function firstSeq(dbs: JournalDbs): number | undefined {
  for (const k of dbs.records.getKeys({ limit: 1 })) return k
  return undefined
}

export function lastSeq(dbs: JournalDbs): number | undefined {
  for (const k of dbs.records.getKeys({ reverse: true, limit: 1 })) return k
  return undefined
}

export function readAnchor(dbs: JournalDbs): Anchor | undefined {
  return dbs.meta.get('anchor') as Anchor | undefined
}

export function readShipped(dbs: JournalDbs): number {
  return (dbs.meta.get('shipped') as number | undefined) ?? 0
}

/** The last record's seq and hash (or the anchor's when everything was pruned). */
export function chainHead(dbs: JournalDbs): Anchor | undefined {
  const last = lastSeq(dbs)
  if (last !== undefined) {
    const bytes = dbs.records.getBinary(last)
    if (bytes) return { seq: last, hash: storedHash(bytes) }
  }
  return readAnchor(dbs)
}
