/**
 * One broker under test, in its own process (so the load generator never shares its event
 * loop): `gateway <dataDir> <policiesDir>` or `aedes`. Talks to bench/run.ts over IPC:
 * sends {type:'ready', port}; answers {type:'mem'} with memory figures after a full GC
 * (run with --expose-gc); {type:'profile-start'} / {type:'profile-stop', file} record a CPU
 * profile of what happens in between; {type:'stop'} stops it and exits.
 */
import { createServer, type AddressInfo, type Server } from 'node:net'
import { writeFileSync } from 'node:fs'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'
import { pathToFileURL } from 'node:url'
import { Session } from 'node:inspector/promises'

type Msg = { type: 'mem' } | { type: 'stop' } | { type: 'profile-start' } | { type: 'profile-stop'; file: string } | { type: 'heap-snapshot'; file: string }

const send = (m: object): void => { process.send?.(m) }
const gc = (globalThis as { gc?: () => void }).gc

async function startAedes(): Promise<{ port: number; stop(): Promise<void> }> {
  // loaded here, not at the top: the gateway process must load aedes through src/ as it ships
  // (src/broker/quiet-debug.ts runs first there)
  const { Aedes } = await import('aedes')
  // deliberately the defaults, as the issue asks: no setNoDelay, no limits
  const aedes = new Aedes()
  await aedes.listen()
  const server: Server = createServer(aedes.handle)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as AddressInfo).port,
    stop: () => new Promise<void>((r) => { server.close(); aedes.close(() => r()) }),
  }
}

async function startGateway(dataDir: string, policiesDir: string): Promise<{ port: number; stop(): Promise<void> }> {
  // BENCH_SRC: a snapshot of src/ at a commit (run.ts --ref), else this working tree
  const src = process.env.BENCH_SRC ? pathToFileURL(`${process.env.BENCH_SRC}/`).href : new URL('../src/', import.meta.url).href
  const { createGateway } = (await import(`${src}index.ts`)) as typeof import('../src/index.js')
  const { silentLogger } = (await import(`${src}logger.ts`)) as typeof import('../src/logger.js')
  const gw = await createGateway({
    env: {},
    cwd: dataDir,
    overrides: {
      gateway: { id: 'gw-bench', dataDir },
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }],
      admin: { host: '127.0.0.1', port: 0 },
      broker: { persistence: 'memory' },
      policies: { dir: policiesDir, watch: false },
      log: { level: 'silent' },
      limits: { connectRatePerAddress: '1000000/s', maxConnections: 100_000 },
      // BENCH_HS_SECRET: HS256 tokens instead of the dev ES256 key, a what-if that shows the
      // connect rate with a near-free signature check (HMAC ~µs)
      ...(process.env.BENCH_HS_SECRET ? { auth: { jwt: { secret: process.env.BENCH_HS_SECRET, algorithms: ['HS256'] } } } : {}),
      // BENCH_GATEWAY_OVERRIDES: JSON merged over these (what-ifs, e.g. '{"inventory":{"enabled":false}}')
      ...(process.env.BENCH_GATEWAY_OVERRIDES ? JSON.parse(process.env.BENCH_GATEWAY_OVERRIDES) as object : {}),
    },
  }, { logger: silentLogger, journal: process.env.BENCH_GATEWAY_JOURNAL === 'noop' ? noopJournal() : undefined })
  await gw.start()
  return { port: gw.address('mqtt')!.port, stop: () => gw.stop() }
}

/**
 * BENCH_GATEWAY_JOURNAL=noop: a journal that keeps nothing, to measure what the journal costs
 * (a what-if for the report, never a configuration: the gateway must journal).
 */
function noopJournal(): { append(): Promise<number>; commit(): Promise<unknown>; record(): void; readonly writable: boolean; flush(): Promise<void>; close(): Promise<void> } {
  let seq = 0
  return { append: () => Promise.resolve(++seq), commit: () => Promise.resolve(++seq), record: () => { seq++ }, writable: true, flush: async () => {}, close: async () => {} }
}

let profiler: Session | undefined

async function main(): Promise<void> {
  const [kind, dataDir, policiesDir] = process.argv.slice(2)
  const b = kind === 'gateway' ? await startGateway(dataDir!, policiesDir!) : await startAedes()
  process.on('message', (m: Msg) => {
    if (m.type === 'mem') {
      // two passes: the first may only schedule finalizers
      gc?.(); gc?.()
      const u = process.memoryUsage()
      // the young generation's committed size: V8 grows and shrinks it with recent allocation, a
      // main source of run-to-run swing in RSS per idle connection (bench/README.md, idle)
      const newSpace = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')?.space_size
      send({ type: 'mem', rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers, newSpace })
    } else if (m.type === 'heap-snapshot') {
      gc?.(); gc?.()
      send({ type: 'heap-snapshot', file: writeHeapSnapshot(m.file) })
    } else if (m.type === 'profile-start') {
      // the CPU profile covers only the measured scenario, not startup or module loading
      void (async () => {
        profiler = new Session()
        profiler.connect()
        await profiler.post('Profiler.enable')
        await profiler.post('Profiler.setSamplingInterval', { interval: 200 })
        await profiler.post('Profiler.start')
        send({ type: 'profile-started' })
      })()
    } else if (m.type === 'profile-stop') {
      void (async () => {
        const { profile } = await profiler!.post('Profiler.stop')
        writeFileSync(m.file, JSON.stringify(profile))
        profiler!.disconnect()
        send({ type: 'profile-stopped', file: m.file })
      })()
    } else if (m.type === 'stop') {
      const hard = setTimeout(() => process.exit(0), 3000)
      b.stop().finally(() => { clearTimeout(hard); process.exit(0) })
    }
  })
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready', port: b.port })
}

main().catch((err: Error) => {
  console.error(`bench broker ${process.argv[2]} failed: ${err.stack ?? err.message}`)
  process.exit(1)
})
