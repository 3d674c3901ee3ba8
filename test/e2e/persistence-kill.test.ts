// kill -9 of a gateway process (the CLI, spawned) and a restart on the same data dir:
// every QoS 1 message that was PUBACKed while its persistent-session subscriber was
// offline, and a PUBACKed retained message, are delivered after the restart, in order, once.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { JWK } from 'jose'
import { tempDir, OPEN_POLICY_DIR } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'
import { mintToken } from '../../src/identity/mint.js'

const BIN = fileURLToPath(new URL('../../bin/edgewarden.js', import.meta.url))
const ENV = { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', EDGEWARDEN_FROM_SOURCE: '1' }

interface Child { url: string; kill9(): Promise<void> }

async function startChild(t: Test, dir: string, file: string): Promise<Child> {
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], { cwd: dir, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += String(d) })
  child.stderr.on('data', (d) => { stderr += String(d) })
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  await waitFor(() => /is running/.test(stdout) || child.exitCode !== null, 30_000, 'the banner')
  const m = /mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)
  if (!m) throw new Error('gateway did not start: ' + stderr.slice(0, 2000))
  return {
    url: `mqtt://127.0.0.1:${m[1]}`,
    async kill9() {
      child.kill('SIGKILL')
      await exited
    },
  }
}

function collect(t: Test, url: string, opts: IClientOptions): Promise<{ client: MqttClient; messages: string[]; sessionPresent: boolean }> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, protocolVersion: 4, username: opts.clientId, ...opts })
    t.teardown(() => new Promise<void>((r) => c.end(true, {}, () => r())))
    const messages: string[] = []
    c.on('message', (topic, payload) => messages.push(`${topic}=${payload}`))
    c.once('connect', (ack) => resolve({ client: c, messages, sessionPresent: ack.sessionPresent }))
    c.once('error', reject)
  })
}

t.test('PUBACKed QoS 1 messages, a persistent session and a retained message survive kill -9', async (t) => {
  const N = 1000
  const dir = tempDir(t)
  const dataDir = join(dir, 'data')
  const file = join(dir, 'edgewarden.yaml')
  writeFileSync(file, [
    'gateway:', '  id: gw-kill', `  dataDir: ${dataDir}`,
    'listeners:', '  - { type: mqtt, host: 127.0.0.1, port: 0 }',
    'admin: { enabled: false }',
    'log: { level: warn }',
    'limits: { connectRatePerAddress: 100000/s }',
    `policies: { dir: ${OPEN_POLICY_DIR}, watch: false }`,
    // the default, said out loud
    'broker: { persistence: lmdb }',
    '',
  ].join('\n'))

  const a = await startChild(t, dir, file)
  const key = JSON.parse(readFileSync(join(dataDir, 'keys', 'dev-es256.jwk'), 'utf8')) as JWK
  const token = (sub: string): Promise<string> => mintToken(key, { sub, ttlSec: 3600 })

  const sub = await collect(t, a.url, { clientId: 'dev-k', clean: false, password: await token('dev-k') })
  await sub.client.subscribeAsync('site/k/#', { qos: 1 })
  await sub.client.endAsync()

  const pub = await connect(t, a.url, { clientId: 'pub-k', password: await token('pub-k') })
  await pub.publishAsync('site/k/state', 'kept', { qos: 1, retain: true })
  // publishAsync resolves on the PUBACK: every one of these was acknowledged before the kill
  await Promise.all(Array.from({ length: N }, (_, i) => pub.publishAsync('site/k/temp', String(i), { qos: 1 })))
  await a.kill9()
  pub.end(true)

  const b = await startChild(t, dir, file)
  const sub2 = await collect(t, b.url, { clientId: 'dev-k', clean: false, password: await token('dev-k') })
  t.equal(sub2.sessionPresent, true, 'the persistent session survived')
  await waitFor(() => sub2.messages.length >= N + 1, 15_000, `${N + 1} queued messages`)
  const pub2 = await connect(t, b.url, { clientId: 'pub-k', password: await token('pub-k') })
  await pub2.publishAsync('site/k/temp', 'live', { qos: 1 })
  await waitFor(() => sub2.messages.at(-1) === 'site/k/temp=live', 5000, 'the live message')
  t.same(sub2.messages, ['site/k/state=kept', ...Array.from({ length: N }, (_, i) => `site/k/temp=${i}`), 'site/k/temp=live'],
    'every acknowledged message once, in publish order, then the live one')

  const late = await connect(t, b.url, { clientId: 'late', password: await token('late') })
  const got = nextMessage(late)
  await late.subscribeAsync('site/k/state', { qos: 1 })
  t.equal((await got).payload.toString(), 'kept', 'the retained message survived')
})
