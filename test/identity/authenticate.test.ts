import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/load.js'
import { ManualClock } from '../../src/clock.js'
import { silentLogger } from '../../src/logger.js'
import { Authenticator } from '../../src/identity/authenticate.js'
import { KeyStore } from '../../src/identity/keys.js'
import type { AuthResult, ConnectAttempt } from '../../src/identity/types.js'
import { tempDir } from '../helpers/gateway.js'
import { hmacToken, makeKey, noneTokens, signToken, type TestKey } from '../helpers/jwt.js'

const HS_SECRET = 'a-shared-hs256-secret-of-decent-length'

interface Rig {
  readonly clock: ManualClock
  readonly keys: KeyStore
  readonly auth: Authenticator
  /** nows in seconds, from the manual clock */
  readonly now: number
  check(password: string | Buffer | undefined, o?: Partial<ConnectAttempt>): Promise<AuthResult>
}

/** every test below runs twice: signatures checked inline, then on a worker thread (verify-pool.ts) */
let threads = 0

async function rig(t: Test, jwt: Record<string, unknown>): Promise<Rig> {
  const cwd = tempDir(t)
  const cfg = loadConfig({ env: {}, cwd, overrides: { auth: { jwt } } })
  const clock = new ManualClock(1_800_000_000_000)
  const keys = await KeyStore.create({ jwt: cfg.auth.jwt, logger: silentLogger, clock })
  t.teardown(() => keys.close())
  const auth = new Authenticator(cfg.auth.jwt, keys, clock, { verifyThreads: threads })
  t.teardown(() => auth.close())
  return {
    clock, keys, auth, now: clock.now() / 1000,
    check: async (password, o = {}) => auth.authenticate({
      clientId: 'dev-1', clean: true, listener: 'mqtt:0', remoteAddress: '127.0.0.1',
      password: password === undefined ? undefined : Buffer.isBuffer(password) ? password : Buffer.from(password),
      ...o,
    }),
  }
}

function refused(t: Test, r: AuthResult, reason: string, connack = 4, msg = reason): void {
  t.equal(r.ok, false, `${msg}: refused`)
  if (!r.ok) {
    t.equal(r.failure.reason, reason, `${msg}: reason`)
    t.equal(r.failure.connack, connack, `${msg}: CONNACK ${connack}`)
  }
}

let es: TestKey, rs: TestKey, ed: TestKey
t.before(async () => {
  ;[es, rs, ed] = await Promise.all([makeKey('ES256', 'es-1'), makeKey('RS256', 'rs-1'), makeKey('EdDSA', 'ed-1')])
})

function jwksFile(t: Test, ...keys: TestKey[]): string {
  const f = join(tempDir(t), 'jwks.json')
  writeFileSync(f, JSON.stringify({ keys: keys.map((k) => k.publicJwk) }))
  return f
}

