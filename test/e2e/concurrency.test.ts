import t from 'tap'
import mqtt, { type MqttClient } from 'mqtt'
import { startGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'

const N = 1000

t.test(`${N} concurrent connections with valid tokens`, async (t) => {
  const g = await startGateway(t, { limits: { maxConnections: N + 10, connectRatePerAddress: '100000/s' } })
  const url = g.url('mqtt')
  const tokens = await Promise.all(Array.from({ length: N }, (_, i) => g.token({ sub: `dev-${i}`, groups: ['fleet'] })))
  const clients: MqttClient[] = []
  t.teardown(() => { for (const c of clients) c.end(true) })
  const codes = await Promise.all(tokens.map((password, i) => new Promise<number | string>((resolve) => {
    const c = mqtt.connect(url, { clientId: `dev-${i}`, username: `dev-${i}`, password, reconnectPeriod: 0, connectTimeout: 15_000, protocolVersion: 4, keepalive: 60 })
    clients.push(c)
    c.once('connect', (ack) => resolve(ack.returnCode ?? 0))
    c.once('error', (err) => resolve((err as { code?: number }).code ?? err.message))
    c.once('close', () => resolve('closed'))
  })))
  const accepted = codes.filter((c) => c === 0).length
  t.equal(accepted, N, `all ${N} got CONNACK 0 (others: ${JSON.stringify([...new Set(codes.filter((c) => c !== 0))])})`)
  t.equal(clients.filter((c) => c.connected).length, N, 'all connected at once')
  t.equal(g.gw.core.admission.open, N, 'the gateway counts them')
  await waitFor(() => g.journal.entries.filter((e) => e.type === 'connect').length === N, 10_000, 'one connect record each')
  await Promise.all(clients.map((c) => new Promise<void>((r) => c.end(false, {}, () => r()))))
  await waitFor(() => g.gw.core.admission.open === 0, 10_000, 'every socket closed')
  t.equal(g.journal.entries.filter((e) => e.type === 'disconnect').length, N, 'one disconnect record each')
})
