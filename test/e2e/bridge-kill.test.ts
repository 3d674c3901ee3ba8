import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startMosquitto } from '../helpers/mosquitto.js'
import { OPEN_POLICY_DIR, tempDir } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { ensureDevKey } from '../../src/identity/devkey.js'
import { mintToken } from '../../src/identity/mint.js'
import { waitFor, cloudSubscriber, publishSeq, type Received } from '../bridge/util.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const N = Number(process.env.EW_BRIDGE_KILL_N ?? 5_000)

interface Child { proc: ChildProcess; mqttPort: number; adminPort: number }

/** `edgewarden start --config FILE` as a child process; resolves once it printed its ports */
function startChild(t: Test, config: string): Promise<Child> {
  const proc = spawn(process.execPath, [join(ROOT, 'bin/edgewarden.js'), 'start', '--config', config], {
    cwd: ROOT, env: { ...process.env, EDGEWARDEN_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  let out = ''
  // on failure, what the gateway said is the first thing to read
  t.teardown(() => { if (!t.passing()) t.comment(out.slice(-4000)) })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway child did not start: ' + out.slice(-2000))), 30_000)
    const onData = (d: Buffer): void => {
      out += d.toString()
      const mqtt = /MQTT\s+mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      const admin = /admin\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (mqtt && admin) {
        clearTimeout(timer)
        resolve({ proc, mqttPort: Number(mqtt[1]), adminPort: Number(admin[1]) })
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`gateway child exited ${code}: ${out.slice(-2000)}`)) })
  })
}

async function upstreamOf(c: Child): Promise<{ state: string; outbox: { messages: number } }> {
  const body = await (await fetch(`http://127.0.0.1:${c.adminPort}/healthz`)).json() as { upstream: { state: string; outbox: { messages: number } } }
  return body.upstream
}

