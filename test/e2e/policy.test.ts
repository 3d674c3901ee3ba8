import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect, connackCode, waitClose } from '../helpers/mqtt.js'
import type { JournalEntry } from '../../src/journal/types.js'
import { MATRIX_POLICY, ROWS, who, type Row } from '../policy/fixture.js'

async function waitFor<T>(what: string, probe: () => T | undefined, ms = 5000): Promise<T> {
  const until = Date.now() + ms
  for (;;) {
    const v = probe()
    if (v !== undefined) return v
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function policyDir(t: Parameters<typeof tempDir>[0], text: string): string {
  const dir = tempDir(t, 'ew-pol-')
  writeFileSync(join(dir, 'policy.yaml'), text)
  return dir
}

async function client(t: Parameters<typeof tempDir>[0], g: TestGateway, w: keyof typeof who): Promise<MqttClient> {
  const id = who[w]
  const password = await g.token({ sub: id.sub, groups: id.groups, kind: id.kind, clientId: id.clientId === id.sub ? undefined : id.clientId, extra: id.claims as Record<string, unknown> })
  return connect(t, g.url(), { clientId: id.clientId, password })
}

/** SUBACK return codes, 0x80 included (MQTT.js rejects subscribeAsync on 0x80). */
async function suback(c: MqttClient, topics: string | string[], qos: 0 | 1 | 2 = 0): Promise<number[]> {
  try {
    return (await c.subscribeAsync(topics, { qos })).map((g) => g.qos)
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted
    if (!granted) throw err
    return granted
  }
}

const after = (g: TestGateway, mark: number, types: string[], clientId: string): JournalEntry | undefined =>
  g.journal.entries.slice(mark).find((e) => types.includes(e.type) && e.clientId === clientId)

t.test('decision matrix through real MQTT clients', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t, MATRIX_POLICY), watch: false } })
  for (const row of ROWS) {
    const [w, action, topic, input, effect, rule, reason] = row as Row
    const label = `${w} ${action} ${topic || '(connect)'}`
    const id = who[w]
    // MQTT forbids wildcards in a PUBLISH topic: those rows are unit-only
    if (action === 'publish' && /[+#]/.test(topic)) continue
    const mark = g.journal.entries.length
    if (action === 'connect') {
      const password = await g.token({ sub: id.sub, groups: id.groups, kind: id.kind })
      t.equal(await connackCode(t, g.url(), { clientId: id.clientId, password }), effect === 'allow' ? 0 : 5, `${label}: CONNACK`)
      if (effect === 'deny') t.match(after(g, mark, ['connect_denied'], id.clientId), { rule, reason }, `${label}: journaled`)
      continue
    }
    const c = await client(t, g, w)
    if (action === 'subscribe') {
      const granted = await suback(c, topic, (input.qos ?? 0) as 0 | 1 | 2)
      const e = after(g, mark, ['subscribe', 'subscribe_denied'], id.clientId)
      if (effect === 'deny') {
        t.equal(granted[0], 128, `${label}: SUBACK 0x80`)
        t.match(e, { type: 'subscribe_denied', topic, rule: rule ?? undefined, reason }, `${label}: journaled`)
      } else {
        t.not(granted[0], 128, `${label}: granted`)
        t.match(e, { type: 'subscribe', topic, rule }, `${label}: journaled`)
      }
    } else {
      const qos = (input.qos ?? 0) as 0 | 1 | 2
      const acked = new Promise<void>((resolve, reject) => c.publish(topic, input.payload ?? '', { qos, retain: input.retain ?? false }, (err) => (err ? reject(err) : resolve())))
      const e = await waitFor(`${label} journal`, () => after(g, mark, ['publish', 'publish_denied', 'held'], id.clientId))
      const type = { allow: 'publish', deny: 'publish_denied', hold: 'held' }[effect]
      t.match(e, { type, topic: effect === 'hold' ? topic : topic, rule: rule ?? undefined, ...(effect === 'deny' ? { reason } : {}) }, `${label}: ${type}`)
      // every outcome is acknowledged; a refusal (MQTT 3.1.1 has no negative PUBACK) is dropped and the connection stays
      await acked
      if (effect === 'deny') t.ok(c.connected, `${label}: acknowledged and dropped, still connected`)
    }
    c.end(true)
  }
})

