/**
 * `npm run bench [-- --quick] [--brokers aedes,gateway,mosquitto] [--scenarios ...] [--profile]`
 *
 * Runs edgewarden (JWT on), a bare Aedes 1.2 and Mosquitto side by side on 127.0.0.1, each
 * broker in its own child process and fresh for every scenario, the load generator in
 * another (bench/load.ts). Prints a table with ratios to bare Aedes and writes the figures
 * to bench/results/. Method and latest figures: bench/README.md.
 */
import { fork, spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer, connect as netConnect, type AddressInfo } from 'node:net'
import { cpus, tmpdir, totalmem, hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { JWK } from 'jose'
import { loadAverage, rssAnonBytes, rssBytes, shippedNode } from './lib/proc.js'
import type { Scenario } from './load.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')

type BrokerName = 'aedes' | 'gateway' | 'mosquitto'
type ScenarioName = 'connects' | 'connects16' | 'newids' | 'churn' | 'fanin0' | 'fanin1' | 'fanout' | 'latency' | 'idle' | 'storm' | 'slowsub'
const ALL_BROKERS: BrokerName[] = ['aedes', 'gateway', 'mosquitto']
const ALL_SCENARIOS: ScenarioName[] = ['connects', 'newids', 'connects16', 'churn', 'fanin0', 'fanin1', 'fanout', 'latency', 'idle', 'storm', 'slowsub']

// ---------------------------------------------------------------- options

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  if (i >= 0) return process.argv[i + 1]
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`))
  return eq?.slice(name.length + 3)
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`)
if (flag('help')) {
  console.log(`npm run bench -- [--quick] [--brokers ${ALL_BROKERS.join(',')}] [--scenarios ${ALL_SCENARIOS.join(',')}] [--ref REF] [--profile]
  --quick      short windows (about two minutes in all)
  --ref REF    benchmark the gateway's src/ as committed at REF (e.g. HEAD), not the working tree
  --readme     write this run's figures into bench/README.md (between the figures markers)
  --profile    CPU-profile the node brokers during each scenario (not idle); profiles in
               bench/results/prof/, summarized by: npx tsx bench/profile.ts FILE.cpuprofile [--per OPS]
  --draws N    idle: N draws per broker, each on a fresh broker, brokers in turn (default 5, --quick 3)
  --rounds N   connects, newids, connects16, fan-in, fan-out: N rounds (odd), each running every
               broker in turn on a fresh broker; the figures are the median round's, the ratio the
               median of the rounds' own ratios (default 3, --quick 1); --profile writes one
               profile per round, the results name the median round's
  --idle-warmup N  idle: connects before the first sample (default 200)
  --idle-samples MS,MS…  idle: when to sample after the warm-up and after the last connection opened
               (default 1500,6000,10000,15000,20000; the last of each counts)`)
  process.exit(0)
}
const quick = flag('quick')
/** benchmark src/ as committed at this ref (a snapshot in a temp dir) instead of the working tree */
const ref = option('ref')
const profile = flag('profile')
/** rewrite the figures section of bench/README.md with this run's table */
const readme = flag('readme')
const brokers = (option('brokers')?.split(',') ?? ALL_BROKERS) as BrokerName[]
const scenarios = (option('scenarios')?.split(',') ?? ALL_SCENARIOS) as ScenarioName[]
for (const b of brokers) if (!ALL_BROKERS.includes(b)) throw new Error(`unknown broker ${b}`)
for (const s of scenarios) if (!ALL_SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}`)

const P = quick
  ? { connects: 3000, connectWarmup: 1000, churn: 1000, warmupMs: 1000, measureMs: 2000, latWarmupMs: 1000, latMeasureMs: 3000, stallMs: 3000 }
  : { connects: 10000, connectWarmup: 2000, churn: 4000, warmupMs: 2000, measureMs: 5000, latWarmupMs: 1000, latMeasureMs: 8000, stallMs: 8000 }
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16)
const CONNECT_POOL = 1000
/**
 * connects/newids: connectors in flight. Bare Aedes' rate is the same at 16, 64 and 256; the
 * gateway's rises with the number in flight, because each event-loop turn's costs (the verify
 * worker's wake-up, a journal group, epoll) are shared by more CONNECTs. A site's devices
 * reconnecting after an outage are thousands at once. At 1,000 bare Aedes falls to about half
 * (SYN retransmits past its accept queue of 511; the gateway's is 4,096), so 256, chosen after
 * the sweep in bench/README.md ("Connects: how many in flight"). `connects16` keeps 16.
 */
const CONNECTORS = Number(process.env.BENCH_CONNECTORS ?? 256)
const CHURN_ROUNDS = 8
/** growth is counted from the end of this round: the bounded caches (verified tokens 10,000, inventory 2,048) are full by then */
const CHURN_STEADY_FROM = 3
const IDLE = 2000
/** idle: draws per broker (a fresh broker each), brokers interleaved so a change in machine load hits all of them */
const IDLE_DRAWS = Number(option('draws') ?? (quick ? 3 : 5))
/**
 * Throughput scenarios run in rounds, brokers in turn within each: this machine's speed drifts
 * by 10–30 % within minutes (bare Aedes' QoS 0 fan-in went 136 → 186 → 148 k in three
 * consecutive runs), so one broker measured a minute after the other compares drift as much as
 * brokers. A ratio is taken within each round (neighbours in time) and the median reported.
 */
const ROUNDS = Number(option('rounds') ?? (quick ? 1 : 3))
// odd: the median is then one round's figures, the same round for a broker's cell and its CPU
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS % 2 === 0) {
  console.error(`--rounds must be an odd whole number (1, 3, 5, …), not ${option('rounds')}`)
  process.exit(2)
}
const ROUNDED: ScenarioName[] = ['connects', 'newids', 'connects16', 'fanin0', 'fanin1', 'fanout']
/** idle: connects (their own clientIds) before the first sample, so one-time costs are not spread over the 2,000 */
const IDLE_WARMUP = Number(option('idle-warmup') ?? 200)
/**
 * idle: samples after GC, in ms after the warm-up and after the last connection opened; each
 * phase's last sample counts. V8's memory reducer shrinks the young generation (32 → 1 MiB
 * committed, ~16 KiB "per connection" at 2,000) some 5–8 s after allocation calms down: the
 * last sample comes well after it on both sides (the series shows what still moves until then).
 */
const IDLE_SAMPLES_MS = (option('idle-samples') ?? '1500,6000,10000,15000,20000').split(',').map(Number)
const PAYLOAD = 64
const LAT_RATE = 2000

// ---------------------------------------------------------------- brokers

interface Broker {
  readonly name: BrokerName
  readonly pid: number
  readonly port: number
  readonly jwk?: JWK
  /** set when the broker process died on its own during the scenario */
  readonly crashed: () => string | undefined
  /** memory after a full GC (node brokers); RSS only for Mosquitto */
  mem(): Promise<Mem>
  /** node brokers: a heap snapshot (after GC) written to `file` */
  heapSnapshot?(file: string): Promise<void>
  /** node brokers: CPU profile of what runs until the returned function is called */
  profile?(): Promise<(file: string) => Promise<void>>
  stop(): Promise<void>
}

interface Mem { rss: number; rssAnon: number; heapUsed?: number; heapTotal?: number; external?: number; newSpace?: number }

const TSX = ['--import', 'tsx']

function waitMessage<T>(child: ChildProcess, pred: (m: Record<string, unknown>) => boolean, what: string, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`timeout waiting for ${what}`)) }, timeoutMs)
    const onMsg = (m: Record<string, unknown>): void => {
      if (m.type === 'error') { cleanup(); reject(new Error(`${what}: ${String(m.message)}`)); return }
      if (pred(m)) { cleanup(); resolve(m as T) }
    }
    const onExit = (code: number | null): void => { cleanup(); reject(new Error(`${what}: process exited (${code})`)) }
    const cleanup = (): void => { clearTimeout(timer); child.off('message', onMsg); child.off('exit', onExit) }
    child.on('message', onMsg)
    child.once('exit', onExit)
  })
}

function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const t = setTimeout(() => { child.kill('SIGKILL'); resolve() }, timeoutMs)
    child.once('exit', () => { clearTimeout(t); resolve() })
  })
}

const tmpDirs: string[] = []
const children = new Set<ChildProcess>()
function track(c: ChildProcess): ChildProcess {
  // a send to a child that just died must not take the runner down: the exit is reported instead
  c.on('error', () => {})
  children.add(c)
  c.once('exit', () => children.delete(c))
  return c
}

const POLICY = `# bench: everyone may connect, publish and subscribe anywhere outside the reserved trees;
# the latency topic carries a JSON mask (issue 14: latency target with policy and masking on)
rules:
  - id: bench-connect
    effect: allow
    actions: [connect]
  - id: bench-open
    effect: allow
    actions: [publish, subscribe]
    topics: ['#']
