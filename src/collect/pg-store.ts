import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import type { JWK } from 'jose'
import { packr, storedHash } from '../journal/codec.js'
import type { JournalRecord } from '../journal/types.js'
import type { AuditSink, StoreResult, TamperReport } from './sink.js'
import type { VerifiedBatch, VerifiedRecord } from './verify.js'

/** How records reach audit_records (bench/collect.ts measures both; unnest is the default). */
export type InsertStrategy = 'unnest' | 'copy'

export interface PgStoreOptions {
  readonly url: string
  readonly strategy?: InsertStrategy
  /** pool size: batches of different gateways are stored in parallel */
  readonly poolSize?: number
}

const DAY = 86_400_000
/** tamper.payload keeps at most this much of a refused batch */
const TAMPER_PAYLOAD_MAX = 1024 * 1024

const COLS = 'gateway_id, seq, ts, type, session, client_id, sub, topic, rule, raw'
// The records' bytes travel as ONE binary bytea parameter (node-postgres sends a Buffer in
// binary format) cut by offset/length arrays: a bytea[] would go as hex text, twice the size
// and parsed by the server.
const INSERT_UNNEST = `INSERT INTO audit_records (${COLS})
  SELECT $1, u.seq, to_timestamp(u.ms / 1000.0), u.type, u.session, u.client_id, u.sub, u.topic, u.rule, substring($10::bytea FROM u.off FOR u.len)
  FROM unnest($2::bigint[], $3::float8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $11::int[], $12::int[])
    AS u(seq, ms, type, session, client_id, sub, topic, rule, off, len)
  ON CONFLICT DO NOTHING`

// PostgreSQL text cannot hold U+0000 (MQTT clientIds and token claims can): the column gets
// U+FFFD, `raw` keeps the exact bytes
const str = (v: unknown): string | null => (typeof v === 'string' ? (v.includes('\0') ? v.replace(/\0/g, '\uFFFD') : v) : null)

/** COPY text format: backslash, tab, newline and CR escaped; \N is NULL. */
function copyText(v: string | null): string {
  if (v === null) return '\\N'
  return /[\\\t\n\r]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r') : v
}

/**
 * The PostgreSQL audit store (migrations/001_audit_store.sql). Each batch is one
 * transaction that first locks its gateway's row, so batches of one gateway are applied one
 * after another even when several collectors receive them out of order; then:
 * - records above the chain head, or inside a recorded gap, are new; the rest are
 *   redeliveries, accepted only when the stored record at the same seq has the same hash
 *   (otherwise the batch forks stored history and is refused as tamper);
 * - a new range must link to its stored neighbours (prev = hash of seq-1, and seq+1's prev =
 *   its hash) when they are stored;
 * - a batch starting past head+1 records the skipped range in `gaps`; a batch filling a
 *   recorded gap shrinks or deletes it.
 * Inserts use ON CONFLICT DO NOTHING, so a redelivered record never lands twice even if
 * two transactions raced past the checks.
 */
export class PgStore implements AuditSink {
  readonly pool: pg.Pool
  readonly strategy: InsertStrategy
  readonly #partitions = new Set<number>()

  constructor(o: PgStoreOptions) {
    this.pool = new pg.Pool({ connectionString: o.url, max: o.poolSize ?? 4 })
    // an idle client that loses its connection must not crash the process
    this.pool.on('error', () => {})
    this.strategy = o.strategy ?? 'unnest'
  }

  /** The key pinned for a gateway (a second key source beside --keys DIR). */
  async pinnedKey(gw: string): Promise<JWK | undefined> {
    const r = await this.pool.query<{ public_jwk: JWK | null }>('SELECT public_jwk FROM gateways WHERE gateway_id = $1', [gw])
    return r.rows[0]?.public_jwk ?? undefined
  }

  async store(v: VerifiedBatch, publicJwk?: JWK): Promise<StoreResult> {
    await this.#ensurePartitions(v.records)
    const c = await this.pool.connect()
    try {
      await c.query('BEGIN')
      const res = await this.#apply(c, v, publicJwk)
      // a refused batch leaves nothing behind; the collector records it in `tamper`
      await c.query(res.problem ? 'ROLLBACK' : 'COMMIT')
      return res
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      c.release()
    }
  }

