import t from 'tap'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { createGateway } from '../../src/index.js'
import { silentLogger } from '../../src/logger.js'
import { mintToken } from '../../src/identity/mint.js'
import { LmdbJournal } from '../../src/journal/lmdb.js'
import { decodeRecord } from '../../src/journal/codec.js'
import { OPEN_POLICY_DIR, tempDir } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { waitFor } from '../helpers/wait.js'

const BIN = fileURLToPath(new URL('../../bin/edgewarden.js', import.meta.url))
const cli = (cwd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
  execFile(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', EDGEWARDEN_FROM_SOURCE: '1' }, timeout: 30_000 }, (err, stdout, stderr) => {
    resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
  })
})

t.test('replay of a recorded session into a second broker reproduces its topic/payload sequence', async (t) => {
  const dir = tempDir(t)
  const gw = await createGateway({
    env: {}, cwd: dir,
    overrides: {
      gateway: { id: 'gw-r', dataDir: dir }, listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }], admin: { enabled: false },
      broker: { persistence: 'memory' }, log: { level: 'silent' }, policies: { dir: OPEN_POLICY_DIR, watch: false },
      journal: { recordPayloads: 'masked' },
    },
  }, { logger: silentLogger })
  await gw.start()
  t.teardown(() => gw.stop())
  const url = `mqtt://127.0.0.1:${gw.address('mqtt')!.port}`
  const dev = await connect(t, url, { clientId: 'dev-9', password: await mintToken(gw.devKey!.privateJwk, { sub: 'dev-9', ttlSec: 600 }) })
  const other = await connect(t, url, { clientId: 'dev-8', password: await mintToken(gw.devKey!.privateJwk, { sub: 'dev-8', ttlSec: 600 }) })
  const sent: string[] = []
  for (let i = 0; i < 12; i++) {
    const topic = `site/1/dev/dev-9/${i % 3 === 0 ? 'status' : 'telemetry'}`
    const payload = i === 5 ? Buffer.from([0, 1, 2, 255]) : Buffer.from(`{"n":${i}}`)
    await dev.publishAsync(topic, payload, { qos: (i % 2) as 0 | 1 })
    await other.publishAsync('site/1/dev/dev-8/telemetry', `noise ${i}`, { qos: 1 })
    sent.push(`${topic} ${payload.toString('hex')}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  const j = gw.journal as LmdbJournal
  await j.flush()
  let session: string | undefined
  for (const { value } of j.dbs.records.getRange()) {
    const r = decodeRecord(value)
    if (r.type === 'connect' && r.clientId === 'dev-9') session = r.session
  }
  t.ok(session, 'the connection has a session id')

  // printed
  const printed = await cli(dir, 'replay', '--session', session!, '--data-dir', dir)
  t.equal(printed.code, 0, printed.stderr)
  const lines = printed.stdout.trim().split('\n').map((l) => JSON.parse(l))
  t.same(lines.map((l) => `${l.topic} ${Buffer.from(l.payload, 'base64').toString('hex')}`), sent, 'prints exactly the session\'s publishes in order')
  t.ok(lines.at(-1).at > lines[0].at, 'with their recorded timing')

  // re-published into a second broker
  const cloud = await startMosquitto(t)
  const rx = mqtt.connect(cloud.url, { clientId: 'rx', reconnectPeriod: 0, protocolVersion: 4 })
  t.teardown(() => { rx.end(true) })
  await new Promise((r) => rx.once('connect', r))
  await rx.subscribeAsync('site/#', { qos: 1 })
  const got: string[] = []
  rx.on('message', (topic, payload) => got.push(`${topic} ${payload.toString('hex')}`))
  const r = await cli(dir, 'replay', '--session', session!, '--data-dir', dir, '--to', cloud.url, '--speed', '4')
  t.equal(r.code, 0, r.stderr)
  await waitFor(() => got.length >= sent.length, 10_000, 'replayed messages')
  t.same(got, sent, 'same topic/payload sequence')
  t.equal((await cli(dir, 'replay', '--session', 'no-such-session', '--data-dir', dir)).code, 2)
})
