import t from 'tap'
import { createServer } from 'node:http'
import { generateKeyPairSync } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { exportJWK } from 'jose'
import { loadConfig } from '../../src/config/load.js'
import { ManualClock } from '../../src/clock.js'
import { silentLogger } from '../../src/logger.js'
import { KeyStore, keyFromJwk } from '../../src/identity/keys.js'
import { isEwError } from '../../src/errors.js'
import { tempDir } from '../helpers/gateway.js'
import { makeKey } from '../helpers/jwt.js'

t.test('keyFromJwk: public keys only, no oct, no weak RSA, no encryption keys', async (t) => {
  const es = await makeKey('ES256', 'a')
  t.ok(keyFromJwk(es.publicJwk as never, 'jwksFile'), 'an EC P-256 key')
  t.equal(keyFromJwk({ kty: 'oct', k: 'c2VjcmV0', kid: 'h' } as never, 'jwksFile'), undefined, 'oct refused')
  t.equal(keyFromJwk({ ...es.publicJwk, use: 'enc' } as never, 'jwksFile'), undefined, 'use: enc refused')
  const weak = await exportJWK(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey)
  t.equal(keyFromJwk(weak as never, 'jwksFile'), undefined, 'RSA-1024 refused')
  const strong = await exportJWK(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey)
  t.ok(keyFromJwk(strong as never, 'jwksFile'), 'RSA-2048 accepted')
  const priv = await exportJWK(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)
  const k = keyFromJwk(priv as never, 'jwksFile')
  t.equal(k?.key.type, 'public', 'a private JWK is reduced to its public part')
  t.equal(keyFromJwk({ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' } as never, 'jwksFile'), undefined, 'invalid point refused')
})

t.test('bad key sources fail at start with the key named, never the key text', async (t) => {
  const cwd = tempDir(t)
  for (const [jwt, key] of [[{ publicKey: '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----' }, 'auth.jwt.publicKey'], [{ jwksFile: cwd + '/missing.json' }, 'auth.jwt.jwksFile'], [{ publicKey: './nope.pem' }, 'auth.jwt.publicKey']] as const) {
    const cfg = loadConfig({ env: {}, cwd, overrides: { auth: { jwt } } })
    try {
      await KeyStore.create({ jwt: cfg.auth.jwt, logger: silentLogger, clock: new ManualClock() })
      t.fail('expected a failure')
    } catch (err) {
      t.ok(isEwError(err) && err.code === 'EW_CONFIG_INVALID' && err.exitCode === 2, `${key}: EW_CONFIG_INVALID`)
      t.match((err as Error).message, key)
      t.notMatch((err as Error).message, 'not base64')
    }
  }
})

t.test('JWKS URL: oversized, non-JSON and failing answers keep the last good key set', async (t) => {
  const es = await makeKey('ES256', 'k1')
  let body = JSON.stringify({ keys: [es.publicJwk] })
  let status = 200
  let hits = 0
  const server = createServer((_req, res) => { hits++; res.writeHead(status, { 'content-type': 'application/json' }).end(body) })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }))
  const cfg = loadConfig({ env: {}, cwd: tempDir(t), overrides: { auth: { jwt: { jwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, jwksCooldownSec: 0 } } } })
  const store = await KeyStore.create({ jwt: cfg.auth.jwt, logger: silentLogger, clock: new ManualClock() })
  t.teardown(() => store.close())
  t.equal(store.size, 1)
  const gen = store.generation
  t.equal(await store.refresh(), true, 'same set again')
  t.equal(store.generation, gen, 'an unchanged set keeps the generation (and the cache)')
  for (const [b, s, what] of [['x'.repeat(2 * 1024 * 1024), 200, 'a 2 MiB body'], ['<html>', 200, 'not JSON'], ['{}', 200, 'no keys array'], ['null', 200, 'null'], ['{}', 503, 'HTTP 503']] as const) {
    body = b
    status = s
    t.equal(await store.refresh(), false, `${what}: refresh fails`)
    t.equal(store.size, 1, `${what}: the last good key stays`)
    t.equal(store.generation, gen)
  }
  t.equal(hits, 7)
  // concurrent refreshes share one request
  body = JSON.stringify({ keys: [es.publicJwk] })
  status = 200
  await Promise.all([store.refreshForUnknownKid(), store.refreshForUnknownKid(), store.refresh()])
  t.equal(hits, 8, 'one request for three concurrent refreshes')
})
