// Masks still apply to durable broker state (SPEC §5): a retained or queued message is
// stored masked unless its mask keeps views (`unmaskedFor`), and after a restart each
// subscriber — resumed session or new — gets the view its identity may see.
import t, { type Test } from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import mqtt from 'mqtt'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'
import { LmdbPersistence, type StoredPacket } from '../../src/broker/persistence/lmdb.js'

const POLICY = `rules:
  - { id: open, effect: allow, actions: [publish, subscribe], topics: ['#'] }
masks:
  - { id: pw, topics: ['m/#'], format: json, fields: [{ path: pw, action: redact }] }
  - { id: pw-views, topics: ['v/#'], format: json, fields: [{ path: pw, action: redact }], unmaskedFor: { groups: [auditors] } }
`

function start(t: Test, dataDir: string, policies: string): Promise<TestGateway> {
  return startGateway(t, { gateway: { id: 'gw-test', dataDir }, broker: { persistence: 'lmdb' }, policies: { dir: policies, watch: false } })
}

/** a persistent session that collects `topic=payload` from before its CONNACK */
async function session(t: Test, g: TestGateway, sub: string, groups: string[] = []): Promise<string[]> {
  const got: string[] = []
  const c = mqtt.connect(g.url(), { clientId: sub, username: sub, clean: false, password: await g.token({ sub, groups }), reconnectPeriod: 0, protocolVersion: 4 })
  t.teardown(() => new Promise<void>((r) => c.end(true, {}, () => r())))
  c.on('message', (topic, payload) => got.push(`${topic}=${payload}`))
  await new Promise((r) => c.once('connect', r))
  return got
}

async function retainedIn(dataDir: string, topic: string): Promise<string> {
  const p = new LmdbPersistence({ dataDir })
  await p.setup({ id: 'gw-test', counter: 0 })
  const out: string[] = []
  for await (const x of p.createRetainedStreamCombi([topic]) as Readable) out.push(String((x as StoredPacket).payload))
  await p.destroy()
  return out.join()
}

t.test('retained and queued messages are stored masked unless the mask keeps views; views apply after a restart', async (t) => {
  const dataDir = tempDir(t)
  const policies = join(tempDir(t), 'policies')
  mkdirSync(policies)
  writeFileSync(join(policies, 'policy.yaml'), POLICY)

  const g1 = await start(t, dataDir, policies)
  for (const [sub, groups] of [['app', []], ['auditor', ['auditors']]] as const) {
    const c = await connect(t, g1.url(), { clientId: sub, clean: false, password: await g1.token({ sub, groups: [...groups] }) })
    await c.subscribeAsync(['m/#', 'v/#'], { qos: 1 })
    await c.endAsync()
  }
  const pub = await connect(t, g1.url(), { clientId: 'dev', password: await g1.token({ sub: 'dev' }) })
  await pub.publishAsync('m/1', '{"pw":"s1"}', { qos: 1, retain: true })
  await pub.publishAsync('v/1', '{"pw":"s2"}', { qos: 1, retain: true })
  await pub.endAsync()
  await g1.gw.stop()

  t.equal(await retainedIn(dataDir, 'm/1'), '{"pw":"[REDACTED]"}', 'a mask without views: stored masked')
  t.equal(await retainedIn(dataDir, 'v/1'), '{"pw":"s2"}', 'a mask with unmaskedFor keeps the raw message inside the broker')

  const g2 = await start(t, dataDir, policies)
  const app = await session(t, g2, 'app')
  const auditor = await session(t, g2, 'auditor', ['auditors'])
  await waitFor(() => app.length >= 2 && auditor.length >= 2, 5000, 'queued messages')
  t.same(app, ['m/1={"pw":"[REDACTED]"}', 'v/1={"pw":"[REDACTED]"}'], 'resumed session without the group: masked view')
  t.same(auditor, ['m/1={"pw":"[REDACTED]"}', 'v/1={"pw":"s2"}'], 'resumed auditor: raw only where the mask keeps views')

  const fresh = await connect(t, g2.url(), { clientId: 'fresh', password: await g2.token({ sub: 'fresh' }) })
  const got: string[] = []
  fresh.on('message', (topic, payload) => got.push(`${topic}=${payload}`))
  await fresh.subscribeAsync(['m/#', 'v/#'], { qos: 1 })
  await waitFor(() => got.length >= 2, 5000, 'retained messages')
  t.same(got.sort(), ['m/1={"pw":"[REDACTED]"}', 'v/1={"pw":"[REDACTED]"}'], 'retained after restart: masked for a subscriber without views')
})