masks:
  - id: bench-latency-mask
    topics: ['bench/lat']
    format: json
    fields:
      - { path: p, action: redact }
    detectors: [email]
`

async function startNode(name: 'aedes' | 'gateway'): Promise<Broker> {
  let args: string[] = [name]
  let dataDir = ''
  if (name === 'gateway') {
    dataDir = mkdtempSync(join(tmpdir(), 'ew-bench-'))
    tmpDirs.push(dataDir)
    const policies = join(dataDir, 'policies')
    mkdirSync(policies)
    writeFileSync(join(policies, 'bench.yaml'), POLICY)
    args = [name, join(dataDir, 'data'), policies]
  }
  // BENCH_GATEWAY_FLAGS / BENCH_AEDES_FLAGS: extra node flags for that child only (memory and GC experiments)
  const extra = (name === 'gateway' ? process.env.BENCH_GATEWAY_FLAGS ?? '' : name === 'aedes' ? process.env.BENCH_AEDES_FLAGS ?? '' : '').split(' ').filter(Boolean)
  const shipped = shippedNode()
  const execArgv = [...TSX, '--expose-gc', ...shipped.flags, ...extra]
  const env = shipped.env
  const child = track(fork(join(here, 'broker.ts'), args, { execArgv, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const ready = await waitMessage<{ port: number }>(child, (m) => m.type === 'ready', `${name} start`)
  let stopping = false
  let crashed: string | undefined
  child.once('exit', (code, signal) => {
    if (!stopping) crashed = `${name} process exited (code ${code}, signal ${signal})`
    else if (code !== 0 && signal !== 'SIGKILL') crashed = `${name} process exited with code ${code} while stopping`
  })
  let jwk: JWK | undefined
  const hs = process.env.BENCH_HS_SECRET
  if (name === 'gateway') jwk = hs ? { kty: 'oct', k: Buffer.from(hs).toString('base64url') } : JSON.parse(readFileSync(join(dataDir, 'data', 'keys', 'dev-es256.jwk'), 'utf8')) as JWK
  return {
    name, pid: child.pid!, port: ready.port, jwk, crashed: () => crashed,
    async mem() {
      if (!child.connected) throw new Error(`${name} is gone`)
      const m = waitMessage<{ heapUsed: number; heapTotal: number; external: number; newSpace?: number }>(child, (x) => x.type === 'mem', `${name} mem`)
      child.send({ type: 'mem' })
      const { heapUsed, heapTotal, external, newSpace } = await m
      return { rss: rssBytes(child.pid!), rssAnon: rssAnonBytes(child.pid!), heapUsed, heapTotal, external, newSpace }
    },
    async heapSnapshot(file: string) {
      const done = waitMessage(child, (x) => x.type === 'heap-snapshot', `${name} heap snapshot`, 120_000)
      child.send({ type: 'heap-snapshot', file })
      await done
    },
    async profile() {
      const started = waitMessage(child, (x) => x.type === 'profile-started', `${name} profile`)
      child.send({ type: 'profile-start' })
      await started
      return async (file: string) => {
        const stopped = waitMessage(child, (x) => x.type === 'profile-stopped', `${name} profile`)
        child.send({ type: 'profile-stop', file })
        await stopped
      }
    },
    async stop() {
      stopping = true
      if (child.connected) child.send({ type: 'stop' })
      await exited(child, 5000)
    },
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo
      s.close(() => resolve(port))
    })
  })
}

async function waitPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = netConnect({ port, host: '127.0.0.1' }, () => { s.destroy(); r(true) })
      s.once('error', () => r(false))
    })
    if (ok) return
    if (Date.now() > until) throw new Error(`nothing listening on ${port}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function startMosquitto(qos1Loop: boolean): Promise<Broker> {
  const dir = mkdtempSync(join(tmpdir(), 'ew-bench-mosq-'))
  tmpDirs.push(dir)
  const port = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  // defaults (no persistence, unlimited connections), but in the QoS 1 fan-in no cap on the
  // queue: the default of 1000 drops QoS 1 messages to a subscriber behind the closed loop's
  // window (the loop stalls, the figure is void); BENCH_MOSQUITTO_CONF appends lines
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\nlog_dest none\n${qos1Loop ? 'max_queued_messages 0\n' : ''}${process.env.BENCH_MOSQUITTO_CONF ?? ''}`)
  const child = track(spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] }))
  await waitPort(port)
  let stopping = false
  let crashed: string | undefined
  child.once('exit', (code, signal) => { if (!stopping) crashed = `mosquitto exited (code ${code}, signal ${signal})` })
  return {
    name: 'mosquitto', pid: child.pid!, port, crashed: () => crashed,
    async mem() { return { rss: rssBytes(child.pid!), rssAnon: rssAnonBytes(child.pid!) } },
    async stop() { stopping = true; child.kill('SIGTERM'); await exited(child, 5000) },
  }
}

const startBroker = (name: BrokerName, s: ScenarioName): Promise<Broker> => (name === 'mosquitto' ? startMosquitto(s === 'fanin1') : startNode(name))

// ---------------------------------------------------------------- load generator

class Load {
  #id = 0
  private constructor(readonly child: ChildProcess) {}
  static async start(): Promise<Load> {
    const child = track(fork(join(here, 'load.ts'), [], { execArgv: TSX, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
    await waitMessage(child, (m) => m.type === 'ready', 'load generator start')
    return new Load(child)
  }
  run<T>(s: Scenario, timeoutMs = 180_000): Promise<T> {
    const id = ++this.#id
    const p = waitMessage<{ result: T }>(this.child, (m) => m.type === 'result' && m.id === id, `load ${s.kind}`, timeoutMs)
    this.child.send({ type: 'run', id, ...s })
    return p.then((m) => m.result)
  }
  async release(): Promise<void> {
    const p = waitMessage(this.child, (m) => m.type === 'released', 'release idle')
    this.child.send({ type: 'release' })
    await p
  }
  async stop(): Promise<void> {
    if (this.child.connected) this.child.disconnect()
    await exited(this.child, 3000)
  }
}

// ---------------------------------------------------------------- scenarios

type Result = Record<string, number | string | undefined>
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** With --profile, node brokers record a CPU profile of each scenario (bench/results/prof/). */
async function runProfiled(s: ScenarioName, b: Broker, load: Load): Promise<Result> {
  // idle, churn: --profile takes heap snapshots instead (bench/heap-diff.ts)
  if (!profile || !b.profile || s === 'idle' || s === 'churn') return runScenario(s, b, load)
  const end = await b.profile()
  const r = await runScenario(s, b, load)
  const dir = join(here, 'results', 'prof')
  mkdirSync(dir, { recursive: true })
  const profileFile = join(dir, `${b.name}-${s}-${Date.now()}.cpuprofile`)
  await end(profileFile)
  return { ...r, profileFile }
}

async function runScenario(s: ScenarioName, b: Broker, load: Load): Promise<Result> {
  const common = { port: b.port, brokerPid: b.pid, jwk: b.jwk }
  switch (s) {
    case 'connects':
      // 1,000 devices reconnecting (every one seen during the warm-up), a fresh token each time
      return load.run<Result>({ kind: 'connects', ...common, count: P.connects, warmup: P.connectWarmup, concurrency: CONNECTORS, tag: 'c', pool: CONNECT_POOL })
    case 'connects16':
      return load.run<Result>({ kind: 'connects', ...common, count: P.connects, warmup: P.connectWarmup, concurrency: 16, tag: 'c', pool: CONNECT_POOL })
    case 'newids':
      return load.run<Result>({ kind: 'connects', ...common, count: P.connects, warmup: P.connectWarmup, concurrency: CONNECTORS, tag: 'n' })
    case 'churn': {
      // issue 14.3: heap after GC between rounds of connect/disconnect; the first rounds warm up
      // (every identity met once, the bounded caches filled: what they keep is not a leak), the
      // growth per 1,000 connects is counted from the end of round CHURN_STEADY_FROM
      const heap: number[] = []
      const rss: number[] = []
      // --profile: heap snapshots after the first and the last round (bench/heap-diff.ts)
      const snap = profile && b.heapSnapshot ? join(here, 'results', 'prof', `${b.name}-churn-${Date.now()}`) : undefined
      if (snap) mkdirSync(dirname(snap), { recursive: true })
      for (let round = 0; round < CHURN_ROUNDS; round++) {
        // the same clientIds every round (devices reconnecting), each time with a fresh token
        await load.run({ kind: 'connects', ...common, count: P.churn, warmup: 0, concurrency: CONCURRENCY, tag: 'churn' })
        // past one inventory flush (1 s): entries trimmed from its cache once their write commits
        await sleep(1300)
        if (snap && (round === 0 || round === CHURN_ROUNDS - 1)) await b.heapSnapshot!(`${snap}-${round === 0 ? 'first' : 'last'}.heapsnapshot`)
        const m = await b.mem()
        if (m.heapUsed !== undefined) heap.push(m.heapUsed / 2 ** 20)
        rss.push(m.rss / 2 ** 20)
      }
      const from = Math.min(CHURN_STEADY_FROM, CHURN_ROUNDS - 1) - 1
      const per1k = (series: number[]): number => ((series.at(-1)! - series[from]!) * 2 ** 20) / (P.churn * (CHURN_ROUNDS - 1 - from)) * 1000 / 1024
      return {
        connections: P.churn * CHURN_ROUNDS,
        heapMiB: heap.length ? heap.map((h) => h.toFixed(1)).join(' → ') : undefined,
        rssMiB: rss.map((h) => h.toFixed(1)).join(' → '),
        heapGrowthKiBPer1k: heap.length ? per1k(heap) : undefined,
        rssGrowthKiBPer1k: per1k(rss),
      }
    }
    case 'fanin0':
    case 'fanin1':
      return load.run({ kind: 'fanin', ...common, qos: s === 'fanin0' ? 0 : 1, publishers: 20, warmupMs: P.warmupMs, measureMs: P.measureMs, payloadBytes: PAYLOAD })
    case 'fanout':
      return load.run({ kind: 'fanout', ...common, subscribers: 50, warmupMs: P.warmupMs, measureMs: P.measureMs, payloadBytes: PAYLOAD })
    case 'latency':
      return load.run({ kind: 'latency', ...common, rate: LAT_RATE, warmupMs: P.latWarmupMs, measureMs: P.latMeasureMs, payloadBytes: PAYLOAD })
    case 'idle':
      return idleDraw(b, load)
    case 'slowsub': {
      const before = await b.mem()
      const r = await load.run<Result>({ kind: 'slowsub', ...common, publishers: 5, rate: 5000, payloadBytes: 1024, stallMs: P.stallMs, afterMs: 2000 })
      // after GC, once the stalled subscriber is gone: what the backlog left behind
      const after = await b.mem()
      return { ...r, heapLeftMiB: before.heapUsed !== undefined ? (after.heapUsed! - before.heapUsed) / 2 ** 20 : undefined }
    }
    case 'storm': {
      // an existing client's latency while a second generator opens connections flat out
      const storm = await Load.start()
      try {
        const warmupMs = 2000
        const stormRun = storm.run<Result>({ kind: 'connects', ...common, count: 1e9, warmup: 0, concurrency: CONCURRENCY, tag: 's', pool: CONNECT_POOL, durationMs: P.latMeasureMs + warmupMs })
        const lat = await load.run<Result>({ kind: 'latency', ...common, rate: LAT_RATE, warmupMs, measureMs: P.latMeasureMs, payloadBytes: PAYLOAD })
        const st = await stormRun
        return { ...lat, stormConnectRate: st.rate, stormRefused: st.refused, stormErrors: st.errors }
      } finally {
        await storm.stop()
      }
    }
  }
}

// ---------------------------------------------------------------- idle: memory per connection

/**
 * One draw of the idle scenario on a fresh broker. Warm-up first: IDLE_WARMUP connects of
 * their own clientIds, so what a broker pays once is not spread over the 2,000 — mqtt-packet's
 * number cache (65,536 two-byte Buffers, ~6 MiB of heap, built at the first packet written:
 * ~3 KiB "per connection" at 2,000, for Aedes and the gateway alike), compiled code, the
 * gateway's verify worker's first batches. Then samples after GC: before, and IDLE_SAMPLES_MS
 * after the last connection opened; the figure is the last one.
 */
async function idleDraw(b: Broker, load: Load, snap?: string): Promise<Result> {
  const common = { port: b.port, brokerPid: b.pid, jwk: b.jwk }
  /** samples after GC at IDLE_SAMPLES_MS from now */
  const samples = async (): Promise<Mem[]> => {
    const out: Mem[] = []
    let waited = 0
    for (const at of IDLE_SAMPLES_MS) {
      await sleep(at - waited)
      waited = at
      out.push(await b.mem())
    }
    return out
  }
  // 100 devices reconnecting: the inventory's bounded cache (2,048 entries) stays far from full, so
  // the 2,000 measured devices' entries are counted as in a cold broker, not swapped for these
  await load.run({ kind: 'connects', ...common, count: IDLE_WARMUP, warmup: 0, concurrency: CONCURRENCY, tag: 'w', pool: 100 })
  const before = (await samples()).at(-1)!
  if (snap) await b.heapSnapshot!(`${snap}-before.heapsnapshot`)
  const r = await load.run<{ opened: number; failed: number }>({ kind: 'idle', ...common, count: IDLE, concurrency: 50 })
  const after = await samples()
  if (snap) await b.heapSnapshot!(`${snap}-after.heapsnapshot`)
  await load.release()
  const last = after.at(-1)!
  const per = (f: (m: Mem) => number | undefined, m = last): number | undefined => {
    const x = f(before)
    const y = f(m)
    return x === undefined || y === undefined ? undefined : (y - x) / r.opened / 1024
  }
  return {
    ...r,
    rssPerConnKiB: per((m) => m.rss),
    // without file-backed pages (LMDB's map, mapped code): what the process allocated
    rssAnonPerConnKiB: per((m) => m.rssAnon),
    // the first sample after opening (1.5 s): the burst's young generations (the main isolate's
    // and the worker threads') still grown — what the single sample of earlier runs measured
    rssBurstPerConnKiB: per((m) => m.rss, after[0]),
    // every sample after opening: the young generation's shrink and late allocations show here
    rssSeriesKiB: after.map((m) => per((x) => x.rss, m)!.toFixed(1)).join(' → '),
    heapPerConnKiB: per((m) => m.heapUsed),
    // RSS = V8 heap reserved (heapTotal) + external buffers + native (libuv, sockets, malloc)
    heapTotalPerConnKiB: per((m) => m.heapTotal),
    // the young generation's committed size, last sample minus before (MiB): not 0 means the
    // memory reducer ran on one side only, and the figure carries up to ±16 KiB of it
    newSpaceGrowthMiB: before.newSpace !== undefined ? (last.newSpace! - before.newSpace) / 2 ** 20 : undefined,
    newSpaceMiB: before.newSpace !== undefined ? `${(before.newSpace / 2 ** 20).toFixed(0)} → ${after.map((m) => (m.newSpace! / 2 ** 20).toFixed(0)).join(' → ')}` : undefined,
    externalPerConnKiB: per((m) => m.external),
    rssBeforeMiB: before.rss / 2 ** 20,
    rssAfterMiB: last.rss / 2 ** 20,
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/** Median, min and max of one idle figure over the draws, and the draws themselves. */
function summarize(draws: Result[], key: string): Result {
  const xs = draws.map((d) => d[key]).filter((x): x is number => typeof x === 'number')
  if (xs.length === 0) return {}
  return { [key]: median(xs), [`${key}Min`]: Math.min(...xs), [`${key}Max`]: Math.max(...xs), [`${key}Draws`]: xs.map((x) => x.toFixed(1)).join(' ') }
}

/**
 * The idle scenario: IDLE_DRAWS draws per broker, each on a fresh broker, the brokers in turn
 * (aedes, gateway, mosquitto, aedes, …) so that a change in machine load over the minutes
 * falls on all of them alike. One draw swings by several KiB (young generation resized,
 * malloc keeping or returning pages): the figure is the median, shown with the range.
 */
async function runIdle(names: BrokerName[], load: () => Promise<Load>): Promise<Partial<Record<BrokerName, Result>>> {
  const draws = new Map<BrokerName, Result[]>(names.map((n) => [n, []]))
  const errors = new Map<BrokerName, string>()
  for (let d = 0; d < IDLE_DRAWS; d++) {
    for (const name of names) {
      const b = await startBroker(name, 'idle')
      // --profile: heap snapshots around the first draw (bench/heap-diff.ts)
      const snap = profile && d === 0 && b.heapSnapshot ? join(here, 'results', 'prof', `${b.name}-idle-${Date.now()}`) : undefined
      if (snap) mkdirSync(dirname(snap), { recursive: true })
      let r: Result
      try {
        r = await idleDraw(b, await load(), snap)
      } catch (err) {
        r = { error: (err as Error).message }
      }
      const crash = b.crashed()
      await b.stop()
      if (crash || r.error) errors.set(name, crash ?? String(r.error))
      else draws.get(name)!.push(r)
      console.log(`  idle     ${name.padEnd(9)} draw ${d + 1}/${IDLE_DRAWS}: ${r.error ? `error: ${String(r.error)}` : `RSS ${(r.rssPerConnKiB as number).toFixed(1)} KiB (anonymous ${(r.rssAnonPerConnKiB as number).toFixed(1)}; at ${IDLE_SAMPLES_MS.map((ms) => ms / 1000).join(', ')} s: ${String(r.rssSeriesKiB)})${r.heapPerConnKiB !== undefined ? `, heap ${(r.heapPerConnKiB as number).toFixed(1)}, new space ${String(r.newSpaceMiB)} MiB` : ''}`}`)
    }
  }
  const out: Partial<Record<BrokerName, Result>> = {}
  for (const name of names) {
    const ds = draws.get(name)!
    if (ds.length === 0) { out[name] = { error: errors.get(name) ?? 'no draw' }; continue }
    out[name] = {
      draws: ds.length,
      ...(errors.has(name) ? { error: `${IDLE_DRAWS - ds.length} of ${IDLE_DRAWS} draws failed: ${errors.get(name)}` } : {}),
      ...summarize(ds, 'rssPerConnKiB'),
      ...summarize(ds, 'rssAnonPerConnKiB'),
      ...summarize(ds, 'rssBurstPerConnKiB'),
      ...summarize(ds, 'heapPerConnKiB'),
      ...summarize(ds, 'heapTotalPerConnKiB'),
      ...summarize(ds, 'newSpaceGrowthMiB'),
      ...summarize(ds, 'rssBeforeMiB'),
    }
  }
  return out
}

/**
 * One broker's rounds of a throughput scenario: the median round's result (its CPU figures
 * with it), every round's rate, and the rounds' ratios to bare Aedes' same round.
 */
function medianRound(rs: Result[]): Result {
  const ok = rs.filter((r) => !r.error && typeof r.rate === 'number')
  if (ok.length === 0) return rs[rs.length - 1]!
  const sorted = [...ok].sort((a, b) => (a.rate as number) - (b.rate as number))
  const mid = sorted[Math.floor((sorted.length - 1) / 2)]!
  // what went wrong in any round stays visible beside the median's figure
  const problems = rs.flatMap((r, i) => [
    ...(r.error ? [`round ${i + 1}: ${String(r.error)}`] : []),
    ...(r.crashedAtStop ? [`round ${i + 1}: crashed at stop`] : []),
    ...((r.stalls as number | undefined) ? [`round ${i + 1}: ${r.stalls} stalls`] : []),
  ])
  return { ...mid, rounds: JSON.stringify(rs.map((r) => (typeof r.rate === 'number' && !r.error ? Math.round(r.rate) : null))), ...(problems.length ? { roundProblems: problems.join('; ') } : {}) }
}

// ---------------------------------------------------------------- report

const LABEL: Record<ScenarioName, string> = {
  connects: `connect → CONNACK → disconnect /s, ${CONNECTORS} connectors`,
  connects16: 'the same, 16 connectors (latency-bound)',
  newids: 'the same with never-seen clientIds /s',
  churn: 'heap growth over connect churn, per 1,000 connects',
  fanin0: 'QoS 0 fan-in 20 → 1, msgs/s',
  fanin1: 'QoS 1 fan-in 20 → 1, msgs/s',
  fanout: 'fan-out 1 → 50, deliveries/s',
  latency: 'latency @ 2,000 msg/s',
  idle: 'RSS per idle connection (2,000), settled; median (range) of the draws',
  storm: 'latency @ 2,000 msg/s during a connect storm',
  slowsub: 'one subscriber stops reading (5,000 msg/s of 1 KiB)',
}

function fmtRate(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} k` : n >= 1000 ? `${(n / 1000).toFixed(2)} k` : n.toFixed(0)
}
const ms = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '—' : n < 1 ? `${n.toFixed(2)} ms` : `${n.toFixed(1)} ms`)

