import { randomUUID } from 'node:crypto'
import type { JwtConfig } from '../config/types.js'
import type { Clock } from '../clock.js'
import type { KeyStore } from './keys.js'
import { JwtVerifier, type Claims, type VerifierOptions, type VerifyResult } from './jwt.js'
import { VerifiedTokenCache } from './token-cache.js'
import { authFailure, IDENTITY_KINDS, type AuthResult, type ConnectAttempt, type Identity, type IdentityKind } from './types.js'

const NO_GROUPS: readonly string[] = Object.freeze([])

/**
 * CONNECT → Identity: verifies the token in the password, applies clientId binding
 * (SPEC §4) and maps claims to groups and kind.
 */
export class Authenticator {
  readonly #verifier: JwtVerifier
  readonly #cache: VerifiedTokenCache
  constructor(private readonly cfg: JwtConfig, private readonly keys: KeyStore, private readonly clock: Clock, opts: VerifierOptions = {}) {
    this.#verifier = new JwtVerifier(cfg, keys, clock, opts)
    this.#cache = new VerifiedTokenCache(cfg.tokenCacheSize)
  }

  authenticate(attempt: ConnectAttempt): AuthResult | Promise<AuthResult> {
    const pw = attempt.password
    if (!pw || pw.length === 0) return { ok: false, failure: authFailure('missing_token') }
    if (pw.length > this.cfg.maxTokenBytes) return { ok: false, failure: authFailure('token_too_large', { detail: `${pw.length} bytes` }) }
    const token = pw.toString('latin1')
    const caching = this.cfg.tokenCacheSize > 0
    const dot = token.lastIndexOf('.')
    if (caching) {
      const claims = this.#cache.get(token, dot, this.keys.generation, this.clock.now())
      if (claims) return this.#bind(this.#verifier.checkClaims(claims), attempt)
    }
    const generation = this.keys.generation
    const result = this.#verifier.verify(token)
    return result instanceof Promise
      ? result.then((r) => this.#verified(r, attempt, token, dot, generation))
      : this.#verified(result, attempt, token, dot, generation)
  }

  #verified(r: VerifyResult, attempt: ConnectAttempt, token: string, dot: number, generation: number): AuthResult {
    // the key set changed while verifying (JWKS refresh): don't cache against the new set
    if (r.ok && this.cfg.tokenCacheSize > 0 && this.keys.generation === generation) this.#cache.set(token, dot, r.digest, generation, r.claims)
    return this.#bind(r, attempt)
  }

  #bind(r: VerifyResult, a: ConnectAttempt): AuthResult {
    if (!r.ok) return r
    const c = r.claims
    const sub = c.sub as string
    const claimed = c[this.cfg.clientIdClaim]
    const bound = typeof claimed === 'string' && claimed.length > 0 ? claimed : sub
    let clientId = a.clientId
    if (this.cfg.clientIdBinding === 'strict') {
      if (clientId === '') {
        if (!a.clean) return { ok: false, failure: authFailure('client_id_required', { sub }) }
        clientId = bound
      } else if (clientId !== bound) {
        return { ok: false, failure: authFailure('client_id_mismatch', { sub, detail: 'clientId differs from the bound id' }) }
      }
    } else if (clientId === '') {
      if (!a.clean) return { ok: false, failure: authFailure('client_id_required', { sub }) }
      // SPEC §4: under `none` an empty clientId gets a generated one
      clientId = `ew-${randomUUID()}`
    }
    const kind = this.#kind(c)
    if (!kind) return { ok: false, failure: authFailure('bad_claims', { sub, detail: `${this.cfg.kindClaim} must be one of ${IDENTITY_KINDS.join(', ')}` }) }
    // the verified claims object is the token's own (parsed for this check or cached): frozen
    // as is, copied only to add certificate fields
    let claims: Readonly<Record<string, unknown>> = c
    if (a.certSubject !== undefined || a.certCN !== undefined) {
      const withCert: Record<string, unknown> = { ...c }
      if (a.certSubject !== undefined) withCert.cert_subject = a.certSubject
      if (a.certCN !== undefined) withCert.cert_cn = a.certCN
      claims = withCert
    }
    const identity: Identity = {
      sub,
      clientId,
      groups: this.#groups(c),
      kind,
      claims: Object.freeze(claims),
      exp: typeof c.exp === 'number' ? c.exp * 1000 : undefined,
      listener: a.listener,
      remoteAddress: a.remoteAddress,
      username: a.username,
    }
    return { ok: true, identity }
  }

  #groups(c: Claims): readonly string[] {
    const g = c[this.cfg.groupsClaim]
    if (Array.isArray(g)) return Object.freeze(g.filter((x): x is string => typeof x === 'string'))
    if (typeof g === 'string') return Object.freeze(g.split(/[\s,]+/).filter(Boolean))
    return NO_GROUPS
  }

  #kind(c: Claims): IdentityKind | undefined {
    const k = c[this.cfg.kindClaim]
    if (k === undefined) return 'device'
    return IDENTITY_KINDS.includes(k as IdentityKind) ? (k as IdentityKind) : undefined
  }

  /** Forget every verified token (key revoked, config reloaded). */
  clearCache(): void { this.#cache.clear() }

  /** Stops the signature-check workers (gateway stop). */
  /** Starts signature-check workers now rather than at the first CONNECT. */
  warm(): void { this.#verifier.warm() }

  close(): void { this.#verifier.close() }
}
