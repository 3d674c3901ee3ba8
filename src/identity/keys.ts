import { createPublicKey, createSecretKey, type KeyObject, type JsonWebKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { JwtConfig } from '../config/types.js'
import type { Logger } from '../logger.js'
import type { Clock } from '../clock.js'
import { ewError } from '../errors.js'

export type KeyFamily = 'EC-P-256' | 'EC-P-384' | 'EC-P-521' | 'RSA' | 'Ed25519' | 'HMAC'

export const ALG_FAMILY: Readonly<Record<string, KeyFamily>> = {
  ES256: 'EC-P-256', ES384: 'EC-P-384', ES512: 'EC-P-521',
  RS256: 'RSA', RS384: 'RSA', RS512: 'RSA', PS256: 'RSA', PS384: 'RSA', PS512: 'RSA',
  EdDSA: 'Ed25519', HS256: 'HMAC', HS384: 'HMAC', HS512: 'HMAC',
}

export interface VerificationKey {
  readonly kid?: string
  /** the JWK's `alg`, when it pins one */
  readonly alg?: string
  readonly key: KeyObject
  readonly family: KeyFamily
  readonly source: 'jwksFile' | 'jwksUrl' | 'publicKey' | 'secret' | 'devKey'
}

const CURVES: Record<string, KeyFamily> = { prime256v1: 'EC-P-256', secp384r1: 'EC-P-384', secp521r1: 'EC-P-521' }

export function familyOf(key: KeyObject): KeyFamily | undefined {
  if (key.type === 'secret') return 'HMAC'
  switch (key.asymmetricKeyType) {
    case 'ec': return CURVES[key.asymmetricKeyDetails?.namedCurve ?? '']
    case 'rsa': case 'rsa-pss': return 'RSA'
    case 'ed25519': return 'Ed25519'
    default: return undefined
  }
}

/** Public keys only: a JWKS never supplies symmetric keys (that is how key confusion starts). */
export function keyFromJwk(jwk: JsonWebKey & { kid?: string; alg?: string; use?: string }, source: VerificationKey['source']): VerificationKey | undefined {
  if (jwk.kty === 'oct' || (jwk.use && jwk.use !== 'sig')) return undefined
  try {
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk
    const key = createPublicKey({ key: pub as JsonWebKey, format: 'jwk' })
    const family = familyOf(key)
    return family && strongEnough(key) ? { kid: jwk.kid, alg: jwk.alg, key, family, source } : undefined
  } catch {
    return undefined
  }
}

/** RSA below 2048 bits is refused (RFC 7518 §3.3 requires at least 2048). */
function strongEnough(key: KeyObject): boolean {
  return key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss' ? true : (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048
}

/** Identity of a key set: kid plus key material, so a key replaced under the same kid counts as a change. */
function fingerprint(keys: readonly VerificationKey[]): string {
  return keys.map((k) => `${k.kid ?? ''}:${k.alg ?? ''}:${JSON.stringify(k.key.export({ format: 'jwk' }))}`).join('|')
}

function keysFromJwksText(text: string, source: VerificationKey['source']): VerificationKey[] {
  const doc = JSON.parse(text) as { keys?: unknown } | null
  if (!doc || typeof doc !== 'object') throw new Error('not a JSON object')
  // a URL must answer a JWKS: an error page or `{}` must not wipe the key set
  if (source === 'jwksUrl' && !Array.isArray(doc.keys)) throw new Error('no "keys" array')
  const list = Array.isArray(doc.keys) ? doc.keys : [doc]
  return list.map((k) => keyFromJwk(k as JsonWebKey, source)).filter((k): k is VerificationKey => !!k)
}

function keyFromPublicKeyText(text: string): VerificationKey[] {
  const t = text.trim()
  if (t.startsWith('{')) return keysFromJwksText(t, 'publicKey')
  const key = createPublicKey(t)
  const family = familyOf(key)
  if (!family) throw new Error('unsupported key type')
  if (!strongEnough(key)) throw new Error('RSA keys must have at least 2048 bits')
  return [{ key, family, source: 'publicKey' }]
}

const MAX_JWKS_BYTES = 1024 * 1024

/** Reads a response body, giving up past `max` bytes instead of buffering whatever a server sends. */
async function readCapped(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? 0)
  if (declared > max) throw new Error('JWKS larger than 1 MiB')
  if (!res.body) return ''
  const chunks: Uint8Array[] = []
  let total = 0
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length
    if (total > max) throw new Error('JWKS larger than 1 MiB')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

export interface KeyStoreOptions {
  readonly jwt: JwtConfig
  readonly logger: Logger
  readonly clock: Clock
  /** the dev key's public JWK, used when no key source is configured */
  readonly devPublicJwk?: JsonWebKey
}

/**
 * Every key a token may be verified with. Local sources load once at start; a JWKS URL is
 * fetched at start, again after jwksMaxAgeSec, and on an unknown kid (at most once per
 * jwksCooldownSec). `generation` changes whenever the key set changes, which empties the
 * verified-token cache.
 */
export class KeyStore {
  #local: VerificationKey[] = []
  #remote: VerificationKey[] = []
  #generation = 0
  #lastFetch = 0
  #fetching: Promise<boolean> | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #opts: KeyStoreOptions

  constructor(opts: KeyStoreOptions) {
    this.#opts = opts
  }

  get generation(): number { return this.#generation }
  get size(): number { return this.#local.length + this.#remote.length }
  /** true when an unknown kid may be found by fetching the JWKS URL again */
  get refreshable(): boolean { return !!this.#opts.jwt.jwksUrl }

  static async create(opts: KeyStoreOptions): Promise<KeyStore> {
    const store = new KeyStore(opts)
    store.loadLocal()
    if (opts.jwt.jwksUrl) {
      const ok = await store.refresh()
      if (!ok) opts.logger.warn({ event: 'jwks_unavailable' }, 'JWKS URL unreachable at start; tokens with its kids are refused until it answers')
      store.#timer = setInterval(() => void store.refresh(), opts.jwt.jwksMaxAgeSec * 1000)
      store.#timer.unref()
    }
    return store
  }

  /** (Re)reads the file and inline sources; throws EW_CONFIG_INVALID naming the key that failed. */
  loadLocal(): void {
    const { jwt, devPublicJwk } = this.#opts
    const keys: VerificationKey[] = []
    if (jwt.jwksFile) {
      try {
        keys.push(...keysFromJwksText(readFileSync(jwt.jwksFile, 'utf8'), 'jwksFile'))
      } catch (err) {
        throw ewError('EW_CONFIG_INVALID', `auth.jwt.jwksFile: cannot load ${jwt.jwksFile}: ${(err as Error).message}`, { key: 'auth.jwt.jwksFile' })
      }
    }
    if (jwt.publicKey) {
      try {
        const text = /^\s*[{-]/.test(jwt.publicKey) ? jwt.publicKey : readFileSync(jwt.publicKey, 'utf8')
        keys.push(...keyFromPublicKeyText(text))
      } catch (err) {
        throw ewError('EW_CONFIG_INVALID', `auth.jwt.publicKey: cannot load key: ${(err as Error).message}`, { key: 'auth.jwt.publicKey' })
      }
    }
    if (jwt.secret) {
      keys.push({ key: createSecretKey(Buffer.from(jwt.secret.reveal(), 'utf8')), family: 'HMAC', source: 'secret' })
    }
    if (devPublicJwk) {
      const k = keyFromJwk(devPublicJwk, 'devKey')
      if (k) keys.push(k)
    }
    this.#local = keys
    this.#generation++
  }

  /** Keys that may verify a token with this alg and kid (a key pinned to another alg never does). */
  candidates(alg: string, kid: string | undefined): VerificationKey[] {
    const family = ALG_FAMILY[alg]
    if (!family) return []
    const out: VerificationKey[] = []
    for (const list of [this.#local, this.#remote]) {
      for (const k of list) {
        if (k.family !== family) continue
        if (k.alg && k.alg !== alg) continue
        if (kid !== undefined && k.kid !== undefined && k.kid !== kid) continue
        if (kid !== undefined && k.kid === undefined && k.source !== 'secret' && k.source !== 'publicKey') continue
        out.push(k)
      }
    }
    return out
  }

  hasKid(kid: string): boolean {
    return this.#local.some((k) => k.kid === kid) || this.#remote.some((k) => k.kid === kid)
  }

  /** Fetches the JWKS URL again; for an unknown kid, at most once per cooldown. */
  refreshForUnknownKid(): Promise<boolean> {
    const { jwt, clock } = this.#opts
    if (!jwt.jwksUrl) return Promise.resolve(false)
    if (this.#fetching) return this.#fetching
    if (clock.now() - this.#lastFetch < jwt.jwksCooldownSec * 1000) return Promise.resolve(false)
    return this.refresh()
  }

  refresh(): Promise<boolean> {
    if (this.#fetching) return this.#fetching
    this.#fetching = this.#fetchJwks().finally(() => { this.#fetching = undefined })
    return this.#fetching
  }

  async #fetchJwks(): Promise<boolean> {
    const { jwt, logger, clock } = this.#opts
    this.#lastFetch = clock.now()
    try {
      const res = await fetch(jwt.jwksUrl!, { signal: AbortSignal.timeout(5000), headers: { accept: 'application/json' } })
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      const keys = keysFromJwksText(await readCapped(res, MAX_JWKS_BYTES), 'jwksUrl')
      const before = fingerprint(this.#remote)
      const after = fingerprint(keys)
      this.#remote = keys
      if (before !== after) {
        this.#generation++
        logger.info({ event: 'jwks_updated', keys: keys.length, kids: keys.map((k) => k.kid) }, 'JWKS updated')
      }
      return true
    } catch (err) {
      logger.warn({ event: 'jwks_fetch_failed', err: (err as Error).message }, 'JWKS fetch failed')
      return false
    }
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer)
  }
}
