import type { JwtConfig } from '../config/types.js'
import type { Clock } from '../clock.js'
import type { KeyStore, VerificationKey } from './keys.js'
import { authFailure, type AuthFailure } from './types.js'
import { checkSignature, NODE_CRYPTO, signingInputDigest } from './signature.js'
import { defaultVerifyThreads, VerifyPool } from './verify-pool.js'

export type Claims = Readonly<Record<string, unknown>>
/** digest: signingInputDigest of the token, when the check computed it (the worker does) */
export type VerifyResult = { readonly ok: true; readonly claims: Claims; readonly digest?: string } | { readonly ok: false; readonly failure: AuthFailure }

export interface VerifierOptions {
  /** worker threads for asymmetric signature checks; 0 = on the event loop (default: cores − 1, at most 2) */
  readonly verifyThreads?: number
}

/**
 * Verifies compact JWS tokens with node:crypto's synchronous verify. jose's WebCrypto path
 * is async and costs ~2.5x more per ES256 verify on these machines (PERFORMANCE-NOTES.md),
 * which would cap the CONNECT rate well below bare Aedes; jose stays in use for minting,
 * JWKS/JWS bundles and JWE. The checks are the RFC 8725 ones: the algorithm comes from our
 * allowlist (never `none`), is tied to the key's type (an HS token is only ever checked
 * against the configured secret, never against public key bytes), `crit` is refused.
 * Asymmetric signature checks run on a VerifyPool (worker threads) when one is configured;
 * everything else, including the choice of algorithm and keys, stays here.
 */
export class JwtVerifier {
  readonly #allowed: ReadonlySet<string>
  readonly #pool: VerifyPool | undefined
  constructor(private readonly cfg: JwtConfig, private readonly keys: KeyStore, private readonly clock: Clock, opts: VerifierOptions = {}) {
    this.#allowed = new Set(cfg.algorithms.filter((a) => !a.startsWith('HS') || cfg.secret))
    const threads = opts.verifyThreads ?? defaultVerifyThreads()
    this.#pool = threads > 0 ? new VerifyPool(threads) : undefined
  }

