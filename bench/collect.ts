/**
 * Collector ingest into PostgreSQL (issue 15): records/s for both insert strategies, side by side.
 *   1. verify only: decode + checkpoint signature + per-record hash/links, one core, no store
 *   2. ingest = decode + verify + store, Collector.ingest() with --concurrency batches in flight
 *      (what --connections MQTT connections do), for `unnest` (INSERT … SELECT unnest(…) ON CONFLICT
 *      DO NOTHING) and `copy` (COPY into a temp staging table, INSERT … SELECT … ON CONFLICT DO
 *      NOTHING), alternated for --rounds, each into a fresh database
 *   3. redelivery: the same batches again (every record a duplicate)
 *   4. end to end: shipped batches published QoS 1 to a real Mosquitto, one collector with
 *      --concurrency connections on a shared subscription, until every record is stored
 * PostgreSQL: a throwaway cluster with durable settings (fsync on, synchronous_commit on), or --store URL.
 * Run: npx tsx bench/collect.ts [--records 200000] [--gateways 8] [--batch 1000] [--concurrency 4] [--rounds 2]
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import mqtt from 'mqtt'
import type { Test } from 'tap'
import { startPostgres } from '../test/helpers/postgres.js'
import { startMosquitto } from '../test/helpers/mosquitto.js'
import { SimGateway } from '../test/collect/fleet-sim.js'
import { silentLogger } from '../src/logger.js'
import { migrate } from '../src/collect/migrate.js'
import { PgStore, type InsertStrategy } from '../src/collect/pg-store.js'
import { KeyRing } from '../src/collect/keys.js'
import { Collector } from '../src/collect/collector.js'
import { verifyBatch, isProblem } from '../src/collect/verify.js'
import { decodeBatch } from '../src/journal/batch.js'

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : def
}
const sarg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i > 0 ? process.argv[i + 1] : undefined
}
const RECORDS = arg('--records', 200_000)
const GATEWAYS = arg('--gateways', 8)
const BATCH = arg('--batch', 1000)
const CONC = arg('--concurrency', 4)
const ROUNDS = arg('--rounds', 2)

// startPostgres/startMosquitto want a tap Test only for teardown
const cleanups: Array<() => unknown> = []
const fakeT = { teardown: (fn: () => unknown) => cleanups.push(fn) } as unknown as Test

async function main(): Promise<void> {
  const load0 = loadavg()
  let base = sarg('--store')
  let pgPid: number | undefined
  if (!base) {
    const p = await startPostgres(fakeT, ['fsync = on', 'synchronous_commit = on', 'full_page_writes = on', 'shared_buffers = 256MB', 'max_wal_size = 2GB'])
    base = p.url
    pgPid = p.pid()
  }
  // CPU seconds of this process and of the PostgreSQL cluster (postmaster + backends +
  // walwriter…): on a shared, loaded machine wall-clock rates understate what a core does
  const ticks = 100
  const pgCpu = (): number => {
    if (!pgPid) return 0
    let sum = 0
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue
      try {
        const f = readFileSync(`/proc/${d}/stat`, 'utf8')
        const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
        const pid = Number(d), ppid = Number(rest[1])
        if (pid === pgPid || ppid === pgPid) sum += (Number(rest[11]) + Number(rest[12])) / ticks
      } catch { /* exited meanwhile */ }
    }
    return sum
  }
  const nodeCpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 }
  const keysDir = mkdtempSync(join(tmpdir(), 'ew-bench-keys-'))
  cleanups.push(() => rmSync(keysDir, { recursive: true, force: true }))

  // shipped batches, round-robin over gateways as a fleet ships them
  const gws = await Promise.all(Array.from({ length: GATEWAYS }, (_, i) => SimGateway.create(`gw-${String(i).padStart(4, '0')}`, 'bench', Date.now() - 3_600_000)))
  for (const g of gws) g.writeKey(keysDir)
  const perGw = Math.ceil(RECORDS / GATEWAYS / BATCH)
  const batches: Array<{ topic: string; payload: Buffer }> = []
  for (let i = 0; i < perGw; i++) for (const g of gws) batches.push({ topic: g.topic, payload: await g.next(BATCH) })
  const total = batches.length * BATCH
  const bytes = batches.reduce((s, b) => s + b.payload.length, 0)
  console.log(`${total} records in ${batches.length} batches of ${BATCH} from ${GATEWAYS} gateways (${(bytes / total).toFixed(0)} bytes/record shipped, gzip)`)

  // 1. verify only
  const keys = new KeyRing(keysDir)
  const v0 = nodeCpu()
  let t0 = performance.now()
  for (const b of batches) {
    const v = await verifyBatch(b.topic, await decodeBatch(b.payload), keys)
    if (isProblem(v)) throw new Error(v.problem)
  }
  const verifyRate = total / ((performance.now() - t0) / 1000)
  const verifyUs = (nodeCpu() - v0) / total * 1e6
  console.log(`verify only (decode + signature + hashes), one core: ${Math.round(verifyRate)} records/s, ${verifyUs.toFixed(1)} µs CPU per record`)

  const admin = new pg.Client(base)
  await admin.connect()
  const dbs: string[] = []
  const freshDb = async (): Promise<string> => {
    const name = `ew_bench_${process.pid}_${dbs.length}`
    await admin.query(`CREATE DATABASE ${name}`)
    dbs.push(name)
    const u = new URL(base!)
    u.pathname = '/' + name
    const c = new pg.Client(u.toString())
    await c.connect()
    await migrate(c)
    await c.end()
    return u.toString()
  }
  const cpu = { node: 0, pg: 0 }
  const ingestAll = async (col: Collector): Promise<number> => {
    let next = 0
    const n0 = nodeCpu(), p0 = pgCpu()
    const t = performance.now()
    await Promise.all(Array.from({ length: CONC }, async () => {
      while (next < batches.length) {
        const b = batches[next++]!
        const r = await col.ingest(b.topic, b.payload)
        if ('tamper' in r) throw new Error(r.tamper)
      }
    }))
    const rate = total / ((performance.now() - t) / 1000)
    cpu.node = (nodeCpu() - n0) / total * 1e6
    cpu.pg = (pgCpu() - p0) / total * 1e6
    return rate
  }

  // 2 + 3. both strategies, alternated
  type Cpu = { nodeUs: number; pgUs: number }
  const results: Record<InsertStrategy, { ingest: number[]; redelivery: number[]; cpuPerRecord: Cpu[] }> = { unnest: { ingest: [], redelivery: [], cpuPerRecord: [] }, copy: { ingest: [], redelivery: [], cpuPerRecord: [] } }
  let storedBytesPerRecord = 0
  for (let round = 0; round < ROUNDS; round++) {
    for (const strategy of (round % 2 ? ['copy', 'unnest'] : ['unnest', 'copy']) as InsertStrategy[]) {
      const store = new PgStore({ url: await freshDb(), strategy, poolSize: CONC + 1 })
      const col = new Collector({ upstream: '', sink: store, keys: new KeyRing(keysDir), logger: silentLogger })
      const rate = await ingestAll(col)
      const used = { nodeUs: Math.round(cpu.node * 10) / 10, pgUs: Math.round(cpu.pg * 10) / 10 }
      const dup = await ingestAll(col)
      if (col.stats.inserted !== total || col.stats.duplicates !== total) throw new Error(`${strategy}: inserted ${col.stats.inserted}, duplicates ${col.stats.duplicates}`)
      // table + indexes + TOAST of every partition
      const size = await store.pool.query<{ b: string }>(`SELECT sum(pg_total_relation_size(inhrelid)) AS b FROM pg_inherits WHERE inhparent = 'audit_records'::regclass`)
      storedBytesPerRecord = Math.round(Number(size.rows[0]!.b) / total)
      await store.close()
      results[strategy].ingest.push(Math.round(rate))
      results[strategy].redelivery.push(Math.round(dup))
      results[strategy].cpuPerRecord.push(used)
      console.log(`round ${round + 1} ${strategy.padEnd(6)}: ingest ${Math.round(rate)} records/s (CPU per record: collector ${used.nodeUs} µs, PostgreSQL ${used.pgUs} µs), redelivered (all duplicates) ${Math.round(dup)} records/s`)
    }
  }
  // wall-clock rates swing with the machine's load (and flip between rounds on a shared
  // machine); CPU per record (collector + PostgreSQL) is the steadier measure of cost
  const cpuOf = (s: InsertStrategy): number => Math.min(...results[s].cpuPerRecord.map((c) => c.nodeUs + c.pgUs))
  const winner: InsertStrategy = cpuOf('copy') < cpuOf('unnest') ? 'copy' : 'unnest'
  console.log(`cheaper per record: ${winner} (CPU µs/record, best round: unnest ${cpuOf('unnest').toFixed(1)}, copy ${cpuOf('copy').toFixed(1)}; best wall rate: unnest ${Math.max(...results.unnest.ingest)}, copy ${Math.max(...results.copy.ingest)} records/s)`)

  // 4. end to end through Mosquitto
  const mosq = await startMosquitto(fakeT, { extra: ['max_queued_messages 0', 'max_inflight_messages 0'] })
  const store = new PgStore({ url: await freshDb(), strategy: winner, poolSize: CONC + 1 })
  const col = new Collector({ upstream: mosq.url, sink: store, keys: new KeyRing(keysDir), logger: silentLogger, group: 'bench', clientId: 'bench-col', connections: CONC })
  await col.start()
  const pub = await mqtt.connectAsync(mosq.url, { clientId: 'bench-ship', protocolVersion: 4 })
  t0 = performance.now()
  await Promise.all(batches.map((b) => pub.publishAsync(b.topic, b.payload, { qos: 1 })))
  while (col.stats.batches < batches.length) await new Promise((r) => setTimeout(r, 20))
  const e2e = total / ((performance.now() - t0) / 1000)
  console.log(`stored: ${storedBytesPerRecord} bytes/record (partitions with indexes)`)
  console.log(`end to end via Mosquitto (${winner}, ${CONC} connections): ${Math.round(e2e)} records/s`)
  await pub.endAsync()
  await col.stop()
  await store.close()
  if (sarg('--store')) for (const name of dbs) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await admin.end()

  const out = {
    when: new Date().toISOString(), records: total, gateways: GATEWAYS, batch: BATCH, concurrency: CONC, rounds: ROUNDS,
    verifyOnly: Math.round(verifyRate), verifyCpuUsPerRecord: Math.round(verifyUs * 10) / 10, results, winner, endToEnd: Math.round(e2e), shippedBytesPerRecord: Math.round(bytes / total), storedBytesPerRecord,
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, loadavg: { before: load0, after: loadavg() },
  }
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL(`./results/collect-${Date.now()}.json`, import.meta.url), JSON.stringify(out, null, 2))
  console.log(JSON.stringify(out))
}

try {
  await main()
} finally {
  for (const c of cleanups.reverse()) await c()
}
