import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { startPostgres } from '../helpers/postgres.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { connect } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'
import { silentLogger } from '../../src/logger.js'
import { migrate } from '../../src/collect/migrate.js'
import { PgStore } from '../../src/collect/pg-store.js'
import { KeyRing } from '../../src/collect/keys.js'
import { Collector } from '../../src/collect/collector.js'
import { encodeBatch } from '../../src/journal/batch.js'
import { SimGateway, editRecord } from './fleet-sim.js'

const pgsrv = await startPostgres(t)
const admin = new pg.Client(pgsrv.url)
await admin.connect()
t.teardown(() => admin.end())
const q = async <T extends pg.QueryResultRow = Record<string, unknown>>(sql: string, args: unknown[] = []): Promise<T[]> => (await admin.query<T>(sql, args)).rows

t.test('migrations apply once, in order, recorded in schema_migrations', async (t) => {
  t.same(await migrate(admin), [1])
  t.same(await migrate(admin), [], 'a second --migrate applies nothing')
  const rows = await q<{ version: number; name: string }>('SELECT version, name FROM schema_migrations')
  t.same(rows.map((r) => [r.version, r.name]), [[1, 'audit_store']])
  const part = await q<{ strategy: string }>(`SELECT partstrat AS strategy FROM pg_partitioned_table WHERE partrelid = 'audit_records'::regclass`)
  t.equal(part[0]?.strategy, 'r', 'audit_records is range-partitioned')
})