  /** Stops the verify workers; later checks run inline. */
  close(): void { this.#pool?.close() }

  /** Starts the workers when an asymmetric algorithm is allowed (HS checks never leave this thread). */
  warm(): void {
    for (const a of this.#allowed) if (!a.startsWith('HS')) return this.#pool?.warm()
  }

  /** Synchronous when the key is known; awaits a JWKS refresh only for an unknown kid. */
  verify(token: string): VerifyResult | Promise<VerifyResult> {
    const parsed = parse(token)
    if ('failure' in parsed) return parsed
    const { header, signingInput, sigB64, payloadB64 } = parsed
    const alg = header.alg
    if (typeof alg !== 'string' || !this.#allowed.has(alg)) return fail('alg_not_allowed', `alg ${typeof alg === 'string' ? alg.slice(0, 16) : typeof alg}`)
    if (header.crit !== undefined) return fail('malformed', 'crit header not supported')
    // fewer than 2 base64url characters decode to no bytes
    if (sigB64.length < 2) return fail('malformed', 'empty signature')
    const kid = typeof header.kid === 'string' ? header.kid : undefined
    const candidates = this.keys.candidates(alg, kid)
    if (candidates.length === 0) {
      if (kid !== undefined && !alg.startsWith('HS') && this.keys.refreshable) {
        return this.keys.refreshForUnknownKid().then(() => {
          const again = this.keys.candidates(alg, kid)
          return again.length === 0 ? fail(this.keys.size === 0 ? 'keys_unavailable' : 'unknown_kid') : this.#finish(again, alg, signingInput, sigB64, payloadB64)
        })
      }
      return fail(this.keys.size === 0 ? 'keys_unavailable' : 'unknown_kid')
    }
    return this.#finish(candidates, alg, signingInput, sigB64, payloadB64)
  }

  #finish(keys: VerificationKey[], alg: string, input: string, sigB64: string, payloadB64: string): VerifyResult | Promise<VerifyResult> {
    // HMAC is cheaper than a message to a worker
    if (this.#pool && !alg.startsWith('HS')) {
      return this.#pool.check(this.keys.generation, keys.map((k) => k.key), alg, input, sigB64, () => (inline(keys, alg, input, sigB64) ? signingInputDigest(input) : undefined))
        .then((digest) => (digest !== undefined ? this.#payload(payloadB64, digest) : fail('bad_signature')))
    }
    return inline(keys, alg, input, sigB64) ? this.#payload(payloadB64) : fail('bad_signature')
  }

  #payload(payloadB64: string, digest?: string): VerifyResult {
    let claims: Record<string, unknown>
    try {
      const v = JSON.parse(Buffer.from(payloadB64, 'base64url').toString('utf8')) as unknown
      if (!v || typeof v !== 'object' || Array.isArray(v)) return fail('malformed', 'payload is not a JSON object')
      claims = v as Record<string, unknown>
    } catch {
      return fail('malformed', 'payload is not JSON')
    }
    const r = this.checkClaims(claims)
    return digest !== undefined && r.ok ? { ok: true, claims: r.claims, digest } : r
  }

  /** Time and audience checks; also re-run for tokens served from the verified-token cache. */
  checkClaims(claims: Claims): VerifyResult {
    const now = this.clock.now() / 1000
    const tol = this.cfg.clockToleranceSec
    const sub = claims.sub
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > 256) return fail('missing_sub')
    if (claims.exp !== undefined) {
      if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) return fail('bad_claims', 'exp is not a number', sub)
      if (claims.exp <= now - tol) return fail('expired', undefined, sub)
    } else if (this.cfg.requireExp) {
      return fail('missing_exp', undefined, sub)
    }
    if (claims.nbf !== undefined) {
      if (typeof claims.nbf !== 'number' || !Number.isFinite(claims.nbf)) return fail('bad_claims', 'nbf is not a number', sub)
      if (claims.nbf > now + tol) return fail('not_yet_valid', undefined, sub)
    }
    if (this.cfg.issuer !== undefined && claims.iss !== this.cfg.issuer) return fail('bad_issuer', undefined, sub)
    if (this.cfg.audience !== undefined) {
      const want = typeof this.cfg.audience === 'string' ? [this.cfg.audience] : this.cfg.audience
      const got = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : []
      if (!got.some((a) => want.includes(a as string))) return fail('bad_audience', undefined, sub)
    }
    return { ok: true, claims }
  }
}

/** The signature check on this thread: any candidate key that verifies. */
function inline(keys: readonly VerificationKey[], alg: string, input: string, sigB64: string): boolean {
  const i = Buffer.from(input, 'latin1')
  const s = Buffer.from(sigB64, 'base64url')
  return keys.some((k) => checkSignature(k.key, alg, i, s, NODE_CRYPTO))
}

function fail(reason: Parameters<typeof authFailure>[0], detail?: string, sub?: string): VerifyResult {
  return { ok: false, failure: authFailure(reason, { detail, sub }) }
}

const B64URL = /^[A-Za-z0-9_-]*$/
/**
 * Parsed headers by their base64url text: an issuer's tokens share one header, so a fresh
 * token costs no header decode. Only objects are kept (frozen, read-only here); bounded, and
 * simply emptied when full (hostile variety only costs the decode it would have cost anyway).
 */
const HEADERS = new Map<string, object>()
const MAX_HEADERS = 256
const MAX_HEADER_CHARS = 512

function parse(token: string): { header: Record<string, unknown>; signingInput: string; sigB64: string; payloadB64: string } | { ok: false; failure: AuthFailure } {
  const a = token.indexOf('.')
  const b = a < 0 ? -1 : token.indexOf('.', a + 1)
  if (a <= 0 || b < 0 || token.indexOf('.', b + 1) >= 0) return fail('malformed', 'not a compact JWS') as { ok: false; failure: AuthFailure }
  const h = token.slice(0, a)
  const p = token.slice(a + 1, b)
  const s = token.slice(b + 1)
  // an empty signature (`alg: none`) parses, so the refusal names the algorithm
  if (!B64URL.test(h) || !B64URL.test(p) || !B64URL.test(s)) return fail('malformed', 'not base64url') as { ok: false; failure: AuthFailure }
  let header: unknown = HEADERS.get(h)
  if (header === undefined) {
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'))
    } catch {
      return fail('malformed', 'header is not JSON') as { ok: false; failure: AuthFailure }
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) return fail('malformed', 'header is not an object') as { ok: false; failure: AuthFailure }
    if (h.length <= MAX_HEADER_CHARS) {
      if (HEADERS.size >= MAX_HEADERS) HEADERS.clear()
      // a copy of the text as key: a slice would keep this whole token alive (V8 sliced string)
      HEADERS.set(Buffer.from(h, 'latin1').toString('latin1'), Object.freeze(header))
    }
  }
  // strings, not Buffers: a small Buffer is a view of an 8 KiB pool, which a worker message would copy whole
  return { header: header as Record<string, unknown>, signingInput: token.slice(0, b), sigB64: s, payloadB64: p }
}
