import t from 'tap'
import type { Client } from 'aedes'
import { startGateway } from '../helpers/gateway.js'
import { connect, waitClose } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'

const clientOf = (g: Awaited<ReturnType<typeof startGateway>>, id: string): Client | undefined =>
  (g.gw.core.aedes as unknown as { clients: Record<string, Client> }).clients[id]

t.test('an authenticated connection does not keep its raw token (mqtt-packet keeps the CONNECT packet)', async (t) => {
  const g = await startGateway(t)
  const token = await g.token({ sub: 'mem-1' })
  const c = await connect(t, g.url('mqtt'), { clientId: 'mem-1', password: token })
  const client = await waitFor(() => clientOf(g, 'mem-1'), 2000, 'client registered')
  const settings = (client as unknown as { _parser: { settings: { clientId?: string; password?: unknown } } })._parser.settings
  t.equal(settings.clientId, 'mem-1', 'the parser still holds the CONNECT packet')
  t.equal(settings.password, undefined, 'but not the token')
  await c.publishAsync('site/mem/x', 'works', { qos: 1 })
  t.ok(g.journal.entries.some((e) => e.type === 'publish' && e.clientId === 'mem-1'))
})

t.test('the connections gauge follows the one close listener per connection', async (t) => {
  const g = await startGateway(t)
  const gauge = async (): Promise<number> => (await g.gw.metrics.connections.get()).values[0]?.value ?? NaN
  const cs = await Promise.all([1, 2, 3].map(async (i) => connect(t, g.url('mqtt'), { clientId: `gauge-${i}`, password: await g.token({ sub: `gauge-${i}` }) })))
  t.equal(await gauge(), 3)
  await Promise.all(cs.map(async (c) => { c.end(true); await waitClose(c).catch(() => {}) }))
  const until = Date.now() + 3000
  while ((await gauge()) !== 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
  t.equal(await gauge(), 0, 'back to 0 once the sockets closed')
})
