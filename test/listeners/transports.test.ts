import t from 'tap'
import { readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import type { Client } from 'aedes'
import WebSocket from 'ws'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect, connackCode } from '../helpers/mqtt.js'
import { makePki } from '../helpers/certs.js'
import { waitFor } from '../helpers/wait.js'

function identityOf(g: TestGateway, clientId: string) {
  const client = (g.gw.core.aedes as unknown as { clients: Record<string, Client> }).clients[clientId]
  return client ? g.gw.core.sessionOf(client)?.identity : undefined
}

function upgradeStatus(url: string, opts: WebSocket.ClientOptions = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['mqtt'], opts)
    ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate() })
    ws.once('open', () => { resolve(101); ws.terminate() })
    ws.once('error', (err) => reject(err))
  })
}

t.test('WebSocket listener: wrong path 404 (journaled), plain HTTP GET 426, right path upgrades', async (t) => {
  const g = await startGateway(t)
  const port = g.port('ws')
  t.equal(await upgradeStatus(`ws://127.0.0.1:${port}/wrong`), 404)
  const rec = await waitFor(() => g.journal.entries.find((e) => e.type === 'connection_refused'), 2000, 'refusal record')
  t.equal(rec.reason, 'bad_path')
  t.equal(await upgradeStatus(`ws://127.0.0.1:${port}/mqtt?x=1`), 101, 'query string ignored')
  const res = await fetch(`http://127.0.0.1:${port}/mqtt`)
  t.equal(res.status, 426, 'plain GET: 426 Upgrade Required')
  t.equal(res.headers.get('upgrade'), 'websocket')
  await res.text()
  const other = await fetch(`http://127.0.0.1:${port}/`)
  t.equal(other.status, 426)
  await other.text()
  await waitFor(() => g.gw.core.admission.open === 0, 2000, 'no slot leaked')
})

t.test('mqtts and wss with requestCert: client certificate subject becomes claims; no certificate, no connection', async (t) => {
  const pki = makePki(tempDir(t))
  const tls = { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requestCert: true }
  const g = await startGateway(t, {
    listeners: [
      { type: 'mqtts', host: '127.0.0.1', port: 0, ...tls },
      { type: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', ...tls },
      { type: 'mqtt', host: '127.0.0.1', port: 0 },
    ],
  })
  const ca = readFileSync(pki.ca)
  const clientCert = { ca, cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }
  for (const type of ['mqtts', 'wss'] as const) {
    const id = `tls-${type}`
    const c = await connect(t, g.url(type), { clientId: id, password: await g.token({ sub: id }), ...clientCert })
    t.ok(c.connected, `${type}: connected with a client certificate`)
    const claims = identityOf(g, id)?.claims
    t.equal(claims?.cert_cn, 'device-7', `${type}: cert_cn claim`)
    t.match(claims?.cert_subject, /CN=device-7/, `${type}: cert_subject claim`)
    t.match(claims?.cert_subject, /O=acme/)
    const without = await connackCode(t, g.url(type), { clientId: `${id}-nocert`, password: await g.token({ sub: `${id}-nocert` }), ca })
    t.not(without, 0, `${type}: no client certificate, no connection`)
  }
  const plain = await connect(t, g.url('mqtt'), { clientId: 'plain-1', password: await g.token({ sub: 'plain-1' }) })
  t.ok(plain.connected)
  t.equal(identityOf(g, 'plain-1')?.claims.cert_cn, undefined, 'no cert claims over plain TCP')
})

t.test('mqtts with requestCert and rejectUnauthorized: false: certificate optional, only verified ones become claims', async (t) => {
  const pki = makePki(tempDir(t))
  const g = await startGateway(t, {
    listeners: [{ type: 'mqtts', host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requestCert: true, rejectUnauthorized: false }],
  })
  const ca = readFileSync(pki.ca)
  const c = await connect(t, g.url('mqtts'), { clientId: 'opt-1', password: await g.token({ sub: 'opt-1' }), ca })
  t.ok(c.connected, 'no certificate: still connects')
  t.equal(identityOf(g, 'opt-1')?.claims.cert_cn, undefined)
  // a self-signed certificate the CA did not sign must not become a claim
  const dir = tempDir(t)
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'self.key'), '-out', join(dir, 'self.crt'), '-days', '1', '-subj', '/CN=device-7'], { stdio: 'pipe' })
  const forged = await connect(t, g.url('mqtts'), { clientId: 'opt-2', password: await g.token({ sub: 'opt-2' }), ca, cert: readFileSync(join(dir, 'self.crt')), key: readFileSync(join(dir, 'self.key')) })
  t.ok(forged.connected)
  t.equal(identityOf(g, 'opt-2')?.claims.cert_cn, undefined, 'an unverified certificate gives no claims')
})

t.test('a failed TLS handshake is journaled as connection_refused tls_handshake', async (t) => {
  const pki = makePki(tempDir(t))
  const g = await startGateway(t, {
    listeners: [{ type: 'mqtts', host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requestCert: true }],
  })
  const { connect: tlsConnect } = await import('node:tls')
  // a client that does not trust the gateway's certificate, and one with no client certificate
  await new Promise<void>((resolve) => {
    const s = tlsConnect({ port: g.port('mqtts'), host: '127.0.0.1', servername: 'localhost' })
    s.on('error', () => resolve())
    s.on('close', () => resolve())
  })
  const code = await connackCode(t, g.url('mqtts'), { clientId: 'nocert', password: await g.token({ sub: 'nocert' }), ca: readFileSync(pki.ca) })
  t.not(code, 0)
  const recs = await waitFor(() => { const r = g.journal.entries.filter((e) => e.type === 'connection_refused'); return r.length >= 2 && r }, 3000, 'two refusals')
  t.same(recs.map((e) => e.reason), ['tls_handshake', 'tls_handshake'])
  t.equal(recs[0]!.listener, g.gw.core.listeners.find((l) => l.spec.type === 'mqtts')!.name)
})
