import t, { type Test } from 'tap'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { createGateway } from '../../src/index.js'
import { silentLogger } from '../../src/logger.js'
import { mintToken } from '../../src/identity/mint.js'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { waitFor } from '../helpers/wait.js'

const OPEN_RULES = `rules:
  - { id: open, effect: allow, actions: [publish, subscribe], topics: ['#'] }
`
const MASKS = `masks:
  - id: pii-auditors
    topics: ['site/+/dev/+/telemetry']
    format: json
    fields:
      - { path: owner.email, action: redact }
    unmaskedFor: { groups: [auditors] }
  - id: ids-ops
    topics: ['site/#']
    fields:
      - { path: customer_id, action: hash }
    unmaskedFor: { groups: [ops] }
  - id: always
    topics: ['site/+/dev/+/telemetry', 'site/+/status']
    fields:
      - { path: debug, action: drop }
      - { path: 'readings[*].serial', action: redact }
      - { path: gps.lat, action: round, digits: 2 }
    detectors: [credit_card, secret]
  - id: strict-json
    topics: ['strict/#']
    format: json
    fields: [{ path: pw, action: redact }]
  - id: lenient-json
    topics: ['lenient/#']
    format: json
    onParseError: redact-all
    fields: [{ path: pw, action: redact }]
`

const RAW = {
  owner: { email: 'bob@example.com', name: 'Bob' },
  customer_id: 'CUST-000123',
  debug: { heap: 123 },
  readings: [{ serial: 'SN-77', v: 1 }, { serial: 'SN-78', v: 2 }],
  gps: { lat: 52.520008, lon: 13.404954 },
  note: 'paid with 4111 1111 1111 1111, key AKIAIOSFODNN7EXAMPLE',
}

function policyDir(t: Test, text = OPEN_RULES + MASKS): string {
  const dir = tempDir(t, 'ew-maskpol-')
  writeFileSync(join(dir, 'policy.yaml'), text)
  return dir
}

async function client(t: Test, g: TestGateway, sub: string, groups: string[] = []): Promise<MqttClient> {
  return connect(t, g.url(), { clientId: sub, password: await g.token({ sub, groups }) })
}

const parse = (b: Buffer) => JSON.parse(b.toString()) as typeof RAW & Record<string, unknown>

t.test('three subscribers, three views; unconditional masks for everyone; the journal sees the masked view', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t), watch: false }, masking: { hashKey: 'test-key-for-hmac' } })
  const auditor = await client(t, g, 'aud-1', ['auditors'])
  const ops = await client(t, g, 'ops-1', ['ops'])
  const plain = await client(t, g, 'app-1', ['apps'])
  for (const c of [auditor, ops, plain]) await c.subscribeAsync('site/#', { qos: 1 })
  const dev = await client(t, g, 'dev-1', ['sensors'])
  const got = Promise.all([auditor, ops, plain].map((c) => nextMessage(c)))
  await dev.publishAsync('site/1/dev/d1/telemetry', JSON.stringify(RAW), { qos: 1 })
  const [a, o, p] = (await got).map((m) => parse(m.payload))

  // unconditional: nobody sees debug, serials, the precise latitude, the card or the key
  for (const v of [a, o, p]) {
    t.notOk('debug' in v)
    t.same(v.readings, [{ serial: '[REDACTED]', v: 1 }, { serial: '[REDACTED]', v: 2 }])
    t.equal(v.gps.lat, 52.52)
    t.equal(v.note, 'paid with [REDACTED:credit_card], key [REDACTED:secret]')
  }
  t.equal(a.owner.email, 'bob@example.com', 'auditors see the email')
  t.match(a.customer_id, /^h:[0-9a-f]{32}$/, 'but not the customer id')
  t.equal(o.owner.email, '[REDACTED]', 'ops do not see the email')
  t.equal(o.customer_id, 'CUST-000123', 'but see the customer id')
  t.equal(p.owner.email, '[REDACTED]', 'everyone else sees neither')
  t.equal(p.customer_id, a.customer_id, 'one stable hash token')
  t.equal(p.owner.name, 'Bob', 'unmasked fields pass')

  const e = await waitFor(() => g.journal.entries.find((x) => x.type === 'publish' && x.topic === 'site/1/dev/d1/telemetry'))
  t.same([...(e.masks ?? [])].sort(), ['always', 'ids-ops', 'pii-auditors'], 'publish record lists the masks')
  t.same(e.masked, { drop: 1, redact: 3, round: 1, credit_card: 1, secret: 1, hash: 1 }, 'and counts, never values')
  const journaled = Buffer.from(e.payload!).toString()
  for (const raw of ['bob@example.com', 'CUST-000123', '4111 1111', 'AKIAIOSFODNN7EXAMPLE', 'SN-77', '52.520008']) t.notMatch(journaled, raw, `journal payload has no ${raw}`)
  t.notMatch(JSON.stringify(g.journal.entries, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString() : v)), /bob@example\.com|CUST-000123/, 'no raw value anywhere in the journal')
})