  async #apply(c: pg.PoolClient, v: VerifiedBatch, publicJwk?: JWK): Promise<StoreResult> {
    const { gw, records } = v
    // ON CONFLICT DO UPDATE takes the row lock until COMMIT: one batch per gateway at a time
    const h = (await c.query<{ head_seq: string; head_hash: string | null }>(
      `INSERT INTO gateways (gateway_id, fleet, public_jwk, last_batch) VALUES ($1, $2, $3, now())
       ON CONFLICT (gateway_id) DO UPDATE SET last_batch = now() RETURNING head_seq, head_hash`,
      [gw, v.fleet || null, publicJwk ? JSON.stringify(publicJwk) : null])).rows[0]!
    const headSeq = Number(h.head_seq)
    const gaps = v.first <= headSeq
      ? (await c.query<{ id: string; from_seq: string; to_seq: string }>(
          'SELECT id, from_seq, to_seq FROM gaps WHERE gateway_id = $1 AND from_seq <= $3 AND to_seq >= $2 ORDER BY from_seq',
          [gw, v.first, v.last])).rows.map((g) => ({ id: g.id, from: Number(g.from_seq), to: Number(g.to_seq) }))
      : []
    const inGap = (s: number): boolean => gaps.some((g) => s >= g.from && s <= g.to)
    const fresh: VerifiedRecord[] = []
    let lastDup: VerifiedRecord | undefined
    for (const r of records) {
      if (r.record.seq > headSeq || inGap(r.record.seq)) fresh.push(r)
      else lastDup = r
    }
    // a redelivery must be the history already stored; the chain makes one record enough
    if (lastDup) {
      const s = await c.query<{ raw: Buffer }>('SELECT raw FROM audit_records WHERE gateway_id = $1 AND seq = $2 AND ts = to_timestamp($3 / 1000.0)',
        [gw, lastDup.record.seq, lastDup.record.ts])
      if (!s.rows[0] || storedHash(s.rows[0].raw) !== lastDup.record.hash) return { inserted: 0, duplicates: 0, problem: `record ${lastDup.record.seq} differs from the stored one (forked history)`, seq: lastDup.record.seq }
    }
    if (fresh.length === 0) return { inserted: 0, duplicates: records.length }
    // links to stored neighbours at the edges of the batch
    const first = records[0]!.record
    if (fresh[0] === records[0] && first.seq > 1) {
      const before = first.seq - 1
      if (before === headSeq) {
        if (first.prev !== h.head_hash) return { inserted: 0, duplicates: 0, problem: `record ${first.seq}: prev does not link to the stored record ${before} (reordered or edited)`, seq: first.seq }
      } else if (before < headSeq && !inGap(before)) {
        const s = await c.query<{ raw: Buffer }>('SELECT raw FROM audit_records WHERE gateway_id = $1 AND seq = $2', [gw, before])
        if (!s.rows[0] || storedHash(s.rows[0].raw) !== first.prev) return { inserted: 0, duplicates: 0, problem: `record ${first.seq}: prev does not link to the stored record ${before}`, seq: first.seq }
      }
    }
    const last = records[records.length - 1]!.record
    if (fresh[fresh.length - 1] === records[records.length - 1] && last.seq < headSeq && !inGap(last.seq + 1)) {
      const s = await c.query<{ raw: Buffer }>('SELECT raw FROM audit_records WHERE gateway_id = $1 AND seq = $2', [gw, last.seq + 1])
      const after = s.rows[0] ? (packr.unpack(s.rows[0].raw) as JournalRecord) : undefined
      if (after?.prev !== last.hash) return { inserted: 0, duplicates: 0, problem: `stored record ${last.seq + 1} does not link to record ${last.seq}`, seq: last.seq }
    }
    const inserted = this.strategy === 'copy' ? await this.#copy(c, gw, fresh) : await this.#unnest(c, gw, fresh)
    // gap bookkeeping
    let gap: StoreResult['gap']
    if (v.first > headSeq + 1) {
      gap = { from: headSeq + 1, to: v.first - 1 }
      await c.query('INSERT INTO gaps (gateway_id, from_seq, to_seq) VALUES ($1, $2, $3)', [gw, gap.from, gap.to])
    }
    for (const g of gaps) {
      await c.query('DELETE FROM gaps WHERE id = $1', [g.id])
      if (g.from < v.first) await c.query('INSERT INTO gaps (gateway_id, from_seq, to_seq, detected_at) SELECT $1, $2, $3, now()', [gw, g.from, v.first - 1])
      if (g.to > v.last) await c.query('INSERT INTO gaps (gateway_id, from_seq, to_seq, detected_at) SELECT $1, $2, $3, now()', [gw, v.last + 1, g.to])
    }
    if (v.last > headSeq) await c.query('UPDATE gateways SET head_seq = $2, head_hash = $3 WHERE gateway_id = $1', [gw, v.last, last.hash])
    return { inserted, duplicates: records.length - inserted, ...(gap ? { gap } : {}), filled: gaps.length }
  }

  async #unnest(c: pg.PoolClient, gw: string, rs: readonly VerifiedRecord[]): Promise<number> {
    const n = rs.length
    const seq = new Array<number>(n), ms = new Array<number>(n), type = new Array<string>(n)
    const session = new Array<string | null>(n), client = new Array<string | null>(n), sub = new Array<string | null>(n)
    const topic = new Array<string | null>(n), rule = new Array<string | null>(n), off = new Array<number>(n), len = new Array<number>(n)
    let at = 1
    for (let i = 0; i < n; i++) {
      const { record: r, bytes } = rs[i]!
      seq[i] = r.seq; ms[i] = r.ts; type[i] = str(String(r.type))!; session[i] = str(r.session); client[i] = str(r.clientId)
      sub[i] = str(r.sub); topic[i] = str(r.topic); rule[i] = str(r.rule); off[i] = at; len[i] = bytes.length
      at += bytes.length
    }
    const raw = Buffer.concat(rs.map((r) => r.bytes), at - 1)
    const res = await c.query(INSERT_UNNEST, [gw, seq, ms, type, session, client, sub, topic, rule, raw, off, len])
    return res.rowCount ?? 0
  }

  async #copy(c: pg.PoolClient, gw: string, rs: readonly VerifiedRecord[]): Promise<number> {
    // a session-local staging table, emptied at every commit
    await c.query(`CREATE TEMP TABLE IF NOT EXISTS audit_stage (LIKE audit_records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`)
    const g = copyText(gw)
    const lines: string[] = new Array(rs.length)
    for (let i = 0; i < rs.length; i++) {
      const { record: r, bytes } = rs[i]!
      lines[i] = `${g}\t${r.seq}\t${new Date(r.ts).toISOString()}\t${copyText(str(String(r.type)))}\t${copyText(str(r.session))}\t${copyText(str(r.clientId))}\t${copyText(str(r.sub))}\t${copyText(str(r.topic))}\t${copyText(str(r.rule))}\t\\\\x${bytes.toString('hex')}\n`
    }
    await pipeline(Readable.from([lines.join('')]), c.query(copyFrom(`COPY audit_stage (${COLS}) FROM STDIN`)))
    const res = await c.query(`INSERT INTO audit_records (${COLS}) SELECT ${COLS} FROM audit_stage ON CONFLICT DO NOTHING`)
    await c.query('TRUNCATE audit_stage')
    return res.rowCount ?? 0
  }

  /** Daily partitions for the days these records fall in, created once (any collector). */
  async #ensurePartitions(rs: readonly VerifiedRecord[]): Promise<void> {
    let missing: number[] | undefined
    for (const r of rs) {
      const day = Math.floor(r.record.ts / DAY)
      if (!this.#partitions.has(day) && !missing?.includes(day)) (missing ??= []).push(day)
    }
    if (!missing) return
    const c = await this.pool.connect()
    try {
      await c.query('BEGIN')
      // concurrent CREATE … IF NOT EXISTS of one name can still collide: serialize them
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', ['edgewarden_partitions'])
      for (const day of missing) {
        const from = new Date(day * DAY), to = new Date((day + 1) * DAY)
        const name = `audit_records_${from.toISOString().slice(0, 10).replace(/-/g, '')}`
        await c.query(`CREATE TABLE IF NOT EXISTS ${name} PARTITION OF audit_records FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`)
      }
      await c.query('COMMIT')
      for (const day of missing) this.#partitions.add(day)
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      c.release()
    }
  }

  async tamper(t: TamperReport): Promise<void> {
    const payload = t.payload && t.payload.length <= TAMPER_PAYLOAD_MAX ? t.payload : null
    await this.pool.query('INSERT INTO tamper (gateway_id, topic, first_seq, last_seq, seq, reason, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [str(t.gw), str(t.topic), t.first ?? null, t.last ?? null, t.seq ?? null, str(t.reason), payload])
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}
