import { compactVerify } from 'jose'
import { GENESIS, openRecord } from '../journal/codec.js'
import type { AuditBatch } from '../journal/batch.js'
import type { JournalRecord } from '../journal/types.js'
import type { KeyRing } from './keys.js'

/** One record of a verified batch: decoded, with its stored bytes. */
export interface VerifiedRecord {
  readonly record: JournalRecord
  readonly bytes: Buffer
}

export interface VerifiedBatch {
  readonly gw: string
  readonly fleet: string
  readonly first: number
  readonly last: number
  readonly records: readonly VerifiedRecord[]
}

/** Why a batch was refused; `seq` names the record at fault when there is one. */
export interface BatchProblem {
  readonly problem: string
  readonly seq?: number
}

/** `fleet/<fleet>/<gw>/audit` → gw (the topic's own claim, checked against the batch). */
export function topicGateway(topic: string): string | undefined {
  const p = topic.split('/')
  return p.length === 4 && p[0] === 'fleet' && p[3] === 'audit' ? p[2] : undefined
}

/**
 * Everything one batch proves on its own: the checkpoint verifies with the gateway's key and
 * names the batch's last record, the topic, batch and checkpoint name the same gateway, every
 * record's hash matches its bytes (an edited record fails here), and records are gapless and
 * linked inside the batch. Links to records outside the batch are the store's job.
 */
export async function verifyBatch(topic: string, b: AuditBatch, keys: KeyRing): Promise<VerifiedBatch | BatchProblem> {
  const tgw = topicGateway(topic)
  if (tgw !== undefined && tgw !== b.gw) return { problem: `topic names gateway ${tgw}, batch ${b.gw}` }
  let key
  try {
    key = await keys.get(b.gw)
  } catch (err) {
    // a broken key file must not turn into a batch that is never acknowledged and comes back forever
    return { problem: `public key for gateway ${b.gw} is unusable: ${(err as Error).message}` }
  }
  if (!key) return { problem: `no public key for gateway ${b.gw}` }
  let cp: { gw?: unknown; seq?: unknown; hash?: unknown }
  try {
    const { payload } = await compactVerify(b.checkpoint, key.key, { algorithms: [key.alg] })
    cp = JSON.parse(Buffer.from(payload).toString('utf8')) as typeof cp
  } catch (err) {
    return { problem: `checkpoint does not verify: ${(err as Error).message}` }
  }
  if (cp.gw !== b.gw) return { problem: `checkpoint signs gateway ${String(cp.gw)}, batch names ${b.gw}` }
  if (cp.seq !== b.last) return { problem: `checkpoint signs seq ${String(cp.seq)}, batch ends at ${b.last}` }
  if (b.records.length === 0 || b.records.length !== b.last - b.first + 1) return { problem: `batch ${b.first}..${b.last} holds ${b.records.length} records` }
  const out: VerifiedRecord[] = new Array(b.records.length)
  let prevHash: string | undefined
  for (let i = 0; i < b.records.length; i++) {
    const raw = b.records[i]!
    const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)
    const seq = b.first + i
    let o
    try {
      o = openRecord(bytes)
    } catch (err) {
      return { problem: `record does not decode: ${(err as Error).message}`, seq }
    }
    const r = o.record
    if (r.seq !== seq) return { problem: `record at position ${i} has seq ${String(r.seq)}, expected ${seq}`, seq }
    if (o.computed !== r.hash) return { problem: `record ${seq}: hash does not match its contents (edited)`, seq }
    if (r.gw !== b.gw) return { problem: `record ${seq} names gateway ${String(r.gw)}`, seq }
    // 0 … year 9999: a date PostgreSQL and Date both represent (partitions are named by day)
    if (typeof r.ts !== 'number' || !(r.ts >= 0 && r.ts < 253_402_300_800_000)) return { problem: `record ${seq}: ts is not a time`, seq }
    if (prevHash !== undefined && r.prev !== prevHash) return { problem: `record ${seq}: prev does not link to ${seq - 1}`, seq }
    if (seq === 1 && r.prev !== GENESIS) return { problem: 'record 1 does not start the chain', seq }
    prevHash = r.hash
    out[i] = { record: r, bytes }
  }
  if (prevHash !== cp.hash) return { problem: 'the last record is not the one the checkpoint signs', seq: b.last }
  return { gw: b.gw, fleet: typeof b.fleet === 'string' ? b.fleet : '', first: b.first, last: b.last, records: out }
}

export function isProblem(v: VerifiedBatch | BatchProblem): v is BatchProblem {
  return (v as BatchProblem).problem !== undefined
}

