import t from 'tap'
import { connect as netConnect } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { WebSocket } from 'ws'
import { startGateway } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'
import { makeCase, rng, type FuzzCase } from '../hostile/fuzz-cases.js'

// CI: a bounded seeded set (a few seconds); `npm run fuzz` sets EW_FUZZ_CASES higher
const CASES = Number(process.env.EW_FUZZ_CASES ?? 240)
// EW_FUZZ_SEED=random picks one (printed in the test name, to replay a failure)
const SEED = process.env.EW_FUZZ_SEED === 'random' ? Date.now() % 2 ** 31 : Number(process.env.EW_FUZZ_SEED ?? 20261125)
const WAVE = 8

// a real collection, so memory is compared in live objects, not in garbage
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Sends a case's chunks; resolves true when the gateway closed the connection within `waitMs`. */
function runCase(c: FuzzCase, transport: 'tcp' | 'ws', port: number, waitMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let closed = false
    const done = (byGateway: boolean): void => { if (!closed) { closed = true; clearTimeout(timer); resolve(byGateway) } }
    const timer = setTimeout(() => { done(false); end() }, waitMs)
    let end: () => void
    if (transport === 'tcp') {
      const s = netConnect(port, '127.0.0.1')
      end = () => s.destroy()
      s.on('error', () => {})
      s.on('data', () => {})
      s.on('close', () => done(true))
      s.once('connect', () => { for (const b of c.chunks) s.write(b) })
    } else {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, 'mqtt')
      end = () => ws.terminate()
      ws.on('error', () => {})
      ws.on('close', () => done(true))
      ws.once('open', () => { for (const b of c.chunks) ws.send(b) })
    }
  })
}

t.test(`fuzz: ${CASES} malformed inputs over TCP and WebSocket (seed ${SEED})`, async (t) => {
  const g = await startGateway(t, { auth: { jwt: { clientIdBinding: 'none' } }, journal: { recordPayloads: 'none' }, limits: { connectTimeoutSec: 2, maxPacketBytes: '64KB' } })
  const token = await g.token({ sub: 'fuzzer' })
  const sub = await connect(t, g.url(), { clientId: 'good-sub', password: await g.token({ sub: 'good-sub' }) })
  await sub.subscribeAsync('good/#', { qos: 1 })
  const pub = await connect(t, g.url('ws'), { clientId: 'good-pub', password: await g.token({ sub: 'good-pub' }) })
  const baseline = g.gw.core.admission.open
  // every connection's Aedes client, weakly: none may outlive its connection
  const clients: WeakRef<object>[] = []
  const aedes = g.gw.core.aedes as unknown as { handle(s: unknown, r: unknown): object }
  const handle = aedes.handle.bind(aedes)
  aedes.handle = (s, r) => { const c = handle(s, r); clients.push(new WeakRef(c)); return c }
  gc()
  const heapBefore = process.memoryUsage().heapUsed
  const r = rng(SEED)
  const started = performance.now()
  const failures: string[] = []
  const kinds = new Map<string, number>()
  let roundTrips = 0
  for (let i = 0; i < CASES; i += WAVE) {
    await Promise.all(Array.from({ length: Math.min(WAVE, CASES - i) }, async (_, k) => {
      const n = i + k
      const c = makeCase(r, token, `fz-${n}`)
      const transport = n % 2 === 0 ? 'tcp' : 'ws'
      kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1)
      const closed = await runCase(c, transport, g.port(transport === 'tcp' ? 'mqtt' : 'ws'), c.mustClose ? 5000 : 300)
      if (c.mustClose && !closed) failures.push(`case ${n} (${c.kind} over ${transport}) was not closed by the gateway`)
    }))
    // a well-behaved client keeps working throughout
    const m = nextMessage(sub)
    await pub.publishAsync('good/' + i, String(i), { qos: 1 })
    if ((await m).payload.toString() === String(i)) roundTrips++
  }
  t.same(failures, [], 'every surely-invalid input got a disconnect from the gateway')
  t.equal(roundTrips, Math.ceil(CASES / WAVE), `the well-behaved pair exchanged a message after every wave (${roundTrips})`)
  t.ok(sub.connected && pub.connected, 'and stayed connected')
  await waitFor(() => g.gw.core.admission.open === baseline, 10_000, 'every fuzz connection closed (none leaked)')
  t.pass(`kinds: ${JSON.stringify(Object.fromEntries(kinds))}`)
  // journaled, rate-limited: a few records per reason and address a second, counts in summaries
  g.gw.core.flushDeliveryDrops()
  await g.gw.stop()
  const seconds = (performance.now() - started) / 1000
  const errors = g.journal.entries.filter((e) => e.type === 'protocol_error' || (e.type === 'connect_denied'))
  const reasons = new Map<string, number>()
  for (const e of errors) {
    if (e.suppressed) for (const [k, v] of Object.entries(e.reasons as Record<string, number>)) reasons.set(k, (reasons.get(k) ?? 0) + v)
    else reasons.set(String(e.reason), (reasons.get(String(e.reason)) ?? 0) + 1)
  }
  t.pass(`journaled reasons: ${JSON.stringify(Object.fromEntries(reasons))}`)
  const mustClose = [...kinds].filter(([k]) => !['random', 'bitflip', 'truncated'].includes(k)).reduce((a, [, v]) => a + v, 0)
  const counted = [...reasons.values()].reduce((a, b) => a + b, 0)
  t.ok(counted >= mustClose, `every surely-invalid connection is journaled (${counted} ≥ ${mustClose})`)
  // at most 20 records a second per type and address, plus one summary (src/listeners/record-limiter.ts),
  // however long the run took on this machine
  const groups = new Set(errors.map((e) => `${e.type} ${e.listener} ${e.remote}`)).size
  const bound = (Math.ceil(seconds) + 1) * groups * 21
  t.ok(errors.length <= bound, `rate-limited: ${errors.length} records for ${counted} events in ${seconds.toFixed(1)} s (≤ ${bound})`)
  t.ok(errors.some((e) => e.suppressed === true), 'a flood is summarized, not written record by record')
  // memory bounded: no per-case residue (heap growth is a fraction of a KiB per case at most, plus noise)
  await new Promise((r) => setTimeout(r, 100))
  gc()
  const alive = clients.filter((w) => w.deref() !== undefined).length
  t.equal(alive, 0, `no client object outlives its connection (${clients.length} connections)`)
  const grew = process.memoryUsage().heapUsed - heapBefore
  t.ok(grew < 32 * 1024 * 1024, `heap grew by ${Math.round(grew / 1024)} KiB over ${CASES} cases`)
})
