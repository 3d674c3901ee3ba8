import t, { type Test } from 'tap'
import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { startPostgres } from '../helpers/postgres.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { connect } from '../helpers/mqtt.js'
import { encodeBatch } from '../../src/journal/batch.js'
import { SimGateway, editRecord } from './fleet-sim.js'

const BIN = fileURLToPath(new URL('../../bin/edgewarden.js', import.meta.url))
const env = { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', EDGEWARDEN_FROM_SOURCE: '1' }

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

/** `edgewarden collect …` as a child process; resolves once it subscribed, stop() sends SIGTERM. */
async function collect(t: Test, ...args: string[]): Promise<{ stop: () => Promise<number | null>; output: () => string }> {
  const child = spawn(process.execPath, [BIN, 'collect', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const until = Date.now() + 20_000
  while (!out.includes('collect_started')) {
    if (child.exitCode !== null) throw new Error(`collect exited: ${out}`)
    if (Date.now() > until) throw new Error(`collect did not start: ${out}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return { stop: () => { child.kill('SIGTERM'); return exited }, output: () => out }
}

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 50))
  }
}

const pgsrv = await startPostgres(t)
const mosq = await startMosquitto(t)
const keysDir = mkdtempSync(join(tmpdir(), 'ew-keys-'))
t.teardown(() => rmSync(keysDir, { recursive: true, force: true }))
const gwA = await SimGateway.create('gw-a')
const gwB = await SimGateway.create('gw-b')
gwA.writeKey(keysDir)
gwB.writeKey(keysDir)

t.test('collect --store: refuses an unmigrated store, --migrate applies, then collects; audit query --store reads the fleet', async (t) => {
  // an unmigrated database beside the one being migrated: the two CLI runs go in parallel
  const admin = new pg.Client(pgsrv.url)
  await admin.connect()
  await admin.query('CREATE DATABASE unmigrated')
  await admin.end()
  const [un, m] = await Promise.all([
    cli('collect', '--upstream', mosq.url, '--store', pgsrv.url.replace(/\/postgres$/, '/unmigrated'), '--keys', keysDir),
    cli('collect', '--store', pgsrv.url, '--migrate'),
  ])
  t.equal(un.code, 2)
  t.match(un.stderr, /schema version 0, this collector needs 1: run with --migrate/)
  t.equal(m.code, 0, m.stderr)
  t.match(m.stdout, /applied migrations 1/)

  const col = await collect(t, '--upstream', mosq.url, '--store', pgsrv.url, '--keys', keysDir, '--group', 'g1', '--client-id', 'cli-col')
  const pub = await connect(t, mosq.url, { clientId: 'shipper' })
  for (let i = 0; i < 3; i++) {
    await pub.publishAsync(gwA.topic, await gwA.next(500), { qos: 1 })
    await pub.publishAsync(gwB.topic, await gwB.next(500), { qos: 1 })
  }
  const db = new pg.Client(pgsrv.url)
  await db.connect()
  t.teardown(() => db.end())
  await until(async () => (await db.query('SELECT count(*)::int AS n FROM audit_records')).rows[0].n === 3000)
  t.equal(await col.stop(), 0, 'exits 0 on SIGTERM')
  t.match(col.output(), /"inserted":3000/)

  const [q, all] = await Promise.all([
    cli('audit', 'query', '--store', pgsrv.url, '--gateway', 'gw-b', '--type', 'publish_denied', '--topic', 'site/+/dev/+/telemetry', '--limit', '5'),
    cli('audit', 'query', '--store', pgsrv.url, '--client-id', 'dev-3'),
  ])
  t.equal(q.code, 0, q.stderr)
  const lines = q.stdout.trim().split('\n').map((l) => JSON.parse(l) as { gw: string; seq: number; type: string; rule: string; payload: string })
  t.same(lines.map((l) => [l.gw, l.seq, l.type]), [17, 34, 51, 68, 85].map((s) => ['gw-b', s, 'publish_denied']), 'oldest first, every filter applied')
  t.equal(lines[0]!.rule, 'no-firehose')
  t.equal(Buffer.from(lines[0]!.payload, 'base64').toString(), '{"t":17,"v":19}', 'the record as the gateway wrote it')
  const got = all.stdout.trim().split('\n').map((l) => JSON.parse(l) as { gw: string })
  t.equal(got.length, 60, 'both gateways: 1,500 records each, 1 in 50 from dev-3')
  t.same(new Set(got.map((r) => r.gw)), new Set(['gw-a', 'gw-b']))
})

t.test('collect --out DIR: JSONL per gateway, gaps.jsonl, tamper.jsonl, redeliveries skipped, head kept across restarts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ew-collect-out-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const g = await SimGateway.create('gw-a')
  g.writeKey(dir + '-keys')
  t.teardown(() => rmSync(dir + '-keys', { recursive: true, force: true }))
  const pub = await connect(t, mosq.url, { clientId: 'shipper-2' })
  let col = await collect(t, '--upstream', mosq.url, '--out', dir, '--keys', dir + '-keys', '--group', 'g2', '--client-id', 'cli-out')
  const b1 = await g.next(100)
  await pub.publishAsync(g.topic, b1, { qos: 1 })
  await pub.publishAsync(g.topic, b1, { qos: 1 })
  const file = join(dir, 'gw-a.jsonl')
  await until(() => existsSync(file) && readFileSync(file, 'utf8').trim().split('\n').length === 100)
  t.equal(await col.stop(), 0)
  t.match(col.output(), /"inserted":100,"duplicates":100/)

  col = await collect(t, '--upstream', mosq.url, '--out', dir, '--keys', dir + '-keys', '--group', 'g2', '--client-id', 'cli-out')
  await pub.publishAsync(g.topic, b1, { qos: 1 }) // after the restart: still a duplicate
  g.records(50) // 101..150 never shipped
  const b3 = await g.batch(g.records(100))
  await pub.publishAsync(g.topic, await encodeBatch({ ...b3, records: b3.records.map((r, i) => (i === 10 ? editRecord(Buffer.from(r)) : r)) }), { qos: 1 })
  await pub.publishAsync(g.topic, await encodeBatch(b3), { qos: 1 })
  await until(() => existsSync(join(dir, 'gaps.jsonl')) && readFileSync(file, 'utf8').trim().split('\n').length === 200)
  t.equal(await col.stop(), 0)
  const gaps = readFileSync(join(dir, 'gaps.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { gateway: string; from: number; to: number })
  t.same(gaps.map((x) => [x.gateway, x.from, x.to]), [['gw-a', 101, 150]])
  const tamper = readFileSync(join(dir, 'tamper.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { gw: string; seq: number; reason: string })
  t.equal(tamper.length, 1)
  t.match(tamper[0], { gw: 'gw-a', seq: 161, reason: /edited/ })
  const seqs = readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)
  t.same(seqs, [...Array.from({ length: 100 }, (_, i) => i + 1), ...Array.from({ length: 100 }, (_, i) => i + 151)], 'each record once, in order')
})
