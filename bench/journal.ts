/**
 * What the audit journal costs (issue 6), side by side in one run:
 *   1. LMDB journal records/s: group commit (appends in flight together) vs one awaited append at a time
 *   2. QoS 1 publish throughput (PUBACKs/s) through a real gateway process: LMDB journal vs MemoryJournal
 *   3. shipping throughput: journal records/s shipped as signed batches to a local Mosquitto
 * Run: npx tsx bench/journal.ts [--seconds 5]   (gateways run in child processes: `gw <lmdb|memory> <dir>`)
 */
import { fork, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { openClient, publishPacket, publishIdOffset, closeClient, PUBACK, type WireClient } from './lib/wire.js'
import { TokenMinter } from './lib/tokens.js'

const here = fileURLToPath(import.meta.url)
const POLICIES = fileURLToPath(new URL('../test/fixtures/policies', import.meta.url))
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : def
}

// ------------------------------------------------------------------ child: one gateway
async function gatewayChild(mode: string, dataDir: string): Promise<void> {
  const { createGateway } = await import('../src/index.js')
  const { silentLogger } = await import('../src/logger.js')
  const { nullJournal } = await import('./lib/null-journal.js')
  const journal = mode === 'memory' ? nullJournal() : undefined
  const gw = await createGateway({
    env: {}, cwd: dataDir,
    overrides: {
      gateway: { id: 'gw-bench', dataDir },
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }],
      admin: { enabled: false },
      broker: { persistence: 'memory' },
      policies: { dir: POLICIES, watch: false },
      journal: { recordPayloads: 'masked', commitDelayMs: Number(process.env.BENCH_COMMIT_DELAY ?? 2) },
      log: { level: 'silent' },
      limits: { connectRatePerAddress: '1000000/s' },
    },
  }, { logger: silentLogger, journal })
  await gw.start()
  process.send!({ type: 'ready', port: gw.address('mqtt')!.port })
  process.on('message', async () => { await gw.stop(); process.exit(0) })
}

// ------------------------------------------------------------------ 1. records/s
async function journalRates(): Promise<{ batched: number; appendAll: number; awaited: number; steady: { recordsPerSec: number; commitsPerSec: number; perCommit: number } }> {
  const { LmdbJournal } = await import('../src/journal/lmdb.js')
  const dir = mkdtempSync(join(tmpdir(), 'ew-bench-j-'))
  const j = new LmdbJournal({ dataDir: dir, gw: 'gw-bench', maxBytes: 2 * 1024 ** 3, retainShippedDays: 7, onFull: 'block', recordPayloads: 'masked', commitDelayMs: 2 })
  const entry = (i: number) => ({ type: 'publish' as const, session: '5f0c6a1e-0d7b-4a4e-9a53-1c1f3c7e9b10', clientId: 'sensor-0042', sub: 'sensor-0042', kind: 'device', topic: 'site/1/dev/sensor-0042/telemetry', qos: 1, retain: false, bytes: 64, rule: 'sensors-own-telemetry', payload: Buffer.from(`{"t":21.5,"h":40,"i":${i},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxx"}`) })
  // record(): fire and forget, then one flush — what QoS 0 and connect/subscribe records do
  let n = 200_000
  let t0 = performance.now()
  for (let i = 0; i < n; i++) j.record(entry(i))
  await j.flush()
  const batched = n / ((performance.now() - t0) / 1000)
  // append(): each caller awaits its own commit, many in flight — what QoS 1 PUBACKs do
  n = 100_000
  t0 = performance.now()
  const ps: Promise<number>[] = []
  for (let i = 0; i < n; i++) ps.push(j.append(entry(i)))
  await Promise.all(ps)
  const appendAll = n / ((performance.now() - t0) / 1000)
  // one at a time: every record pays its own commit + fsync
  n = 1000
  t0 = performance.now()
  for (let i = 0; i < n; i++) await j.append(entry(i))
  const awaited = n / ((performance.now() - t0) / 1000)
  // steady load: 1,000 appends always in flight (each re-issued when it resolves), as 1,000
  // QoS 1 publishes waiting for their PUBACK would be; groups = LMDB transactions (+ fsync)
  let done = 0
  let running = true
  const one = (): void => { j.append(entry(0)).then(() => { done++; if (running) one() }, () => {}) }
  for (let i = 0; i < 1000; i++) one()
  await new Promise((r) => setTimeout(r, 1000))
  done = 0
  const groups0 = j.groupsCommitted
  t0 = performance.now()
  await new Promise((r) => setTimeout(r, 3000))
  const sec = (performance.now() - t0) / 1000
  const groups = j.groupsCommitted - groups0
  running = false
  const steady = { recordsPerSec: done / sec, commitsPerSec: groups / sec, perCommit: done / Math.max(1, groups) }
  await j.close()
  rmSync(dir, { recursive: true, force: true })
  return { batched, appendAll, awaited, steady }
}