function cell(s: ScenarioName, r: Result | undefined): string {
  if (!r) return '—'
  // idle: a failed draw is reported beside the median of the others
  if (r.error && !(s === 'idle' && typeof r.rssPerConnKiB === 'number')) return `error: ${String(r.error)}`
  switch (s) {
    case 'latency': case 'storm': return `${ms(r.p50 as number)} / ${ms(r.p99 as number)} / ${ms(r.max as number)}`
    case 'idle': {
      const f = (k: string): string => `${(r[k] as number).toFixed(1)} (${(r[`${k}Min`] as number).toFixed(1)}–${(r[`${k}Max`] as number).toFixed(1)})`
      return `${f('rssPerConnKiB')} KiB, anonymous ${f('rssAnonPerConnKiB')}; at ${IDLE_SAMPLES_MS[0]! / 1000} s ${f('rssBurstPerConnKiB')}${r.error ? ` ⚠ ${String(r.error)}` : ''}`
    }
    case 'churn': return r.heapGrowthKiBPer1k !== undefined ? `${(r.heapGrowthKiBPer1k as number).toFixed(1)} KiB (heap ${r.heapMiB} MiB)` : `RSS ${(r.rssGrowthKiBPer1k as number).toFixed(1)} KiB`
    case 'slowsub': return `RSS +${(r.rssGrowthMiB as number).toFixed(0)} MiB (anon +${(r.rssAnonGrowthMiB as number).toFixed(0)}), others ${((r.fastRatioStalled as number) * 100).toFixed(0)} %${r.crashedAtStop ? ', crashed' : ''}`
    default: {
      // a refused or failed CONNECT still counts in the rate: show it rather than hide it
      const bad = ((r.refused as number | undefined) ?? 0) + ((r.errors as number | undefined) ?? 0)
      const stalls = (r.stalls as number | undefined) ?? 0
      return `${fmtRate(r.rate as number)} (cpu ${r.brokerCpu}%/${r.loadCpu}%)${bad ? ` ⚠ ${bad} refused/failed` : ''}${stalls ? ` ⚠ ${stalls} stalls: messages lost` : ''}${r.roundProblems ? ` ⚠ ${String(r.roundProblems)}` : ''}`
    }
  }
}

