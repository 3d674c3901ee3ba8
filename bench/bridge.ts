/**
 * `npx tsx bench/bridge.ts [--n 50000] [--outage 100000]` — the cloud bridge (issue 7):
 *
 *  1. direct: QoS 1 publisher → Mosquitto → cloud subscriber
 *  2. bridged: QoS 1 publisher → edgewarden (child process) → out mapping → Mosquitto → the same subscriber
 *  3. drain: Mosquitto stopped, `--outage` messages queued in the gateway's outbox, Mosquitto started;
 *     the drain rate is messages / time from the restart until the subscriber has them all
 *  and, for scale, the gateway's QoS 1 path to a local subscriber (not bridged), and a bare peer:
 *  QoS 1 publisher → bare Aedes forwarding through MQTT.js (bench/lib/bare-bridge.ts) → Mosquitto,
 *  a third phase in each round with the cores shared (`--bare N` sets its count, 0 skips it)
 *
 * `--local N` sets the not-bridged comparison's count (0 skips it). `--rounds R` (default 3) runs
 * the direct and bridged phases in turn R times and reports the median round's ratio. `--cpus`
 * (default both) runs those rounds with every process sharing the cores, then with the gateway
 * on a core of its own (see Cpus below).
 * Same publishers (`--pubs`, default 10, MQTT.js, 1,000 unacknowledged QoS 1 publishes each), same 200-byte payload, same
 * subscriber, one run. Targets: bridged ≥ 70 % of direct; drain ≥ 20,000 msgs/s.
 */
import { execFileSync, fork } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import type { Test } from 'tap'
import { startMosquitto } from '../test/helpers/mosquitto.js'
import { ensureDevKey } from '../src/identity/devkey.js'
import { mintToken } from '../src/identity/mint.js'
import { spawnCliGateway, type CliGateway } from './lib/cli-gateway.js'
import { cpuMs, shippedNode } from './lib/proc.js'

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : def
}
const N = arg('n', 50_000)
const OUTAGE = arg('outage', 100_000)
/** messages in the not-bridged comparison (0 skips it, e.g. to profile the bridged path alone) */
const LOCAL = arg('local', N)
/** messages through the bare Aedes + MQTT.js peer (0 skips it) */
const BARE = arg('bare', N)
const PUBS = arg('pubs', 10)
/** direct and bridged phases run in turn this many times; the median round's ratio is reported */
const ROUNDS = arg('rounds', 3)
const WINDOW = 1000
/**
 * `--cpus shared|own|both` (default both, shared first): how the processes are placed on the
 * cores for the direct and bridged rounds. shared: every process may run on every core this
 * bench may use (its own affinity), so the gateway's CPU is taken from the publishers and
 * Mosquitto — the issue's target (bridged ≥ 70 % of direct) is read here. own: the gateway gets
 * one of those cores alone (`taskset`, all its threads), the bench and Mosquitto the others, in
 * both phases — the gateway on a device of its own. With two cores the load side then gets one
 * and is the limit in both phases, so bridged near 100 % says only that the gateway keeps up with
 * what that core makes; the figure printed for it is the gateway's capacity on its core (its
 * rate over its busy share), not a ratio to the target.
 */
