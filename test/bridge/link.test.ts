import t from 'tap'
import mqtt, { MqttClient } from 'mqtt'
import { KeepNothing, skipStoreCopy, UpstreamLink } from '../../src/bridge/link.js'
import { MemoryJournal } from '../../src/journal/memory.js'
import { systemClock } from '../../src/clock.js'
import { silentLogger } from '../../src/logger.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { collect, waitFor } from './util.js'

const upstream = (url: string) => ({ url, rejectUnauthorized: true, keepaliveSec: 30, reconnect: { minMs: 20, maxMs: 100 }, out: [], in: [], buffer: { maxMessages: 1, maxBytes: 1, onFull: 'block' as const, storeAfterMs: 100 }, audit: { batchRecords: 1, batchMs: 10 } })

t.test('MQTT.js still has the private method skipStoreCopy replaces (fails on an upgrade that drops it: look again then)', async (t) => {
  const proto = MqttClient.prototype as unknown as Record<string, unknown>
  t.type(proto._storeAndSend, 'function')
  t.type(proto._writePacket, 'function')
  // a client with MQTT.js' own store keeps its own _storeAndSend
  const c = mqtt.connect('mqtt://127.0.0.1:1', { reconnectPeriod: 0, connectTimeout: 100 })
  c.on('error', () => {})
  t.teardown(() => { c.end(true) })
  t.equal(skipStoreCopy(c), false, 'not replaced for a client that keeps what it sends')
})

t.test('QoS 1 publishes through the link: each acknowledged once, nothing kept, nothing copied', async (t) => {
  const cloud = await startMosquitto(t)
  const journal = new MemoryJournal()
  const link = new UpstreamLink({ config: upstream(cloud.url), gatewayId: 'gw-link', logger: silentLogger, journal, clock: systemClock })
  t.teardown(() => link.stop())
  const rx = await mqtt.connectAsync(cloud.url, { clientId: 'rx', protocolVersion: 4, reconnectPeriod: 0 })
  t.teardown(() => rx.endAsync(true))
  await rx.subscribeAsync('up/#', { qos: 1 })
  const got = collect(rx)
  link.start()
  await waitFor(() => link.connected, 'the link up')

  const c = link.client!
  t.ok(c.outgoingStore instanceof KeepNothing, 'the link\'s client keeps nothing')
  const n = 2000
  const payloads = Array.from({ length: n }, (_, i) => Buffer.from(`message ${i}`))
  // skipStoreCopy: MQTT.js neither copies the packet for its store nor puts it there
  let puts = 0
  const put = c.outgoingStore.put.bind(c.outgoingStore)
  c.outgoingStore.put = (p, cb) => { puts++; return put(p, cb) }
  const written: unknown[] = []
  c.on('packetsend', (p) => { if (p.cmd === 'publish') written.push(p.payload) })
  const results = await Promise.allSettled(payloads.map((p, i) => link.publish(`up/${i % 10}`, p, { qos: 1 })))
  t.equal(results.filter((r) => r.status === 'fulfilled').length, n, 'every publish acknowledged without error')
  t.ok(written.length === n && written.every((p, i) => p === payloads[i]), 'the payloads written are the callers\' Buffers')
  t.equal(puts, 0, 'nothing was copied for the store, nor put there')
  await waitFor(() => got.length >= n, 'all at the cloud subscriber')
  t.same(got.map((m) => m.payload.toString()).sort(), payloads.map(String).sort(), 'each arrived, once')
  t.same(Object.keys(c.outgoing), [], 'MQTT.js holds no acknowledged publish')
  const inflights = (c.outgoingStore as unknown as { _inflights: Map<number, unknown> })._inflights
  t.equal(inflights.size, 0, 'the store kept none')
})

t.test('a connection lost with publishes unacknowledged fails them, and the next connection sends anew', async (t) => {
  const cloud = await startMosquitto(t)
  const link = new UpstreamLink({ config: upstream(cloud.url), gatewayId: 'gw-link2', logger: silentLogger, journal: new MemoryJournal(), clock: systemClock })
  t.teardown(() => link.stop())
  link.start()
  await waitFor(() => link.connected, 'the link up')
  await cloud.stop()
  // sent into a connection on its way down, or refused at once: either way an error, never a hang
  const pending = Array.from({ length: 50 }, (_, i) => link.publish(`up/${i}`, Buffer.from('x'), { qos: 1 }))
  const settled = await Promise.allSettled(pending)
  t.ok(settled.every((r) => r.status === 'rejected'), 'every publish failed with the connection')
  await cloud.start()
  await waitFor(() => link.connected, 'the link up again', 20_000)
  await t.resolves(link.publish('up/again', Buffer.from('y'), { qos: 1 }), 'a new connection publishes')
})
