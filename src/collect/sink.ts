import type { JWK } from 'jose'
import type { VerifiedBatch } from './verify.js'

/** What storing one verified batch did. */
export interface StoreResult {
  /** records stored for the first time */
  readonly inserted: number
  /** records already stored (at-least-once delivery) */
  readonly duplicates: number
  /** seqs found missing before this batch (now recorded in gaps) */
  readonly gap?: { readonly from: number; readonly to: number }
  /** recorded gaps this batch filled (in part or whole) */
  readonly filled?: number
  /** the batch contradicts stored history: nothing stored, recorded as tamper */
  readonly problem?: string
  readonly seq?: number
}

export interface TamperReport {
  readonly gw?: string
  readonly topic: string
  readonly first?: number
  readonly last?: number
  readonly seq?: number
  readonly reason: string
  readonly payload?: Buffer
}

/** Where the collector puts verified batches: PostgreSQL (pg-store.ts) or JSONL files (jsonl-store.ts). */
export interface AuditSink {
  store(batch: VerifiedBatch, publicJwk?: JWK): Promise<StoreResult>
  tamper(t: TamperReport): Promise<void>
  /** a second key source (PostgreSQL pins keys per gateway) */
  pinnedKey?(gw: string): Promise<JWK | undefined>
  close(): Promise<void>
}
