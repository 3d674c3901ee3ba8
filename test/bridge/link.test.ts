import t from 'tap'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import mqtt, { MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { KeepNothing, skipStoreCopy, UpstreamLink } from '../../src/bridge/link.js'
import { MemoryJournal } from '../../src/journal/memory.js'
import { systemClock } from '../../src/clock.js'
import { silentLogger } from '../../src/logger.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { collect, upstreamConfig, waitFor } from './util.js'


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

t.test('a publish on a link client that is not connected fails at once (nothing is kept for a later connection)', async (t) => {
  const c = mqtt.connect('mqtt://127.0.0.1:1', { reconnectPeriod: 0, connectTimeout: 100, outgoingStore: new KeepNothing() })
  c.on('error', () => {})
  t.teardown(() => { c.end(true) })
  t.equal(skipStoreCopy(c), true)
  const err = await new Promise<Error | undefined>((resolve) => c.publish('up/x', Buffer.from('y'), { qos: 1 }, (e) => resolve(e ?? undefined)))
  t.match(err?.message, /not connected/)
})

t.test('QoS 1 publishes through the link: each acknowledged once, nothing copied for the store', async (t) => {
  // the subscriber below shares this process with 2,000 publishes at once: Mosquitto must not drop what it queues for it (found by review)
  const cloud = await startMosquitto(t, { extra: ['max_queued_messages 0'] })
  const journal = new MemoryJournal()
  const link = new UpstreamLink({ config: upstreamConfig(cloud.url), gatewayId: 'gw-link', logger: silentLogger, journal, clock: systemClock })
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
  const results = await Promise.allSettled(payloads.map((p, i) => link.publish(`up/${i % 10}`, p, { qos: 1 })))
  t.equal(results.filter((r) => r.status === 'fulfilled').length, n, 'every publish acknowledged without error')
  t.equal(puts, 0, 'nothing was copied for the store, nor put there')
  await waitFor(() => got.length >= n, 'all at the cloud subscriber')
  t.same(got.map((m) => m.payload.toString()).sort(), payloads.map(String).sort(), 'each arrived, once')
})

t.test('a connection lost with publishes in flight fails them, and the next connection does not send them again', async (t) => {
  // a cloud that takes publishes without acknowledging them, until told to
  let acking = false
  const conns: { socket: Socket; topics: string[] }[] = []
  const server = createServer((socket) => {
    const conn = { socket, topics: [] as string[] }
    conns.push(conn)
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (p) => {
      if (p.cmd === 'connect') socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }))
      else if (p.cmd === 'pingreq') socket.write(mqttPacket.generate({ cmd: 'pingresp' }))
      else if (p.cmd === 'publish') {
        conn.topics.push(p.topic)
        if (acking) socket.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId! }))
      }
    })
    socket.on('data', (d) => parser.parse(d))
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const c of conns) c.socket.destroy(); server.close() })
  const port = (server.address() as AddressInfo).port
  const link = new UpstreamLink({ config: upstreamConfig(`mqtt://127.0.0.1:${port}`), gatewayId: 'gw-link2', logger: silentLogger, journal: new MemoryJournal(), clock: systemClock })
  t.teardown(() => link.stop())
  link.start()
  await waitFor(() => link.connected, 'the link up')

  const pending = Array.from({ length: 20 }, (_, i) => link.publish(`up/${i}`, Buffer.from('x'), { qos: 1 }))
  await waitFor(() => conns[0]!.topics.length === 20, 'the 20 publishes at the cloud, unacknowledged')
  conns[0]!.socket.destroy()
  // MQTT.js never settles them (a persistent session keeps them for the same client): the link does
  const settled = await Promise.race([Promise.allSettled(pending), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('publishes in flight were never settled')), 10_000).unref())])
  t.ok(settled.every((r) => r.status === 'rejected' && /connection lost/.test((r.reason as Error).message)), 'every publish in flight failed with the connection')

  acking = true
  await waitFor(() => link.connected && conns.length === 2, 'the link up again, on a new connection', 20_000)
  await t.resolves(link.publish('up/again', Buffer.from('y'), { qos: 1 }), 'the new connection publishes')
  t.same(conns[1]!.topics, ['up/again'], 'and sends none of the failed ones again (the outbox does that)')
})
