import t, { type Test } from 'tap'
import type { MqttClient } from 'mqtt'
import type { Packet } from 'mqtt-packet'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { connectBytes, rawClient, type RawClient } from '../helpers/raw.js'
import { waitFor } from '../helpers/wait.js'
import { WebSocket } from 'ws'
import mqttPacket from 'mqtt-packet'

// 4 KiB payloads: loopback kernel buffers hold several MiB, so a paused reader needs volume
const PAYLOAD = 4096
const MAX_QUEUED = 200

/** A raw subscriber that stops reading right after its SUBACK. */
async function pausedSubscriber(t: Test, g: TestGateway, id: string, o: { qos?: 0 | 1; clean?: boolean } = {}): Promise<RawClient> {
  const c = await rawClient(t, g.port())
  c.send(connectBytes({ clientId: id, password: await g.token({ sub: id }), clean: o.clean ?? true }))
  const ack = await c.nextPacket()
  t.equal(ack.cmd === 'connack' && ack.returnCode, 0, `${id} connected`)
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'load/#', qos: o.qos ?? 0 }] })
  t.equal((await c.nextPacket()).cmd, 'suback', `${id} subscribed`)
  c.socket.pause()
  return c
}

/**
 * `publishers` clients publish `each` messages each, round-robin in small batches; with `gate`
 * (what a healthy subscriber has received) a batch waits until the one before it arrived, so
 * the healthy subscriber — in this same process — is never the one that falls behind.
 */
async function storm(t: Test, g: TestGateway, publishers: number, each: number, o: { qos?: 0 | 1; gate?: () => number; prefix?: string } = {}): Promise<void> {
  const clients = await Promise.all(Array.from({ length: publishers }, async (_, i) => connect(t, g.url(), { clientId: `${o.prefix ?? 'pub'}-${i}`, password: await g.token({ sub: `${o.prefix ?? 'pub'}-${i}` }) })))
  const BATCH = 20
  let sent = 0
  for (let n = 0; n < each; n += BATCH) {
    await Promise.all(clients.map((c, i) => Promise.all(Array.from({ length: Math.min(BATCH, each - n) }, (_, k) => {
      const payload = Buffer.alloc(PAYLOAD, 0x61)
      payload.writeUInt32BE(i * each + n + k)
      return c.publishAsync(`load/${i}`, payload, { qos: o.qos ?? 0 })
    }))))
    sent += clients.length * Math.min(BATCH, each - n)
    const gate = o.gate
    if (gate) await waitFor(() => gate() >= sent, 10_000, `the healthy subscriber keeps up (${gate()} of ${sent})`)
  }
}

async function healthySubscriber(t: Test, g: TestGateway, id: string, qos: 0 | 1 = 0): Promise<{ c: MqttClient; got: () => number }> {
  const c = await connect(t, g.url(), { clientId: id, password: await g.token({ sub: id }) })
  let n = 0
  c.on('message', () => { n++ })
  await c.subscribeAsync('load/#', { qos })
  return { c, got: () => n }
}

function dropped(g: TestGateway, clientId: string): number {
  return g.journal.entries.filter((e) => e.type === 'buffer_dropped' && e.clientId === clientId).reduce((a, e) => a + (e.count ?? 0), 0)
}

