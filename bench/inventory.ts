/**
 * A feature on vs off, end to end, in one run:
 *   --feature inventory   inventory.enabled true/false (issue 12: target ≥ 95 %)
 *   --feature policy      the shipped site policy (policies/site.yaml, 12 rules, plus a rule for the
 *                         bench topics) vs one allow-all rule (issue 4: target ≥ 90 %)
 *   --feature masks       a JSON mask with 3 field rules and all ten detectors on the bench topics
 *                         vs no mask (issue 5: target ≥ 75 %)
 *   --feature journal     the default LMDB journal vs a journal that keeps nothing (issue 6: QoS 1
 *                         target ≥ 80 %; use --qos 1)
 *
 *   npx tsx bench/inventory.ts [--feature inventory|policy|masks] [--rounds 4] [--measure-ms 5000] [--qos 0|1]
 *   npx tsx bench/inventory.ts --micro     # CPU per publish of the inventory alone, in process
 *
 * For each round and each setting (order alternates between rounds) a fresh gateway runs in
 * its own process (`bench/inventory.ts gateway FEATURE on|off DATA POLICIES`: createGateway with
 * the feature on or off, the default LMDB journal, memory broker persistence) and
 * bench/load.ts drives the `fanin` scenario against it from a third process: 20 publishers
 * (each its own token and topic) → 1 subscriber on `bench/#`, 64-byte JSON payloads. Prints
 * messages/s per round and the median ratio on/off.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { JWK } from 'jose'

const here = fileURLToPath(new URL('.', import.meta.url))
const TSX = ['--import', 'tsx']
const OPEN = "rules:\n  - { id: bench-open, effect: allow, actions: [publish, subscribe], topics: ['#'] }\n"
const BENCH_RULE = "  - { id: bench-fanin, effect: allow, actions: [publish, subscribe], topics: ['bench/#'] }\n"
const MASK = `masks:
  - id: bench-pii
    topics: ['bench/#']
    format: json
    fields: [{ path: owner.email, action: redact }, { path: customer_id, action: hash }, { path: debug, action: drop }]
    detectors: [email, phone, credit_card, iban, ipv4, ipv6, ssn, jwt, private_key, secret]
`
type Feature = 'inventory' | 'policy' | 'masks' | 'journal'

/** The policy files of one setting. */
function policyFiles(feature: Feature, on: boolean): Record<string, string> {
  if (feature === 'policy' && on) {
    const site = readFileSync(join(here, '..', 'policies', 'site.yaml'), 'utf8')
    // the site policy with one more rule for the bench topics, masks left out (they are the masks feature)
    const rules = site.slice(0, site.search(/^masks:/m) >= 0 ? site.search(/^masks:/m) : undefined)
    return { 'site.yaml': rules.trimEnd() + '\n' + BENCH_RULE }
  }
  if (feature === 'masks' && on) return { 'bench.yaml': OPEN + MASK }
  return { 'bench.yaml': OPEN }
}

async function gatewayChild(feature: Feature, on: boolean, dataDir: string, policies: string): Promise<void> {
  const { createGateway } = await import('../src/index.js')
  const { silentLogger } = await import('../src/logger.js')
  const { nullJournal } = await import('./lib/null-journal.js')
  const journal = feature === 'journal' && !on ? nullJournal() : undefined
  const gw = await createGateway({
    env: {}, cwd: dataDir,
    overrides: {
      gateway: { id: 'gw-bench', dataDir },
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }],
      admin: { enabled: false },
      broker: { persistence: 'memory' },
      policies: { dir: policies, watch: false },
      log: { level: 'silent' },
      limits: { connectRatePerAddress: '1000000/s' },
      inventory: { enabled: feature === 'inventory' ? on : true, ...(process.env.BENCH_INV_FLUSH_MS ? { flushMs: Number(process.env.BENCH_INV_FLUSH_MS) } : {}) },
    },
  }, { logger: silentLogger, journal })
  await gw.start()
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') void gw.stop().finally(() => process.exit(0))
  })
  process.on('disconnect', () => process.exit(0))
  process.send!({ type: 'ready', port: gw.address('mqtt')!.port })
}

function waitMessage<T>(c: ChildProcess, pred: (m: { type: string } & T) => boolean, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`${what}: process exited (${code})`))
    const onMsg = (m: { type: string } & T) => { if (pred(m)) { c.off('message', onMsg); c.off('exit', onExit); resolve(m) } }
    c.on('message', onMsg)
    c.once('exit', onExit)
  })
}

/**
 * The publish path's share of the inventory, in this process, as CPU time (steady on a
 * loaded machine, unlike msg/s): SessionTracker.publish per message, plus a flush (merge,
 * compaction, LMDB put) every `every` messages of 20 sessions (at 20k msg/s the default
 * once-a-second flush is every 20,000).
 */
