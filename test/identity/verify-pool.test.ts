import t from 'tap'
import { constants, createSecretKey, generateKeyPairSync, sign } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { getPriority as osPriority } from 'node:os'
import { VerifyPool } from '../../src/identity/verify-pool.js'
import { signingInputDigest } from '../../src/identity/signature.js'

// The worker runs the main thread's checkSignature (its source text): the same answers for
// every allowlisted family, and the same refusals for a key of the wrong kind.
t.test('worker answers match the signature check: ES256, RS256, PS256, EdDSA; wrong key kinds refused', async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const ed = generateKeyPairSync('ed25519')
  const input = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZXYtMSJ9'
  const data = Buffer.from(input, 'latin1')
  const b64 = (b: Buffer): string => b.toString('base64url')
  const es = b64(sign('sha256', data, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }))
  const rs = b64(sign('sha256', data, rsa.privateKey))
  const ps = b64(sign('sha256', data, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }))
  const eds = b64(sign(null, data, ed.privateKey))
  const pool = new VerifyPool(1)
  t.teardown(() => pool.close())
  const never = (): undefined => { t.fail('inline fallback used') }
  // true: verified, and the worker's digest is the one the token cache compares
  const check = async (keys: Parameters<VerifyPool['check']>[1], alg: string, sig: string, gen = 1): Promise<boolean | string> => {
    const d = await pool.check(gen, keys, alg, input, sig, never)
    return d === undefined ? false : d === signingInputDigest(input) ? true : d
  }
  const results = await Promise.all([
    check([ec.publicKey], 'ES256', es), check([rsa.publicKey], 'RS256', rs), check([rsa.publicKey], 'PS256', ps), check([ed.publicKey], 'EdDSA', eds),
    // several candidates: any one that verifies
    check([ed.publicKey, ec.publicKey], 'ES256', es),
  ])
  t.same(results, [true, true, true, true, true], 'valid signatures verify on the worker')
  const refusals = await Promise.all([
    check([ec.publicKey], 'ES256', rs), // another key's signature
    check([ec.publicKey], 'ES256', es.slice(0, -4) + 'AAAA'), // tampered
    check([ec.publicKey], 'ES384', es), // another hash than signed with
    check([rsa.publicKey], 'PS256', rs), // RS signature presented as PS
    check([rsa.publicKey], 'ES256', rs), // key of the wrong family
    check([createSecretKey(Buffer.from('s3cret'))], 'ES256', es), // a secret never verifies an asymmetric alg
    check([ec.privateKey], 'ES256', es), // nor does a private key object
    check([ec.publicKey], 'none', ''),
  ])
  t.same(refusals, refusals.map(() => false), 'every bad pairing refused')
  // a new key set generation: ids restart, the old keys are forgotten in the worker
  t.equal(await check([rsa.publicKey], 'RS256', rs, 2), true, 'after a key-set change')
  t.equal(await check([ec.publicKey], 'ES256', es, 2), true, 'a key first seen in the new generation')
  // a key-set change while checks of the old set are still queued: each is checked with
  // the keys chosen when it arrived
  const [before, after] = await Promise.all([check([rsa.publicKey], 'RS256', rs, 3), check([ec.publicKey], 'ES256', es, 4)])
  t.same([before, after], [true, true], 'checks queued across a key-set change')
  // a burst larger than one message: queued while the worker is busy, answered in order
  const burst = await Promise.all(Array.from({ length: 150 }, (_, i) => check([ec.publicKey], 'ES256', i % 3 === 0 ? rs : es, 4)))
  t.same(burst, burst.map((_, i) => i % 3 !== 0), 'each answer goes to its own check')
})

t.test('two workers: keys reach both, answers match', async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const input = 'a.b'
  const good = sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
  const pool = new VerifyPool(2)
  t.teardown(() => pool.close())
  const bad = good.slice(0, -4) + 'AAAA'
  const r = await Promise.all(Array.from({ length: 200 }, (_, i) => pool.check(1, [ec.publicKey], 'ES256', input, i % 2 ? good : bad, () => undefined)))
  t.same(r.map((d) => d !== undefined), r.map((_, i) => i % 2 === 1))
})

t.test('after close, checks run inline (still checked, never admitted by default)', async (t) => {
  const pool = new VerifyPool(1)
  pool.close()
  let inline = 0
  const ok = await pool.check(1, [], 'ES256', 'a.b', 'c', () => { inline++; return undefined })
  t.equal(ok, undefined)
  t.equal(inline, 1)
})

// Linux: nice is per thread. The worker lowers its own priority below the event loop's, so a
// check woken on a busy core waits for it rather than preempting it (VERIFY_NICE).
const niceOfThreads = (): number[] => readdirSync('/proc/self/task').flatMap((tid) => {
  let stat: string
  // a thread may end between the listing and the read (an earlier test's worker terminating)
  try { stat = readFileSync(`/proc/self/task/${tid}/stat`, 'latin1') } catch { return [] }
  return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])]
})

t.test('the verify workers run below the event loop\'s priority', { skip: process.platform !== 'linux' && 'nice per thread is Linux-specific' }, async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const input = 'a.b'
  const sig = sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
  const base = osPriority()
  const before = niceOfThreads().filter((n) => n === Math.min(19, base + 7)).length
  const pool = new VerifyPool(2, 7)
  t.teardown(() => pool.close())
  t.ok(await Promise.all([1, 2, 3, 4].map(() => pool.check(1, [ec.publicKey], 'ES256', input, sig, () => undefined))))
  // a worker lowers its priority as it starts; the second may still be starting (one batch took the four checks)
  const niced = (): number => niceOfThreads().filter((n) => n === Math.min(19, base + 7)).length - before
  for (let i = 0; i < 100 && niced() < 2; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal(niced(), 2, 'both workers at the event loop\'s nice + 7')
  t.equal(osPriority(), base, 'the event loop\'s own priority is unchanged')
  const lowered = (): number => niceOfThreads().filter((n) => n > base).length
  const l0 = lowered()
  const same = new VerifyPool(1, 0)
  t.teardown(() => same.close())
  t.ok(await same.check(1, [ec.publicKey], 'ES256', input, sig, () => undefined))
  await new Promise((r) => setTimeout(r, 100))
  t.ok(lowered() <= l0, 'nice 0: no thread lowered for it')
})
