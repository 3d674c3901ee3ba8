// broker.maxQueuedPerClient and broker.maxRetained through a running gateway: what a
// limit drops is journaled as buffer_dropped with the client and a count.
import t from 'tap'
import mqtt from 'mqtt'
import { startGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'

t.test('an offline session keeps at most maxQueuedPerClient messages; retained at most maxRetained', async (t) => {
  const g = await startGateway(t, { broker: { persistence: 'lmdb', maxQueuedPerClient: 5, maxRetained: 3 } })
  // the gateway's own retained $warden/status takes one of the three retained slots
  const password = await g.token({ sub: 'dev-q' })
  const sub = await connect(t, g.url(), { clientId: 'dev-q', clean: false, password })
  await sub.subscribeAsync('q/#', { qos: 1 })
  await sub.endAsync()

  const pub = await connect(t, g.url(), { clientId: 'pub-q', password: await g.token({ sub: 'pub-q' }) })
  for (let i = 0; i < 8; i++) await pub.publishAsync('q/m', String(i), { qos: 1 })
  for (const n of [1, 2, 3]) await pub.publishAsync(`r/${n}`, `r${n}`, { qos: 0, retain: true })

  const drops = await waitFor(() => {
    const d = g.journal.entries.filter((e) => e.type === 'buffer_dropped')
    return d.length >= 2 ? d : undefined
  }, 5000, 'buffer_dropped records')
  t.match(drops, [
    { type: 'buffer_dropped', reason: 'max_queued_per_client', clientId: 'dev-q', topic: 'q/m', count: 3 },
    { type: 'buffer_dropped', reason: 'max_retained', topic: 'r/3', count: 1 },
  ])

  const got: string[] = []
  const back = mqtt.connect(g.url(), { clientId: 'dev-q', username: 'dev-q', clean: false, password, reconnectPeriod: 0, protocolVersion: 4 })
  t.teardown(() => new Promise<void>((r) => back.end(true, {}, () => r())))
  back.on('message', (_topic, payload) => got.push(String(payload)))
  await new Promise((r) => back.once('connect', r))
  await pub.publishAsync('q/m', 'live', { qos: 1 })
  await waitFor(() => got.at(-1) === 'live', 5000, 'the live message')
  t.same(got, ['0', '1', '2', '3', '4', 'live'], 'the first five were kept, the rest dropped')

  const reader = await connect(t, g.url(), { clientId: 'reader', password: await g.token({ sub: 'reader' }) })
  const retained: string[] = []
  reader.on('message', (topic) => retained.push(topic))
  await reader.subscribeAsync('r/#', { qos: 0 })
  // retained messages follow the SUBACK on their own (key order: r/3 would come right after r/2);
  // the live marker, routed at once, is only a fence once the kept ones are in
  await waitFor(() => retained.length >= 2, 5000, 'the retained messages')
  await pub.publishAsync('r/end', 'x', { qos: 1 })
  await waitFor(() => retained.includes('r/end'), 5000, 'marker')
  t.same(retained.sort(), ['r/1', 'r/2', 'r/end'])
})
