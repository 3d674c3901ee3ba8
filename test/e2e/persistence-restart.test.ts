// Broker state on LMDB survives a gateway stop → start on the same data dir: retained
// messages, a persistent session's subscriptions, and QoS 1 messages queued while its
// device was offline (delivered in order, once).
import t, { type Test } from 'tap'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'

function start(t: Test, dataDir: string, broker: Record<string, unknown> = {}): Promise<TestGateway> {
  return startGateway(t, { gateway: { id: 'gw-test', dataDir }, broker: { persistence: 'lmdb', ...broker } })
}

interface Collector { client: MqttClient; messages: Array<{ topic: string; payload: string; retain: boolean }>; sessionPresent: boolean }

/** Connects with a message listener attached before CONNACK: a resumed session's queue follows it at once. */
function collect(t: Test, url: string, opts: IClientOptions): Promise<Collector> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, protocolVersion: 4, username: opts.clientId, ...opts })
    t.teardown(() => new Promise<void>((r) => c.end(true, {}, () => r())))
    const out: Collector = { client: c, messages: [], sessionPresent: false }
    c.on('message', (topic, payload, packet) => out.messages.push({ topic, payload: payload.toString(), retain: packet.retain }))
    c.once('connect', (ack) => { out.sessionPresent = ack.sessionPresent; resolve(out) })
    c.once('error', reject)
  })
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what)
    await new Promise((r) => setTimeout(r, 10))
  }
}

t.test('retained, persistent session and its offline QoS 1 queue survive stop → start', async (t) => {
  const dataDir = tempDir(t)
  const N = 1000
  const g1 = await start(t, dataDir)
  const subOpts = { clientId: 'dev-1', clean: false, password: await g1.token({ sub: 'dev-1' }) }
  const sub1 = await collect(t, g1.url(), subOpts)
  t.equal(sub1.sessionPresent, false, 'new session')
  await sub1.client.subscribeAsync('site/1/#', { qos: 1 })
  await sub1.client.endAsync()

  const pub = await connect(t, g1.url(), { clientId: 'pub-1', password: await g1.token({ sub: 'pub-1' }) })
  await pub.publishAsync('site/status/gw', 'online', { qos: 1, retain: true })
  await Promise.all(Array.from({ length: N }, (_, i) => pub.publishAsync('site/1/temp', String(i), { qos: 1 })))
  await pub.endAsync()
  await g1.gw.stop()

  const g2 = await start(t, dataDir)
  t.not(g2.port(), 0)
  const sub2 = await collect(t, g2.url(), { ...subOpts, password: await g2.token({ sub: 'dev-1' }) })
  t.equal(sub2.sessionPresent, true, 'session resumed after restart')
  await until(() => sub2.messages.length >= N, `${N} queued messages`)
  // a live message after the queue: proves the restored subscription routes, and bounds the list
  const pub2 = await connect(t, g2.url(), { clientId: 'pub-1', password: await g2.token({ sub: 'pub-1' }) })
  await pub2.publishAsync('site/1/temp', 'live', { qos: 1 })
  await until(() => sub2.messages.at(-1)?.payload === 'live', 'the live message')
  const payloads = sub2.messages.map((m) => m.payload)
  t.same(payloads, [...Array.from({ length: N }, (_, i) => String(i)), 'live'], 'every queued message once, in order, then the live one')
  t.ok(sub2.messages.every((m) => m.topic === 'site/1/temp'))

  const late = await connect(t, g2.url(), { clientId: 'late', password: await g2.token({ sub: 'late' }) })
  const got = nextMessage(late)
  await late.subscribeAsync('site/status/#', { qos: 1 })
  const m = await got
  t.equal(m.topic, 'site/status/gw')
  t.equal(m.payload.toString(), 'online', 'retained message survived')
})

t.test('a clean session forgets; unsubscribe and retained delete are durable too', async (t) => {
  const dataDir = tempDir(t)
  const g1 = await start(t, dataDir)
  const a = await collect(t, g1.url(), { clientId: 'dev-a', clean: false, password: await g1.token({ sub: 'dev-a' }) })
  await a.client.subscribeAsync(['site/a/1', 'site/a/2'], { qos: 1 })
  await a.client.unsubscribeAsync('site/a/2')
  await a.client.endAsync()
  const b = await collect(t, g1.url(), { clientId: 'dev-b', clean: false, password: await g1.token({ sub: 'dev-b' }) })
  await b.client.subscribeAsync('site/b/#', { qos: 1 })
  await b.client.endAsync()
  // dev-b comes back with a clean session: its stored session is discarded
  const b2 = await collect(t, g1.url(), { clientId: 'dev-b', clean: true, password: await g1.token({ sub: 'dev-b' }) })
  await b2.client.endAsync()
  const pub = await connect(t, g1.url(), { clientId: 'pub', password: await g1.token({ sub: 'pub' }) })
  await pub.publishAsync('site/r/x', 'keep', { qos: 1, retain: true })
  await pub.publishAsync('site/r/y', 'gone', { qos: 1, retain: true })
  await pub.publishAsync('site/r/y', '', { qos: 1, retain: true })
  await pub.publishAsync('site/a/2', 'not subscribed any more', { qos: 1 })
  await pub.publishAsync('site/a/1', 'queued', { qos: 1 })
  await pub.publishAsync('site/b/1', 'for nobody', { qos: 1 })
  await pub.endAsync()
  await g1.gw.stop()

  const g2 = await start(t, dataDir)
  const a2 = await collect(t, g2.url(), { clientId: 'dev-a', clean: false, password: await g2.token({ sub: 'dev-a' }) })
  t.equal(a2.sessionPresent, true)
  await until(() => a2.messages.length >= 1, 'queued message')
  const b3 = await collect(t, g2.url(), { clientId: 'dev-b', clean: false, password: await g2.token({ sub: 'dev-b' }) })
  t.equal(b3.sessionPresent, false, 'the clean session left nothing behind')
  const r = await collect(t, g2.url(), { clientId: 'reader', password: await g2.token({ sub: 'reader' }) })
  await r.client.subscribeAsync('site/r/#', { qos: 1 })
  await until(() => r.messages.length >= 1, 'retained')
  // a live marker bounds both lists: anything stale would have arrived before it
  const pub2 = await connect(t, g2.url(), { clientId: 'pub', password: await g2.token({ sub: 'pub' }) })
  await b3.client.subscribeAsync('site/b/#', { qos: 1 })
  await pub2.publishAsync('site/a/1', 'end', { qos: 1 })
  await pub2.publishAsync('site/r/end', 'end', { qos: 1 })
  await pub2.publishAsync('site/b/end', 'end', { qos: 1 })
  await until(() => a2.messages.at(-1)?.payload === 'end' && r.messages.at(-1)?.payload === 'end' && b3.messages.at(-1)?.payload === 'end', 'markers')
  t.same(a2.messages.map((m) => m.payload), ['queued', 'end'], 'only the still-subscribed topic was queued')
  t.same(r.messages.map((m) => `${m.topic}=${m.payload}`), ['site/r/x=keep', 'site/r/end=end'], 'the deleted retained message stays deleted')
  t.same(b3.messages.map((m) => m.payload), ['end'], 'nothing was queued for the discarded session')
})
