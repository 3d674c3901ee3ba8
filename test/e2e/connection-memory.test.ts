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

t.test('the delivery bound wraps a client at its first SUBSCRIBE, or at CONNECT for a persistent session, not before', async (t) => {
  const g = await startGateway(t)
  const delivers = (c: Client): { deliver0: unknown; deliverQoS: unknown } => c as unknown as { deliver0: unknown; deliverQoS: unknown }
  const idle = await connect(t, g.url('mqtt'), { clientId: 'wrap-idle', password: await g.token({ sub: 'wrap-idle' }) })
  const client = await waitFor(() => clientOf(g, 'wrap-idle'), 2000, 'client registered')
  const own = { ...delivers(client) }
  t.match(String(own.deliver0), /deliverQoS0/, 'a publish-only connection keeps Aedes\' own deliver functions')
  await idle.subscribeAsync('site/wrap/#', { qos: 1 })
  t.not(delivers(client).deliver0, own.deliver0, 'wrapped at SUBSCRIBE')
  t.not(delivers(client).deliverQoS, own.deliverQoS)
  const sub = (client as unknown as { subscriptions: Record<string, unknown> }).subscriptions['site/wrap/#']
  t.ok(sub, 'the subscription is in place')
  // the subscription captured the wrapper: a message routed to it is counted by the bound
  const pub = await connect(t, g.url('mqtt'), { clientId: 'wrap-pub', password: await g.token({ sub: 'wrap-pub' }) })
  const got = new Promise<string>((resolve) => idle.once('message', (_topic, payload) => resolve(payload.toString())))
  await pub.publishAsync('site/wrap/x', 'hello', { qos: 1 })
  t.equal(await got, 'hello')
  // counted by the wrapper until the subscriber's PUBACK, then taken
  await waitFor(() => g.gw.core.deliveryBacklog('wrap-idle')?.queued === 0 || undefined, 2000, 'delivery completed')
  t.same(g.gw.core.deliveryBacklog('wrap-idle'), { queued: 0, queuedBytes: 0, dropped: 0, stored: 0 }, 'taken, nothing left')
  // a persistent session: wrapped at CONNECT, before Aedes restores its subscriptions
  const persistent = await connect(t, g.url('mqtt'), { clientId: 'wrap-keep', clean: false, password: await g.token({ sub: 'wrap-keep' }) })
  const kept = await waitFor(() => clientOf(g, 'wrap-keep'), 2000, 'client registered')
  t.notMatch(String(delivers(kept).deliver0), /deliverQoS0/, 'wrapped at CONNECT')
  persistent.end(true)
  // an unsubscribed connection's backlog reads as nothing queued, as before
  const other = await connect(t, g.url('mqtt'), { clientId: 'wrap-none', password: await g.token({ sub: 'wrap-none' }) })
  await waitFor(() => clientOf(g, 'wrap-none'), 2000, 'client registered')
  t.same(g.gw.core.deliveryBacklog('wrap-none'), { queued: 0, queuedBytes: 0, dropped: 0, stored: 0 })
  other.end(true)
})