t.test('retained messages: stored masked; a late subscriber gets its own view', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t), watch: false } })
  const dev = await client(t, g, 'dev-2')
  await dev.publishAsync('site/2/status', JSON.stringify({ debug: 'secret internals', customer_id: 'CUST-9', ok: true }), { qos: 1, retain: true })
  await dev.publishAsync('site/2/dev/d2/telemetry', JSON.stringify(RAW), { qos: 1, retain: true })
  // late subscribers, after the publish
  const auditor = await client(t, g, 'aud-2', ['auditors'])
  const plain = await client(t, g, 'app-2')
  const collect = async (c: MqttClient) => {
    const got: Record<string, Record<string, any>> = {}
    c.on('message', (topic, payload) => { got[topic] = JSON.parse(payload.toString()) })
    await c.subscribeAsync('site/2/#', { qos: 1 })
    await waitFor(() => Object.keys(got).length === 2)
    return got
  }
  const [a, p] = await Promise.all([collect(auditor), collect(plain)])
  t.same(Object.keys(a['site/2/status']!).sort(), ['customer_id', 'ok'], 'unconditional drop applied to the stored message')
  t.match(a['site/2/status']!.customer_id, /^h:/, 'auditors are not ops: the id is hashed for them too')
  t.notOk('debug' in p['site/2/status']!)
  t.match(p['site/2/status']!.customer_id, /^h:/, 'conditional mask at the exit')
  t.equal(a['site/2/dev/d2/telemetry']!.owner.email, 'bob@example.com', 'retained raw (conditional masks) → auditors get it')
  t.equal(p['site/2/dev/d2/telemetry']!.owner.email, '[REDACTED]', 'others get the masked view of the retained message')
  t.notOk('debug' in a['site/2/dev/d2/telemetry']!, 'retained storage never held the unconditionally masked fields')
  // the retained store itself holds no unconditionally masked value
  const stored: Buffer[] = []
  await new Promise<void>((resolve) => {
    const s = (g.gw.core.aedes as any).persistence.createRetainedStreamCombi(['site/2/#'])
    s.on('data', (pk: { payload: Buffer }) => stored.push(pk.payload))
    s.on('end', resolve)
  })
  t.equal(stored.length, 2)
  for (const b of stored) t.notMatch(b.toString(), /secret internals|4111 1111|SN-77/)
})

