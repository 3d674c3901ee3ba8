// Benchmark, run by hand (not a tap test): npx tsx bench/persistence.ts
// LMDB vs Aedes' memory persistence in the same run:
//  1. QoS 1 delivery to an online persistent-session (clean=false) subscriber through
//     Aedes built by createAedes (so the LMDB side includes the PUBACK-durability step),
//     publishers and subscriber are MQTT.js clients over TCP on 127.0.0.1;
//  2. retained lookups straight on the persistence: exact topic, a 100-topic wildcard, '#'.
import { createServer, type AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import mqtt from 'mqtt'
import { createRequire } from 'node:module'
import { createAedes } from '../src/broker/create.js'
import { LmdbPersistence } from '../src/broker/persistence/lmdb.js'
import type { Config } from '../src/config/types.js'

const MESSAGES = Number(process.env.N ?? 20000)
const PUBLISHERS = 4
const RETAINED = 10000
const config = { gateway: { id: 'bench' }, limits: { connectTimeoutSec: 10 } } as unknown as Config

type P = { setup(b: unknown): Promise<void>; destroy(): Promise<void>; storeRetained(p: object): Promise<void>; createRetainedStreamCombi(p: string[]): Readable }

async function qos1(make: () => P): Promise<number> {
  const persistence = make()
  const aedes = createAedes(config, { persistence, authorizePublish: (_c, _p, cb) => cb(null) })
  await aedes.listen()
  const server = createServer((s) => aedes.handle(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`
  const sub = mqtt.connect(url, { clientId: 'sub', clean: false, reconnectPeriod: 0 })
  await new Promise((r) => sub.once('connect', r))
  await sub.subscribeAsync('bench/#', { qos: 1 })
  const pubs = await Promise.all(Array.from({ length: PUBLISHERS }, (_, i) => mqtt.connectAsync(url, { clientId: 'pub' + i, reconnectPeriod: 0 })))
  let got = 0
  const done = new Promise<void>((r) => sub.on('message', () => { if (++got === MESSAGES) r() }))
  const payload = Buffer.alloc(64, 'x')
  const t0 = performance.now()
  await Promise.all(pubs.map((p, i) => Promise.all(Array.from({ length: MESSAGES / PUBLISHERS }, () => p.publishAsync(`bench/${i}`, payload, { qos: 1 })))))
  await done
  const rate = MESSAGES / ((performance.now() - t0) / 1000)
  for (const c of [sub, ...pubs]) await c.endAsync()
  await new Promise<void>((r) => aedes.close(() => r()))
  server.close()
  await persistence.destroy()
  return rate
}

async function retained(make: () => P): Promise<Record<string, number>> {
  const p = make()
  await p.setup({ id: 'bench', counter: 0, clients: {} })
  for (let i = 0; i < RETAINED; i++) {
    await p.storeRetained({ cmd: 'publish', topic: `site/${i % 100}/dev/${i}`, payload: Buffer.from('{"v":1}'), qos: 0, retain: true, brokerId: 'bench', brokerCounter: i + 1 })
  }
  const rate = async (patterns: (i: number) => string[], rounds: number): Promise<number> => {
    const t0 = performance.now()
    for (let i = 0; i < rounds; i++) for await (const _ of p.createRetainedStreamCombi(patterns(i))) void _
    return rounds / ((performance.now() - t0) / 1000)
  }
  const out = {
    'exact topic, lookups/s': await rate((i) => [`site/${i % 100}/dev/${i % RETAINED}`], 5000),
    'site/N/# (100 matches), lookups/s': await rate((i) => [`site/${i % 100}/#`], 500),
    '# (10,000 matches), lookups/s': await rate(() => ['#'], 10),
  }
  await p.destroy()
  return out
}

const dirs: string[] = []
const lmdb = (): P => {
  const d = mkdtempSync(join(tmpdir(), 'ew-bench-'))
  dirs.push(d)
  return new LmdbPersistence({ dataDir: d }) as unknown as P
}
// what Aedes uses when given no persistence (CommonJS; its typings do not survive NodeNext)
const memory = createRequire(import.meta.url)('aedes-persistence') as () => P
const mem = (): P => memory()

try {
  const m1 = await qos1(mem)
  const l1 = await qos1(lmdb)
  const m2 = await qos1(mem)
  const l2 = await qos1(lmdb)
  const qm = Math.max(m1, m2)
  const ql = Math.max(l1, l2)
  console.log(`QoS 1 to a persistent session, ${MESSAGES} msgs, ${PUBLISHERS} publishers (best of 2):`)
  console.log(`  memory ${Math.round(qm)} msg/s   lmdb ${Math.round(ql)} msg/s   lmdb/memory ${(ql / qm * 100).toFixed(0)}%`)
  const rm = await retained(mem)
  const rl = await retained(lmdb)
  console.log(`retained lookups over ${RETAINED} retained topics:`)
  for (const k of Object.keys(rm)) console.log(`  ${k}: memory ${Math.round(rm[k]!)}   lmdb ${Math.round(rl[k]!)}   lmdb/memory ${(rl[k]! / rm[k]! * 100).toFixed(0)}%`)
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
}