t.test('subscriptions get at most the allowed QoS', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t, MATRIX_POLICY), watch: false } })
  const c = await client(t, g, 'dash')
  await suback(c, 'site/+/dev/+/telemetry', 2)
  t.match(g.journal.entries.find((e) => e.type === 'subscribe'), { qos: 0, rule: 'dashboards-read' })
  const got = new Promise<number>((resolve) => c.once('packetreceive', (p) => p.cmd === 'publish' && resolve(p.qos)))
  const s = await client(t, g, 'sensor')
  await s.publishAsync('site/1/dev/sensor-1/telemetry', '{"t":1}', { qos: 1 })
  t.equal(await got, 0, 'delivered at QoS 0 although QoS 2 was asked for and the message was sent at QoS 1')
})

t.test('rate and size limits trip over MQTT', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t, MATRIX_POLICY), watch: false } })
  const c = await client(t, g, 'sensor')
  for (let i = 0; i < 3; i++) await c.publishAsync('site/1/dev/sensor-1/telemetry', `${i}`, { qos: 1 })
  await c.publishAsync('site/1/dev/sensor-1/telemetry', 'one too many', { qos: 1 })
  t.match(g.journal.entries.filter((e) => e.type === 'publish_denied'), [{ rule: 'sensors-own-telemetry', reason: 'rate_limited', clientId: 'sensor-1' }])
  t.ok(c.connected, 'over the rate: acknowledged and dropped')
  c.end(true)
  const d = await client(t, g, 'sensor')
  await d.publishAsync('site/1/dev/sensor-1/telemetry', 'x'.repeat(1000), { qos: 1 })
  await waitFor('payload_too_large', () => g.journal.entries.filter((e) => e.type === 'publish_denied')[1])
  t.match(g.journal.entries.filter((e) => e.type === 'publish_denied')[1], { rule: 'sensors-own-telemetry', reason: 'payload_too_large', bytes: 1000 })
})

t.test('the open test fixture keeps $SYS and $warden closed', async (t) => {
  const g = await startGateway(t)
  const c = await connect(t, g.url(), { clientId: 'any', password: await g.token({ sub: 'any' }) })
  t.same(await suback(c, ['$warden/status', '$SYS/#', 'x/#']), [128, 128, 0])
})

t.test('a missing policy dir fails closed', async (t) => {
  const g = await startGateway(t, { policies: { dir: join(tempDir(t), 'absent'), watch: true } })
  const c = await connect(t, g.url(), { clientId: 'dev', password: await g.token({ sub: 'dev' }) })
  t.same(await suback(c, 'a/b'), [128])
  await c.publishAsync('a/b', 'x', { qos: 1 })
  t.match(g.journal.entries.find((e) => e.type === 'publish_denied'), { reason: 'no_matching_rule', policyRev: 'none' })
})

const OPEN_A = "rules:\n  - { id: read-a, effect: allow, actions: [publish, subscribe], topics: ['a/#'] }\n"
const OPEN_B = "rules:\n  - { id: read-b, effect: allow, actions: [publish, subscribe], topics: ['b/#'] }\n"

