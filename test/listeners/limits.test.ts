import t from 'tap'
import mqttPacket from 'mqtt-packet'
import type { Client } from 'aedes'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { connect, waitClose } from '../helpers/mqtt.js'
import { connectBytes, rawClient } from '../helpers/raw.js'
import { waitFor } from '../helpers/wait.js'

const records = (g: TestGateway, type: string) => g.journal.entries.filter((e) => e.type === type)

t.test('a socket that never sends CONNECT is closed after connectTimeoutSec', async (t) => {
  const g = await startGateway(t, { limits: { connectTimeoutSec: 1 } })
  const silent = await rawClient(t, g.port('mqtt'))
  await Promise.race([silent.closed, new Promise((_, rej) => setTimeout(() => rej(new Error('still open after 5 s')), 5000))])
  t.pass('closed by the gateway')
  await waitFor(() => g.gw.core.admission.open === 0, 2000, 'its slot is released')
  const rec = await waitFor(() => records(g, 'protocol_error').find((e) => e.reason === 'connect_timeout'), 2000, 'connect_timeout record')
  t.equal(rec.listener, g.gw.core.listeners.find((l) => l.spec.type === 'mqtt')!.name)
})

t.test('a packet declaring more than maxPacketBytes closes the socket and is journaled', async (t) => {
  const g = await startGateway(t, { limits: { maxPacketBytes: '1KB' } })
  // a CONNECT header declaring 2 MiB, before any authentication
  const a = await rawClient(t, g.port('mqtt'))
  a.send(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x01, 0x00, 0x04]))
  await a.closed
  const pre = await waitFor(() => records(g, 'protocol_error').find((e) => e.reason === 'packet_too_large'), 2000, 'packet_too_large')
  t.equal(pre.listener, g.gw.core.listeners.find((l) => l.spec.type === 'mqtt')!.name)
  t.equal(pre.remote, '127.0.0.1')

  // an authenticated client sending a PUBLISH over the limit
  const b = await rawClient(t, g.port('mqtt'))
  b.send(connectBytes({ clientId: 'big-1', password: await g.token({ sub: 'big-1' }) }))
  t.match(await b.nextPacket(), { cmd: 'connack', returnCode: 0 })
  b.send(mqttPacket.generate({ cmd: 'publish', topic: 'site/x', payload: Buffer.alloc(2000, 7), qos: 0, retain: false, dup: false }))
  await b.closed
  const post = await waitFor(() => records(g, 'protocol_error').find((e) => e.reason === 'packet_too_large' && e.clientId === 'big-1'), 2000, 'record with clientId')
  t.equal(post.sub, 'big-1')
  t.equal(records(g, 'publish').length, 0, 'nothing published')

  // a PUBLISH just under the limit goes through
  const c = await connect(t, g.url('mqtt'), { clientId: 'ok-1', password: await g.token({ sub: 'ok-1' }) })
  await c.publishAsync('site/x', Buffer.alloc(900, 1), { qos: 1 })
  t.equal(records(g, 'publish').length, 1)
  // over WebSocket, too
  const w = await connect(t, g.url('ws'), { clientId: 'ws-big', password: await g.token({ sub: 'ws-big' }) })
  w.publish('site/x', Buffer.alloc(5000, 1), { qos: 0 })
  await waitClose(w)
  t.pass('ws client with an oversized publish closed')
})

t.test('malformed bytes close the connection cleanly', async (t) => {
  const g = await startGateway(t)
  for (const junk of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from([0x00, 0x00]), Buffer.from([0x10, 0x05, 0x00, 0x04, 0x4d, 0x51, 0x54]), Buffer.from([0xf0, 0x00])]) {
    const c = await rawClient(t, g.port('mqtt'))
    c.send(junk)
    await c.closed
  }
  t.pass('every malformed stream closed')
  await waitFor(() => g.gw.core.admission.open === 0, 2000, 'slots released')
  t.ok(records(g, 'protocol_error').length >= 1, 'protocol errors journaled')
  const ok = await connect(t, g.url('mqtt'), { clientId: 'after-1', password: await g.token({ sub: 'after-1' }) })
  t.ok(ok.connected, 'the gateway still serves')
})

