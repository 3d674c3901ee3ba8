// One client's messages on one topic and QoS arrive in the order it sent them ([MQTT-4.6.0-6]),
// retained or not. Aedes routes a retained message only once the retained store has taken it
// (asynchronous), and it handles the packets of one socket read together: the plain messages
// behind a retained one overtook it (QoS 0 with every persistence; QoS 1 with the memory store
// and on a cluster; bare Aedes 1.2 does the same). The gateway stores a retained message itself
// and routes it at once, as a subscriber with an established subscription gets it anyway
// (retain 0), so nothing waits for the store (gateway.ts #storeRetained).
import t from 'tap'
import mqttPacket from 'mqtt-packet'
import { connect } from '../helpers/mqtt.js'
import { connectBytes, rawClient } from '../helpers/raw.js'
import { gatewayPair } from '../helpers/modes.js'
import { waitFor } from '../helpers/wait.js'

const N = 40


// journal.deliverAfterCommit routes QoS 1 once the record is committed (#routeAfterCommit)
const MODES = [['memory', false], ['lmdb', false], ['cluster', false], ['memory', true], ['lmdb', true], ['cluster', true]] as const

for (const [mode, deliverAfterCommit] of MODES) {
  for (const qos of [0, 1] as const) {
    if (deliverAfterCommit && qos === 0) continue
    t.test(`${mode}${deliverAfterCommit ? ' + deliverAfterCommit' : ''}, QoS ${qos}: ${N} messages in one write, every fourth retained, arrive in order (live, and from a persistent session's queue)`, async (t) => {
      const [a, b] = await gatewayPair(t, mode, { journal: { deliverAfterCommit } })
      // a persistent session, offline while the messages are sent (on the cluster: on the other gateway)
      const off = await connect(t, b.url(), { clientId: 'ro-off', clean: false, password: await b.token({ sub: 'ro-off' }) })
      await off.subscribeAsync('o/#', { qos: 1 })
      await off.endAsync()
      const live = await connect(t, b.url(), { clientId: 'ro-live', password: await b.token({ sub: 'ro-live' }) })
      await live.subscribeAsync('o/#', { qos })
      const got: number[] = []
      live.on('message', (_topic, payload) => got.push(Number(payload.toString())))
      const raw = await rawClient(t, a.port())
      raw.send(connectBytes({ clientId: 'ro-pub', password: await a.token({ sub: 'ro-pub' }) }))
      t.equal((await raw.nextPacket()).cmd, 'connack')
      raw.send(Buffer.concat(Array.from({ length: N }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic: 'o/t', payload: Buffer.from(String(i)), qos, messageId: qos ? i + 1 : undefined, retain: i % 4 === 0, dup: false } as never))))
      await waitFor(() => got.length >= N, 5000, 'every message live').catch(() => {})
      t.same(got, Array.from({ length: N }, (_, i) => i), 'live, in order')
      if (qos === 1) {
        const queued: number[] = []
        const back = await connect(t, b.url(), { clientId: 'ro-off', clean: false, password: await b.token({ sub: 'ro-off' }) })
        back.on('message', (_topic, payload) => queued.push(Number(payload.toString())))
        await waitFor(() => queued.length >= N, 5000, 'every message queued').catch(() => {})
        t.same(queued, Array.from({ length: N }, (_, i) => i), "the persistent session's queue, in order")
      }
      // the retained store holds the last retained one
      const late = await connect(t, b.url(), { clientId: 'ro-late', password: await b.token({ sub: 'ro-late' }) })
      const retained: string[] = []
      late.on('message', (_topic, payload, packet) => { if (packet.retain) retained.push(payload.toString()) })
      await late.subscribeAsync('o/t', { qos: 1 })
      await waitFor(() => retained.length >= 1, 3000, 'the retained message').catch(() => {})
      t.same(retained, [String(N - 4)], 'the last retained message is the one kept')
    })
  }
}

