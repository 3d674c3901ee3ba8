import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { makePki } from '../helpers/certs.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { startGateway, tempDir } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { waitFor, collect } from '../bridge/util.js'

const pki = makePki(tempDir(t))
const out = [{ local: 'site/#', remote: 'up/${topic}', qos: 1 }]

t.test('mqtts upstream with a custom CA: connects, bridges; without the CA it refuses to trust the cloud', async (t) => {
  const cloud = await startMosquitto(t, { tls: { cert: pki.serverCert, key: pki.serverKey } })
  t.match(cloud.url, /^mqtts:/)
  const sub = await connect(t, cloud.url, { clientId: 'cloud-sub', ca: readFileSync(pki.ca) })
  await sub.subscribeAsync('up/#', { qos: 1 })
  const got = collect(sub)
  const g = await startGateway(t, { upstream: { url: cloud.url, ca: pki.ca, reconnect: { minMs: 50, maxMs: 200 }, out } })
  await waitFor(() => g.gw.bridge!.link.connected, 'link up over TLS')
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  await dev.publishAsync('site/1', 'over tls', { qos: 1 })
  await waitFor(() => got.length === 1, 'bridged over TLS')
  t.equal(got[0]!.payload.toString(), 'over tls')

  const untrusting = await startGateway(t, { upstream: { url: cloud.url, reconnect: { minMs: 20, maxMs: 100 }, out } })
  await waitFor(() => untrusting.gw.bridge!.link.status().attempts >= 2, 'retrying')
  t.equal(untrusting.gw.bridge!.link.connected, false, 'an unknown CA is never trusted')
  t.match(untrusting.gw.bridge!.link.status().lastError, /certificate/i)
})

t.test('mutual TLS: the gateway presents its client certificate', async (t) => {
  const cloud = await startMosquitto(t, { tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requireCert: true } })
  const g = await startGateway(t, { upstream: { url: cloud.url, ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, reconnect: { minMs: 50, maxMs: 200 }, out } })
  await waitFor(() => g.gw.bridge!.link.connected, 'link up with a client certificate')
  const without = await startGateway(t, { upstream: { url: cloud.url, ca: pki.ca, reconnect: { minMs: 20, maxMs: 100 }, out } })
  await waitFor(() => without.gw.bridge!.link.status().attempts >= 2, 'retrying')
  t.equal(without.gw.bridge!.link.connected, false, 'no client certificate, no link')
})

t.test('a missing CA file fails the start with a clear config error', async (t) => {
  await t.rejects(startGateway(t, { upstream: { url: 'mqtts://127.0.0.1:1', ca: join(tempDir(t), 'nope.crt'), out } }), { code: 'EW_CONFIG_NOT_FOUND', message: /upstream\.ca/ })
})