function ratio(s: ScenarioName, rs: Partial<Record<BrokerName, Result>>): string {
  const a = rs.aedes
  const g = rs.gateway
  if (!a || !g || a.error || g.error) return '—'
  switch (s) {
    case 'latency': case 'storm': return `p99 ${((g.p99 as number) / (a.p99 as number)).toFixed(2)}×`
    case 'idle': return `${((g.rssPerConnKiB as number) / (a.rssPerConnKiB as number)).toFixed(2)}×`
    case 'slowsub': case 'churn': return '—'
    default: {
      // rounds: the median of each round's own ratio (neighbours in time), and their range
      const ar = a.rounds ? (JSON.parse(a.rounds as string) as (number | null)[]) : undefined
      const gr = g.rounds ? (JSON.parse(g.rounds as string) as (number | null)[]) : undefined
      if (ar && gr && ar.length === gr.length) {
        // a round either broker failed has no ratio; a gateway round at 0 has one (0 %)
        const rs = ar.map((x, i) => (x !== null && x > 0 && gr[i] !== null && gr[i] !== undefined ? gr[i]! / x : undefined)).filter((x): x is number => x !== undefined).sort((x, y) => x - y)
        if (rs.length > 0) {
          const pct = (x: number): string => (x * 100).toFixed(0)
          return `${pct(rs[Math.floor((rs.length - 1) / 2)]!)} %${rs.length > 1 ? ` (${pct(rs[0]!)}–${pct(rs[rs.length - 1]!)})` : ''}`
        }
      }
      return `${(((g.rate as number) / (a.rate as number)) * 100).toFixed(0)} %`
    }
  }
}