t.test('maxConnections refuses extra sockets', async (t) => {
  const g = await startGateway(t, { limits: { maxConnections: 3, connectTimeoutSec: 30 } })
  const held = await Promise.all([1, 2, 3].map(() => rawClient(t, g.port('mqtt'))))
  await waitFor(() => g.gw.core.admission.open === 3, 2000, '3 admitted')
  const extra = await rawClient(t, g.port('mqtt'))
  await extra.closed
  t.pass('the 4th socket is closed')
  const rec = await waitFor(() => records(g, 'connection_refused')[0], 2000, 'connection_refused')
  t.equal(rec.reason, 'max_connections')
  held[0]!.socket.destroy()
  await waitFor(() => g.gw.core.admission.open === 2, 2000, 'slot released')
  const again = await connect(t, g.url('mqtt'), { clientId: 'c-1', password: await g.token({ sub: 'c-1' }) })
  t.ok(again.connected, 'a freed slot is usable')
})

t.test('connectRatePerAddress refuses a burst', async (t) => {
  const g = await startGateway(t, { limits: { connectRatePerAddress: '3/s' } })
  const socks = await Promise.all(Array.from({ length: 6 }, () => rawClient(t, g.port('mqtt'))))
  await waitFor(() => records(g, 'connection_refused').length === 3, 3000, '3 refusals')
  t.same(records(g, 'connection_refused').map((e) => e.reason), ['connect_rate', 'connect_rate', 'connect_rate'])
  t.equal(g.gw.core.admission.open, 3, '3 admitted')
  for (const s of socks) s.socket.destroy()
})

t.test('keepalive is clamped to limits.keepaliveSec', async (t) => {
  const g = await startGateway(t, { limits: { keepaliveSec: { min: 2, max: 3 } } })
  const interval = (id: string) => ((g.gw.core.aedes as unknown as { clients: Record<string, Client & { _keepaliveInterval: number }> }).clients[id])?._keepaliveInterval
  for (const [ka, want] of [[1, 2], [0, 3], [60, 3], [2, 2]] as const) {
    const id = `ka-${ka}`
    const c = await rawClient(t, g.port('mqtt'))
    c.send(connectBytes({ clientId: id, keepalive: ka, password: await g.token({ sub: id }) }))
    t.match(await c.nextPacket(), { cmd: 'connack', returnCode: 0 })
    t.equal(await waitFor(() => interval(id), 2000, 'client'), want * 1500 + 1, `keepalive ${ka} → ${want} s`)
    if (ka === 0) {
      // keepalive 0 ("none") still gets the max bound: a silent client is dropped
      await c.closed
      t.pass('a silent client with keepalive 0 is closed after 1.5 × max')
    }
    c.socket.destroy()
  }
})

t.test('limits apply to raw sockets before any TLS handshake or WebSocket upgrade', async (t) => {
  const { makePki } = await import('../helpers/certs.js')
  const { tempDir } = await import('../helpers/gateway.js')
  const pki = makePki(tempDir(t))
  const g = await startGateway(t, {
    listeners: [
      { type: 'mqtts', host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey },
      { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
    ],
    limits: { maxConnections: 2, connectTimeoutSec: 1, connectRatePerAddress: '1000/s' },
  })
  // two silent sockets (no ClientHello, no HTTP request) take both slots
  const tlsIdle = await rawClient(t, g.port('mqtts'))
  const wsIdle = await rawClient(t, g.port('ws'))
  await waitFor(() => g.gw.core.admission.open === 2, 2000, 'both counted')
  const third = await rawClient(t, g.port('mqtts'))
  await third.closed
  t.equal(records(g, 'connection_refused')[0]?.reason, 'max_connections', 'a third socket is refused before its handshake')
  // and both are closed after connectTimeoutSec
  await Promise.race([Promise.all([tlsIdle.closed, wsIdle.closed]), new Promise((_, rej) => setTimeout(() => rej(new Error('idle sockets still open after 8 s')), 8000))])
  t.pass('silent TLS and WebSocket sockets closed')
  await waitFor(() => g.gw.core.admission.open === 0, 2000, 'slots released')
})