async function micro(every: number): Promise<number> {
  const { mkdtempSync: mk } = await import('node:fs')
  const { Inventory, EFFECT_INDEX } = await import('../src/inventory/index.js')
  const { MemoryJournal } = await import('../src/journal/memory.js')
  const { silentLogger } = await import('../src/logger.js')
  const { systemClock } = await import('../src/clock.js')
  const dir = mk(join(tmpdir(), 'ew-bench-inv-micro-'))
  const inv = new Inventory({ dataDir: dir, config: { enabled: true, flushMs: 1000, maxTopics: 64, cacheEntries: 2048, newIdentityHours: 24, maxClientIds: 1, rateFactor: 10 }, clock: systemClock, journal: new MemoryJournal(), logger: silentLogger })
  const sessions = Array.from({ length: 20 }, (_, i) => inv.connect({ sub: `d${i}`, clientId: `d${i}`, groups: [], kind: 'device', claims: {}, listener: 'mqtt' }, { listener: 'mqtt' }, `s${i}`))
  const topics = sessions.map((_, i) => `bench/pub/${i}/data`)
  const payload = Buffer.from('{"t":21.5,"h":40,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')
  const n = 2_000_000
  const c0 = process.cpuUsage()
  for (let k = 0; k < n; k++) {
    const i = k % 20
    sessions[i]!.publish(topics[i]!, payload, EFFECT_INDEX.allow)
    if (k % every === every - 1) inv.flush()
  }
  const c = process.cpuUsage(c0)
  await inv.close()
  rmSync(dir, { recursive: true, force: true })
  return ((c.user + c.system) * 1000) / n
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === 'gateway') return gatewayChild(argv[1] as Feature, argv[2] === 'on', argv[3]!, argv[4]!)
  const opt = (name: string, d: number): number => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : d }
  if (argv.includes('--micro')) {
    for (const every of [20_000, 1_000]) {
      const ns = await micro(every)
      console.log(`inventory on the publish path: ${ns.toFixed(0)} ns CPU per publish (tracker + a flush every ${every.toLocaleString('en')} publishes)`)
    }
    return
  }
  const rounds = opt('--rounds', 4)
  const measureMs = opt('--measure-ms', 5000)
  const qos = opt('--qos', 0) as 0 | 1
  const fi = argv.indexOf('--feature')
  const feature = (fi >= 0 ? argv[fi + 1] : 'inventory') as Feature
  if (!['inventory', 'policy', 'masks', 'journal'].includes(feature)) throw new Error(`--feature: inventory, policy, masks or journal, not ${feature}`)
  const load = fork(join(here, 'load.ts'), [], { execArgv: TSX, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await waitMessage(load, (m) => m.type === 'ready', 'load generator')
  const results: Record<'on' | 'off', number[]> = { on: [], off: [] }
  // broker CPU per message: steadier than msg/s on a shared, loaded machine
  const cpu: Record<'on' | 'off', number[]> = { on: [], off: [] }
  let id = 0
  for (let r = 0; r < rounds; r++) {
    for (const setting of (r % 2 === 0 ? ['off', 'on'] : ['on', 'off']) as ('on' | 'off')[]) {
      const dir = mkdtempSync(join(tmpdir(), 'ew-bench-inv-'))
      try {
        const policies = join(dir, 'policies')
        mkdirSync(policies)
        for (const [name, text] of Object.entries(policyFiles(feature, setting === 'on'))) writeFileSync(join(policies, name), text)
        const data = join(dir, 'data')
        const gw = fork(fileURLToPath(import.meta.url), ['gateway', feature, setting, data, policies], { execArgv: TSX, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
        const { port } = await waitMessage<{ port: number }>(gw, (m) => m.type === 'ready', 'gateway')
        const jwk = JSON.parse(readFileSync(join(data, 'keys', 'dev-es256.jwk'), 'utf8')) as JWK
        const runId = ++id
        load.send({ type: 'run', id: runId, kind: 'fanin', qos, publishers: 20, warmupMs: 2000, measureMs, payloadBytes: 64, port, brokerPid: gw.pid, jwk })
        const res = await waitMessage<{ result?: { rate: number; brokerCpu: number; brokerUsPerOp: number }; message?: string }>(load, (m) => (m.type === 'result' || m.type === 'error') && (m as unknown as { id: number }).id === runId, 'fanin')
        if (!res.result) throw new Error(`fanin failed: ${res.message}`)
        results[setting].push(res.result.rate)
        cpu[setting].push(res.result.brokerUsPerOp)
        console.log(`round ${r + 1} ${feature} ${setting.padEnd(3)}: ${Math.round(res.result.rate).toLocaleString('en')} msg/s (gateway CPU ${res.result.brokerCpu}%, ${res.result.brokerUsPerOp.toFixed(2)} µs/msg)`)
        gw.send({ type: 'stop' })
        await new Promise((r) => gw.once('exit', r))
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
  }
  load.disconnect()
  const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!
  const on = median(results.on)
  const off = median(results.off)
  console.log(`QoS ${qos} fan-in, median of ${rounds}: ${feature} on ${Math.round(on).toLocaleString('en')} msg/s, off ${Math.round(off).toLocaleString('en')} msg/s → ${((on / off) * 100).toFixed(1)} %`)
  // the setting that runs second in a round tends to get less of this shared machine: with an
  // even number of rounds each setting goes first equally often, and the geometric mean of the
  // per-round ratios cancels that order effect
  const ratios = results.on.map((v, i) => v / results.off[i]!)
  const geo = Math.exp(ratios.reduce((a, r) => a + Math.log(r), 0) / ratios.length)
  console.log(`per-round on/off ratios: ${ratios.map((r) => (r * 100).toFixed(0) + ' %').join(', ')}; geometric mean ${(geo * 100).toFixed(1)} %${rounds % 2 ? ' (odd number of rounds: order not balanced)' : ''}`)
  const cOn = median(cpu.on)
  const cOff = median(cpu.off)
  console.log(`gateway CPU per message, median: on ${cOn.toFixed(2)} µs, off ${cOff.toFixed(2)} µs → throughput at equal CPU ${((cOff / cOn) * 100).toFixed(1)} %`)
}

main().catch((err: Error) => { console.error(err.stack ?? err.message); process.exit(1) })