t.test('two collectors on one shared subscription: 100,000 records from three gateways, no duplicate, no gap', async (t) => {
  const mosq = await startMosquitto(t, { extra: ['max_queued_messages 0', 'max_inflight_messages 0'] })
  const keysDir = mkdtempSync(join(tmpdir(), 'ew-keys-'))
  t.teardown(() => rmSync(keysDir, { recursive: true, force: true }))
  const gws = await Promise.all(['gw-a', 'gw-b', 'gw-c'].map((g) => SimGateway.create(g)))
  for (const g of gws) g.writeKey(keysDir)

  const collectors: Collector[] = []
  for (let i = 0; i < 2; i++) {
    const store = new PgStore({ url: pgsrv.url, poolSize: 2 })
    const keys = new KeyRing(keysDir, (gw) => store.pinnedKey(gw))
    const c = new Collector({ upstream: mosq.url, sink: store, keys, logger: silentLogger, group: 'audit', clientId: `collector-${i}`, connections: 1 })
    await c.start()
    t.teardown(async () => { await c.stop(); await store.close() })
    collectors.push(c)
  }
  const pub = await connect(t, mosq.url, { clientId: 'shipper-sim' })
  // 100,000 records: 34 + 33 + 33 batches of ~1,000, interleaved as gateways ship concurrently
  const batches = [34, 33, 33]
  const sent: Array<{ topic: string; payload: Buffer }> = []
  for (let i = 0; i < 34; i++) for (let g = 0; g < 3; g++) if (i < batches[g]!) sent.push({ topic: gws[g]!.topic, payload: await gws[g]!.next(1000) })
  t.equal(sent.length, 100)
  await Promise.all(sent.map((m) => pub.publishAsync(m.topic, m.payload, { qos: 1 })))

  const until = Date.now() + 45_000
  let total = 0
  while (Date.now() < until) {
    total = collectors.reduce((s, c) => s + c.stats.batches, 0)
    if (total >= 100) break
    await new Promise((r) => setTimeout(r, 100))
  }
  t.equal(total, 100, 'every batch was handled')
  t.ok(collectors.every((c) => c.stats.batches > 0), `both collectors took a share (${collectors.map((c) => c.stats.batches).join(' + ')} batches)`)
  const per = await q<{ gateway_id: string; n: string; lo: string; hi: string; distinct: string }>(
    'SELECT gateway_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi, count(DISTINCT seq) AS distinct FROM audit_records GROUP BY gateway_id ORDER BY gateway_id')
  t.same(per.map((r) => [r.gateway_id, Number(r.n), Number(r.lo), Number(r.hi), Number(r.distinct)]),
    [['gw-a', 34_000, 1, 34_000, 34_000], ['gw-b', 33_000, 1, 33_000, 33_000], ['gw-c', 33_000, 1, 33_000, 33_000]], 'every seq once per gateway')
  t.same(await q('SELECT * FROM gaps'), [], 'no gap left (reordered batches filled theirs)')
  t.same(await q('SELECT * FROM tamper'), [], 'nothing flagged')
  const heads = await q<{ gateway_id: string; head_seq: string; head_hash: string }>('SELECT gateway_id, head_seq, head_hash FROM gateways ORDER BY gateway_id')
  t.same(heads.map((h) => [h.gateway_id, Number(h.head_seq), h.head_hash]), gws.map((g) => [g.gw, g.seq, g.hash]), 'chain heads are the gateways\' last hashes')
  const parts = await q<{ n: string }>(`SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'audit_records'::regclass`)
  t.ok(Number(parts[0]!.n) >= 2, 'daily partitions created on demand')

  t.test('a batch replayed twice inserts nothing', async (t) => {
    const before = await q<{ n: string }>('SELECT count(*) AS n FROM audit_records')
    const replay = sent[40]!
    await pub.publishAsync(replay.topic, replay.payload, { qos: 1 })
    await pub.publishAsync(replay.topic, replay.payload, { qos: 1 })
    await waitFor(() => collectors.reduce((s, c) => s + c.stats.batches, 0) >= 102, 10_000, 'replays handled')
    t.equal(collectors.reduce((s, c) => s + c.stats.duplicates, 0), 2000, '2 × 1,000 duplicates')
    t.same(await q('SELECT count(*) AS n FROM audit_records'), before)
    t.same(await q('SELECT * FROM tamper'), [])
  })

  t.test('an edited record is flagged in tamper, nothing of its batch stored', async (t) => {
    const g = gws[0]!
    const recs = g.records(1000)
    const b = await g.batch(recs)
    const edited = { ...b, records: b.records.map((r, i) => (i === 500 ? editRecord(Buffer.from(r)) : r)) }
    await pub.publishAsync(g.topic, await encodeBatch(edited), { qos: 1 })
    const tam = await poll(() => q<{ gateway_id: string; seq: string; reason: string; payload: Buffer }>('SELECT gateway_id, seq, reason, payload FROM tamper'))
    t.equal(tam[0]!.gateway_id, 'gw-a')
    t.equal(Number(tam[0]!.seq), 34_501)
    t.match(tam[0]!.reason, /hash does not match its contents \(edited\)/)
    t.ok(tam[0]!.payload.length > 0, 'the refused payload is kept for forensics')
    t.same(await q(`SELECT count(*)::int AS n FROM audit_records WHERE gateway_id = 'gw-a' AND seq > 34000`), [{ n: 0 }])
    // the genuine batch afterwards is stored and links on
    await pub.publishAsync(g.topic, await encodeBatch(b), { qos: 1 })
    await poll(async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM audit_records WHERE gateway_id = 'gw-a'`))[0]!.n === 35_000 ? [1] : [])
    t.same(await q('SELECT * FROM gaps'), [])
  })

  t.test('a missing batch is recorded in gaps; a forged checkpoint and an unknown gateway are tamper', async (t) => {
    const g = gws[1]!
    const b1 = await g.next(1000)
    g.records(1000) // 34,001..35,000 never shipped
    const b3 = await g.next(1000)
    await pub.publishAsync(g.topic, b1, { qos: 1 })
    await pub.publishAsync(g.topic, b3, { qos: 1 })
    // the two collectors may store b3 first (a wider gap for a moment): wait for both
    await poll(async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM audit_records WHERE gateway_id = 'gw-b'`))[0]!.n === 35_000 ? [1] : [])
    const gaps = await poll(() => q<{ gateway_id: string; from_seq: string; to_seq: string }>('SELECT gateway_id, from_seq, to_seq FROM gaps'))
    t.same(gaps.map((x) => [x.gateway_id, Number(x.from_seq), Number(x.to_seq)]), [['gw-b', 34_001, 35_000]])
    t.same(await q(`SELECT count(*)::int AS n FROM audit_records WHERE gateway_id = 'gw-b'`), [{ n: 35_000 }], 'the batches around the gap are stored')

    const stranger = await SimGateway.create('gw-x')
    await pub.publishAsync(stranger.topic, await stranger.next(10), { qos: 1 })
    const other = await SimGateway.create('gw-c') // same id, another key: a forged checkpoint
    await pub.publishAsync(other.topic, await other.next(10), { qos: 1 })
    const tam = await poll(async () => {
      const r = await q<{ gateway_id: string; reason: string }>(`SELECT gateway_id, reason FROM tamper WHERE gateway_id IN ('gw-x', 'gw-c') ORDER BY gateway_id`)
      return r.length === 2 ? r : []
    })
    t.match(tam, [{ gateway_id: 'gw-c', reason: /checkpoint does not verify|forked/ }, { gateway_id: 'gw-x', reason: /no public key for gateway gw-x/ }])
    t.same(await q(`SELECT count(*)::int AS n FROM audit_records WHERE gateway_id = 'gw-x'`), [{ n: 0 }])
    t.same(await q(`SELECT count(*)::int AS n FROM audit_records WHERE gateway_id = 'gw-c'`), [{ n: 33_000 }])
  })
})