t.test('a subscriber that stops reading: QoS 0 past the bound is dropped and counted, others get everything', async (t) => {
  const g = await startGateway(t, { journal: { recordPayloads: 'none' }, limits: { maxQueuedMessages: MAX_QUEUED, maxQueuedBytes: '64MB', slowConsumerTimeoutSec: 120 } })
  const slow = await pausedSubscriber(t, g, 'slow-0')
  const healthy = await healthySubscriber(t, g, 'healthy-0')
  // the bound, sampled while the storm runs: what waits for the slow client never passes it
  let peak = 0
  const sampler = setInterval(() => { peak = Math.max(peak, g.gw.core.deliveryBacklog('slow-0')?.queued ?? 0) }, 5)
  t.teardown(() => clearInterval(sampler))
  const publishers = 5, each = 2000, total = publishers * each
  await storm(t, g, publishers, each, { gate: healthy.got })
  await waitFor(() => healthy.got() === total, 30_000, `the healthy subscriber gets all ${total}`)
  t.equal(healthy.got(), total, 'the healthy subscriber received every message while the other stalled')
  clearInterval(sampler)
  const backlog = g.gw.core.deliveryBacklog('slow-0')!
  t.ok(backlog.dropped > 0, `messages were dropped for the slow subscriber (${backlog.dropped})`)
  // one chunk per publisher may land in one tick before the bound is seen: a small overshoot
  t.ok(peak <= MAX_QUEUED + publishers * 20, `its queue stayed at the bound (peak ${peak}, bound ${MAX_QUEUED})`)
  // journal and metric agree with the count, in few records
  g.gw.core.flushDeliveryDrops()
  t.equal(dropped(g, 'slow-0'), backlog.dropped, 'buffer_dropped records carry the count')
  const records = g.journal.entries.filter((e) => e.type === 'buffer_dropped')
  t.ok(records.length <= 30, `rate-limited: ${records.length} records for ${backlog.dropped} drops`)
  t.match(records[0], { store: 'delivery', reason: 'max_queued_messages', clientId: 'slow-0', topic: /^load\// })
  const metrics = await g.gw.metrics.registry.getSingleMetricAsString('edgewarden_delivery_dropped_total')
  t.match(metrics, new RegExp(`edgewarden_delivery_dropped_total\\{reason="max_queued_messages",qos="0"\\} ${backlog.dropped}`), 'metric counts them')
  // every message is accounted for: what the slow client reads when it resumes + what was dropped
  const got: Packet[] = []
  slow.socket.resume()
  await waitFor(() => { while (slow.packets.length) got.push(slow.packets.shift()!); return got.length + backlog.dropped >= total }, 30_000, 'the slow subscriber drains')
  t.equal(got.length + backlog.dropped, total, `delivered (${got.length}) + dropped (${backlog.dropped}) = published (${total})`)
  t.equal(g.journal.entries.filter((e) => e.type === 'disconnect' && e.clientId === 'slow-0').length, 0, 'not disconnected: it caught up within slowConsumerTimeoutSec')
})

t.test('over the bound for slowConsumerTimeoutSec: disconnected and journaled; the gateway keeps serving', async (t) => {
  const g = await startGateway(t, { journal: { recordPayloads: 'none' }, limits: { maxQueuedMessages: MAX_QUEUED, maxQueuedBytes: '512KB', slowConsumerTimeoutSec: 1 } })
  const slow = await pausedSubscriber(t, g, 'slow-1')
  const healthy = await healthySubscriber(t, g, 'healthy-1')
  await storm(t, g, 4, 1500, { gate: healthy.got })
  const rec = await waitFor(() => g.journal.entries.find((e) => e.type === 'disconnect' && e.clientId === 'slow-1'), 5000, 'disconnect record')
  // a paused socket sees the close once it reads up to it
  slow.socket.resume()
  await slow.closed
  t.match(rec, { reason: 'slow_consumer', sub: 'slow-1' }, 'journaled as slow_consumer')
  t.ok((rec.dropped as number) > 0, `with what it lost (${rec.dropped as number})`)
  t.equal(g.journal.entries.filter((e) => e.type === 'disconnect' && e.clientId === 'slow-1').length, 1, 'one disconnect record')
  await waitFor(() => healthy.got() === 6000, 20_000, 'healthy subscriber complete')
  const m = await g.gw.metrics.registry.getSingleMetricAsString('edgewarden_slow_consumers_disconnected_total')
  t.match(m, /edgewarden_slow_consumers_disconnected_total 1/)
  t.ok(dropped(g, 'slow-1') > 0, 'its drops were journaled before the disconnect')
})

t.test('persistent session, QoS 1: messages past the bound wait in the session store and arrive on resume', async (t) => {
  const g = await startGateway(t, { journal: { recordPayloads: 'none' }, limits: { maxQueuedMessages: MAX_QUEUED, maxQueuedBytes: '64MB', slowConsumerTimeoutSec: 1 } })
  const slow = await pausedSubscriber(t, g, 'slow-2', { qos: 1, clean: false })
  const total = 3 * 1000
  await storm(t, g, 3, 1000, { qos: 1 })
  const rec = await waitFor(() => g.journal.entries.find((e) => e.type === 'disconnect' && e.clientId === 'slow-2'), 5000, 'disconnect record')
  t.equal(rec.reason, 'slow_consumer')
  slow.socket.destroy()
  t.ok((rec.stored as number) > 0, `QoS 1 past the bound was left in the session store (${rec.stored as number})`)
  t.equal(dropped(g, 'slow-2'), 0, 'nothing was dropped')
  // resumes its session: every message arrives (at least once)
  const seen = new Set<number>()
  const c = await connect(t, g.url(), { clientId: 'slow-2', clean: false, password: await g.token({ sub: 'slow-2' }) })
  c.on('message', (_topic, payload) => seen.add(payload.readUInt32BE(0)))
  await waitFor(() => seen.size === total, 30_000, `all ${total} distinct messages`)
  t.equal(seen.size, total, 'every QoS 1 message reached the resumed session')
})

t.test('a subscriber that disconnects with a large backlog leaves the gateway running', async (t) => {
  const g = await startGateway(t, { journal: { recordPayloads: 'none' }, limits: { maxQueuedMessages: 5000, maxQueuedBytes: '64MB', slowConsumerTimeoutSec: 60 } })
  const slows = await Promise.all([0, 1, 2].map((i) => pausedSubscriber(t, g, `slow-3-${i}`)))
  await storm(t, g, 4, 1500)
  const before = slows.map((s) => g.gw.core.deliveryBacklog(s === slows[0] ? 'slow-3-0' : s === slows[1] ? 'slow-3-1' : 'slow-3-2')!.queued)
  t.ok(before.every((q) => q > 0), `backlogs waiting (${before.join(', ')})`)
  for (const s of slows) s.socket.destroy()
  await waitFor(() => g.journal.entries.filter((e) => e.type === 'disconnect' && String(e.clientId).startsWith('slow-3-')).length === 3, 5000, 'three disconnects')
  const after = await healthySubscriber(t, g, 'after-3')
  await storm(t, g, 1, 10, { prefix: 'late' })
  await waitFor(() => after.got() === 10, 5000, 'the gateway still routes')
  t.equal(after.got(), 10)
})

t.test('retained messages sent on SUBSCRIBE are paced, not dropped, whatever the bound', async (t) => {
  const g = await startGateway(t, { journal: { recordPayloads: 'none' }, limits: { maxQueuedMessages: 20, maxQueuedBytes: '64KB', slowConsumerTimeoutSec: 60 } })
  const N = 2000
  const pub = await connect(t, g.url(), { clientId: 'ret-pub', password: await g.token({ sub: 'ret-pub' }) })
  for (let i = 0; i < N; i += 100) await Promise.all(Array.from({ length: 100 }, (_, k) => pub.publishAsync(`ret/${i + k}`, Buffer.alloc(PAYLOAD, 0x62), { qos: 0, retain: true })))
  const c = await connect(t, g.url(), { clientId: 'ret-sub', password: await g.token({ sub: 'ret-sub' }) })
  let n = 0
  c.on('message', () => { n++ })
  await c.subscribeAsync('ret/#')
  await waitFor(() => n === N, 30_000, `all ${N} retained messages (${n})`)
  t.equal(n, N, 'every retained message arrived')
  t.equal(g.gw.core.deliveryBacklog('ret-sub')?.dropped, 0, 'none dropped')
})

t.test('over WebSocket too: a subscriber that stops reading is bounded, then disconnected; others get everything', async (t) => {
  const g = await startGateway(t, { journal: { recordPayloads: 'none' }, limits: { maxQueuedMessages: MAX_QUEUED, maxQueuedBytes: '64MB', slowConsumerTimeoutSec: 1 } })
  const ws = new WebSocket(g.url('ws'), 'mqtt')
  t.teardown(() => ws.terminate())
  const acks: string[] = []
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  parser.on('packet', (p) => acks.push(p.cmd))
  ws.on('message', (d: Buffer) => parser.parse(d))
  await new Promise((r) => ws.once('open', r))
  ws.send(connectBytes({ clientId: 'slow-ws', password: await g.token({ sub: 'slow-ws' }) }))
  ws.send(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'load/#', qos: 0 }] }))
  await waitFor(() => acks.includes('suback'), 5000, 'suback')
  // stop reading: ws stops reading its socket
  ws.pause()
  const healthy = await healthySubscriber(t, g, 'healthy-ws')
  let peak = 0
  const sampler = setInterval(() => { peak = Math.max(peak, g.gw.core.deliveryBacklog('slow-ws')?.queued ?? 0) }, 5)
  t.teardown(() => clearInterval(sampler))
  await storm(t, g, 4, 1500, { gate: healthy.got })
  clearInterval(sampler)
  t.equal(healthy.got(), 6000, 'the healthy subscriber received every message')
  t.ok(peak <= MAX_QUEUED + 80, `the WebSocket subscriber's queue stayed at the bound (peak ${peak})`)
  const rec = await waitFor(() => g.journal.entries.find((e) => e.type === 'disconnect' && e.clientId === 'slow-ws'), 5000, 'disconnect record')
  t.match(rec, { reason: 'slow_consumer' })
  t.ok((rec.dropped as number) > 0, `dropped ${rec.dropped as number}`)
})