for (const mode of [0, 1]) {
  t.test(mode === 0 ? 'signatures checked on the event loop' : 'signatures checked on a worker thread', async (t) => {
    t.before(() => { threads = mode })
    t.test('valid ES256, RS256, EdDSA (JWKS file) and HS256 (secret) tokens; kind and groups mapped', async (t) => {
      const r = await rig(t, { jwksFile: jwksFile(t, es, rs, ed), algorithms: ['ES256', 'RS256', 'EdDSA', 'HS256'], secret: HS_SECRET })
      const exp = r.now + 600
      for (const k of [es, rs, ed]) {
        const res = await r.check(await signToken(k, { sub: 'dev-1', exp, groups: ['sensors', 'site-a'], kind: 'agent' }, { nowSec: r.now }))
        t.ok(res.ok, `${k.alg} accepted`)
        if (res.ok) {
          t.equal(res.identity.sub, 'dev-1')
          t.equal(res.identity.clientId, 'dev-1')
          t.same(res.identity.groups, ['sensors', 'site-a'])
          t.equal(res.identity.kind, 'agent')
          t.equal(res.identity.exp, exp * 1000)
        }
      }
      const hs = await r.check(hmacToken(HS_SECRET, { sub: 'dev-1', exp, kind: 'human', groups: 'ops, admins' }))
      t.ok(hs.ok, 'HS256 with the configured secret accepted')
      if (hs.ok) {
        t.equal(hs.identity.kind, 'human')
        t.same(hs.identity.groups, ['ops', 'admins'], 'a string groups claim is split')
      }
      const plain = await r.check(await signToken(es, { sub: 'dev-1', exp }, { nowSec: r.now }))
      if (plain.ok) {
        t.equal(plain.identity.kind, 'device', 'kind defaults to device')
        t.same(plain.identity.groups, [])
      }
      refused(t, await r.check(await signToken(es, { sub: 'dev-1', exp, kind: 'robot' }, { nowSec: r.now })), 'bad_claims', 4, 'unknown kind')
      refused(t, await r.check(await signToken(es, { exp }, { nowSec: r.now })), 'missing_sub')
    })

    t.test('custom claim names', async (t) => {
      const r = await rig(t, { jwksFile: jwksFile(t, es), groupsClaim: 'roles', kindClaim: 'typ', clientIdClaim: 'cid' })
      const res = await r.check(await signToken(es, { sub: 'u', exp: r.now + 60, roles: ['a'], typ: 'service', cid: 'dev-1', groups: ['ignored'] }, { nowSec: r.now }))
      t.ok(res.ok)
      if (res.ok) {
        t.same(res.identity.groups, ['a'])
        t.equal(res.identity.kind, 'service')
        t.equal(res.identity.clientId, 'dev-1')
      }
    })

    t.test('refusals: missing, garbage, too large, alg none', async (t) => {
      const r = await rig(t, { jwksFile: jwksFile(t, es) })
      refused(t, await r.check(undefined), 'missing_token')
      refused(t, await r.check(''), 'missing_token', 4, 'empty password')
      for (const g of ['garbage', 'a.b', 'a.b.c.d', '...', 'eyJhbGciOiJFUzI1NiJ9.e30.', 'e30.e30.e30', '!!.??.**', '\u00ff\u00fe.x.y']) {
        refused(t, await r.check(g), g === 'e30.e30.e30' ? 'alg_not_allowed' : 'malformed', 4, `garbage ${JSON.stringify(g)}`)
      }
      refused(t, await r.check(Buffer.from([0, 1, 2, 0xff, 0x2e, 0x2e])), 'malformed', 4, 'binary password')
      const big = await signToken(es, { sub: 'dev-1', exp: r.now + 60, pad: 'x'.repeat(9000) }, { nowSec: r.now })
      t.ok(big.length > 8192)
      refused(t, await r.check(big), 'token_too_large')
      const justUnder = await signToken(es, { sub: 'dev-1', exp: r.now + 60, pad: 'x'.repeat(5900) }, { nowSec: r.now })
      t.ok(justUnder.length <= 8192 && justUnder.length > 7900, `a ${justUnder.length}-byte token`)
      t.ok((await r.check(justUnder)).ok, 'under 8 KiB accepted')
      for (const n of noneTokens({ sub: 'dev-1', exp: r.now + 60 })) refused(t, await r.check(n), 'alg_not_allowed', 4, `alg none: ${n.slice(0, 20)}`)
      const hsNotAllowed = hmacToken('whatever', { sub: 'dev-1', exp: r.now + 60 })
      refused(t, await r.check(hsNotAllowed), 'alg_not_allowed', 4, 'HS256 without a secret configured')
      const crit = hmacToken('x', { sub: 'dev-1' }, { alg: 'ES256', crit: ['b64'], b64: false })
      refused(t, await r.check(crit), 'malformed', 4, 'crit header')
    })

    t.test('key confusion: HS256 signed with the public key bytes as secret', async (t) => {
      for (const k of [es, rs]) {
        const claims = { sub: 'dev-1', exp: Math.floor(1_800_000_000) + 600 }
        const secrets = [k.publicPem, JSON.stringify(k.publicJwk), Buffer.from(k.publicPem.trim())]
        // publicKey configured as PEM, as a JWK, and as a file path
        const pemFile = join(tempDir(t), 'pub.pem')
        writeFileSync(pemFile, k.publicPem)
        for (const publicKey of [k.publicPem, JSON.stringify(k.publicJwk), pemFile]) {
          // HS256 not allowed (the default): refused on the algorithm
          const plain = await rig(t, { publicKey })
          const valid = await plain.check(await signToken(k, claims, { nowSec: plain.now }))
          t.ok(valid.ok, `${k.alg} valid token accepted with publicKey ${publicKey.slice(0, 12)}`)
          for (const s of secrets) refused(t, await plain.check(hmacToken(s, claims, { alg: 'HS256', typ: 'JWT', kid: k.kid })), 'alg_not_allowed', 4, `${k.alg} key confusion, HS not allowed`)
          // HS256 allowed because a secret is configured: the public key is still never an HMAC key
          const withHs = await rig(t, { publicKey, algorithms: [k.alg, 'HS256'], secret: HS_SECRET })
          for (const s of secrets) {
            refused(t, await withHs.check(hmacToken(s, claims)), 'bad_signature', 4, `${k.alg} key confusion, HS allowed`)
            refused(t, await withHs.check(hmacToken(s, claims, { alg: 'HS256', kid: k.kid })), 'bad_signature', 4, `${k.alg} key confusion with kid`)
          }
          t.ok((await withHs.check(hmacToken(HS_SECRET, claims))).ok, 'the real secret still works')
        }
      }
    })

    t.test('a JWKS never supplies an HMAC key (kty oct ignored)', async (t) => {
      const f = join(tempDir(t), 'jwks.json')
      writeFileSync(f, JSON.stringify({ keys: [{ kty: 'oct', k: Buffer.from(HS_SECRET).toString('base64url'), kid: 'oct-1' }, es.publicJwk] }))
      const r = await rig(t, { jwksFile: f, algorithms: ['ES256', 'HS256'], secret: 'another-configured-secret' })
      refused(t, await r.check(hmacToken(HS_SECRET, { sub: 'dev-1', exp: r.now + 60 }, { alg: 'HS256', kid: 'oct-1' })), 'bad_signature')
    })

    t.test('issuer, audience, exp, nbf, tolerance, requireExp', async (t) => {
      const r = await rig(t, { jwksFile: jwksFile(t, es), issuer: 'https://idp.example.com/', audience: ['edgewarden', 'other'], clockToleranceSec: 30 })
      const good = { sub: 'dev-1', iss: 'https://idp.example.com/', aud: 'edgewarden', exp: r.now + 600 }
      const tok = (c: Record<string, unknown>) => signToken(es, c, { nowSec: r.now })
      t.ok((await r.check(await tok(good))).ok, 'good token')
      t.ok((await r.check(await tok({ ...good, aud: ['x', 'other'] }))).ok, 'aud array intersecting')
      refused(t, await r.check(await tok({ ...good, iss: 'https://evil.example.com/' })), 'bad_issuer')
      refused(t, await r.check(await tok({ ...good, iss: undefined })), 'bad_issuer', 4, 'missing iss')
      refused(t, await r.check(await tok({ ...good, aud: 'someone-else' })), 'bad_audience')
      refused(t, await r.check(await tok({ ...good, aud: undefined })), 'bad_audience', 4, 'missing aud')
      refused(t, await r.check(await tok({ ...good, exp: r.now - 31 })), 'expired')
      t.ok((await r.check(await tok({ ...good, exp: r.now - 20 }))).ok, 'expired within clock tolerance')
      refused(t, await r.check(await tok({ ...good, nbf: r.now + 31 })), 'not_yet_valid')
      t.ok((await r.check(await tok({ ...good, nbf: r.now + 20 }))).ok, 'nbf within clock tolerance')
      refused(t, await r.check(await tok({ ...good, exp: undefined })), 'missing_exp')
      refused(t, await r.check(await tok({ ...good, exp: 'tomorrow' })), 'bad_claims', 4, 'exp not a number')
      refused(t, await r.check(await tok({ ...good, nbf: '0' })), 'bad_claims', 4, 'nbf not a number')

      const strictClock = await rig(t, { jwksFile: jwksFile(t, es), clockToleranceSec: 0, requireExp: false })
      refused(t, await strictClock.check(await signToken(es, { sub: 'dev-1', exp: strictClock.now - 1 }, { nowSec: strictClock.now })), 'expired', 4, 'no tolerance')
      refused(t, await strictClock.check(await signToken(es, { sub: 'dev-1', nbf: strictClock.now + 1 }, { nowSec: strictClock.now })), 'not_yet_valid', 4, 'no tolerance nbf')
      const noExp = await strictClock.check(await signToken(es, { sub: 'dev-1' }, { nowSec: strictClock.now }))
      t.ok(noExp.ok, 'no exp accepted with requireExp: false')
      if (noExp.ok) t.equal(noExp.identity.exp, undefined)
    })

    t.test('kid: unknown kid refused, key pinned to another alg never used', async (t) => {
      const r = await rig(t, { jwksFile: jwksFile(t, es, rs) })
      refused(t, await r.check(await signToken(es, { sub: 'dev-1', exp: r.now + 60 }, { kid: 'nope', nowSec: r.now })), 'unknown_kid')
      t.ok((await r.check(await signToken(es, { sub: 'dev-1', exp: r.now + 60 }, { kid: null, nowSec: r.now }))).ok, 'no kid: tried against the keys of its family')
      // an ES256 key signing a token whose header claims rs-1: no RSA key matches the ES signature
      refused(t, await r.check(await signToken(es, { sub: 'dev-1', exp: r.now + 60 }, { kid: 'rs-1', nowSec: r.now })), 'unknown_kid', 4, 'kid of another family')
      const other = await makeKey('ES256', 'es-1')
      refused(t, await r.check(await signToken(other, { sub: 'dev-1', exp: r.now + 60 }, { nowSec: r.now })), 'bad_signature', 4, 'same kid, other key')
      const none = await rig(t, { jwksFile: jwksFile(t) })
      refused(t, await none.check(await signToken(es, { sub: 'dev-1', exp: none.now + 60 }, { nowSec: none.now })), 'keys_unavailable', 3, 'no keys at all')
    })

    t.test('clientId binding', async (t) => {
      const r = await rig(t, { jwksFile: jwksFile(t, es) })
      const exp = r.now + 600
      const bySub = await signToken(es, { sub: 'dev-1', exp }, { nowSec: r.now })
      const byClaim = await signToken(es, { sub: 'person-9', client_id: 'dev-2', exp }, { nowSec: r.now })
      t.ok((await r.check(bySub, { clientId: 'dev-1' })).ok, 'clientId = sub')
      refused(t, await r.check(bySub, { clientId: 'dev-2' }), 'client_id_mismatch', 4, 'strict: other clientId')
      t.ok((await r.check(byClaim, { clientId: 'dev-2' })).ok, 'clientId = client_id claim')
      refused(t, await r.check(byClaim, { clientId: 'person-9' }), 'client_id_mismatch', 4, 'client_id claim wins over sub')
      const empty = await r.check(byClaim, { clientId: '', clean: true })
      t.ok(empty.ok, 'empty clientId + clean=1')
      if (empty.ok) t.equal(empty.identity.clientId, 'dev-2', 'gets the bound id')
      refused(t, await r.check(byClaim, { clientId: '', clean: false }), 'client_id_required', 2, 'empty clientId + clean=0')

      const loose = await rig(t, { jwksFile: jwksFile(t, es), clientIdBinding: 'none' })
      const any = await loose.check(bySub, { clientId: 'whatever' })
      t.ok(any.ok, 'binding none: any clientId')
      if (any.ok) t.equal(any.identity.clientId, 'whatever')
      refused(t, await loose.check(bySub, { clientId: '', clean: false }), 'client_id_required', 2, 'none: empty clientId + clean=0')
      const generated = await loose.check(bySub, { clientId: '', clean: true })
      t.ok(generated.ok, 'none: empty clientId + clean=1 accepted')
      if (generated.ok) t.match(generated.identity.clientId, /^ew-[0-9a-f-]{36}$/, 'with a generated clientId')
    })

    t.test('TLS client certificate subject becomes claims', async (t) => {
      const r = await rig(t, { jwksFile: jwksFile(t, es) })
      const res = await r.check(await signToken(es, { sub: 'dev-1', exp: r.now + 60 }, { nowSec: r.now }), { certSubject: 'O=acme,CN=device-7', certCN: 'device-7' })
      t.ok(res.ok)
      if (res.ok) {
        t.equal(res.identity.claims.cert_cn, 'device-7')
        t.equal(res.identity.claims.cert_subject, 'O=acme,CN=device-7')
        t.ok(Object.isFrozen(res.identity.claims))
      }
    })

    t.test('verified-token cache: reused until exp, claims re-checked, emptied on key change', async (t) => {
      const f = jwksFile(t, es)
      const r = await rig(t, { jwksFile: f, clockToleranceSec: 0 })
      const tok = await signToken(es, { sub: 'dev-1', exp: r.now + 60 }, { nowSec: r.now })
      t.ok((await r.check(tok)).ok)
      t.ok((await r.check(tok)).ok, 'second time (cached)')
      refused(t, await r.check(tok, { clientId: 'dev-2' }), 'client_id_mismatch', 4, 'binding re-applied on a cache hit')
      // the cache is looked up by signature: a cached signature on other claims is no hit
      const [h, , sig] = tok.split('.')
      const other = Buffer.from(JSON.stringify({ sub: 'dev-2', exp: r.now + 60 })).toString('base64url')
      refused(t, await r.check(`${h}.${other}.${sig}`, { clientId: 'dev-2' }), 'bad_signature', 4, 'cached signature pasted on other claims')
      t.ok((await r.check(tok)).ok, 'the real token still hits')
      r.clock.advance(61_000)
      refused(t, await r.check(tok), 'expired', 4, 'cached token past exp')
      r.clock.advance(-61_000)
      // the key is removed from the JWKS file and the store reloads it: the cached token must not pass
      writeFileSync(f, JSON.stringify({ keys: [rs.publicJwk] }))
      r.keys.loadLocal()
      refused(t, await r.check(tok), 'unknown_kid', 4, 'removed key: cached token refused')
    })
  })
}