async function poll<T>(fn: () => Promise<T[]>, timeoutMs = 10_000): Promise<T[]> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const r = await fn()
    if (r.length) return r
    if (Date.now() > until) throw new Error('timed out waiting for rows')
    await new Promise((res) => setTimeout(res, 50))
  }
}

t.test('validly signed batches that contradict stored history are tamper: a forked redelivery, a batch not linking to the head', async (t) => {
  const keysDir = mkdtempSync(join(tmpdir(), 'ew-keys-'))
  t.teardown(() => rmSync(keysDir, { recursive: true, force: true }))
  const g = await SimGateway.create('gw-f')
  g.writeKey(keysDir)
  const twin = g.fork() // same key, same start, other records
  const store = new PgStore({ url: pgsrv.url })
  t.teardown(() => store.close())
  const col = new Collector({ upstream: '', sink: store, keys: new KeyRing(keysDir), logger: silentLogger })
  t.match(await col.ingest(g.topic, await g.next(100)), { inserted: 100 })
  t.match(await col.ingest(g.topic, await twin.next(100)), { tamper: /record 100 differs from the stored one \(forked history\)/ })
  t.match(await col.ingest(g.topic, await twin.next(100)), { tamper: /record 101: prev does not link to the stored record 100/ })
  t.match(await col.ingest(g.topic, await g.next(100)), { inserted: 100 }, 'the genuine history continues')
  const tam = await q<{ seq: string; reason: string }>(`SELECT seq, reason FROM tamper WHERE gateway_id = 'gw-f' ORDER BY id`)
  t.same(tam.map((r) => Number(r.seq)), [100, 101])
  t.same(await q(`SELECT count(*)::int AS n FROM audit_records WHERE gateway_id = 'gw-f'`), [{ n: 200 }])
})

