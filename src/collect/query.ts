import pg from 'pg'
import { matchTopic } from '../bridge/topic.js'
import { packr } from '../journal/codec.js'
import type { RecordQuery } from '../journal/query.js'
import type { JournalRecord } from '../journal/types.js'

export interface FleetQuery extends RecordQuery {
  /** gateway ids (any of) */
  readonly gateways?: readonly string[]
  readonly limit?: number
}

/** An MQTT filter as an anchored POSIX regex over the topic column (the index-free prefilter). */
export function filterToRegex(filter: string): string {
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const levels = filter.split('/')
  let re = ''
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!
    if (l === '#') {
      // 'a/#' also matches 'a'
      re = i === 0 ? '.*' : `${re}(/.*)?`
      return `^${re}$`
    }
    re += (i ? '/' : '') + (l === '+' ? '[^/]*' : esc(l))
  }
  return `^${re}$`
}

const PAGE = 5000

/**
 * `audit query --store postgres://…`: the local query's filters across the fleet, oldest
 * first (ts, gateway, seq), read a page at a time (keyset pagination: memory stays flat
 * whatever the result size). Records are decoded from their stored bytes, so lines are
 * exactly what the local `audit query` prints for the same record.
 */
export async function* queryFleet(url: string, q: FleetQuery): AsyncGenerator<JournalRecord> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const where: string[] = []
    const args: unknown[] = []
    const add = (sql: string, v: unknown): void => { args.push(v); where.push(sql.replace('?', `$${args.length}`)) }
    if (q.since !== undefined) add('ts >= to_timestamp(? / 1000.0)', q.since)
    if (q.until !== undefined) add('ts <= to_timestamp(? / 1000.0)', q.until)
    if (q.types?.length) add('type = ANY(?::text[])', q.types)
    if (q.gateways?.length) add('gateway_id = ANY(?::text[])', q.gateways)
    if (q.clientId !== undefined) add('client_id = ?', q.clientId)
    if (q.sub !== undefined) add('sub = ?', q.sub)
    if (q.session !== undefined) add('session = ?', q.session)
    if (q.rule !== undefined) add('rule = ?', q.rule)
    if (q.topic !== undefined) add('topic ~ ?', filterToRegex(q.topic))
    const limit = q.limit ?? Infinity
    let n = 0
    let after: [Date, string, string] | undefined
    for (;;) {
      const page = [...where]
      const pargs = [...args]
      if (after) {
        pargs.push(...after)
        page.push(`(ts, gateway_id, seq) > ($${pargs.length - 2}, $${pargs.length - 1}, $${pargs.length})`)
      }
      const sql = `SELECT ts, gateway_id, seq, raw FROM audit_records ${page.length ? 'WHERE ' + page.join(' AND ') : ''} ORDER BY ts, gateway_id, seq LIMIT ${PAGE}`
      const rows = (await client.query<{ ts: Date; gateway_id: string; seq: string; raw: Buffer }>(sql, pargs)).rows
      for (const row of rows) {
        const r = packr.unpack(row.raw) as JournalRecord
        // the regex matches MQTT filters except the $-topic rule: matchTopic has the last word
        if (q.topic !== undefined && (r.topic === undefined || !matchTopic(q.topic, r.topic))) continue
        yield r
        if (++n >= limit) return
      }
      if (rows.length < PAGE) return
      const l = rows[rows.length - 1]!
      after = [l.ts, l.gateway_id, l.seq]
    }
  } finally {
    await client.end()
  }
}