const TARGET: Record<ScenarioName, string> = {
  connects: '≥ 70 %',
  connects16: '≥ 70 %',
  newids: '—',
  churn: 'flat',
  fanin0: '≥ 95 %',
  fanin1: '≥ 95 %',
  fanout: '≥ 95 %',
  latency: 'p99 ≤ 2 ms',
  idle: '≤ 24 KiB',
  storm: '—',
  slowsub: 'bounded, others 100 %',
}

function table(results: Partial<Record<ScenarioName, Partial<Record<BrokerName, Result>>>>): string {
  const lines = [
    '| scenario | bare Aedes | edgewarden | Mosquitto | edgewarden / Aedes | target |',
    '|---|---:|---:|---:|---:|---|',
  ]
  for (const s of scenarios) {
    const rs = results[s] ?? {}
    lines.push(`| ${LABEL[s]}${s === 'latency' || s === 'storm' ? ' (p50 / p99 / max)' : ''} | ${cell(s, rs.aedes)} | ${cell(s, rs.gateway)} | ${cell(s, rs.mosquitto)} | ${ratio(s, rs)} | ${TARGET[s]} |`)
  }
  return lines.join('\n')
}

/** Broker CPU time per operation (CONNECT, message received, delivery): ratios that hold on a busy machine. */
function cpuTable(results: Partial<Record<ScenarioName, Partial<Record<BrokerName, Result>>>>): string {
  const lines = ['| broker CPU per operation: process (main thread) | bare Aedes | edgewarden | Mosquitto | edgewarden / Aedes |', '|---|---:|---:|---:|---:|']
  const f = (n: number): string => n.toFixed(n < 10 ? 2 : 0)
  const us = (r: Result | undefined): string => (r && typeof r.brokerUsPerOp === 'number' && !r.error ? `${f(r.brokerUsPerOp)} (${f(r.brokerMainUsPerOp as number)}) µs` : '—')
  for (const s of scenarios) {
    const rs = results[s]
    if (!rs || !['connects', 'connects16', 'newids', 'fanin0', 'fanin1', 'fanout'].includes(s)) continue
    const a = rs.aedes?.brokerUsPerOp as number | undefined
    const g = rs.gateway?.brokerUsPerOp as number | undefined
    const am = rs.aedes?.brokerMainUsPerOp as number | undefined
    const gm = rs.gateway?.brokerMainUsPerOp as number | undefined
    lines.push(`| ${LABEL[s].replace(/, (msgs|deliveries)\/s| \/s(?=,|$)/, '')} | ${us(rs.aedes)} | ${us(rs.gateway)} | ${us(rs.mosquitto)} | ${a && g ? `${(g / a).toFixed(2)}× (${am && gm ? (gm / am).toFixed(2) : '—'}×)` : '—'} |`)
  }
  return lines.length > 2 ? lines.join('\n') : ''
}

