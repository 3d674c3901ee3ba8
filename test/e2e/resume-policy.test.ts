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
import mqttPacket from 'mqtt-packet'
import { Redis } from 'ioredis'
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

interface SessionStore {
  subscriptionsByClient(client: { id: string }): Promise<Array<{ topic: string }>>
  subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string }>>
  outgoingStream(client: { id: string }): AsyncIterable<{ topic: string }>
}

function sessionStore(g: TestGateway): SessionStore {
  return (g.gw.core as unknown as { aedes: { persistence: SessionStore } }).aedes.persistence
}

async function queuedFor(g: TestGateway, clientId: string): Promise<string[]> {
  const topics: string[] = []
  for await (const p of sessionStore(g).outgoingStream({ id: clientId })) topics.push(p.topic)
  return topics
}

/**
 * The store as a gateway started later finds it: cluster — a second gateway on the same Redis
 * (it loads every session's subscriptions from Redis at setup); lmdb — the gateway restarted on
 * its data dir; memory — the same gateway (nothing outlives it).
 */
async function storedState(t: Test, mode: string): Promise<{ first: TestGateway; later(): Promise<TestGateway>; redisUrl?: string }> {
  const dir = join(tempDir(t), 'policies')
  mkdirSync(dir)
  writeFileSync(join(dir, 'policy.yaml'), POLICY)
  const redisUrl = mode === 'cluster' ? (await startRedis(t)).url : undefined
  const dataDir = tempDir(t)
  const start = (id: string, dd: string): Promise<TestGateway> => startGateway(t, {
    gateway: { id, dataDir: dd },
    broker: redisUrl ? { persistence: 'memory', cluster: { redis: redisUrl } } : { persistence: mode },
    policies: { dir, watch: false },
  })
  const first = await start('gw-a', dataDir)
  const later = async (): Promise<TestGateway> => {
    if (mode === 'memory') return first
    if (mode === 'lmdb') { await first.gw.stop(); return start('gw-a', dataDir) }
    return start('gw-b', tempDir(t))
  }
  return { first, later, redisUrl }
}

// Aedes checks a SUBSCRIBE's filters one after the other and stores the whole list as soon as
// one is granted: with the granted filter listed first, the store was already under way when the
// next one was refused. On a cluster the refusal's removal (HDEL) reached Redis before the store's
// HMSET (sent after its SADD's reply), which wrote the refused filter back: a gateway started
// later loaded it and queued the refused topic's messages for the offline session (review repro).
for (const mode of ['memory', 'lmdb', 'cluster']) {
  t.test(`${mode}: a refused filter listed after a granted one is not stored, and nothing is queued for it`, async (t) => {
    const { first, later, redisUrl } = await storedState(t, mode)
    // every command Redis runs: the refused filter is never written to the session's hash nor
    // broadcast as added ($SYS/sub/add: every gateway's in-memory index of stored subscriptions)
    const monitored = redisUrl ? new Redis(redisUrl) : undefined
    const monitor = await monitored?.monitor()
    const written: string[] = []
    monitor?.on('monitor', (_time: string, args: string[]) => {
      const cmd = args[0]!.toLowerCase()
      const adds = cmd === 'hset' || cmd === 'hmset' || (cmd === 'publish' && args[1] === '$SYS/sub/add')
      if (adds && args.some((a) => a.includes('site/secret'))) written.push(args.join(' ').slice(0, 200))
    })
    t.teardown(() => { monitor?.disconnect(); monitored?.disconnect() })
    const c = await connect(t, first.url(), { clientId: 'dev-rr', clean: false, password: await first.token({ sub: 'dev-rr' }) })
    const err = await c.subscribeAsync({ 'site/public/#': { qos: 1 }, 'site/secret/#': { qos: 1 } }).catch((e: { packet?: { granted: number[] } }) => e)
    t.same((err as { packet?: { granted: number[] } }).packet?.granted, [1, 128], 'SUBACK: granted, refused')
    await new Promise((r) => setTimeout(r, 300))
    await c.endAsync()
    const r = redisUrl ? new Redis(redisUrl) : undefined
    t.teardown(() => { r?.disconnect() })
    if (r) t.same(Object.keys(await r.hgetall('client:dev-rr')), ['site/public/#'], 'Redis holds only the granted filter')
    if (monitor) t.same(written, [], 'the refused filter was never written to Redis nor broadcast as added')
    const g = await later()
    t.same((await sessionStore(g).subscriptionsByClient({ id: 'dev-rr' })).map((x) => x.topic), ['site/public/#'], 'only the granted filter is stored')
    t.same((await sessionStore(g).subscriptionsByTopic('site/secret/x')).filter((x) => x.clientId === 'dev-rr'), [], 'the refused one matches nothing')
    const pub = await connect(t, g.url(), { clientId: 'pub-rr', password: await g.token({ sub: 'pub-rr' }) })
    for (let i = 0; i < 20; i++) await pub.publishAsync('site/secret/x', 'secret ' + i, { qos: 1 })
    await pub.publishAsync('site/public/x', 'public', { qos: 1 })
    t.same(await queuedFor(g, 'dev-rr'), ['site/public/x'], 'queued for the offline session: what the granted filter covers only')
    if (r) t.equal(await r.llen('outgoing:dev-rr'), 1, 'Redis queue: the one public message')
  })
}

// The same race without any policy: a client may send SUBSCRIBE and UNSUBSCRIBE back to back and
// Aedes handles the packets of one read in parallel. On a cluster the UNSUBSCRIBE's HDEL reached
// Redis before the SUBSCRIBE's HMSET: the filter the client had left stayed stored.
t.test('cluster: SUBSCRIBE and UNSUBSCRIBE of one filter sent together leave nothing stored', async (t) => {
  const { first, later, redisUrl } = await storedState(t, 'cluster')
  const pw = await first.token({ sub: 'dev-su' })
  const raw = await rawClient(t, first.port())
  raw.send(connectBytes({ clientId: 'dev-su', clean: false, password: pw }))
  t.equal((await raw.nextPacket()).cmd, 'connack')
  raw.send(Buffer.concat([
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'site/public/#', qos: 1 }] }),
    mqttPacket.generate({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['site/public/#'] }),
  ]))
  const acks = [(await raw.nextPacket()).cmd, (await raw.nextPacket()).cmd].sort()
  t.same(acks, ['suback', 'unsuback'])
  await new Promise((r) => setTimeout(r, 300))
  raw.socket.destroy()
  await raw.closed
  const r = new Redis(redisUrl!)
  t.teardown(() => { r.disconnect() })
  t.same(await r.hgetall('client:dev-su'), {}, 'Redis holds no subscription for the session')
  const g = await later()
  t.same(await sessionStore(g).subscriptionsByClient({ id: 'dev-su' }), [], 'a gateway started later loads none')
  const pub = await connect(t, g.url(), { clientId: 'pub-su', password: await g.token({ sub: 'pub-su' }) })
  await pub.publishAsync('site/public/x', 'after unsubscribe', { qos: 1 })
  t.equal(await r.llen('outgoing:dev-su'), 0, 'nothing queued for it')
})
