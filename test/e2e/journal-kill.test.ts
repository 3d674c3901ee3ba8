import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { OPEN_POLICY_DIR, tempDir } from '../helpers/gateway.js'
import { startMosquitto, freePort } from '../helpers/mosquitto.js'
import { waitFor } from '../helpers/wait.js'
import { ensureDevKey } from '../../src/identity/devkey.js'
import { mintToken } from '../../src/identity/mint.js'
import { openJournalReader } from '../../src/journal/reader.js'
import { verifyJournal } from '../../src/journal/verify.js'
import { readGatewayPublicKey } from '../../src/journal/signing.js'
import { decodeBatch } from '../../src/journal/batch.js'
import { ChainFollower } from '../../src/journal/follow.js'

const BIN = fileURLToPath(new URL('../../bin/edgewarden.js', import.meta.url))
const TOTAL = 20_000

/** Runs `edgewarden start` as a real process; resolves once it prints its banner. */
async function startCli(t: Test, config: string) {
  const child = spawn(process.execPath, [BIN, 'start', '--config', config], { env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', EDGEWARDEN_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d })
  child.stderr.on('data', (d: Buffer) => { out += d })
  await waitFor(() => /is running/.test(out) || child.exitCode !== null, 30_000, 'gateway banner')
  if (child.exitCode !== null) throw new Error(`gateway exited: ${out}`)
  return child
}

t.test('kill -9 of the gateway during 20,000 QoS 1 publishes: every acknowledged one is journaled and shipped exactly once after dedup', async (t) => {
  const dir = tempDir(t)
  const port = await freePort()
  const yaml = (upstream?: string) => [
    `gateway: { id: gw-kill, fleet: acme, dataDir: ${JSON.stringify(join(dir, 'data'))} }`,
    `listeners: [ { type: mqtt, host: 127.0.0.1, port: ${port} } ]`,
    'admin: { enabled: false }',
    'broker: { persistence: memory }',
    `policies: { dir: ${JSON.stringify(OPEN_POLICY_DIR)}, watch: false }`,
    'journal: { recordPayloads: masked }',
    "limits: { connectRatePerAddress: '1000/s' }",
    'log: { level: warn }',
    ...(upstream ? [`upstream: { url: ${JSON.stringify(upstream)}, clientId: gw-kill, reconnect: { minMs: 50, maxMs: 500 }, audit: { batchRecords: 2000, batchMs: 100 } }`] : []),
  ].join('\n') + '\n'
  const config = join(dir, 'edgewarden.yaml')
  writeFileSync(config, yaml())
  const key = await ensureDevKey(join(dir, 'data'))
  let gw = await startCli(t, config)

  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'dev-1', username: 'dev-1', password: await mintToken(key.privateJwk, { sub: 'dev-1', ttlSec: 3600 }), reconnectPeriod: 0, protocolVersion: 4 })
  t.teardown(() => { c.end(true) })
  await new Promise((r, j) => { c.once('connect', r); c.once('error', j) })
  const acked = new Set<number>()
  const killed = new Promise<void>((resolve) => {
    let sent = 0
    const pump = (): void => {
      // keep a window in flight so the kill lands mid-stream with publishes outstanding
      while (sent < TOTAL && sent - acked.size < 500) {
        const i = sent++
        c.publish('site/1/dev/dev-1/telemetry', String(i), { qos: 1 }, (err) => {
          if (err) return
          acked.add(i)
          if (acked.size === 8000) { gw.kill('SIGKILL'); resolve() }
          pump()
        })
      }
    }
    pump()
  })
  await killed
  await new Promise((r) => (gw.exitCode !== null || gw.signalCode !== null ? r(null) : gw.once('exit', r)))
  c.end(true)
  t.ok(acked.size >= 8000 && acked.size < TOTAL, `${acked.size} publishes acknowledged before kill -9`)

  // every acknowledged publish is in the journal, and the chain holds
  const reader = openJournalReader(join(dir, 'data'))
  const journaled = new Set<number>()
  for (const r of reader.records()) if (r.type === 'publish') journaled.add(Number(Buffer.from(r.payload!).toString()))
  let missing = 0
  for (const i of acked) if (!journaled.has(i)) missing++
  t.equal(missing, 0, `no acknowledged publish lost (${journaled.size} journaled)`)
  const v = await verifyJournal(reader.dbs)
  t.ok(v.ok, v.problem ?? 'chain verifies after kill -9')
  await reader.close()

  // restart with a cloud: everything reaches the receiver, each acknowledged publish exactly once after dedup
  const cloud = await startMosquitto(t, { persistence: true })
  const rx = mqtt.connect(cloud.url, { clientId: 'collector', clean: false, reconnectPeriod: 100, protocolVersion: 4 })
  t.teardown(() => { rx.end(true) })
  await new Promise((r) => rx.once('connect', r))
  await rx.subscribeAsync('fleet/acme/gw-kill/audit', { qos: 1 })
  const follower = new ChainFollower(readGatewayPublicKey(join(dir, 'data'))!, 'gw-kill')
  const got = new Map<number, number>()
  let problems = 0
  let chain = Promise.resolve()
  rx.on('message', (_topic, payload) => {
    chain = chain.then(async () => {
      const r = await follower.accept(await decodeBatch(payload))
      if (r.problem || r.gap) problems++
      for (const rec of r.accepted) if (rec.type === 'publish') {
        const i = Number(Buffer.from(rec.payload!).toString())
        got.set(i, (got.get(i) ?? 0) + 1)
      }
    })
  })
  writeFileSync(config, yaml(cloud.url))
  gw = await startCli(t, config)
  await waitFor(() => got.size >= journaled.size, 30_000, 'all journaled publishes at the receiver')
  await chain
  t.equal(problems, 0, 'every batch verifies, no gap')
  let twice = 0
  let lost = 0
  for (const i of acked) if (got.get(i) !== 1) (got.has(i) ? twice++ : lost++)
  t.equal(lost, 0, 'every acknowledged publish reached the receiver')
  t.equal(twice, 0, 'exactly once after dedup')
  gw.kill('SIGTERM')
  await new Promise((r) => gw.once('exit', r))
})