// ------------------------------------------------------------------ 2. QoS 1 through the gateway
async function qos1Through(mode: 'lmdb' | 'memory', seconds: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), `ew-bench-${mode}-`))
  const { ensureDevKey } = await import('../src/identity/devkey.js')
  const key = await ensureDevKey(dir)
  const child = fork(here, ['gw', mode, dir], { execArgv: ['--import', 'tsx', ...(process.env.BENCH_JPROF && mode === 'lmdb' ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.BENCH_JPROF] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)))
  const minter = new TokenMinter(key.privateJwk)
  const PUBS = Number(process.env.BENCH_JPUBS ?? 10)
  const WINDOW = Number(process.env.BENCH_JWINDOW ?? 100)
  const REFILL = Math.max(1, Math.min(10, Math.floor(WINDOW / 2)))
  const payload = Buffer.from('{"t":21.5,"h":40,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')
  const clients: WireClient[] = await Promise.all(Array.from({ length: PUBS }, (_, i) => openClient(port, { clientId: `bench-j-${i}`, password: minter.mint(`bench-j-${i}`) })))
  let acks = 0
  let counting = false
  let running = true
  for (const [i, c] of clients.entries()) {
    const tpl = publishPacket(`site/1/dev/bench-j-${i}/telemetry`, payload, 1, 1)
    const at = publishIdOffset(tpl)
    let id = 0
    const send = (k: number): void => {
      const out = Buffer.allocUnsafe(tpl.length * k)
      for (let m = 0; m < k; m++) {
        tpl.copy(out, m * tpl.length)
        id = (id % 65535) + 1
        out[m * tpl.length + at] = id >> 8
        out[m * tpl.length + at + 1] = id & 0xff
      }
      c.socket.write(out)
    }
    let pending = 0
    c.framer.onPacket = (type) => {
      if (type !== PUBACK) return
      if (counting) acks++
      // refill in small batches to keep about WINDOW in flight
      if (++pending >= REFILL && running) { pending = 0; send(REFILL) }
    }
    send(WINDOW)
  }
  await new Promise((r) => setTimeout(r, 1000))
  counting = true
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const rate = acks / ((performance.now() - t0) / 1000)
  running = false
  await Promise.all(clients.map(closeClient))
  child.send({ type: 'stop' })
  await new Promise((r) => child.once('exit', r))
  rmSync(dir, { recursive: true, force: true })
  return rate
}

