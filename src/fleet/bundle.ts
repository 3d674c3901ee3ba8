import { CompactSign, compactVerify, importJWK, type JWK } from 'jose'
import { createHash } from 'node:crypto'

/** SPEC §8: what a fleet policy bundle carries. */
export interface BundlePayload {
  readonly fleet: string
  readonly version: number
  readonly issuedAt: string
  readonly target: readonly string[]
  readonly files: Readonly<Record<string, string>>
}

export const BUNDLE_ALGS = ['EdDSA', 'ES256'] as const

export type BundleCheck =
  | { readonly ok: true; readonly bundle: BundlePayload; readonly digest: string }
  | { readonly ok: false; readonly reason: 'bad_signature' | 'malformed' | 'wrong_fleet' | 'not_targeted' | 'not_newer'; readonly detail?: string; readonly version?: number }

const MAX_BUNDLE_BYTES = 4 * 1024 * 1024

export async function signBundle(payload: BundlePayload, privateJwk: JWK): Promise<string> {
  const alg = privateJwk.kty === 'OKP' ? 'EdDSA' : 'ES256'
  const key = await importJWK(privateJwk, alg)
  const header = { alg, typ: 'edgewarden-policy+jws', ...(privateJwk.kid ? { kid: privateJwk.kid } : {}) }
  return new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader(header).sign(key)
}

/**
 * Checks everything but lint: signature (EdDSA/ES256 only) against the fleet key, shape,
 * fleet, target, and that the version is higher than the one running (no rollback, no
 * replay of an old retained bundle).
 */
export async function checkBundle(jws: string, o: { publicJwk: JWK; fleet: string; gatewayId: string; runningVersion: number }): Promise<BundleCheck> {
  if (jws.length > MAX_BUNDLE_BYTES) return { ok: false, reason: 'malformed', detail: 'bundle larger than 4 MiB' }
  let payloadBytes: Uint8Array
  try {
    const alg = o.publicJwk.kty === 'OKP' ? 'EdDSA' : 'ES256'
    const key = await importJWK(o.publicJwk, alg)
    const r = await compactVerify(jws.trim(), key, { algorithms: [alg] })
    payloadBytes = r.payload
  } catch {
    return { ok: false, reason: 'bad_signature' }
  }
  let p: BundlePayload
  try {
    p = JSON.parse(Buffer.from(payloadBytes).toString('utf8')) as BundlePayload
  } catch {
    return { ok: false, reason: 'malformed', detail: 'payload is not JSON' }
  }
  const problem = shapeProblem(p)
  if (problem) return { ok: false, reason: 'malformed', detail: problem }
  if (p.fleet !== o.fleet) return { ok: false, reason: 'wrong_fleet', version: p.version }
  if (!p.target.includes('*') && !p.target.includes(o.gatewayId)) return { ok: false, reason: 'not_targeted', version: p.version }
  if (p.version <= o.runningVersion) return { ok: false, reason: 'not_newer', version: p.version, detail: `running ${o.runningVersion}` }
  return { ok: true, bundle: p, digest: createHash('sha256').update(jws.trim()).digest('hex') }
}

function shapeProblem(p: BundlePayload): string | undefined {
  if (!p || typeof p !== 'object') return 'payload is not an object'
  if (typeof p.fleet !== 'string' || !p.fleet) return 'fleet: required'
  if (!Number.isSafeInteger(p.version) || p.version < 1) return 'version: a positive integer'
  if (!Array.isArray(p.target) || p.target.length === 0 || !p.target.every((t) => typeof t === 'string')) return "target: ['*'] or gateway ids"
  if (!p.files || typeof p.files !== 'object' || Array.isArray(p.files)) return 'files: {name: yaml}'
  for (const [name, text] of Object.entries(p.files)) {
    if (!/^[A-Za-z0-9._-]+\.ya?ml$/.test(name)) return `files: bad file name ${JSON.stringify(name.slice(0, 64))}`
    if (typeof text !== 'string') return `files.${name}: not text`
  }
  return undefined
}
