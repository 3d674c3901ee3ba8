import type { JWK } from 'jose'
import { GENESIS, openRecord, storedHash } from './codec.js'
import { verifyCheckpoint } from './signing.js'
import { readAnchor, type JournalDbs } from './store.js'

export interface VerifyResult {
  readonly ok: boolean
  readonly records: number
  readonly checkpoints: number
  readonly firstSeq?: number
  readonly lastSeq?: number
  /** the first sequence number where the chain or a checkpoint does not hold */
  readonly brokenAt?: number
  readonly problem?: string
}

/**
 * Walks the whole local journal: every key follows the previous one (gapless), every
 * record's `seq` is its key, its `prev` is the previous record's hash (or the prune
 * anchor's), its hash recomputes from its bytes; then every checkpoint's signature
 * verifies against the gateway key and names the hash the journal holds at that seq.
 */
export async function verifyJournal(dbs: JournalDbs, publicJwk?: JWK, gw?: string): Promise<VerifyResult> {
  const anchor = readAnchor(dbs)
  let prevSeq = anchor?.seq ?? 0
  let prevHash = anchor?.hash ?? GENESIS
  let n = 0
  let first: number | undefined
  const fail = (seq: number, problem: string): VerifyResult => ({ ok: false, records: n, checkpoints: 0, firstSeq: first, lastSeq: prevSeq, brokenAt: seq, problem })
  for (const { key, value } of dbs.records.getRange()) {
    first ??= key
    if (key !== prevSeq + 1) return fail(prevSeq + 1, key > prevSeq + 1 ? `records ${prevSeq + 1}..${key - 1} are missing` : `key ${key} out of order`)
    let opened
    try {
      opened = openRecord(value)
    } catch (err) {
      return fail(key, `record does not decode: ${(err as Error).message}`)
    }
    const { record, computed } = opened
    if (record.seq !== key) return fail(key, `record claims seq ${record.seq} (moved or reordered)`)
    if (record.prev !== prevHash) return fail(key, 'prev does not match the previous record\'s hash')
    if (computed !== storedHash(value) || computed !== record.hash) return fail(key, 'hash does not match the record\'s contents (edited)')
    if (gw !== undefined && record.gw !== gw) return fail(key, `record names gateway ${record.gw}, not ${gw}`)
    prevSeq = key
    prevHash = computed
    n++
  }
  let cps = 0
  // read first, verified after: a signature check is awaited, and a cursor must not stay open
  // across an await (another request opening the journal's DBs meanwhile commits the read
  // transaction the cursor is on; found by review)
  const checkpoints = [...dbs.checkpoints.getRange()].map(({ key, value }) => ({ key, value }))
  for (const { key, value } of checkpoints) {
    if (!publicJwk) return { ok: false, records: n, checkpoints: cps, firstSeq: first, lastSeq: prevSeq, brokenAt: key, problem: 'checkpoints present but no gateway public key to verify them' }
    let c
    try {
      c = await verifyCheckpoint(value, publicJwk)
    } catch (err) {
      return { ok: false, records: n, checkpoints: cps, firstSeq: first, lastSeq: prevSeq, brokenAt: key, problem: `checkpoint signature does not verify: ${(err as Error).message}` }
    }
    const broken = (problem: string): VerifyResult => ({ ok: false, records: n, checkpoints: cps, firstSeq: first, lastSeq: prevSeq, brokenAt: key, problem })
    if (c.seq !== key) return broken(`checkpoint stored at ${key} signs seq ${c.seq}`)
    if (gw !== undefined && c.gw !== gw) return broken(`checkpoint names gateway ${c.gw}, not ${gw}`)
    if (key > prevSeq) return broken(`checkpoint at ${key} is past the last record ${prevSeq} (records deleted from the end)`)
    const bytes = dbs.records.getBinary(key)
    if (bytes && storedHash(bytes) !== c.hash) return broken('record hash differs from the signed checkpoint')
    cps++
  }
  return { ok: true, records: n, checkpoints: cps, firstSeq: first, lastSeq: first === undefined ? undefined : prevSeq }
}
