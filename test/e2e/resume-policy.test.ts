// A refused filter in a persistent session's SUBSCRIBE (SUBACK 0x80) must not bring it
// messages later, whatever the persistence. Aedes stores a SUBSCRIBE's whole list, refused
// filters included; the LMDB persistence is told (denied()) and never stores them, but Aedes'
// memory store and the cluster's Redis store keep them, so messages published while the
// session was away were queued for the refused filter and sent when it resumed. A resumed
// session's queue now only sends what one of its current (policy-checked) subscriptions covers,
// and those stores are no longer given the refused filters (create.ts leaveOutRefused).
import t, { type Test } from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'
import { connectBytes, rawClient } from '../helpers/raw.js'

const POLICY = `rules:
  - id: open
    effect: allow
    actions: [publish, subscribe]
    topics: ['#']
  - id: no-secret
    effect: deny
    actions: [subscribe]
    topics: ['site/secret/#']
`

async function gateway(t: Test, mode: string): Promise<TestGateway> {
  const dir = join(tempDir(t), 'policies')
  mkdirSync(dir)
  writeFileSync(join(dir, 'policy.yaml'), POLICY)
  const broker = mode === 'cluster' ? { persistence: 'memory', cluster: { redis: (await startRedis(t)).url } } : { persistence: mode }
  return startGateway(t, { gateway: { id: 'gw-rp', dataDir: tempDir(t) }, broker, policies: { dir, watch: false } })
}

for (const mode of ['memory', 'lmdb', 'cluster']) {
  t.test(`${mode}: a filter refused in a persistent session's SUBSCRIBE gets it nothing on resume`, async (t) => {
    const g = await gateway(t, mode)
    const c = await connect(t, g.url(), { clientId: 'dev-rp', clean: false, password: await g.token({ sub: 'dev-rp' }) })
    // one SUBSCRIBE, one filter granted and one refused
    const granted = await c.subscribeAsync({ 'site/public/#': { qos: 1 }, 'site/secret/#': { qos: 1 } }).catch((err: Error) => err)
    t.ok(granted, 'SUBACK')
    const store = (g.gw.core as unknown as { aedes: { persistence: { subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string }>> } } }).aedes.persistence
    t.same((await store.subscriptionsByTopic('site/secret/x')).filter((x) => x.clientId === 'dev-rp'), [], 'the refused filter is not stored')
    t.same((await store.subscriptionsByTopic('site/public/x')).filter((x) => x.clientId === 'dev-rp').map((x) => x.topic), ['site/public/#'], 'the granted one is')
    await c.endAsync()
    const pub = await connect(t, g.url(), { clientId: 'pub-rp', password: await g.token({ sub: 'pub-rp' }) })
    await pub.publishAsync('site/secret/x', 'queued secret', { qos: 1 })
    await pub.publishAsync('site/public/x', 'queued public', { qos: 1 })
    const got: string[] = []
    const back = mqtt.connect(g.url(), { clientId: 'dev-rp', username: 'dev-rp', clean: false, password: await g.token({ sub: 'dev-rp' }), reconnectPeriod: 0, protocolVersion: 4 })
    t.teardown(() => new Promise<void>((r) => back.end(true, {}, () => r())))
    back.on('message', (topic, payload) => got.push(`${topic}=${payload}`))
    await new Promise((r) => back.once('connect', r))
    await pub.publishAsync('site/secret/x', 'live secret', { qos: 1 })
    await pub.publishAsync('site/public/x', 'end', { qos: 1 })
    await waitFor(() => got.at(-1) === 'site/public/x=end', 5000, 'the marker')
    t.same(got, ['site/public/x=queued public', 'site/public/x=end'], 'only what the granted filter covers')
    // the refused message left the queue: the next resume brings nothing
    await back.endAsync()
    const again: string[] = []
    const third = mqtt.connect(g.url(), { clientId: 'dev-rp', username: 'dev-rp', clean: false, password: await g.token({ sub: 'dev-rp' }), reconnectPeriod: 0, protocolVersion: 4 })
    t.teardown(() => new Promise<void>((r) => third.end(true, {}, () => r())))
    third.on('message', (topic, payload) => again.push(`${topic}=${payload}`))
    await new Promise((r) => third.once('connect', r))
    await new Promise((r) => setTimeout(r, 300))
    t.same(again, [], 'nothing queued is left')
  })
}

// The check above must not touch a queue whose connection dropped while Aedes was sending it:
// Aedes empties client.subscriptions when the connection closes, and a refusal there cleared
// the rest of the queue from the store, unsent (found by a review of the first version).
for (const mode of ['memory', 'lmdb', 'cluster']) {
  t.test(`${mode}: a connection dropped while its queue is being sent keeps every unacknowledged message`, async (t) => {
    const g = await gateway(t, mode)
    const N = 300
    const pw = await g.token({ sub: 'dev-rd' })
    const c = await connect(t, g.url(), { clientId: 'dev-rd', clean: false, password: pw })
    await c.subscribeAsync('site/public/#', { qos: 1 })
    await c.endAsync()
    const pub = await connect(t, g.url(), { clientId: 'pub-rd', password: await g.token({ sub: 'pub-rd' }) })
    for (let i = 0; i < N; i++) await pub.publishAsync(`site/public/${i}`, String(i), { qos: 1 })
    // resumes, takes the first message without acknowledging it, and drops
    const raw = await rawClient(t, g.port())
    raw.send(connectBytes({ clientId: 'dev-rd', clean: false, password: pw }))
    t.equal((await raw.nextPacket()).cmd, 'connack')
    while ((await raw.nextPacket()).cmd !== 'publish');
    raw.socket.destroy()
    await raw.closed
    await new Promise((r) => setTimeout(r, 1000))
    const got = new Set<string>()
    const back = mqtt.connect(g.url(), { clientId: 'dev-rd', username: 'dev-rd', clean: false, password: pw, reconnectPeriod: 0, protocolVersion: 4 })
    t.teardown(() => new Promise<void>((r) => back.end(true, {}, () => r())))
    back.on('message', (_topic, payload) => got.add(payload.toString()))
    await new Promise((r) => back.once('connect', r))
    await waitFor(() => got.size >= N, 10_000, 'every queued message').catch(() => {})
    t.equal(got.size, N, `all ${N} unacknowledged messages come again`)
  })
}
