import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ManualClock } from '../../src/clock.js'
import { startGateway } from '../helpers/gateway.js'
import { connackCode } from '../helpers/mqtt.js'
import { makeKey, signToken, type TestKey } from '../helpers/jwt.js'
import { waitFor } from '../helpers/wait.js'

/** A JWKS endpoint on loopback whose key set the test swaps, counting requests. */
async function jwksServer(t: Test, keys: TestKey[]) {
  const state = { keys, hits: 0, status: 200 }
  const server = createServer((req, res) => {
    state.hits++
    if (req.url !== '/.well-known/jwks.json' || state.status !== 200) {
      res.writeHead(state.status === 200 ? 404 : state.status).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys.map((k) => k.publicJwk) }))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }))
  return { state, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json` }
}

t.test('JWKS URL: rotation via unknown-kid refresh, removed keys refused, refresh rate-limited', async (t) => {
  const [k1, k2] = await Promise.all([makeKey('ES256', 'rot-1'), makeKey('EdDSA', 'rot-2')])
  const jwks = await jwksServer(t, [k1])
  const clock = new ManualClock(Date.now())
  const g = await startGateway(t, { auth: { jwt: { jwksUrl: jwks.url, jwksCooldownSec: 30 } } }, { clock })
  t.equal(jwks.state.hits, 1, 'fetched once at start')
  const url = g.url('mqtt')
  const tok = (k: TestKey, kid?: string) => signToken(k, { sub: 'dev-1', exp: Math.floor(clock.now() / 1000) + 3600 }, { kid })
  const t1 = await tok(k1)
  const t2 = await tok(k2)
  const lastDenied = () => g.journal.entries.filter((e) => e.type === 'connect_denied').at(-1)?.reason

  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: t1 }), 0, 'key 1 accepted')
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: t1 }), 0, 'key 1 again (verified-token cache)')

  // the IdP rotates: key 2 published, key 1 withdrawn
  jwks.state.keys = [k2]
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: t2 }), 4, 'new kid inside the cooldown: refused, no fetch')
  t.equal(lastDenied(), 'unknown_kid')
  t.equal(jwks.state.hits, 1, 'no fetch inside the cooldown')
  clock.advance(31_000)
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: t2 }), 0, 'new kid after the cooldown: refreshed and accepted')
  t.equal(jwks.state.hits, 2, 'one refresh')
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: t1 }), 4, 'removed key: its token (cached before) is refused')
  t.equal(lastDenied(), 'unknown_kid')

  // a flood of unknown kids costs at most one fetch per cooldown
  clock.advance(31_000)
  const before = jwks.state.hits
  const flood = await Promise.all(Array.from({ length: 40 }, async (_, i) => connackCode(t, url, { clientId: 'dev-1', password: await tok(k2, `bogus-${i}`) })))
  t.same([...new Set(flood)], [4], 'every unknown kid refused with CONNACK 4')
  t.equal(jwks.state.hits - before, 1, `40 unknown kids caused ${jwks.state.hits - before} JWKS fetch`)
  for (let i = 0; i < 5; i++) await connackCode(t, url, { clientId: 'dev-1', password: await tok(k2, `more-${i}`) })
  t.equal(jwks.state.hits - before, 1, 'still one fetch inside the cooldown')
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: t2 }), 0, 'the current key keeps working throughout')

  // the IdP fails: the last good key set stays in use
  jwks.state.status = 500
  clock.advance(31_000)
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: await tok(k1, 'rot-3') }), 4, 'unknown kid while the JWKS endpoint fails')
  await waitFor(() => jwks.state.hits - before === 2, 2000, 'the failed fetch')
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: t2 }), 0, 'known key still accepted after a failed refresh')
})

t.test('a key replaced under the same kid empties the verified-token cache', async (t) => {
  const [old, fresh] = await Promise.all([makeKey('ES256', 'same'), makeKey('ES256', 'same')])
  const jwks = await jwksServer(t, [old])
  const clock = new ManualClock(Date.now())
  const g = await startGateway(t, { auth: { jwt: { jwksUrl: jwks.url, jwksCooldownSec: 30 } } }, { clock })
  const url = g.url('mqtt')
  const tok = (k: TestKey, kid?: string) => signToken(k, { sub: 'dev-1', exp: Math.floor(clock.now() / 1000) + 3600 }, { kid })
  const tOld = await tok(old)
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: tOld }), 0, 'old key accepted and cached')
  jwks.state.keys = [fresh]
  clock.advance(31_000)
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: await tok(fresh, 'trigger-refresh') }), 4, 'an unknown kid triggers the refresh')
  t.equal(jwks.state.hits, 2)
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: tOld }), 4, 'the old token is verified again, against the new key')
  t.equal(g.journal.entries.filter((e) => e.type === 'connect_denied').at(-1)?.reason, 'bad_signature')
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: await tok(fresh) }), 0, 'the new key works')
})