// A retained flood is read at the pace of the retained store: the gateway's callback to Aedes
// waits for the store, and Aedes reads a socket on once a read's packets are done. Before, each
// retained message was routed after the previous one had been stored (one commit each) while
// Aedes read on: 30,000 messages piled up in memory and the last was routed ~15 s later.
for (const mode of ['memory', 'lmdb', 'cluster']) {
  t.test(`${mode}: a QoS 0 retained flood goes at the store's pace, routed live as read, the last value per topic kept`, async (t) => {
    const [a, b] = await gatewayPair(t, mode)
    const TOPICS = 200
    const FLOOD = 20_000
    const store = (a.gw.core.aedes as unknown as { persistence: { storeRetained(p: { topic: string }): Promise<void> } }).persistence
    const original = store.storeRetained.bind(store)
    let pending = 0
    let most = 0
    store.storeRetained = (p) => {
      most = Math.max(most, ++pending)
      return original(p).finally(() => { pending-- })
    }
    const live = await connect(t, b.url(), { clientId: 'rf-live', password: await b.token({ sub: 'rf-live' }) })
    await live.subscribeAsync('f/0', { qos: 0 })
    const got: number[] = []
    live.on('message', (_topic, payload) => got.push(Number(payload.toString())))
    const raw = await rawClient(t, a.port())
    raw.send(connectBytes({ clientId: 'rf-pub', password: await a.token({ sub: 'rf-pub' }) }))
    t.equal((await raw.nextPacket()).cmd, 'connack')
    for (let i = 0; i < FLOOD; i += 500) {
      const chunk = Buffer.concat(Array.from({ length: 500 }, (_, j) => mqttPacket.generate({ cmd: 'publish', topic: `f/${(i + j) % TOPICS}`, payload: Buffer.from(String(i + j).padStart(100, '0')), qos: 0, retain: true, dup: false } as never)))
      if (!raw.socket.write(chunk)) await new Promise((r) => raw.socket.once('drain', r))
    }
    raw.send({ cmd: 'pingreq' } as never)
    while ((await raw.nextPacket(60_000)).cmd !== 'pingresp');
    // every message read so far is routed (none waits in memory behind a store)
    const accepted = a.journal.entries.filter((e) => e.type === 'publish' && e.clientId === 'rf-pub').length
    t.equal(accepted, FLOOD, 'every message read and journaled')
    t.ok(most > 1, `stores overlap (a read's packets together): at most ${most} at once`)
    // ~110-byte packets: one socket read (64 KiB and what piled up behind it) holds ~600-2,000
    t.ok(most <= 3_000, `stores in flight stay bounded by what one read holds: at most ${most} of ${FLOOD}`)
    const expect = Array.from({ length: FLOOD / TOPICS }, (_, k) => k * TOPICS)
    await waitFor(() => got.length >= expect.length, 10_000, 'f/0 live').catch(() => {})
    t.same(got, expect, 'f/0 live, every message, in order')
    await waitFor(() => pending === 0, 10_000, 'every store done')
    const late = await connect(t, b.url(), { clientId: 'rf-late', password: await b.token({ sub: 'rf-late' }) })
    const retained = new Map<string, string>()
    late.on('message', (topic, payload, packet) => { if (packet.retain) retained.set(topic, payload.toString()) })
    await late.subscribeAsync('f/#', { qos: 0 })
    await waitFor(() => retained.size >= TOPICS, 5000, 'every retained topic').catch(() => {})
    t.equal(retained.size, TOPICS)
    t.ok([...retained].every(([topic, v]) => Number(v) === FLOOD - TOPICS + Number(topic.slice(2))), 'each topic keeps its last value')
  })
}

// A QoS 1 retained message waits for its commit before it is stored when it goes through
// #routeAfterCommit (deliverAfterCommit; on LMDB, a persistent session's queue); a QoS 0 one read
// after it is stored at once. The store must still end with the one read last (found by review:
// "A" was kept, on LMDB since prepare() stored retained messages, and with deliverAfterCommit).
for (const [mode, deliverAfterCommit] of MODES) {
  for (const clear of [false, true]) {
    t.test(`${mode}${deliverAfterCommit ? ' + deliverAfterCommit' : ''}: QoS 1 retained "A" then QoS 0 retained ${clear ? 'clear' : '"B"'} in one write: the store ends with the last`, async (t) => {
      const [a, b] = await gatewayPair(t, mode, { journal: { deliverAfterCommit } })
      // a persistent session on the topic: on LMDB the QoS 1 one is queued for it before its PUBACK
      const keep = await connect(t, b.url(), { clientId: 'xq-keep', clean: false, password: await b.token({ sub: 'xq-keep' }) })
      await keep.subscribeAsync('x/t', { qos: 1 })
      const raw = await rawClient(t, a.port())
      raw.send(connectBytes({ clientId: 'xq-pub', password: await a.token({ sub: 'xq-pub' }) }))
      t.equal((await raw.nextPacket()).cmd, 'connack')
      raw.send(Buffer.concat([
        mqttPacket.generate({ cmd: 'publish', topic: 'x/t', payload: Buffer.from('A'), qos: 1, messageId: 1, retain: true, dup: false } as never),
        mqttPacket.generate({ cmd: 'publish', topic: 'x/t', payload: Buffer.from(clear ? '' : 'B'), qos: 0, retain: true, dup: false } as never),
      ]))
      t.equal((await raw.nextPacket()).cmd, 'puback')
      // both stores issued: the QoS 0 one's callback to Aedes waits for it, a PINGRESP follows it
      raw.send({ cmd: 'pingreq' } as never)
      while ((await raw.nextPacket()).cmd !== 'pingresp');
      const late = await connect(t, b.url(), { clientId: 'xq-late', password: await b.token({ sub: 'xq-late' }) })
      const retained: string[] = []
      late.on('message', (_topic, payload, packet) => { if (packet.retain) retained.push(payload.toString()) })
      await late.subscribeAsync(['x/t', 'x/fence'], { qos: 1 })
      // a fence: a retained message for x/t would have come before this one
      await connect(t, a.url(), { clientId: 'xq-fence', password: await a.token({ sub: 'xq-fence' }) }).then((f) => f.publishAsync('x/fence', 'f', { qos: 1 }))
      const fenced: string[] = []
      late.on('message', (topic) => { if (topic === 'x/fence') fenced.push(topic) })
      await waitFor(() => fenced.length > 0 && (clear || retained.length > 0), 5000, 'the fence and the retained message')
      t.same(retained, clear ? [] : ['B'], 'the last retained message sent is the one kept')
    })
  }
}
