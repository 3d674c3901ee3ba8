// Policy still applies to durable sessions: a refused subscription is never stored, and a
// session resumed after a policy change gets neither the subscriptions nor the queued
// messages the current policy refuses.
import t, { type Test } from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { startGateway, tempDir } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'

const OPEN = `rules:
  - id: open
    effect: allow
    actions: [publish, subscribe]
    topics: ['#']
`
const NO_SECRET = OPEN + `  - id: no-secret
    effect: deny
    actions: [subscribe]
    topics: ['site/secret/#']
`

function policyDir(t: Test, text: string): string {
  const dir = join(tempDir(t), 'policies')
  mkdirSync(dir)
  writeFileSync(join(dir, 'policy.yaml'), text)
  return dir
}

function start(t: Test, dataDir: string, policy: string) {
  return startGateway(t, { gateway: { id: 'gw-test', dataDir }, broker: { persistence: 'lmdb' }, policies: { dir: policyDir(t, policy), watch: false } })
}

/** reconnects the persistent session, sends a marker on a still-allowed topic, returns what arrived up to it */
async function resume(t: Test, g: Awaited<ReturnType<typeof start>>): Promise<string[]> {
  const got: string[] = []
  const c = mqtt.connect(g.url(), { clientId: 'dev-p', username: 'dev-p', clean: false, password: await g.token({ sub: 'dev-p' }), reconnectPeriod: 0, protocolVersion: 4 })
  t.teardown(() => new Promise<void>((r) => c.end(true, {}, () => r())))
  c.on('message', (topic, payload) => got.push(`${topic}=${payload}`))
  await new Promise((r) => c.once('connect', r))
  const pub = await connect(t, g.url(), { clientId: 'pub-p', password: await g.token({ sub: 'pub-p' }) })
  await pub.publishAsync('site/secret/x', 'live secret', { qos: 1 })
  await pub.publishAsync('site/public/x', 'end', { qos: 1 })
  await waitFor(() => got.at(-1) === 'site/public/x=end', 5000, 'the marker')
  return got
}

async function publishBoth(t: Test, g: Awaited<ReturnType<typeof start>>): Promise<void> {
  const pub = await connect(t, g.url(), { clientId: 'pub-p', password: await g.token({ sub: 'pub-p' }) })
  await pub.publishAsync('site/public/x', 'queued public', { qos: 1 })
  await pub.publishAsync('site/secret/x', 'queued secret', { qos: 1 })
  await pub.endAsync()
}

t.test('a refused subscription in a SUBSCRIBE is not stored with its granted sibling', async (t) => {
  const dataDir = tempDir(t)
  const g = await start(t, dataDir, NO_SECRET)
  const c = await connect(t, g.url(), { clientId: 'dev-p', clean: false, password: await g.token({ sub: 'dev-p' }) })
  // one SUBSCRIBE, one filter granted and one refused (MQTT.js reports the 0x80 as an error)
  await new Promise((r) => c.subscribe(['site/public/#', 'site/secret/#'], { qos: 1 }, r))
  t.ok(g.journal.entries.some((e) => e.type === 'subscribe_denied' && e.topic === 'site/secret/#'), 'refused')
  t.ok(g.journal.entries.some((e) => e.type === 'subscribe' && e.topic === 'site/public/#'), 'granted')
  await c.endAsync()
  await publishBoth(t, g)
  t.same(await resume(t, g), ['site/public/x=queued public', 'site/public/x=end'], 'nothing from the refused filter, queued or live')
})

t.test('a session resumed after a policy change loses what the new policy refuses', async (t) => {
  const dataDir = tempDir(t)
  const g1 = await start(t, dataDir, OPEN)
  const c = await connect(t, g1.url(), { clientId: 'dev-p', clean: false, password: await g1.token({ sub: 'dev-p' }) })
  t.same((await c.subscribeAsync(['site/public/#', 'site/secret/#'], { qos: 1 })).map((x) => x.qos), [1, 1])
  await c.endAsync()
  await publishBoth(t, g1)
  await g1.gw.stop()

  const g2 = await start(t, dataDir, NO_SECRET)
  t.same(await resume(t, g2), ['site/public/x=queued public', 'site/public/x=end'], 'the secret message queued under the old policy is not delivered')
  const dropped = await waitFor(() => g2.journal.entries.find((e) => e.type === 'buffer_dropped'), 5000, 'buffer_dropped')
  t.match(dropped, { reason: 'subscription_revoked', clientId: 'dev-p', topic: 'site/secret/#', count: 1 })
  t.ok(g2.journal.entries.some((e) => e.type === 'subscribe_denied' && e.topic === 'site/secret/#'), 'the refused restore is journaled by the gateway')
})
