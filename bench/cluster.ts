/**
 * `npx tsx bench/cluster.ts [--n 20000] [--pubs 8]` — a site cluster over Redis (issue 15 part 2),
 * against one gateway alone, in the same run:
 *
 *  1. alone:         publishers → gateway (no cluster) → subscriber on the same gateway
 *  2. cluster, same: publishers → gateway A (cluster) → subscriber on A (every message still crosses Redis)
 *  3. cluster, cross: publishers → gateway B → Redis → subscriber on gateway A
 *  4. cluster, both: half the publishers on A, half on B → subscriber on A
 *  5–6. alone and cluster-cross again with a persistent-session (clean=false) subscriber: each
 *     QoS 1 message is also queued in the store (Aedes' memory store alone, Redis in the cluster)
 *
 * Each gateway is its own child process (`edgewarden start`); Redis is a throwaway
 * `redis-server` (no persistence). QoS 1 publishes and a QoS 1 subscription, MQTT.js clients with `--window` unacknowledged
 * publishes each, a ~200-byte JSON payload. msgs/s = messages / time until the subscriber has them all.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import type { Test } from 'tap'
import { startRedis } from '../test/helpers/redis.js'
import { ensureDevKey } from '../src/identity/devkey.js'
import { mintToken } from '../src/identity/mint.js'
import { cpuMs } from './lib/proc.js'
import { spawnCliGateway, type CliGateway } from './lib/cli-gateway.js'

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : def
}
const N = arg('n', 20_000)
const PUBS = arg('pubs', 8)
const WINDOW = arg('window', 100)
const ROUNDS = arg('rounds', 3)
const PAYLOAD = Buffer.from(JSON.stringify({ device: 'd-1', t: 21.5, h: 40, fw: '4.2.17', status: 'ok', note: 'x'.repeat(120) }))

const cleanups: (() => unknown)[] = []
const fakeTap = { teardown: (fn: () => unknown) => cleanups.push(fn) } as unknown as Test

type Gw = CliGateway

const startGateway = (config: string): Promise<CliGateway> => spawnCliGateway(config, cleanups)

function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts })
    cleanups.push(() => c.end(true))
    c.on('error', reject)
    c.once('connect', () => resolve(c))
  })
}

function publishN(c: MqttClient, topic: string, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = 0
    let inflight = 0
    let done = 0
    if (n === 0) return resolve()
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

async function until(cond: () => boolean, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

async function main(): Promise<void> {
  const load0 = loadavg()[0]!
  const redis = await startRedis(fakeTap)
  const dir = mkdtempSync(join(tmpdir(), 'ew-bench-cluster-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  // one signing key for the site, every gateway verifies it (as a fleet's JWKS would)
  const key = await ensureDevKey(dir)
  const jwks = join(dir, 'jwks.json')
  writeFileSync(jwks, JSON.stringify({ keys: [key.publicJwk] }))
  const policies = join(dir, 'policies')
  mkdirSync(policies)
  writeFileSync(join(policies, 'open.yaml'), "rules:\n  - { id: open, effect: allow, actions: [publish, subscribe], topics: ['#'] }\n")
  const configFor = (id: string, cluster: boolean): string => {
    const data = join(dir, id)
    mkdirSync(data)
    const file = join(dir, `${id}.yaml`)
    writeFileSync(file, [
      `gateway: { id: ${id}, dataDir: '${data}' }`,
      'listeners: [ { type: mqtt, host: 127.0.0.1, port: 0 } ]',
      'admin: { host: 127.0.0.1, port: 0 }',
      `broker: { persistence: memory${cluster ? `, cluster: { redis: '${redis.url}' }` : ''} }`,
      `auth: { jwt: { jwksFile: '${jwks}' } }`,
      `policies: { dir: '${policies}', watch: false }`,
      'log: { level: warn }',
      "limits: { connectRatePerAddress: '1000000/s' }",
    ].join('\n') + '\n')
    return file
  }
  const alone = await startGateway(configFor('gw-alone', false))
  const a = await startGateway(configFor('gw-a', true))
  const b = await startGateway(configFor('gw-b', true))
  const client = async (gw: Gw, sub: string, persistent = false): Promise<MqttClient> =>
    connect(`mqtt://127.0.0.1:${gw.mqtt}`, { clientId: sub, username: sub, clean: !persistent, password: await mintToken(key.privateJwk, { sub, ttlSec: 3600 }) })

  let seq = 0
  interface Result { rate: number; gwCpuUs: number; redisCpuUs: number }
  async function scenario(subGw: Gw, pubGws: Gw[], persistent = false): Promise<Result> {
    const s = ++seq
    let got = 0
    const sub = await client(subGw, `bench-sub-${s}`, persistent)
    await sub.subscribeAsync(`bench/${s}/#`, { qos: 1 })
    sub.on('message', () => { got++ })
    const pubs = await Promise.all(Array.from({ length: PUBS }, (_, i) => client(pubGws[i % pubGws.length]!, `bench-pub-${s}-${i}`)))
    // warm-up: connections, JIT, Redis subscriptions
    await Promise.all(pubs.map((p) => publishN(p, `bench/${s}/warm`, 200)))
    await until(() => got >= 200 * PUBS)
    got = 0
    // CPU time per message is what a loaded machine distorts least (wall-clock rates swing with the load)
    const gws = [...new Set([subGw, ...pubGws])]
    const cpu = (): number[] => [...gws.map((g) => cpuMs(g.proc.pid!)), subGw === alone ? 0 : cpuMs(redis.pid!)]
    const c0 = cpu()
    const t0 = performance.now()
    await Promise.all(pubs.map((p) => publishN(p, `bench/${s}/x`, N / PUBS)))
    await until(() => got >= N)
    const rate = N / ((performance.now() - t0) / 1000)
    const c1 = cpu()
    const d = c1.map((v, i) => v - c0[i]!)
    for (const c of [sub, ...pubs]) await c.endAsync()
    return { rate, gwCpuUs: (d.slice(0, -1).reduce((x, y) => x + y, 0) * 1000) / N, redisCpuUs: (d.at(-1)! * 1000) / N }
  }

  const names = [
    'alone: one gateway, publishers and subscriber on it',
    'cluster, same gateway: publishers and subscriber on A',
    'cluster, cross: publishers on B → subscriber on A',
    'cluster, both: publishers on A and B → subscriber on A',
    'alone, persistent-session subscriber (clean=false)',
    'cluster, cross, persistent-session subscriber (clean=false)',
  ]
  const runs: Result[][] = names.map(() => [])
  // the scenarios alternate, round after round, so a swing in machine load hits each of them
  for (let round = 0; round < ROUNDS; round++) {
    runs[0]!.push(await scenario(alone, [alone]))
    runs[1]!.push(await scenario(a, [a]))
    runs[2]!.push(await scenario(a, [b]))
    runs[3]!.push(await scenario(a, [a, b]))
    // a persistent session's QoS 1 messages are queued in the store first (Redis writes per message)
    runs[4]!.push(await scenario(alone, [alone], true))
    runs[5]!.push(await scenario(a, [b], true))
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
  console.log(`${'scenario'.padEnd(56)} ${'msg/s (median)'.padStart(14)}  ${'rounds'.padEnd(24)} gateway CPU µs/msg  redis CPU µs/msg`)
  names.forEach((name, i) => {
    const r = runs[i]!
    const rate = median(r.map((x) => x.rate))
    console.log(`${name.padEnd(56)} ${Math.round(rate).toLocaleString('en-US').padStart(14)}  ${r.map((x) => Math.round(x.rate)).join(' / ').padEnd(24)} ${median(r.map((x) => x.gwCpuUs)).toFixed(0).padStart(18)}  ${median(r.map((x) => x.redisCpuUs)).toFixed(0).padStart(16)}`)
  })
  console.log(`load average before ${load0.toFixed(2)}, after ${loadavg()[0]!.toFixed(2)}; N=${N} per scenario, ${PUBS} publishers × window ${WINDOW}, QoS 1, payload ${PAYLOAD.length} B; redis-server ${redis.url.replace(/:\d+$/, '')}, no persistence`)
}

main().then(async () => {
  for (const c of cleanups.reverse()) await c()
  process.exit(0)
}, async (err) => {
  console.error(err)
  for (const c of cleanups.reverse()) await c()
  process.exit(1)
})