type Cpus = 'shared' | 'own'
const CPUS_ARG = (() => { const i = process.argv.indexOf('--cpus'); return i > 0 ? process.argv[i + 1]! : 'both' })()
/** the cores this process may run on (a container's or a caller's `taskset` is kept to) */
const ALLOWED = ((): number[] => {
  try {
    const out = execFileSync('taskset', ['-c', '-p', String(process.pid)], { encoding: 'utf8' })
    return out.slice(out.lastIndexOf(':') + 1).trim().split(',').flatMap((r) => {
      const [lo, hi] = r.split('-').map(Number)
      return Array.from({ length: (hi ?? lo!) - lo! + 1 }, (_, k) => lo! + k)
    })
  } catch {
    return [] // no taskset: only `shared`, left as it is
  }
})()
const CPUS: Cpus[] = CPUS_ARG === 'both' ? (ALLOWED.length >= 2 ? ['shared', 'own'] : ['shared']) : [CPUS_ARG as Cpus]
if (!CPUS.every((c) => c === 'shared' || c === 'own') || (CPUS.includes('own') && ALLOWED.length < 2)) throw new Error(`--cpus ${CPUS_ARG}: shared, own (two usable cores or more, and taskset) or both`)
/** the gateway's own core in the `own` arrangement: the last allowed one; the bench and Mosquitto get the rest */
const GATEWAY_CPU = String(ALLOWED[ALLOWED.length - 1])
const LOAD_CPUS = ALLOWED.slice(0, -1).join(',')
const ALL_CPUS = ALLOWED.join(',')

/** Places processes (every thread: taskset -a) on cores for an arrangement. */
function arrange(cpus: Cpus, pids: { load: number[]; gateway: number[] }): void {
  if (ALLOWED.length === 0) return
  const set = (pid: number, list: string): void => { execFileSync('taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore' }) }
  for (const pid of pids.load) set(pid, cpus === 'own' ? LOAD_CPUS : ALL_CPUS)
  for (const pid of pids.gateway) set(pid, cpus === 'own' ? GATEWAY_CPU : ALL_CPUS)
}

/** One arrangement's rounds: every round's ratio, and the median round's figures. */
interface Rounds {
  readonly cpus: Cpus
  readonly ratios: readonly number[]
  readonly directRate: number
  readonly bridgedRate: number
  readonly directCpu: CpuUse
  readonly bridgedCpu: CpuUse
  /**
   * The bare peer's phase of each round (cores shared only): its median round by its ratio to
   * direct; each round's bare / direct and bridged / bare
   */
  readonly bare?: { readonly rate: number; readonly overDirect: readonly number[]; readonly bridgedOverBare: readonly number[]; readonly cpu: CpuUse }
}
const PAYLOAD = Buffer.from(JSON.stringify({ device: 'd-1', t: 21.5, h: 40, fw: '4.2.17', status: 'ok', note: 'x'.repeat(120) }))

const cleanups: (() => unknown)[] = []
const fakeTap = { teardown: (fn: () => unknown) => cleanups.push(fn) } as unknown as Test

function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 100, connectTimeout: 5000, ...opts })
    cleanups.push(() => c.end(true))
    c.on('error', () => {})
    c.once('connect', () => resolve(c))
    setTimeout(() => reject(new Error('connect timeout ' + url)), 10_000).unref()
  })
}

function publishN(c: MqttClient, topic: string, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (n === 0) return resolve()
    let next = 0
    let inflight = 0
    let done = 0
    const pump = (): void => {
      while (inflight < WINDOW && next < n) {
        next++
        inflight++
        c.publish(topic, PAYLOAD, { qos: 1 }, (err) => {
          if (err) return reject(err)
          inflight--
          if (++done === n) resolve()
          else pump()
        })
      }
    }
    pump()
  })
}

/** n messages split over the publishers, each on its own topic level (per-publisher order) */
function publishAll(cs: MqttClient[], topic: string, n: number): Promise<unknown> {
  return Promise.all(cs.map((c, i) => publishN(c, `${topic}/${i}`, Math.floor(n / cs.length) + (i < n % cs.length ? 1 : 0))))
}

function until(cond: () => boolean, ms = 300_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms
    const tick = (): void => {
      if (cond()) return resolve()
      if (Date.now() > deadline) return reject(new Error('timed out'))
      setTimeout(tick, 5)
    }
    tick()
  })
}

/** CPU time (user + system, all threads) so far, µs: of a process (bench/lib/proc.ts), or of this one */
function cpuMicros(pid?: number): number {
  if (pid === undefined) { const u = process.cpuUsage(); return u.user + u.system }
  return cpuMs(pid) * 1000
}

