import { matchTopic } from '../bridge/topic.js'
import type { JournalRecord, RecordType } from './types.js'

/** `audit query` filters; every given one must hold. */
export interface RecordQuery {
  readonly since?: number
  readonly until?: number
  readonly types?: readonly RecordType[]
  readonly clientId?: string
  readonly sub?: string
  readonly session?: string
  /** an MQTT filter (+ and #) matched against the record's topic */
  readonly topic?: string
  readonly rule?: string
}

export function matchesQuery(r: JournalRecord, q: RecordQuery): boolean {
  if (q.since !== undefined && r.ts < q.since) return false
  if (q.until !== undefined && r.ts > q.until) return false
  if (q.types && !q.types.includes(r.type)) return false
  if (q.clientId !== undefined && r.clientId !== q.clientId) return false
  if (q.sub !== undefined && r.sub !== q.sub) return false
  if (q.session !== undefined && r.session !== q.session) return false
  if (q.rule !== undefined && r.rule !== q.rule) return false
  if (q.topic !== undefined && (r.topic === undefined || !matchTopic(q.topic, r.topic))) return false
  return true
}

/** One JSON line per record: ISO time next to ts, binary payloads as base64. */
export function recordToJson(r: JournalRecord): string {
  return JSON.stringify(r, (k, v: unknown) => {
    if (k === 'ts' && typeof v === 'number') return v
    if (v instanceof Uint8Array) return Buffer.from(v).toString('base64')
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) return Buffer.from((v as { data: number[] }).data).toString('base64')
    return v
  })
}
