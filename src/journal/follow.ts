import type { JWK } from 'jose'
import { openRecord } from './codec.js'
import type { AuditBatch } from './batch.js'
import { verifyCheckpoint } from './signing.js'
import type { JournalRecord } from './types.js'

export interface FollowResult {
  /** records seen for the first time, in seq order */
  readonly accepted: JournalRecord[]
  /** records already seen (at-least-once delivery) */
  readonly duplicates: number
  /** seqs missing before this batch (explained only by a buffer_dropped record) */
  readonly gap?: { readonly from: number; readonly to: number }
  /** an edit, a broken link or a bad checkpoint: nothing of the batch is accepted */
  readonly problem?: string
}

/**
 * The receiving side of shipped batches (for `collect` and tests): checks the checkpoint
 * signature against the gateway's public key, every record's hash over its bytes, the
 * chain link to the previous record across batches, and deduplicates by seq.
 */
export class ChainFollower {
  #next?: number
  #lastHash?: string
  constructor(private readonly publicJwk: JWK, private readonly gw?: string) {}

  get nextSeq(): number | undefined { return this.#next }

  async accept(b: AuditBatch): Promise<FollowResult> {
    const bad = (problem: string): FollowResult => ({ accepted: [], duplicates: 0, problem })
    let cp
    try {
      cp = await verifyCheckpoint(b.checkpoint, this.publicJwk)
    } catch (err) {
      return bad(`checkpoint does not verify: ${(err as Error).message}`)
    }
    if (this.gw !== undefined && (cp.gw !== this.gw || b.gw !== this.gw)) return bad(`batch names gateway ${b.gw}, checkpoint ${cp.gw}`)
    if (cp.seq !== b.last) return bad(`checkpoint signs seq ${cp.seq}, batch ends at ${b.last}`)
    const opened = []
    for (const bytes of b.records) {
      let o
      try {
        o = openRecord(bytes)
      } catch (err) {
        return bad(`record does not decode: ${(err as Error).message}`)
      }
      if (o.computed !== o.record.hash) return bad(`record ${o.record.seq}: hash does not match its contents (edited)`)
      opened.push(o.record)
    }
    const last = opened[opened.length - 1]
    if (!last || last.seq !== b.last || last.hash !== cp.hash) return bad('the last record is not the one the checkpoint signs')
    for (let i = 1; i < opened.length; i++) {
      if (opened[i]!.seq !== opened[i - 1]!.seq + 1) return bad(`records ${opened[i - 1]!.seq + 1}..${opened[i]!.seq - 1} missing inside the batch`)
      if (opened[i]!.prev !== opened[i - 1]!.hash) return bad(`record ${opened[i]!.seq}: prev does not link to ${opened[i - 1]!.seq}`)
    }
    const fresh = this.#next === undefined ? opened : opened.filter((r) => r.seq >= this.#next!)
    const duplicates = opened.length - fresh.length
    let gap: FollowResult['gap']
    const first = fresh[0]
    if (first && this.#next !== undefined) {
      if (first.seq > this.#next) gap = { from: this.#next, to: first.seq - 1 }
      else if (first.prev !== this.#lastHash) return bad(`record ${first.seq}: prev does not link to the previous batch (reordered or edited)`)
    }
    if (fresh.length) {
      this.#next = fresh[fresh.length - 1]!.seq + 1
      this.#lastHash = fresh[fresh.length - 1]!.hash
    }
    return { accepted: fresh, duplicates, ...(gap ? { gap } : {}) }
  }
}
