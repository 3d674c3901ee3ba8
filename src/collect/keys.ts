import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { importJWK, type JWK } from 'jose'

export interface GatewayKey {
  readonly jwk: JWK
  readonly alg: string
  readonly key: Awaited<ReturnType<typeof importJWK>>
}

/**
 * Gateway public keys for checkpoint verification. Source of truth: `--keys DIR` holding
 * `<gateway id>.pub.jwk` (what `edgewarden keys show` prints on each gateway), read when a
 * gateway is first seen. A store may add a second source (PostgreSQL pins keys in
 * `gateways.public_jwk`, so collectors without the directory still verify). There is no
 * trust on first use: a batch does not carry its key, and an unknown gateway's batches are
 * refused (recorded as tamper) until its key is provided.
 */
export class KeyRing {
  readonly #cache = new Map<string, GatewayKey | null>()
  constructor(private readonly dir?: string, private readonly fallback?: (gw: string) => Promise<JWK | undefined>) {}

  async get(gw: string): Promise<GatewayKey | undefined> {
    const hit = this.#cache.get(gw)
    if (hit) return hit
    // a miss is retried (the key may be added while the collector runs), a hit is kept
    if (!/^[\w.-]{1,128}$/.test(gw)) return undefined
    let jwk: JWK | undefined
    const file = this.dir ? join(this.dir, `${gw}.pub.jwk`) : undefined
    if (file && existsSync(file)) jwk = JSON.parse(readFileSync(file, 'utf8')) as JWK
    jwk ??= await this.fallback?.(gw)
    if (!jwk) return undefined
    const { d: _d, ...pub } = jwk
    const alg = pub.alg ?? (pub.kty === 'OKP' ? 'EdDSA' : 'ES256')
    const k: GatewayKey = { jwk: pub, alg, key: await importJWK(pub, alg) }
    this.#cache.set(gw, k)
    return k
  }
}
