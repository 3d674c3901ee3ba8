import t from 'tap'
import { exportJWK, generateKeyPair, CompactSign, importJWK } from 'jose'
import { checkBundle, signBundle, type BundlePayload } from '../../src/fleet/bundle.js'

const payload = (version: number, target: string[] = ['*']): BundlePayload => ({ fleet: 'acme', version, issuedAt: new Date().toISOString(), target, files: { 'base.yaml': 'rules: []\n' } })

t.test('sign and check: signature, fleet, target, version', async (t) => {
  for (const alg of ['EdDSA', 'ES256'] as const) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
    const priv = await exportJWK(privateKey)
    const pub = await exportJWK(publicKey)
    const ctx = { publicJwk: pub, fleet: 'acme', gatewayId: 'gw-1', runningVersion: 3 }
    const jws = await signBundle(payload(4), priv)
    const ok = await checkBundle(jws, ctx)
    t.ok(ok.ok, `${alg}: a newer bundle for the fleet verifies`)
    t.match(await checkBundle(await signBundle(payload(3), priv), ctx), { ok: false, reason: 'not_newer' }, `${alg}: same version is a replay`)
    t.match(await checkBundle(await signBundle(payload(2), priv), ctx), { ok: false, reason: 'not_newer' }, `${alg}: rollback refused`)
    t.match(await checkBundle(await signBundle(payload(5, ['gw-2']), priv), ctx), { ok: false, reason: 'not_targeted' })
    t.ok((await checkBundle(await signBundle(payload(5, ['gw-2', 'gw-1']), priv), ctx)).ok, 'named in the target list')
    t.match(await checkBundle(await signBundle({ ...payload(5), fleet: 'other' }, priv), ctx), { ok: false, reason: 'wrong_fleet' })
    const other = await generateKeyPair(alg, { extractable: true })
    t.match(await checkBundle(await signBundle(payload(9), await exportJWK(other.privateKey)), ctx), { ok: false, reason: 'bad_signature' }, `${alg}: another key`)
    const [h, , s] = jws.split('.')
    const forged = `${h}.${Buffer.from(JSON.stringify(payload(99))).toString('base64url')}.${s}`
    t.match(await checkBundle(forged, ctx), { ok: false, reason: 'bad_signature' }, `${alg}: edited payload`)
  }
})

t.test('hostile bundles: alg none, HS256 with the public key, garbage, bad shapes', async (t) => {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true })
  const pub = await exportJWK(publicKey)
  const ctx = { publicJwk: pub, fleet: 'acme', gatewayId: 'gw-1', runningVersion: 0 }
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(payload(1))).toString('base64url')}.`
  t.match(await checkBundle(none, ctx), { ok: false, reason: 'bad_signature' })
  const hs = await new CompactSign(Buffer.from(JSON.stringify(payload(1)))).setProtectedHeader({ alg: 'HS256' }).sign(await importJWK({ kty: 'oct', k: Buffer.from(JSON.stringify(pub)).toString('base64url') }, 'HS256'))
  t.match(await checkBundle(hs, ctx), { ok: false, reason: 'bad_signature' }, 'key confusion')
  t.match(await checkBundle('garbage', ctx), { ok: false, reason: 'bad_signature' })
  const priv = await exportJWK(privateKey)
  t.match(await checkBundle(await signBundle({ ...payload(1), version: 1.5 } as BundlePayload, priv), ctx), { ok: false, reason: 'malformed' })
  t.match(await checkBundle(await signBundle({ ...payload(1), files: { '../etc/passwd': 'x' } }, priv), ctx), { ok: false, reason: 'malformed' })
  t.match(await checkBundle(await signBundle({ ...payload(1), target: [] }, priv), ctx), { ok: false, reason: 'malformed' })
})