// ------------------------------------------------------------------ 3. shipping to Mosquitto
async function shipping(): Promise<{ recordsPerSec: number; batches: number }> {
  const { LmdbJournal } = await import('../src/journal/lmdb.js')
  const { Shipper } = await import('../src/journal/shipper.js')
  const { CheckpointSigner, ensureGatewayKey } = await import('../src/journal/signing.js')
  const { silentLogger } = await import('../src/logger.js')
  const dir = mkdtempSync(join(tmpdir(), 'ew-bench-ship-'))
  const port = await new Promise<number>((resolve) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as AddressInfo).port; s.close(() => resolve(p)) }) })
  writeFileSync(join(dir, 'm.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n${process.getuid?.() === 0 ? 'user root\n' : ''}`)
  const mosq = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'm.conf')], { stdio: 'ignore' })
  // never leave the broker behind, whatever happens below
  process.once('exit', () => mosq.kill('SIGKILL'))
  await new Promise((r) => setTimeout(r, 300))
  const j = new LmdbJournal({ dataDir: dir, gw: 'gw-bench', maxBytes: 2 * 1024 ** 3, retainShippedDays: 7, onFull: 'block', recordPayloads: 'masked', commitDelayMs: 2 })
  const N = 100_000
  for (let i = 0; i < N; i++) j.record({ type: 'publish', clientId: 'sensor-0042', topic: 'site/1/dev/sensor-0042/telemetry', qos: 1, bytes: 64, rule: 'r', payload: Buffer.from(`{"t":21.5,"i":${i}}`) })
  await j.flush()
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'gw-bench', protocolVersion: 4 })
  const link = {
    get connected() { return client.connected },
    publish: (topic: string, payload: Buffer, o: { qos: 1 }) => client.publishAsync(topic, payload, o).then(() => {}),
    on: () => link, off: () => link,
  }
  const shipper = new Shipper({ journal: j, link, signer: new CheckpointSigner(await ensureGatewayKey(dir)), topic: 'fleet/acme/gw-bench/audit', fleet: 'acme', batchRecords: 1000, batchMs: 100, logger: silentLogger })
  const t0 = performance.now()
  shipper.start()
  while (j.shippedSeq < N) await new Promise((r) => setTimeout(r, 20))
  const recordsPerSec = N / ((performance.now() - t0) / 1000)
  await shipper.stop()
  await client.endAsync()
  await j.close()
  mosq.kill('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
  return { recordsPerSec, batches: shipper.shippedBatches }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'gw') return gatewayChild(process.argv[3]!, process.argv[4]!)
  const seconds = arg('--seconds', 5)
  const k = (v: number): string => `${(v / 1000).toFixed(1)} k/s`
  const r = process.env.BENCH_SKIP_RAW ? { batched: 0, appendAll: 0, awaited: 0, steady: { recordsPerSec: 0, commitsPerSec: 0, perCommit: 0 } } : await journalRates()
  console.log(`journal record() + flush (group commit):      ${k(r.batched)}`)
  console.log(`journal append(), all in flight (group commit): ${k(r.appendAll)}`)
  console.log(`journal await append() one at a time:         ${k(r.awaited)}`)
  console.log(`journal, 1,000 appends always in flight:       ${k(r.steady.recordsPerSec)} (${r.steady.commitsPerSec.toFixed(0)} commit groups/s, ${r.steady.perCommit.toFixed(0)} records each)`)
  const rates: Record<string, number[]> = { memory: [], lmdb: [] }
  for (const mode of ['memory', 'lmdb', 'memory', 'lmdb'] as const) rates[mode]!.push(await qos1Through(mode, seconds))
  const best = (m: string): number => Math.max(...rates[m]!)
  console.log(`QoS 1 through the gateway, MemoryJournal:  ${rates.memory!.map(k).join(', ')}`)
  console.log(`QoS 1 through the gateway, LMDB journal:   ${rates.lmdb!.map(k).join(', ')}`)
  console.log(`LMDB / memory (best of each): ${((best('lmdb') / best('memory')) * 100).toFixed(0)} %`)
  if (process.env.BENCH_SKIP_SHIP) return
  const s = await shipping()
  console.log(`shipping to local Mosquitto: ${k(s.recordsPerSec)} records in ${s.batches} signed batches`)
}

await main()
