/**
 * `node --expose-gc --import tsx bench/memory.ts gateway|aedes [--idle 2000] [--warmup 200] [--churn ROUNDS] [--src DIR] [--snap PREFIX]`
 *
 * Memory of one broker in this process (the load generator, bench/load.ts, in a child), for
 * what `npm run bench` cannot show: V8's spaces before and after N idle authenticated
 * connections (which space grew: the young generation's one-off growth vs old space), and
 * the heap after GC over more churn rounds than run.ts's five (4,000 reconnects of the same
 * 4,000 clientIds per round, fresh tokens), to see it level off once bounded caches are full.
 * `--src`: another src/ (e.g. a `git archive` of a commit) for a same-window A/B; `--snap`:
 * heap snapshots before/after the idle connections (bench/heap-diff.ts --owners). `--warmup`:
 * connects of their own clientIds before the first sample, as run.ts's idle scenario does
 * (mqtt-packet's 6 MiB number cache, compiled code: one-time costs, not per connection).
 */
import { fork } from 'node:child_process'
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'

const arg = (flag: string): string | undefined => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : undefined)
const kind = process.argv[2] === 'aedes' ? 'aedes' : 'gateway'
const src = resolve(arg('--src') ?? fileURLToPath(new URL('../src', import.meta.url)))
const idleCount = Number(arg('--idle') ?? 2000)
const warmup = Number(arg('--warmup') ?? 200)
const churnRounds = arg('--churn') !== undefined ? Number(arg('--churn')) : 0
const snap = arg('--snap')
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with node --expose-gc --import tsx')

const status = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024
function mem(): { rss: number; anon: number; heapUsed: number; heapTotal: number; spaces: Map<string, { committed: number; used: number }> } {
  gc!(); gc!()
  const u = process.memoryUsage()
  return { rss: status('VmRSS'), anon: status('RssAnon'), heapUsed: u.heapUsed, heapTotal: u.heapTotal, spaces: new Map(getHeapSpaceStatistics().map((s) => [s.space_name, { committed: s.space_size, used: s.space_used_size }])) }
}

async function startBroker(): Promise<{ port: number; jwk?: object }> {
  if (kind === 'aedes') {
    const { Aedes } = await import('aedes')
    const aedes = new Aedes()
    await aedes.listen()
    const server = createServer(aedes.handle)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    return { port: (server.address() as AddressInfo).port }
  }
  // as bench/broker.ts: dev ES256 key, memory persistence, LMDB journal, allow-all policy
  const dir = mkdtempSync(join(tmpdir(), 'ew-bench-mem-'))
  const policies = join(dir, 'policies')
  mkdirSync(policies)
  writeFileSync(join(policies, 'bench.yaml'), "rules:\n  - id: c\n    effect: allow\n    actions: [connect]\n  - id: o\n    effect: allow\n    actions: [publish, subscribe]\n    topics: ['#']\n")
  const { createGateway } = (await import(pathToFileURL(join(src, 'index.ts')).href)) as typeof import('../src/index.js')
  const { silentLogger } = (await import(pathToFileURL(join(src, 'logger.ts')).href)) as typeof import('../src/logger.js')
  const gw = await createGateway({ env: {}, cwd: dir, overrides: { gateway: { id: 'gw-mem', dataDir: join(dir, 'data') }, listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }], admin: { host: '127.0.0.1', port: 0 }, broker: { persistence: 'memory' }, policies: { dir: policies, watch: false }, log: { level: 'silent' }, limits: { connectRatePerAddress: '1000000/s', maxConnections: 100_000 } } }, { logger: silentLogger })
  await gw.start()
  return { port: gw.address('mqtt')!.port, jwk: JSON.parse(readFileSync(join(dir, 'data', 'keys', 'dev-es256.jwk'), 'utf8')) as object }
}

const { port, jwk } = await startBroker()
const load = fork(fileURLToPath(new URL('./load.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
let id = 0
const wait = (pred: (m: { type: string; id?: number }) => boolean): Promise<{ type: string; result?: unknown; message?: string }> =>
  new Promise((r) => { const f = (m: { type: string; id?: number }): void => { if (pred(m)) { load.off('message', f); r(m) } }; load.on('message', f) })
async function run(s: object): Promise<unknown> {
  const n = ++id
  const done = wait((m) => (m.type === 'result' || m.type === 'error') && m.id === n)
  load.send({ type: 'run', id: n, port, jwk, brokerPid: process.pid, ...s })
  const m = await done
  if (m.type === 'error') throw new Error(m.message)
  return m.result
}
await wait((m) => m.type === 'ready')
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const kib = (bytes: number): string => (bytes / 1024).toFixed(2)

if (churnRounds > 0) {
  const heap: string[] = []
  for (let r = 0; r < churnRounds; r++) {
    await run({ kind: 'connects', count: 4000, warmup: 0, concurrency: 16, tag: 'churn' })
    await sleep(1300) // past one inventory flush and its commit
    heap.push((mem().heapUsed / 2 ** 20).toFixed(2))
  }
  console.log(`${kind} churn, heap after GC per round of 4,000 connects (MiB): ${heap.join(' → ')}`)
} else {
  if (warmup > 0) await run({ kind: 'connects', count: warmup, warmup: 0, concurrency: 16, tag: 'w' })
  await sleep(500)
  const a = mem()
  if (snap) writeHeapSnapshot(`${snap}-before.heapsnapshot`)
  const r = (await run({ kind: 'idle', count: idleCount, concurrency: 50 })) as { opened: number }
  await sleep(1500)
  const b = mem()
  if (snap) writeHeapSnapshot(`${snap}-after.heapsnapshot`)
  const per = (x: number, y: number): string => kib((y - x) / r.opened)
  console.log(`${kind}: ${r.opened} idle connections, per connection KiB: RSS ${per(a.rss, b.rss)}, anonymous ${per(a.anon, b.anon)}, heap used ${per(a.heapUsed, b.heapUsed)}, heap committed ${per(a.heapTotal, b.heapTotal)}; RSS before ${(a.rss / 2 ** 20).toFixed(1)} MiB`)
  for (const [name, y] of b.spaces) {
    const x = a.spaces.get(name) ?? { committed: 0, used: 0 }
    if (y.committed !== x.committed || y.used !== x.used) console.log(`  ${name.padEnd(20)} committed ${per(x.committed, y.committed).padStart(7)}  used ${per(x.used, y.used).padStart(7)}  (${(y.committed / 2 ** 20).toFixed(1)} MiB committed after)`)
  }
}
load.disconnect()
process.exit(0)