function versions(): { node: string; aedes: string; gateway: string } {
  const v = (f: () => string): string => { try { return f().trim() } catch { return 'unknown' } }
  return {
    node: process.version,
    aedes: v(() => (JSON.parse(readFileSync(join(root, 'node_modules/aedes/package.json'), 'utf8')) as { version: string }).version),
    gateway: ref ? `${ref} = ${v(() => execFileSync('git', ['rev-parse', '--short', ref], { cwd: root, encoding: 'utf8' }))}` : `working tree on ${v(() => execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }))}${v(() => execFileSync('git', ['status', '--porcelain', 'src'], { cwd: root, encoding: 'utf8' })) ? ' + uncommitted src changes' : ''}`,
  }
}

function mosquittoVersion(): string {
  try {
    execFileSync('/usr/sbin/mosquitto', ['-h'], { encoding: 'utf8', stdio: 'pipe' })
  } catch (err) {
    // `mosquitto -h` prints its usage and exits non-zero
    const out = String((err as { stdout?: string }).stdout ?? '')
    return /mosquitto version (\S+)/.exec(out)?.[1] ?? 'unknown'
  }
  return 'unknown'
}

// ---------------------------------------------------------------- main

/** src/ of `ref` in a temp dir beside a node_modules link; the gateway child imports it (BENCH_SRC). */
function snapshot(r: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ew-bench-src-'))
  tmpDirs.push(dir)
  execFileSync('sh', ['-c', `git archive --format=tar "$1" src package.json | tar -x -C "$2"`, 'sh', r, dir], { cwd: root })
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  return join(dir, 'src')
}