async function poll(c: Child, cond: (u: { state: string; outbox: { messages: number } }) => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (cond(await upstreamOf(c))) return
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** a data dir with a dev key and an `edgewarden.yaml` bridging site/# to the cloud as up/…; `extra` lines go under `upstream:` */
async function childConfig(t: Test, id: string, cloudUrl: string, extra: string[] = []): Promise<{ config: string; key: Awaited<ReturnType<typeof ensureDevKey>> }> {
  const dataDir = tempDir(t)
  const key = await ensureDevKey(dataDir)
  const config = join(dataDir, 'edgewarden.yaml')
  writeFileSync(config, [
    `gateway: { id: ${id}, dataDir: '${dataDir}' }`,
    'listeners: [ { type: mqtt, host: 127.0.0.1, port: 0 } ]',
    'admin: { host: 127.0.0.1, port: 0 }',
    'broker: { persistence: memory }',
    `policies: { dir: '${OPEN_POLICY_DIR}', watch: false }`,
    'log: { level: warn }',
    "limits: { connectRatePerAddress: '100000/s' }",
    'upstream:',
    `  url: ${cloudUrl}`,
    '  reconnect: { minMs: 50, maxMs: 250 }',
    "  out: [ { local: 'site/#', remote: 'up/${topic}', qos: 1 } ]",
    ...extra.map((l) => '  ' + l),
  ].join('\n') + '\n')
  return { config, key }
}

t.test(`kill -9 during a cloud outage: the ${N} queued messages survive and arrive in order`, async (t) => {
  const cloud = await startMosquitto(t, { persistence: true })
  const got = await cloudSubscriber(t, cloud.url, 'up/#')
  const { config, key } = await childConfig(t, 'gw-kill', cloud.url)

  const first = await startChild(t, config)
  await poll(first, (u) => u.state === 'up', 'link up')
  await cloud.stop()
  await poll(first, (u) => u.state !== 'up', 'link down')
  const dev = await connect(t, `mqtt://127.0.0.1:${first.mqttPort}`, { clientId: 'sensor-1', password: await mintToken(key.privateJwk, { sub: 'sensor-1', ttlSec: 600 }) })
  await publishSeq(dev, (i) => `site/${i % 5}/telemetry`, N)
  t.equal((await upstreamOf(first)).outbox.messages, N, 'every PUBACKed message is queued')
  dev.end(true)
  first.proc.kill('SIGKILL')
  await new Promise((r) => first.proc.once('exit', r))

  const second = await startChild(t, config)
  const u = await upstreamOf(second)
  t.equal(u.outbox.messages, N, 'the queue survived kill -9')
  t.not(u.state, 'up')
  await cloud.start()
  await poll(second, (x) => x.outbox.messages === 0, 'outbox drained', 60_000)
  await waitFor(() => got.length >= N, `cloud got ${N}`, 30_000)
  t.equal(got.length, N, 'nothing was in flight at the kill: no duplicates')
  let bad = -1
  for (let i = 0; i < N; i++) {
    if (got[i]!.payload.toString() !== String(i) || got[i]!.topic !== `up/site/${i % 5}/telemetry`) { bad = i; break }
  }
  t.equal(bad, -1, 'all arrived in the order they were queued')
  second.proc.kill('SIGTERM')
  await new Promise((r) => second.proc.once('exit', r))
})

t.test('with the cloud up nothing is written; with the cloud stalled, PUBACKs still come (written after storeAfterMs), and a kill -9 loses none of them', async (t) => {
  const cloud = await startMosquitto(t, { persistence: true })
  const got = await cloudSubscriber(t, cloud.url, 'up/#')
  const { config, key } = await childConfig(t, 'gw-stall', cloud.url, ['keepaliveSec: 60', 'buffer: { storeAfterMs: 100 }'])
  const written = async (c: Child): Promise<number> => Number(/edgewarden_outbox_written_total (\d+)/.exec(await (await fetch(`http://127.0.0.1:${c.adminPort}/metrics`)).text())?.[1])

  const first = await startChild(t, config)
  await poll(first, (u) => u.state === 'up', 'link up')
  const dev = await connect(t, `mqtt://127.0.0.1:${first.mqttPort}`, { clientId: 'sensor-1', password: await mintToken(key.privateJwk, { sub: 'sensor-1', ttlSec: 600 }) })
  await publishSeq(dev, () => 'site/warm', 500)
  await waitFor(() => got.length >= 500, 'the cloud got the first 500')
  t.equal((await upstreamOf(first)).outbox.messages, 0, 'acknowledged by the cloud: nothing waits')
  t.equal(await written(first), 0, 'the cloud kept up: not one message written to the outbox')

  // the cloud stalls: its socket stays open (the link is up) but nothing is acknowledged
  const n = 2000
  process.kill(cloud.pid!, 'SIGSTOP')
  t.teardown(() => { try { process.kill(cloud.pid!, 'SIGCONT') } catch { /* gone */ } })
  await publishSeq(dev, () => 'site/stalled', n)
  const u = await upstreamOf(first)
  t.equal(u.state, 'up', 'the link never noticed')
  t.equal(u.outbox.messages, n, 'every PUBACKed message waits in the outbox')
  t.equal(await written(first), n, 'each one written before its PUBACK')
  dev.end(true)
  first.proc.kill('SIGKILL')
  await new Promise((r) => first.proc.once('exit', r))

  // still stalled: the new gateway cannot drain before the outbox is counted
  const second = await startChild(t, config)
  t.equal((await upstreamOf(second)).outbox.messages, n, 'all of them survived kill -9')
  process.kill(cloud.pid!, 'SIGCONT')
  await poll(second, (x) => x.outbox.messages === 0, 'outbox drained', 60_000)
  const stalled = (): Received[] => got.filter((m) => m.topic === 'up/site/stalled')
  await waitFor(() => new Set(stalled().map((m) => m.payload.toString())).size >= n, `cloud got all ${n}`, 30_000)
  // what the dead connection had sent to the stalled broker may arrive too: QoS 1 duplicates
  const firsts: number[] = []
  const seen = new Set<string>()
  for (const m of stalled()) {
    const p = m.payload.toString()
    if (!seen.has(p)) { seen.add(p); firsts.push(Number(p)) }
  }
  t.same(firsts, Array.from({ length: n }, (_, i) => i), 'none lost, first arrivals in order')
  t.comment(`copies received ${stalled().length} for ${n} messages`)
  second.proc.kill('SIGTERM')
  await new Promise((r) => second.proc.once('exit', r))
})
