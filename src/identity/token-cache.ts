import { createHash } from 'node:crypto'
import type { Claims } from './jwt.js'

/**
 * Tokens whose signature already verified, keyed by a hash of the token. Devices reconnect
 * with the same token, so a reconnect storm costs a hash, not a signature check. Entries
 * are dropped at `exp`, and the whole cache empties when the key set changes (rotation,
 * removal from a JWKS). Claims are still re-checked against the clock on every hit.
 */
export class VerifiedTokenCache {
  readonly #map = new Map<string, { claims: Claims; expMs: number }>()
  #generation = -1

  constructor(private readonly max: number) {}

  static keyOf(token: string): string {
    return createHash('sha256').update(token).digest('base64url')
  }

  get(key: string, generation: number, nowMs: number): Claims | undefined {
    if (generation !== this.#generation) {
      this.#map.clear()
      this.#generation = generation
      return undefined
    }
    const e = this.#map.get(key)
    if (!e) return undefined
    if (e.expMs <= nowMs) {
      this.#map.delete(key)
      return undefined
    }
    return e.claims
  }

  set(key: string, generation: number, claims: Claims): void {
    if (this.max === 0) return
    if (generation !== this.#generation) {
      this.#map.clear()
      this.#generation = generation
    }
    // tokens without exp are not cached: nothing would ever evict them on time
    if (typeof claims.exp !== 'number') return
    if (this.#map.size >= this.max) {
      const oldest = this.#map.keys().next().value
      if (oldest !== undefined) this.#map.delete(oldest)
    }
    this.#map.set(key, { claims, expMs: claims.exp * 1000 })
  }

  get size(): number { return this.#map.size }
  clear(): void { this.#map.clear() }
}
