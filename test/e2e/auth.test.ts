import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { Client } from 'aedes'
import { createLogger } from '../../src/logger.js'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connackCode } from '../helpers/mqtt.js'
import { rawConnack } from '../helpers/raw.js'
import { waitFor } from '../helpers/wait.js'
import { hmacToken, makeKey, noneTokens, nowSec, signToken, type TestKey } from '../helpers/jwt.js'

const HS_SECRET = 'e2e-hs256-secret-0123456789abcdef'
const ISS = 'https://idp.example.com/'
const AUD = 'edgewarden'

let es: TestKey, rs: TestKey, ed: TestKey
t.before(async () => {
  ;[es, rs, ed] = await Promise.all([makeKey('ES256', 'es-1'), makeKey('RS256', 'rs-1'), makeKey('EdDSA', 'ed-1')])
})

function logSink(): { stream: Writable; text(): string } {
  const chunks: string[] = []
  const stream = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb() } })
  return { stream, text: () => chunks.join('') }
}

function identityOf(g: TestGateway, clientId: string) {
  const client = (g.gw.core.aedes as unknown as { clients: Record<string, Client> }).clients[clientId]
  return client ? g.gw.core.sessionOf(client)?.identity : undefined
}

t.test('the token matrix over MQTT: CONNACK codes, connect_denied records, token never journaled or logged', async (t) => {
  const dir = tempDir(t)
  const jwks = join(dir, 'jwks.json')
  writeFileSync(jwks, JSON.stringify({ keys: [es.publicJwk, ed.publicJwk] }))
  const logs = logSink()
  const g = await startGateway(t, {
    auth: { jwt: { jwksFile: jwks, publicKey: rs.publicPem, algorithms: ['ES256', 'RS256', 'EdDSA', 'HS256'], secret: HS_SECRET, issuer: ISS, audience: AUD, clockToleranceSec: 5 } },
  }, { logger: createLogger('debug', logs.stream) })
  const url = g.url('mqtt')
  const port = g.port('mqtt')
  const now = nowSec()
  const base = { sub: 'dev-1', iss: ISS, aud: AUD, exp: now + 600 }
  const tokens: string[] = []
  const es256 = async (claims: Record<string, unknown>, kid?: string) => { const s = await signToken(es, claims, { kid }); tokens.push(s); return s }

  const deniedSince = (from: number) => g.journal.entries.slice(from).filter((e) => e.type === 'connect_denied')
  async function expectRefused(name: string, password: string | undefined, reason: string, o: { clientId?: string; code?: number } = {}) {
    if (password) tokens.push(password)
    const from = g.journal.entries.length
    const code = await connackCode(t, url, { clientId: o.clientId ?? 'dev-1', password })
    t.equal(code, o.code ?? 4, `${name}: CONNACK ${o.code ?? 4}`)
    const denied = deniedSince(from)
    t.equal(denied.length, 1, `${name}: one connect_denied record`)
    t.equal(denied[0]?.reason, reason, `${name}: reason ${reason}`)
    t.equal(denied[0]?.listener, g.gw.core.listeners.find((l) => l.spec.type === 'mqtt')!.name, `${name}: listener named`)
  }

  await expectRefused('missing password', undefined, 'missing_token')
  await expectRefused('garbage', 'this-is-not-a-jwt', 'malformed')
  await expectRefused('garbage with dots', 'bm9wZQ.bm9wZQ.c2ln', 'malformed')
  await expectRefused('ES256 header, junk signature', 'eyJhbGciOiJFUzI1NiJ9.bm9wZQ.c2ln', 'bad_signature')
  for (const n of noneTokens(base)) await expectRefused('alg none', n, 'alg_not_allowed')
  await expectRefused('key confusion: HS256 with the RS public key PEM', hmacToken(rs.publicPem, base), 'bad_signature')
  await expectRefused('key confusion: HS256 with the RS public key JWK', hmacToken(JSON.stringify(rs.publicJwk), base, { alg: 'HS256', kid: 'rs-1' }), 'bad_signature')
  await expectRefused('key confusion: HS256 with the ES public key PEM', hmacToken(es.publicPem, base, { alg: 'HS256', kid: 'es-1' }), 'bad_signature')
  await expectRefused('wrong iss', await es256({ ...base, iss: 'https://evil.example.com/' }), 'bad_issuer')
  await expectRefused('wrong aud', await es256({ ...base, aud: 'another-service' }), 'bad_audience')
  await expectRefused('expired', await es256({ ...base, exp: now - 60 }), 'expired')
  await expectRefused('nbf in the future', await es256({ ...base, nbf: now + 120 }), 'not_yet_valid')
  await expectRefused('missing exp (requireExp)', await es256({ sub: 'dev-1', iss: ISS, aud: AUD }), 'missing_exp')
  await expectRefused('unknown kid', await es256(base, 'es-404'), 'unknown_kid')
  await expectRefused('clientId mismatch', await es256(base), 'client_id_mismatch', { clientId: 'dev-2' })
  await expectRefused('clientId mismatch with client_id claim', await es256({ ...base, client_id: 'dev-9' }), 'client_id_mismatch', { clientId: 'dev-1' })
  await expectRefused('over 8 KiB', await es256({ ...base, pad: 'p'.repeat(8300) }), 'token_too_large')

  // clock tolerance honoured (5 s): expired 2 s ago and nbf 2 s ahead still pass
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: await es256({ ...base, exp: now - 2 }) }), 0, 'exp within tolerance')
  t.equal(await connackCode(t, url, { clientId: 'dev-1', password: await es256({ ...base, nbf: now + 2 }) }), 0, 'nbf within tolerance')

  // empty clientId (raw packets: MQTT.js does not send an empty id with clean=0)
  let from = g.journal.entries.length
  t.equal(await rawConnack(t, port, { clientId: '', clean: false, password: await es256(base) }), 2, 'empty clientId + clean=0: CONNACK 2')
  t.equal(deniedSince(from)[0]?.reason, 'client_id_required')
  from = g.journal.entries.length
  t.equal(await rawConnack(t, port, { clientId: '', clean: true, password: await es256({ ...base, client_id: 'bound-7' }) }), 0, 'empty clientId + clean=1: accepted')
  const connected = await waitFor(() => g.journal.entries.slice(from).find((e) => e.type === 'connect'), 5000, 'connect record')
  t.equal(connected?.clientId, 'bound-7', 'gets the bound id (client_id claim)')

  // valid tokens of every configured kind, with kind and groups mapped into the Identity
  const valid: [string, string][] = [
    ['ES256', await es256({ ...base, sub: 'es-dev', groups: ['sensors'], kind: 'device' })],
    ['RS256', await signToken(rs, { ...base, sub: 'rs-svc', groups: ['ops', 'site-a'], kind: 'service' }, { kid: null })],
    ['EdDSA', await signToken(ed, { ...base, sub: 'ed-agent', groups: ['bots'], kind: 'agent' })],
    ['HS256', hmacToken(HS_SECRET, { ...base, sub: 'hs-human', groups: ['ops-leads'], kind: 'human' })],
  ]
  const expected: Record<string, [string[], string]> = { 'es-dev': [['sensors'], 'device'], 'rs-svc': [['ops', 'site-a'], 'service'], 'ed-agent': [['bots'], 'agent'], 'hs-human': [['ops-leads'], 'human'] }
  const { connect } = await import('../helpers/mqtt.js')
  for (const [alg, tok] of valid) {
    tokens.push(tok)
    const sub = Object.keys(expected)[valid.findIndex((v) => v[1] === tok)]!
    const c = await connect(t, url, { clientId: sub, password: tok })
    t.ok(c.connected, `${alg} token accepted`)
    const id = identityOf(g, sub)
    t.same(id?.groups, expected[sub]![0], `${alg}: groups`)
    t.equal(id?.kind, expected[sub]![1], `${alg}: kind`)
    t.equal(id?.sub, sub)
    c.end(true)
  }

  // no token (or its signature) ever reaches the journal or the logs
  await waitFor(() => g.journal.entries.filter((e) => e.type === 'disconnect').length >= 4, 5000, 'disconnect records')
  const journalText = JSON.stringify(g.journal.entries)
  const logText = logs.text()
  t.match(logText, /connect_denied/, 'refusals are logged')
  let leaks = 0
  for (const tok of tokens) {
    const sig = tok.split('.')[2] ?? ''
    for (const needle of [tok, sig.length >= 16 ? sig : undefined].filter((x): x is string => !!x)) {
      if (journalText.includes(needle) || logText.includes(needle)) leaks++
    }
  }
  t.equal(leaks, 0, `none of ${tokens.length} tokens appears in ${g.journal.entries.length} journal records or the logs`)
  t.notMatch(journalText + logText, HS_SECRET, 'the HS secret never appears')
})

