import t from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { connect, waitClose } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'

t.test('a connection is closed when its token expires, and session_expired is journaled', async (t) => {
  const g = await startGateway(t, { auth: { jwt: { clockToleranceSec: 0 } } })
  const short = await connect(t, g.url('mqtt'), { clientId: 'short-1', password: await g.token({ sub: 'short-1', ttlSec: 2 }) })
  const long = await connect(t, g.url('ws'), { clientId: 'long-1', password: await g.token({ sub: 'long-1', ttlSec: 3600 }) })
  await waitClose(short, 8000)
  const rec = await waitFor(() => g.journal.entries.find((e) => e.type === 'session_expired'), 2000, 'session_expired record')
  t.equal(rec.clientId, 'short-1')
  t.equal(rec.sub, 'short-1')
  t.ok(rec.session, 'names the session')
  t.equal(g.journal.entries.filter((e) => e.type === 'disconnect' && e.clientId === 'short-1').length, 0, 'not also journaled as a plain disconnect')
  t.ok(long.connected, 'a connection with a longer token stays up')
  t.equal(g.journal.entries.filter((e) => e.type === 'session_expired').length, 1)
})

t.test('disconnectOnExpiry: false keeps the connection', async (t) => {
  const g = await startGateway(t, { auth: { jwt: { clockToleranceSec: 0, disconnectOnExpiry: false } } })
  const c = await connect(t, g.url('mqtt'), { clientId: 'keep-1', password: await g.token({ sub: 'keep-1', ttlSec: 1 }) })
  await new Promise((r) => setTimeout(r, 1500))
  t.ok(c.connected, 'still connected after exp')
  await c.publishAsync('site/keep/x', 'still here', { qos: 1 })
  t.equal(g.journal.entries.filter((e) => e.type === 'session_expired').length, 0)
})

t.test('a token accepted inside the clock tolerance stays until exp + tolerance', async (t) => {
  const g = await startGateway(t, { auth: { jwt: { clockToleranceSec: 2 } } })
  const { mintToken } = await import('../../src/identity/mint.js')
  // exp up to a second in the past: valid only thanks to the 2 s tolerance, for 1-2 s more
  // (floor(now) - 1 left as little as a millisecond when the second was nearly over: CONNACK 4
  // on a busy machine, seen in CI)
  const token = await mintToken(g.gw.devKey!.privateJwk, { sub: 'skew-1', extra: { exp: Math.ceil(Date.now() / 1000) - 1 } })
  const c = await connect(t, g.url('mqtt'), { clientId: 'skew-1', password: token })
  await c.publishAsync('site/skew/x', 'made it', { qos: 1 })
  t.ok(g.journal.entries.some((e) => e.type === 'publish' && e.clientId === 'skew-1'), 'could publish after connecting')
  await waitClose(c, 5000)
  t.ok(await waitFor(() => g.journal.entries.find((e) => e.type === 'session_expired' && e.clientId === 'skew-1'), 2000, 'record'))
})