t.test('NUL characters (legal in msgpack, not in PostgreSQL text) are stored, not a batch retried forever', async (t) => {
  const keysDir = mkdtempSync(join(tmpdir(), 'ew-keys-'))
  t.teardown(() => rmSync(keysDir, { recursive: true, force: true }))
  const g = await SimGateway.create('gw-nul')
  g.writeKey(keysDir)
  for (const strategy of ['unnest', 'copy'] as const) {
    const store = new PgStore({ url: pgsrv.url, strategy })
    t.teardown(() => store.close())
    const col = new Collector({ upstream: '', sink: store, keys: new KeyRing(keysDir), logger: silentLogger })
    t.match(await col.ingest(g.topic, await g.batch(g.records(3, { clientId: 'dev\u0000x', sub: '\u0000' })).then(encodeBatch)), { inserted: 3 }, strategy)
    t.match(await col.ingest('fleet/acme/gw\u0000nul/audit', await g.next(1)), { tamper: /topic names gateway/ }, 'a NUL in the topic is a recorded refusal')
  }
  const rows = await q<{ client_id: string; raw: Buffer }>(`SELECT client_id, raw FROM audit_records WHERE gateway_id = 'gw-nul' ORDER BY seq LIMIT 1`)
  t.equal(rows[0]!.client_id, 'dev\uFFFDx', 'the column gets U+FFFD')
  t.ok(rows[0]!.raw.includes(Buffer.from('dev\u0000x')), 'raw keeps the exact bytes')
  t.same(await q(`SELECT count(*)::int AS n FROM tamper WHERE topic LIKE 'fleet/acme/gw%nul/audit'`), [{ n: 2 }])
})

t.test('COPY strategy, batches out of order: a later batch records a gap, the late one fills it; both strategies store the same rows', async (t) => {
  const keysDir = mkdtempSync(join(tmpdir(), 'ew-keys-'))
  t.teardown(() => rmSync(keysDir, { recursive: true, force: true }))
  const g = await SimGateway.create('gw-o')
  g.writeKey(keysDir)
  const b = [await g.next(300), await g.next(300), await g.next(300), await g.next(300)]
  const store = new PgStore({ url: pgsrv.url, strategy: 'copy', poolSize: 2 })
  t.teardown(() => store.close())
  const col = new Collector({ upstream: '', sink: store, keys: new KeyRing(keysDir), logger: silentLogger })
  t.match(await col.ingest(g.topic, b[2]!), { inserted: 300, gap: { from: 1, to: 600 } })
  t.same((await q<{ f: string; t: string }>(`SELECT from_seq AS f, to_seq AS t FROM gaps WHERE gateway_id = 'gw-o'`)).map((r) => [Number(r.f), Number(r.t)]), [[1, 600]])
  t.match(await col.ingest(g.topic, b[0]!), { inserted: 300, filled: 1 })
  t.same((await q<{ f: string; t: string }>(`SELECT from_seq AS f, to_seq AS t FROM gaps WHERE gateway_id = 'gw-o'`)).map((r) => [Number(r.f), Number(r.t)]), [[301, 600]], 'the gap shrank')
  t.match(await col.ingest(g.topic, b[3]!), { inserted: 300 })
  t.match(await col.ingest(g.topic, b[1]!), { inserted: 300, filled: 1 })
  t.match(await col.ingest(g.topic, b[1]!), { inserted: 0, duplicates: 300 }, 'a redelivered gap-filler is a duplicate now')
  t.same(await q(`SELECT * FROM gaps WHERE gateway_id = 'gw-o'`), [])
  const rows = await q<{ n: number; lo: string; hi: string }>(`SELECT count(DISTINCT seq)::int AS n, min(seq) AS lo, max(seq) AS hi FROM audit_records WHERE gateway_id = 'gw-o'`)
  t.same([rows[0]!.n, Number(rows[0]!.lo), Number(rows[0]!.hi)], [1200, 1, 1200])

  // the same batches through unnest into another gateway id would differ; compare columns instead
  const sample = await q<{ type: string; client_id: string; topic: string; rule: string; ts: Date }>(`SELECT type, client_id, topic, rule, ts FROM audit_records WHERE gateway_id = 'gw-o' AND seq = 17`)
  t.match(sample[0], { type: 'publish_denied', client_id: 'dev-17', topic: 'site/1/dev/dev-17/telemetry', rule: 'no-firehose' })
  const a = await q<{ ts: Date }>(`SELECT ts FROM audit_records WHERE gateway_id = 'gw-a' AND seq = 17`)
  t.equal(sample[0]!.ts.getTime() - a[0]!.ts.getTime(), 0, 'COPY and unnest store the same ms timestamp (same simulated clock start)')
})