t.test('clientIdBinding none: any clientId; an empty one with clean=1 gets a generated id', async (t) => {
  const g = await startGateway(t, { auth: { jwt: { clientIdBinding: 'none' } } })
  const token = await g.token({ sub: 'legacy-1' })
  t.equal(await connackCode(t, g.url('mqtt'), { clientId: 'anything', password: token }), 0)
  await waitFor(() => g.journal.entries.some((e) => e.type === 'connect' && e.clientId === 'anything'), 2000, 'first connect')
  const from = g.journal.entries.length
  t.equal(await rawConnack(t, g.port('mqtt'), { clientId: '', clean: true, password: token }), 0)
  const rec = await waitFor(() => g.journal.entries.slice(from).find((e) => e.type === 'connect'), 2000, 'connect record')
  t.match(rec.clientId, /^ew-[0-9a-f-]{36}$/, 'generated clientId journaled')
  t.equal(await rawConnack(t, g.port('mqtt'), { clientId: '', clean: false, password: token }), 2)
})

t.test('a token sent as the username too never reaches the journal or logs', async (t) => {
  const logs = logSink()
  const g = await startGateway(t, {}, { logger: createLogger('debug', logs.stream) })
  const good = await g.token({ sub: 'fw-1' })
  const expired = await g.token({ sub: 'fw-1', ttlSec: -120 })
  t.equal(await connackCode(t, g.url('mqtt'), { clientId: 'fw-1', username: good, password: good }), 0)
  t.equal(await connackCode(t, g.url('mqtt'), { clientId: 'fw-1', username: expired, password: expired }), 4)
  t.equal(await connackCode(t, g.url('mqtt'), { clientId: 'fw-1', username: good, password: 'garbage' }), 4)
  await waitFor(() => g.journal.entries.filter((e) => e.type === 'connect_denied').length === 2, 2000, 'refusals')
  await waitFor(() => g.journal.entries.some((e) => e.type === 'connect'), 2000, 'connect')
  const text = JSON.stringify(g.journal.entries) + logs.text()
  for (const tok of [good, expired]) t.notMatch(text, tok.split('.')[2]!, 'no token signature anywhere')
  t.same(g.journal.entries.filter((e) => e.username !== undefined).map((e) => e.username).sort(), ['[password]', '[password]', '[token]'])
})