/** CPU of each process over a phase: as % of one core (text) and in µs (us). */
interface CpuUse { readonly text: string; readonly us: Readonly<Record<string, number>>; readonly wallUs: number }

function cpuMeter(pids: Record<string, number | undefined>): () => CpuUse {
  const t0 = performance.now()
  const start = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuMicros(p)]))
  return () => {
    const wallUs = (performance.now() - t0) * 1000
    const us = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuMicros(p) - start[k]!]))
    return { us, wallUs, text: Object.keys(pids).map((k) => `${k} ${Math.round((us[k]! / wallUs) * 100)} %`).join(', ') }
  }
}

/** the index of the median of xs (the lower middle one for an even count) */
function medianIndex(xs: readonly number[]): number {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]!)
  return order[Math.floor((order.length - 1) / 2)]!
}

const startGateway = (config: string): Promise<CliGateway> => spawnCliGateway(config, cleanups)

async function upstream(admin: number): Promise<{ state: string; outbox: { messages: number } }> {
  return ((await (await fetch(`http://127.0.0.1:${admin}/healthz`)).json()) as { upstream: { state: string; outbox: { messages: number } } }).upstream
}

async function main(): Promise<void> {
  const load0 = loadavg()[0]!
  const cloud = await startMosquitto(fakeTap, { persistence: true })
  const dir = mkdtempSync(join(tmpdir(), 'ew-bench-bridge-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const key = await ensureDevKey(dir)
  const policies = join(dir, 'policies')
  mkdirSync(policies)
  writeFileSync(join(policies, 'open.yaml'), "rules:\n  - { id: open, effect: allow, actions: [publish, subscribe], topics: ['#'] }\n")
  const config = join(dir, 'edgewarden.yaml')
  writeFileSync(config, [
    `gateway: { id: gw-bench, dataDir: '${dir}' }`,
    'listeners: [ { type: mqtt, host: 127.0.0.1, port: 0 } ]',
    'admin: { host: 127.0.0.1, port: 0 }',
    'broker: { persistence: memory }',
    `policies: { dir: '${policies}', watch: false }`,
    'log: { level: warn }',
    "limits: { connectRatePerAddress: '1000000/s' }",
    'upstream:',
    `  url: ${cloud.url}`,
    '  reconnect: { minMs: 20, maxMs: 100 }',
    "  out: [ { local: 'site/#', remote: 'up/${topic}', qos: 1 } ]",
  ].join('\n') + '\n')
  const gw = await startGateway(config)
  for (;;) { if ((await upstream(gw.admin)).state === 'up') break; await new Promise((r) => setTimeout(r, 20)) }

  let received = 0
  const sub = await connect(cloud.url, { clientId: 'bench-sub', clean: false })
  await sub.subscribeAsync({ 'up/#': { qos: 1 }, 'direct/#': { qos: 1 } })
  sub.on('message', () => { received++ })

  const directs = await Promise.all(Array.from({ length: PUBS }, (_, i) => connect(cloud.url, { clientId: `bench-direct-${i}` })))
  const locals = await Promise.all(Array.from({ length: PUBS }, async (_, i) => {
    const sub = `bench-pub-${i}`
    return connect(`mqtt://127.0.0.1:${gw.mqtt}`, { clientId: sub, username: sub, password: await mintToken(key.privateJwk, { sub, ttlSec: 3600 }) })
  }))
  for (const [pubs, topic] of [[directs, 'direct/warmup'], [locals, 'site/warmup']] as const) {
    received = 0
    await publishAll(pubs, topic, 2000)
    await until(() => received >= 2000)
  }

  // the bare peer: Aedes + one MQTT.js connection forwarding each publish, nothing else; started
  // now, it runs a third phase in each round with the cores shared
  let bare: { pid: number; pubs: MqttClient[] } | undefined
  if (BARE > 0) {
    const shipped = shippedNode()
    const proc = fork(join(import.meta.dirname, 'lib', 'bare-bridge.ts'), [cloud.url], { execArgv: ['--import', 'tsx', ...shipped.flags], env: shipped.env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    cleanups.push(() => new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve()
      const force = setTimeout(() => proc.kill('SIGKILL'), 5000)
      proc.once('exit', () => { clearTimeout(force); resolve() })
      proc.send({ type: 'stop' })
    }))
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('bare bridge: not ready in 30 s')), 30_000)
      proc.once('message', (m: { port: number }) => { clearTimeout(timer); resolve(m.port) })
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`bare bridge exited ${code}`)) })
    })
    bare = { pid: proc.pid!, pubs: await Promise.all(Array.from({ length: PUBS }, (_, i) => connect(`mqtt://127.0.0.1:${port}`, { clientId: `bench-bare-${i}` }))) }
    received = 0
    await publishAll(bare.pubs, 'site/warmup', 2000)
    await until(() => received >= 2000)
  }

  // 1 and 2, in turn for each round: direct (publishers → Mosquitto → subscriber), then bridged
  // (publishers → edgewarden → Mosquitto → subscriber); each round's ratio is of two phases
  // seconds apart, and the median of the rounds is the figure (one pair swung ±10 points here)
  let maxDepth = 0
  const runRounds = async (cpus: Cpus): Promise<Rounds> => {
    arrange(cpus, { load: [process.pid, cloud.pid!], gateway: [gw.proc.pid!] })
    const directRates: number[] = []
    const bridgedRates: number[] = []
    const directCpus: CpuUse[] = []
    const bridgedCpus: CpuUse[] = []
    const bareRates: number[] = []
    const bareCpus: CpuUse[] = []
    for (let round = 0; round < ROUNDS; round++) {
      received = 0
      let t0 = performance.now()
      let meter = cpuMeter({ bench: undefined, mosquitto: cloud.pid, gateway: gw.proc.pid })
      await publishAll(directs, 'direct/x', N)
      await until(() => received >= N)
      directRates.push(N / ((performance.now() - t0) / 1000))
      directCpus.push(meter())

      received = 0
      t0 = performance.now()
      meter = cpuMeter({ bench: undefined, mosquitto: cloud.pid, gateway: gw.proc.pid })
      const depthTimer = setInterval(() => { void upstream(gw.admin).then((u) => { maxDepth = Math.max(maxDepth, u.outbox.messages) }, () => {}) }, 50)
      await publishAll(locals, 'site/x', N)
      const acked = performance.now() - t0
      await until(() => received >= N)
      clearInterval(depthTimer)
      bridgedRates.push(N / ((performance.now() - t0) / 1000))
      bridgedCpus.push(meter())
      const bridgedLine = `${cpus} cores, round ${round + 1}: direct ${Math.round(directRates[round]!)}, bridged ${Math.round(bridgedRates[round]!)} msg/s (${Math.round((bridgedRates[round]! / directRates[round]!) * 100)} %); bridged: all ${N} PUBACKed after ${acked.toFixed(0)} ms, all received after ${(performance.now() - t0).toFixed(0)} ms`

      // 2c. the bare peer, with the cores shared, in the same round: publishers → bare Aedes + MQTT.js → Mosquitto → subscriber
      if (bare && cpus === 'shared') {
        received = 0
        t0 = performance.now()
        meter = cpuMeter({ bench: undefined, mosquitto: cloud.pid, bare: bare.pid })
        await publishAll(bare.pubs, 'site/x', BARE)
        await until(() => received >= BARE)
        bareRates.push(BARE / ((performance.now() - t0) / 1000))
        bareCpus.push(meter())
        console.log(`${bridgedLine}; bare peer ${Math.round(bareRates[round]!)} msg/s (${Math.round((bareRates[round]! / directRates[round]!) * 100)} % of direct; bridged / bare ${Math.round((bridgedRates[round]! / bareRates[round]!) * 100)} %)`)
      } else console.log(bridgedLine)
    }
    const ratios = bridgedRates.map((b, i) => b / directRates[i]!)
    const mid = medianIndex(ratios)
    arrange('shared', { load: [process.pid, cloud.pid!], gateway: [gw.proc.pid!] })
    const peer = bareRates.length === 0 ? undefined : (() => {
      const overDirect = bareRates.map((b, i) => b / directRates[i]!)
      const over = bridgedRates.map((b, i) => b / bareRates[i]!)
      const m = medianIndex(overDirect)
      return { rate: bareRates[m]!, overDirect, bridgedOverBare: over, cpu: bareCpus[m]! }
    })()
    return { cpus, ratios, directRate: directRates[mid]!, bridgedRate: bridgedRates[mid]!, directCpu: directCpus[mid]!, bridgedCpu: bridgedCpus[mid]!, bare: peer }
  }
  const results: Rounds[] = []
  for (const cpus of CPUS) results.push(await runRounds(cpus))
  console.log(`bridged: outbox depth up to ${maxDepth} (sampled every 50 ms); the figures below are each arrangement's median round's`)

  // 2b. the gateway's own QoS 1 path, not bridged: publishers → edgewarden → a local subscriber
  let localReceived = 0
  const localSub = await connect(`mqtt://127.0.0.1:${gw.mqtt}`, { clientId: 'bench-lsub', username: 'bench-lsub', password: await mintToken(key.privateJwk, { sub: 'bench-lsub', ttlSec: 3600 }) })
  await localSub.subscribeAsync('local/#', { qos: 1 })
  localSub.on('message', () => { localReceived++ })
  let t0 = performance.now()
  await publishAll(locals, 'local/x', LOCAL)
  await until(() => localReceived >= LOCAL)
  const localRate = LOCAL / ((performance.now() - t0) / 1000)

  // 3. outage and drain
  await cloud.stop()
  for (;;) { if ((await upstream(gw.admin)).state !== 'up') break; await new Promise((r) => setTimeout(r, 20)) }
  t0 = performance.now()
  await publishAll(locals, 'site/outage', OUTAGE)
  const queueRate = OUTAGE / ((performance.now() - t0) / 1000)
  const queued = (await upstream(gw.admin)).outbox.messages
  received = 0
  await cloud.start()
  t0 = performance.now()
  await until(() => received >= OUTAGE)
  const drainSec = (performance.now() - t0) / 1000
  const drainRate = OUTAGE / drainSec

  const shared = results.find((r) => r.cpus === 'shared')
  const pcts = (xs: readonly number[]): string => xs.map((x) => Math.round(x * 100)).join(', ')
  const pct = (xs: readonly number[]): number => Math.round(xs[medianIndex(xs)]! * 100)
  const bareCpu = shared?.bare?.cpu
  const label = (r: Rounds): string => (r.cpus === 'shared' ? 'cores shared' : `gateway on core ${GATEWAY_CPU} alone`)
  /** the gateway's messages a second on its core at full use: its rate over its busy share of that core */
  const capacity = (r: Rounds): number => r.bridgedRate / (r.bridgedCpu.us.gateway! / r.bridgedCpu.wallUs)
  const rows = [
    ...results.flatMap((r) => [
      [`direct (publisher → Mosquitto → subscriber); ${label(r)}`, `${Math.round(r.directRate)} msg/s`],
      r.cpus === 'shared'
        ? [`bridged (publisher → edgewarden → Mosquitto → subscriber); ${label(r)}`, `${Math.round(r.bridgedRate)} msg/s (${Math.round((r.bridgedRate / r.directRate) * 100)} % of direct, the median of ${r.ratios.map((x) => Math.round(x * 100)).join(', ')} %; target ≥ 70 %)`]
        : [`bridged (publisher → edgewarden → Mosquitto → subscriber); ${label(r)}`, `${Math.round(r.bridgedRate)} msg/s (${Math.round((r.bridgedRate / r.directRate) * 100)} % of direct, the median of ${r.ratios.map((x) => Math.round(x * 100)).join(', ')} %: the load's core is the limit; the gateway's capacity on its core ≈ ${Math.round(capacity(r))} msg/s)`],
    ]),
    ['not bridged (publisher → edgewarden → local subscriber), for scale', LOCAL === 0 ? 'skipped (--local 0)' : `${Math.round(localRate)} msg/s`],
    ['bare peer (publisher → bare Aedes + MQTT.js forward → Mosquitto → subscriber); cores shared', BARE === 0 ? 'skipped (--bare 0)' : !shared?.bare ? 'not run (it runs in the rounds with the cores shared)' : `${Math.round(shared.bare.rate)} msg/s (${pct(shared.bare.overDirect)} % of direct, the median of ${pcts(shared.bare.overDirect)} %; edgewarden bridged / bare ${pct(shared.bare.bridgedOverBare)} %, the median of ${pcts(shared.bare.bridgedOverBare)} %)`],
    [`queued into the outbox during the outage (${OUTAGE}, ${queued} in the outbox)`, `${Math.round(queueRate)} msg/s`],
    ['outbox drain after the cloud returned (reconnect included)', `${Math.round(drainRate)} msg/s (${drainSec.toFixed(2)} s; target ≥ 20,000)`],
  ]
  for (const [k, v] of rows) console.log(`${k.padEnd(80)} ${v}`)
  if (results.some((r) => r.cpus === 'own')) console.log(`(gateway on core ${GATEWAY_CPU} alone: the bench and Mosquitto on ${LOAD_CPUS}, in the direct and the bridged phases alike; the bare peer and the outage ran with the cores shared)`)
  const per = (c: CpuUse, k: string, n: number): string => (c.us[k]! / n).toFixed(1)
  const cores = availableParallelism()
  for (const r of results) {
    console.log(`CPU, ${label(r)} (% of one core; the machine has ${cores}): direct: ${r.directCpu.text}; bridged: ${r.bridgedCpu.text}${bareCpu && r === shared ? `; bare peer: ${bareCpu.text}` : ''}`)
    console.log(`CPU per message, µs (all threads), ${label(r)}: direct: bench ${per(r.directCpu, 'bench', N)}, mosquitto ${per(r.directCpu, 'mosquitto', N)}; bridged: bench ${per(r.bridgedCpu, 'bench', N)}, mosquitto ${per(r.bridgedCpu, 'mosquitto', N)}, gateway ${per(r.bridgedCpu, 'gateway', N)}${bareCpu && r === shared ? `; bare peer: ${per(bareCpu, 'bare', BARE)}` : ''}`)
  }
  if (shared) {
    // The budget: every process here shares the same cores, so at 70 % of direct the cores' time
    // per message, less what the bench and Mosquitto spent per bridged message, is the most the
    // gateway may spend (all its threads: GC, the journal's writer, libuv's pool included). An
    // upper bound: it assumes no core is ever idle.
    const budget = (cores * 1e6) / (0.7 * shared.directRate) - (shared.bridgedCpu.us.bench! + shared.bridgedCpu.us.mosquitto!) / N
    console.log(`budget, cores shared: at 70 % of direct (${Math.round(0.7 * shared.directRate)} msg/s) ${cores} cores leave the gateway at most ${budget.toFixed(1)} µs of CPU a message beside the bench and Mosquitto (bridged: ${per(shared.bridgedCpu, 'gateway', N)} µs)`)
  }
  console.log(`load average before ${load0.toFixed(2)}, after ${loadavg()[0]!.toFixed(2)}; N=${N} a phase, ${ROUNDS} rounds per arrangement, ${PUBS} publishers, payload ${PAYLOAD.length} B, window ${WINDOW}`)
}

main().then(async () => {
  for (const f of cleanups.reverse()) await f()
  process.exit(0)
}, async (err) => {
  console.error(err)
  for (const f of cleanups.reverse()) await f()
  process.exit(1)
})