t.test('onParseError: block refuses and journals; a mask may choose redact-all', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t), watch: false } })
  const watcher = await client(t, g, 'watch-3')
  await watcher.subscribeAsync(['strict/#', 'lenient/#'], { qos: 1 })
  const got: string[] = []
  watcher.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`))
  const dev = await client(t, g, 'dev-3')
  // refused: acknowledged (no negative PUBACK in MQTT 3.1.1) and dropped
  await dev.publishAsync('strict/a', 'pw=hunter2 (not json)', { qos: 1 })
  const denied = await waitFor(() => g.journal.entries.find((e) => e.type === 'publish_denied' && e.topic === 'strict/a'))
  t.equal(denied.reason, 'unparseable_payload')
  t.same(denied.masks, ['strict-json'], 'names the mask')
  t.notMatch(JSON.stringify(denied), /hunter2/, 'no payload content in the record')
  const dev2 = await client(t, g, 'dev-3b')
  await dev2.publishAsync('lenient/a', 'pw=hunter2 (not json)', { qos: 1 })
  await dev2.publishAsync('strict/b', '{"pw":"hunter2","n":1}', { qos: 1 })
  await waitFor(() => got.length === 2)
  t.same(got, ['lenient/a [REDACTED]', 'strict/b {"pw":"[REDACTED]","n":1}'], 'nothing from the refused publish; redact-all replaces the whole payload')
})

t.test('the bridge sends only the masked view; the LMDB journal file holds no raw value', async (t) => {
  const cloud = await startMosquitto(t)
  const dataDir = tempDir(t)
  const gw = await createGateway({
    env: {}, cwd: dataDir,
    overrides: {
      gateway: { id: 'gw-m', fleet: 'acme', dataDir },
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }],
      admin: { enabled: false },
      broker: { persistence: 'memory' },
      log: { level: 'silent' },
      limits: { connectRatePerAddress: '100000/s' },
      policies: { dir: policyDir(t), watch: false },
      upstream: { url: cloud.url, reconnect: { minMs: 50, maxMs: 200 }, out: [{ local: 'site/#', remote: 'cloud/${topic}', qos: 1 }] },
    },
  }, { logger: silentLogger })
  await gw.start()
  t.teardown(() => gw.stop())
  await waitFor(() => gw.bridge!.link.connected, 10_000, 'link up')
  const cloudSub = await connect(t, cloud.url, { clientId: 'cloud-sub' })
  await cloudSub.subscribeAsync('cloud/#', { qos: 1 })
  const url = `mqtt://127.0.0.1:${gw.address('mqtt')!.port}`
  const dev = await connect(t, url, { clientId: 'dev-4', password: await mintToken(gw.devKey!.privateJwk, { sub: 'dev-4', ttlSec: 600 }) })
  const msg = nextMessage(cloudSub, 10_000)
  await dev.publishAsync('site/4/dev/d4/telemetry', JSON.stringify(RAW), { qos: 1 })
  const m = await msg
  t.equal(m.topic, 'cloud/site/4/dev/d4/telemetry')
  const v = parse(m.payload)
  t.equal(v.owner.email, '[REDACTED]', 'the cloud is nobody’s auditor: fully masked')
  t.match(v.customer_id, /^h:/)
  t.notOk('debug' in v)
  await gw.stop()
  const bytes = Buffer.concat(readdirSync(dataDir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile()).map((d) => readFileSync(join(d.parentPath, d.name))))
  t.ok(bytes.includes(Buffer.from('[REDACTED]')), 'the journal holds the masked payload')
  for (const raw of ['bob@example.com', 'CUST-000123', 'AKIAIOSFODNN7EXAMPLE', '4111 1111 1111 1111']) t.notOk(bytes.includes(Buffer.from(raw)), `no ${raw} in any data dir file`)
})

t.test('masks reload with the policy files', async (t) => {
  const dir = policyDir(t, OPEN_RULES)
  const g = await startGateway(t, { policies: { dir, watch: true } })
  const sub = await client(t, g, 'app-5')
  await sub.subscribeAsync('r/#', { qos: 1 })
  const dev = await client(t, g, 'dev-5')
  let next = nextMessage(sub)
  await dev.publishAsync('r/1', '{"pw":"a"}', { qos: 1 })
  t.equal((await next).payload.toString(), '{"pw":"a"}', 'no mask yet')
  writeFileSync(join(dir, 'policy.yaml'), OPEN_RULES + "masks:\n  - { id: pw, topics: ['r/#'], fields: [{ path: pw, action: redact }] }\n")
  await waitFor(() => g.journal.entries.some((e) => e.type === 'policy_applied'), 10_000, 'policy reload')
  next = nextMessage(sub)
  await dev.publishAsync('r/1', '{"pw":"b"}', { qos: 1 })
  t.equal((await next).payload.toString(), '{"pw":"[REDACTED]"}', 'the reloaded mask applies')
  writeFileSync(join(dir, 'policy.yaml'), OPEN_RULES + "masks:\n  - { id: pw, topics: ['r/#'], fields: [{ path: pw, action: scramble }] }\n")
  await waitFor(() => g.journal.entries.some((e) => e.type === 'policy_rejected'), 10_000, 'bad masks rejected')
  next = nextMessage(sub)
  await dev.publishAsync('r/1', '{"pw":"c"}', { qos: 1 })
  t.equal((await next).payload.toString(), '{"pw":"[REDACTED]"}', 'invalid masks keep the running ones')
})
