import t from 'tap'
import { startMosquitto } from '../helpers/mosquitto.js'
import { startGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { waitFor, cloudSubscriber } from '../bridge/util.js'

t.test('drop-oldest: the newest maxMessages survive an outage, drops journaled with counts', async (t) => {
  const cloud = await startMosquitto(t, { persistence: true })
  const got = await cloudSubscriber(t, cloud.url, 'up/#')
  const g = await startGateway(t, {
    upstream: { url: cloud.url, reconnect: { minMs: 50, maxMs: 200 }, out: [{ local: 'site/#', remote: 'up/${topic}', qos: 1 }], buffer: { maxMessages: 5, onFull: 'drop-oldest' } },
  })
  const bridge = g.gw.bridge!
  await waitFor(() => bridge.link.connected, 'link up')
  await cloud.stop()
  await waitFor(() => !bridge.link.connected, 'link down')
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  for (let i = 0; i < 12; i++) await dev.publishAsync('site/a', String(i), { qos: 1 })
  t.equal(bridge.outbox.depth, 5, 'the outbox holds maxMessages')
  t.equal(bridge.status().outbox.writable, true, 'drop-oldest never refuses')
  await waitFor(() => g.journal.entries.some((e) => e.type === 'buffer_dropped'), 'buffer_dropped journaled')
  const dropped = g.journal.entries.filter((e) => e.type === 'buffer_dropped')
  t.equal(dropped.reduce((n, e) => n + (e.count ?? 0), 0), 7, 'seven dropped, counted')
  t.equal(dropped[0]!.reason, 'drop-oldest')
  const metrics = await (await fetch(`http://127.0.0.1:${g.port('admin')}/metrics`)).text()
  t.match(metrics, /edgewarden_outbox_dropped_total\{reason="drop-oldest"\} 7/)
  await cloud.start()
  await waitFor(() => got.length >= 5, 'the five newest arrive')
  await waitFor(() => bridge.outbox.depth === 0, 'drained')
  t.same(got.map((m) => m.payload.toString()), ['7', '8', '9', '10', '11'], 'the oldest went first')
})

t.test('block: at the limit, bridged publishes are refused (journaled), other topics flow, space frees on reconnect', async (t) => {
  const cloud = await startMosquitto(t, { persistence: true })
  const got = await cloudSubscriber(t, cloud.url, 'up/#')
  const g = await startGateway(t, {
    upstream: { url: cloud.url, reconnect: { minMs: 50, maxMs: 200 }, out: [{ local: 'site/#', remote: 'up/${topic}', qos: 1 }], buffer: { maxMessages: 3, onFull: 'block' } },
  })
  const bridge = g.gw.bridge!
  await waitFor(() => bridge.link.connected, 'link up')
  await cloud.stop()
  await waitFor(() => !bridge.link.connected, 'link down')
  const token = await g.token({ sub: 'sensor-1' })
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: token })
  for (let i = 0; i < 3; i++) await dev.publishAsync('site/a', String(i), { qos: 1 })
  t.equal(bridge.outbox.depth, 3)
  t.equal(bridge.status().outbox.writable, false, 'full')
  // MQTT 3.1.1 has no negative PUBACK: a refused publish is acknowledged and dropped
  await dev.publishAsync('site/a', 'refused', { qos: 1 })
  t.equal(bridge.outbox.depth, 3, 'not queued')
  const denied = g.journal.entries.find((e) => e.type === 'publish_denied' && e.topic === 'site/a')
  t.equal(denied?.reason, 'upstream_buffer_full', 'the refusal is journaled with its reason')
  const local = await connect(t, g.url(), { clientId: 'sensor-1', password: token })
  await local.publishAsync('local/only', 'fine', { qos: 1 })
  t.pass('a topic no mapping takes is still accepted')
  await g.gw.stop()
  const drops = g.journal.entries.filter((e) => e.type === 'buffer_dropped')
  t.equal(drops.length, 1)
  t.match(drops[0], { reason: 'buffer_full', count: 1, onFull: 'block' }, 'journaled with counts (flushed at stop)')
  await cloud.start()
  await new Promise((r) => setTimeout(r, 50))
  t.equal(got.length, 0, 'a stopped gateway sends nothing')
})

t.test('block: once the cloud acknowledges, the outbox accepts again', async (t) => {
  const cloud = await startMosquitto(t, { persistence: true })
  const got = await cloudSubscriber(t, cloud.url, 'up/#')
  const g = await startGateway(t, {
    upstream: { url: cloud.url, reconnect: { minMs: 50, maxMs: 200 }, out: [{ local: 'site/#', remote: 'up/${topic}', qos: 1 }], buffer: { maxMessages: 2, maxBytes: 1000, onFull: 'block' } },
  })
  const bridge = g.gw.bridge!
  await waitFor(() => bridge.link.connected, 'link up')
  await cloud.stop()
  await waitFor(() => !bridge.link.connected, 'link down')
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  await dev.publishAsync('site/a', '0', { qos: 1 })
  await dev.publishAsync('site/a', '1', { qos: 1 })
  t.equal(bridge.outbox.writable, false)
  await cloud.start()
  await waitFor(() => bridge.outbox.depth === 0, 'drained')
  t.equal(bridge.outbox.writable, true)
  await dev.publishAsync('site/a', '2', { qos: 1 })
  await waitFor(() => got.length >= 3, 'all three')
  t.same(got.map((m) => m.payload.toString()), ['0', '1', '2'])
})
