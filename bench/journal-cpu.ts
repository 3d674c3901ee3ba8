/**
 * `npx tsx bench/journal-cpu.ts [N]`: what one journal record costs in CPU, over all threads
 * (process.cpuUsage: the event loop, the writer thread, LMDB's threads, GC helpers) and on the
 * event loop alone (eventLoopUtilization), for N bridged-publish-like records (default 200,000,
 * three rounds after a warm-up) appended in bursts of 64 per turn into an LMDB journal in a temp
 * dir. In process, no network: the journal's share of a bridged message (docs/bridge.md).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { LmdbJournal } from '../src/journal/lmdb.js'
import { silentLogger } from '../src/logger.js'
import { systemClock } from '../src/clock.js'

const N = Number(process.argv[2] ?? 200_000)
const PER_TURN = 64
const dir = mkdtempSync(join(tmpdir(), 'ew-bench-journal-cpu-'))
const journal = new LmdbJournal({ dataDir: dir, gw: 'gw-bench', maxBytes: 4 * 1024 ** 3, retainShippedDays: 7, onFull: 'block', recordPayloads: 'masked', commitDelayMs: 2, logger: silentLogger, clock: systemClock })
journal.warm()
const payload = Buffer.from(JSON.stringify({ device: 'd-1', t: 21.5, h: 40, fw: '4.2.17', status: 'ok', note: 'x'.repeat(120) }))

async function run(n: number): Promise<void> {
  let pending: Promise<unknown>[] = []
  for (let i = 0; i < n; i++) {
    const c = 'bench-pub-' + (i % 10)
    pending.push(journal.append({ type: 'publish', session: 's-1-abcdef', clientId: c, sub: c, kind: 'device', topic: 'site/x/' + (i % 10), qos: 1, retain: false, bytes: payload.length, rule: 'open', payload }))
    if (pending.length === PER_TURN) {
      await new Promise((r) => setImmediate(r))
      pending = []
    }
  }
  await Promise.all(pending)
  await journal.flush()
}

async function main(): Promise<void> {
  await run(20_000)
  for (let round = 0; round < 3; round++) {
    const cpu0 = process.cpuUsage()
    const elu0 = performance.eventLoopUtilization()
    const t0 = performance.now()
    await run(N)
    const cpu = process.cpuUsage(cpu0)
    const elu = performance.eventLoopUtilization(elu0)
    const wallMs = performance.now() - t0
    console.log(`${N} records: ${((cpu.user + cpu.system) / N).toFixed(2)} µs of CPU a record (all threads), event loop ${((elu.active * 1000) / N).toFixed(2)} µs, ${Math.round((N / wallMs) * 1000)} records/s`)
  }
  await journal.close()
  rmSync(dir, { recursive: true, force: true })
}

void main()