t.test('hot reload: applied without restart, denied live subscriptions removed, bad edits rejected', async (t) => {
  const dir = policyDir(t, OPEN_A)
  const g = await startGateway(t, { policies: { dir, watch: true } })
  const rev1 = g.gw.core.policy.revision
  const sub = await connect(t, g.url(), { clientId: 'sub', password: await g.token({ sub: 'sub' }) })
  t.same(await suback(sub, 'a/#'), [0])
  const pub = await connect(t, g.url(), { clientId: 'pub', password: await g.token({ sub: 'pub' }) })
  const got: string[] = []
  sub.on('message', (topic) => got.push(topic))
  await pub.publishAsync('a/1', 'x', { qos: 1 })
  await waitFor('first message', () => (got.length === 1 ? true : undefined))

  // a file that does not lint: the running policy stays, the error is journaled
  writeFileSync(join(dir, 'policy.yaml'), OPEN_B.replace('allow', 'permit'))
  const rejected = await waitFor('policy_rejected', () => g.journal.entries.find((e) => e.type === 'policy_rejected'))
  t.match(rejected, { policyRev: rev1, reason: /policy\.yaml:2:\d+: rules\[0\]\.effect: must be one of/ })
  t.equal(g.gw.core.policy.revision, rev1)

  writeFileSync(join(dir, 'policy.yaml'), OPEN_B)
  const applied = await waitFor('policy_applied', () => g.journal.entries.find((e) => e.type === 'policy_applied'))
  t.not(applied.policyRev, rev1)
  t.equal(g.gw.core.policy.revision, applied.policyRev)
  const removed = await waitFor('subscription removed', () => g.journal.entries.find((e) => e.type === 'subscribe_denied' && e.clientId === 'sub'))
  t.match(removed, { topic: 'a/#', reason: 'policy_changed' })
  // the publisher may no longer publish to a/ (refused); b/ is open now
  t.same(await suback(sub, 'b/#'), [0])
  await pub.publishAsync('b/1', 'y', { qos: 1 })
  await waitFor('b message', () => (got.includes('b/1') ? true : undefined))
  await pub.publishAsync('a/2', 'z', { qos: 1 })
  await waitFor('a/2 refused', () => g.journal.entries.find((e) => e.type === 'publish_denied' && e.topic === 'a/2'))
  await pub.publishAsync('b/2', 'w', { qos: 1 })
  await waitFor('b/2 message', () => (got.includes('b/2') ? true : undefined))
  t.same(got, ['a/1', 'b/1', 'b/2'], 'the removed subscription received nothing more; the refused publish went nowhere')
})

t.test('hot reload under load: no crash, no publish decided by a half-applied policy', async (t) => {
  const v1 = "rules:\n  - { id: load-v1, effect: allow, actions: [publish], topics: ['load/#'] }\n  - { id: other-v1, effect: allow, actions: [publish], topics: ['other/#'] }\n"
  const v2 = "rules:\n  - { id: other-v2, effect: allow, actions: [publish], topics: ['other/#'] }\n  - { id: load-v2, effect: allow, actions: [publish], topics: ['load/#'] }\n"
  const dir = policyDir(t, v1)
  const g = await startGateway(t, { policies: { dir, watch: true } })
  const pub = await connect(t, g.url(), { clientId: 'loader', password: await g.token({ sub: 'loader' }) })
  let sent = 0
  // ~1,000 msg/s: 10 every 10 ms
  const timer = setInterval(() => { for (let i = 0; i < 10; i++) pub.publish(`load/${sent++ % 50}`, 'p', { qos: 0 }) }, 10)
  t.teardown(() => clearInterval(timer))
  await new Promise((r) => setTimeout(r, 400))
  writeFileSync(join(dir, 'policy.yaml'), v2)
  await waitFor('policy_applied', () => g.journal.entries.find((e) => e.type === 'policy_applied'))
  await new Promise((r) => setTimeout(r, 400))
  clearInterval(timer)
  await waitFor('all publishes journaled', () => (g.journal.entries.filter((e) => e.type === 'publish').length >= sent ? true : undefined))
  const rules = g.journal.entries.filter((e) => e.type === 'publish').map((e) => e.rule)
  t.ok(sent > 300, `${sent} publishes sent`)
  t.equal(g.journal.entries.filter((e) => e.type === 'publish_denied').length, 0, 'none denied')
  const firstV2 = rules.indexOf('load-v2')
  t.ok(firstV2 > 0, 'decided by v1, then v2')
  t.ok(rules.slice(0, firstV2).every((r) => r === 'load-v1') && rules.slice(firstV2).every((r) => r === 'load-v2'), 'one switch, no mix')
  t.ok(pub.connected, 'publisher still connected')
})

t.test('policies.deniedPublish: disconnect closes the connection of a refused publisher instead', async (t) => {
  const g = await startGateway(t, { policies: { dir: join(tempDir(t), 'absent'), watch: false, deniedPublish: 'disconnect' } })
  const c = await connect(t, g.url(), { clientId: 'dev', password: await g.token({ sub: 'dev' }) })
  const closed = waitClose(c)
  c.publish('a/b', 'x', { qos: 1 }, () => {})
  await closed
  t.match(g.journal.entries.find((e) => e.type === 'publish_denied'), { reason: 'no_matching_rule' })
})