async function main(): Promise<void> {
  const started = new Date()
  if (ref) process.env.BENCH_SRC = snapshot(ref)
  const loadBefore = loadAverage()
  console.log(`edgewarden bench${quick ? ' (quick)' : ''}: ${scenarios.join(', ')} on ${brokers.join(', ')}; gateway ${versions().gateway}; load average ${loadBefore}`)
  let load = await Load.start()
  const results: Partial<Record<ScenarioName, Partial<Record<BrokerName, Result>>>> = {}
  try {
    for (const s of scenarios) {
      results[s] = {}
      if (s === 'idle') {
        results[s] = await runIdle(brokers, async () => {
          // a generator that died (it should not) is replaced so the other draws still run
          if (load.child.exitCode !== null || load.child.signalCode !== null) load = await Load.start()
          return load
        })
        for (const name of brokers) console.log(`  ${s.padEnd(8)} ${name.padEnd(9)} ${cell(s, results[s][name])}`)
        continue
      }
      const rounds = ROUNDED.includes(s) ? ROUNDS : 1
      const byBroker = new Map<BrokerName, Result[]>(brokers.map((n) => [n, []]))
      for (let round = 0; round < rounds; round++) {
        for (const name of brokers) {
          const b = await startBroker(name, s)
          let r: Result
          try {
            r = await runProfiled(s, b, load)
          } catch (err) {
            r = { error: (err as Error).message }
          }
          // a broker that died during the scenario has no figure, whatever the generator counted
          const crash = b.crashed()
          if (crash) r = { ...r, error: crash }
          await b.stop()
          // a generator that died (it should not) is replaced so the other scenarios still run
          if (load.child.exitCode !== null || load.child.signalCode !== null) load = await Load.start()
          const crashAtStop = b.crashed()
          if (crashAtStop && !crash) r = { ...r, crashedAtStop: crashAtStop }
          byBroker.get(name)!.push(r)
          console.log(`  ${s.padEnd(8)} ${name.padEnd(9)} ${rounds > 1 ? `round ${round + 1}: ` : ''}${cell(s, r)}`)
        }
      }
      for (const name of brokers) results[s]![name] = rounds > 1 ? medianRound(byBroker.get(name)!) : byBroker.get(name)![0]!
    }
  } finally {
    await load.stop()
  }
  const loadAfter = loadAverage()
  const cpuOut = cpuTable(results)
  const out = cpuOut ? `${table(results)}\n\n${cpuOut}` : table(results)
  console.log(`\n${out}\n\ncpu a/b = broker / load generator, % of one core over the measured window; ${ROUNDS > 1 ? `throughput rows: the median of ${ROUNDS} rounds, brokers in turn, the ratio the median of the rounds' own (range); ` : ''}load average before ${loadBefore}, after ${loadAfter}`)
  const machine = { host: hostname(), cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), loadBefore, loadAfter }
  const dir = join(here, 'results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `bench-${started.toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`)
  const json = JSON.stringify({ date: started.toISOString(), quick, params: { ...P, concurrency: CONCURRENCY, connectors: CONNECTORS, rounds: ROUNDS, idle: IDLE, payloadBytes: PAYLOAD, latencyRate: LAT_RATE }, machine, versions: { ...versions(), mosquitto: mosquittoVersion() }, results, table: out }, null, 2)
  writeFileSync(file, json)
  writeFileSync(join(dir, 'latest.json'), json)
  console.log(`results: ${file}`)
  if (readme) writeReadme(started, machine, out, results)
}

/** The run itself keeps about two cores busy; what was running before it is other work. */
function loadNote(before: number): string {
  if (before > 4) return ' — **other work was running on this machine: absolute figures are low and noisy; the CPU-per-operation ratios hold better**'
  if (before > 1) return ' — some other work was still running on this machine when the run started: figures carry some noise'
  return ''
}

function writeReadme(started: Date, machine: Record<string, unknown>, out: string, results: Partial<Record<ScenarioName, Partial<Record<BrokerName, Result>>>>): void {
  const file = join(here, 'README.md')
  const text = readFileSync(file, 'utf8')
  const start = '<!-- figures:start -->'
  const end = '<!-- figures:end -->'
  const v = { ...versions(), mosquitto: mosquittoVersion() }
  const notes: string[] = []
  const lat = results.latency?.gateway
  if (lat && !lat.error) notes.push(`gateway latency run: ${lat.masked ? `${lat.masked} of ${lat.samples} payloads arrived masked (mask active)` : 'no payload arrived masked: the masking stage was not in the data path of this build'}`)
  for (const [s, rs] of Object.entries(results)) for (const [b, r] of Object.entries(rs ?? {})) {
    if (r?.error) notes.push(`${s} / ${b}: ${String(r.error)}`)
    if (r?.crashedAtStop) notes.push(`${s} / ${b}: ${String(r.crashedAtStop)} (after the figure was taken)`)
    if (typeof r?.stalls === 'number' && r.stalls > 0) notes.push(`${s} / ${b}: the closed loop stalled ${r.stalls}× (messages lost)`)
  }
  const section = [
    start,
    `## Latest figures${quick ? ' (quick run)' : ''}`,
    '',
    `${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${machine.cpus} cores (${String(machine.cpuModel)}), ${machine.memGiB} GiB, Node ${v.node}, Aedes ${v.aedes}, Mosquitto ${v.mosquitto}; gateway ${v.gateway}.`,
    `Load average (1/5/15 min) before the run ${String(machine.loadBefore)}, after ${String(machine.loadAfter)}${loadNote(Number(String(machine.loadBefore).split(' ')[0]))}.`,
    '',
    out,
    '',
    `Throughput cells: rate (cpu broker % / generator %, of one core)${ROUNDS > 1 ? `, the median of ${ROUNDS} rounds (brokers in turn in each round); the ratio is the median of the rounds' own ratios (their range in brackets); the CPU table is each broker's median round` : ''}. Latency: p50 / p99 / max.`,
    ...(notes.length ? ['', ...notes.map((n) => `- ${n}`)] : []),
    end,
  ].join('\n')
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  writeFileSync(file, i >= 0 && j > i ? text.slice(0, i) + section + text.slice(j + end.length) : `${text.trimEnd()}\n\n${section}\n`)
  console.log(`figures written to ${file}`)
}

const cleanup = (): void => {
  for (const c of children) c.kill('SIGKILL')
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true })
}
process.on('SIGINT', () => { cleanup(); process.exit(130) })
main().then(() => { cleanup(); process.exit(0) }, (err: Error) => { console.error(err.stack ?? err.message); cleanup(); process.exit(1) })
