import t, { type Test } from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { Writable } from 'node:stream'
import { startMosquitto } from '../helpers/mosquitto.js'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'
import { createLogger } from '../../src/logger.js'
import { waitFor, cloudSubscriber } from '../bridge/util.js'

const GOOD = 'Cl0ud-Pa55word-zQ7xK2mV9'
const WRONG = 'Wr0ng-Pa55word-hJ4pL8sN3'

function capture(): { logger: ReturnType<typeof createLogger>; text(): string } {
  const chunks: string[] = []
  const stream = new Writable({ write(chunk, _enc, cb) { chunks.push(chunk.toString()); cb() } })
  return { logger: createLogger('trace', stream), text: () => chunks.join('') }
}

function policyDir(t: Test): string {
  const dir = join(tempDir(t), 'policies')
  mkdirSync(dir)
  writeFileSync(join(dir, 'p.yaml'), 'rules:\n  - { id: open, effect: allow, actions: [publish, subscribe], topics: ["#", "$warden/status"] }\n')
  return dir
}

/** everything the gateway wrote or answers: logs, journal, admin bodies, the retained status, config renderings */
async function everything(g: TestGateway, logs: string): Promise<string> {
  const admin = `http://127.0.0.1:${g.port('admin')}`
  const ops = await connect(t, g.url(), { clientId: 'ops', password: await g.token({ sub: 'ops' }) })
  await ops.subscribeAsync('$warden/status', { qos: 0 })
  const status = (await nextMessage(ops)).payload.toString()
  ops.end(true)
  return [
    logs,
    JSON.stringify(g.journal.entries),
    inspect(g.journal.entries, { depth: 10 }),
    await (await fetch(`${admin}/healthz`)).text(),
    await (await fetch(`${admin}/readyz`)).text(),
    await (await fetch(`${admin}/metrics`)).text(),
    status,
    JSON.stringify(g.gw.config),
    inspect(g.gw.config, { depth: 10 }),
    JSON.stringify(g.gw.bridge!.status()),
  ].join('\n')
}

t.test('the cloud password never leaves the link: logs, journal, admin API, status, errors', async (t) => {
  const cloud = await startMosquitto(t, { users: { 'gw-test': GOOD } })
  const got = await (async () => {
    const c = await connect(t, cloud.url, { clientId: 'cloud-sub', username: 'gw-test', password: GOOD })
    await c.subscribeAsync('up/#', { qos: 1 })
    const msgs: string[] = []
    c.on('message', (topic) => msgs.push(topic))
    return msgs
  })()
  const cap = capture()
  const g = await startGateway(t, {
    policies: { dir: policyDir(t), watch: false },
    upstream: { url: cloud.url, username: 'gw-test', password: GOOD, reconnect: { minMs: 50, maxMs: 200 }, out: [{ local: 'site/#', remote: 'up/${topic}', qos: 1 }] },
  }, { logger: cap.logger })
  await waitFor(() => g.gw.bridge!.link.connected, 'link up with the right password')
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  await dev.publishAsync('site/1', 'x', { qos: 1 })
  await waitFor(() => got.length === 1, 'bridged')
  // an outage and a return: the retry and error paths log too
  await cloud.stop()
  await waitFor(() => !g.gw.bridge!.link.connected, 'down')
  await cloud.start()
  await waitFor(() => g.gw.bridge!.link.connected, 'up again')
  const all = await everything(g, cap.text())
  t.ok(all.includes('upstream_retry') && all.includes('upstream_up'), 'the capture saw the link events')
  t.notOk(all.includes(GOOD), 'the password appears nowhere')
})

t.test('wrong cloud credentials: clear error, retries with backoff, no secret anywhere', async (t) => {
  const cloud = await startMosquitto(t, { users: { 'gw-test': GOOD } })
  const cap = capture()
  const g = await startGateway(t, {
    policies: { dir: policyDir(t), watch: false },
    upstream: { url: cloud.url, username: 'gw-test', password: WRONG, reconnect: { minMs: 20, maxMs: 100 }, out: [{ local: 'site/#', remote: 'up/${topic}', qos: 1 }] },
  }, { logger: cap.logger })
  const bridge = g.gw.bridge!
  await waitFor(() => bridge.link.status().attempts >= 4, 'several attempts')
  const st = bridge.link.status()
  t.equal(st.state === 'up', false)
  t.match(st.lastError, /refused by the cloud broker: (not authorized|bad user name or password) \(CONNACK [45]\)/, 'the error says what is wrong')
  const downs = g.journal.entries.filter((e) => e.type === 'upstream_down')
  t.equal(downs.length, 1, 'one upstream_down for the whole failure')
  t.match(downs[0]!.reason, /CONNACK/)
  t.notOk(g.journal.entries.some((e) => e.type === 'upstream_up'))
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  await dev.publishAsync('site/1', 'queued while refused', { qos: 1 })
  t.equal(bridge.outbox.depth, 1, 'messages queue while the cloud refuses us')
  const err = await bridge.link.publish('x', Buffer.from('y'), { qos: 1 }).catch((e: Error) => e)
  const all = await everything(g, cap.text()) + String(err) + inspect(err)
  t.match(all, /CONNACK/, 'the capture holds the refusal')
  t.notOk(all.includes(WRONG), 'the wrong password appears nowhere')
  t.notOk(all.includes(GOOD), 'nor the right one')
  t.notOk(cloud.output().includes(WRONG), 'mosquitto does not log it either (sanity)')
})
