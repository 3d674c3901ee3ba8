import type { Claims } from './jwt.js'
import { signingInputDigest } from './signature.js'

interface Entry { readonly digest: string; readonly claims: Claims; readonly expMs: number }

/**
 * Tokens whose signature already verified. Devices reconnect with the same token, so a
 * reconnect storm costs a hash, not a signature check. Looked up by the token's signature
 * segment, so a token never seen costs a Map miss, not a hash; a hit counts only when the
 * sha256 of the signing input (header.payload) matches too, so a known signature pasted
 * onto other claims is no hit. Entries are dropped at `exp`, and the whole cache empties
 * when the key set changes (rotation, removal from a JWKS). Claims are still re-checked
 * against the clock on every hit.
 */
export class VerifiedTokenCache {
  readonly #map = new Map<string, Entry>()
  #generation = -1

  constructor(private readonly max: number) {}

  /** `dot`: index of the token's last '.', which ends the signing input */
  get(token: string, dot: number, generation: number, nowMs: number): Claims | undefined {
    if (generation !== this.#generation) {
      this.#map.clear()
      this.#generation = generation
      return undefined
    }
    if (dot < 0) return undefined
    const e = this.#map.get(token.slice(dot + 1))
    if (!e) return undefined
    if (e.expMs <= nowMs) {
      this.#map.delete(token.slice(dot + 1))
      return undefined
    }
    return signingInputDigest(token.slice(0, dot)) === e.digest ? e.claims : undefined
  }

  /** `digest`: signingInputDigest of the token's signing input, when the verifier has it already */
  set(token: string, dot: number, digest: string | undefined, generation: number, claims: Claims): void {
    if (this.max === 0 || dot < 0) return
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
    // a copy of the signature, not a slice: V8's sliced string would keep the whole raw token in memory as long as the entry lives
    this.#map.set(Buffer.from(token.slice(dot + 1), 'latin1').toString('latin1'), { digest: digest ?? signingInputDigest(token.slice(0, dot)), claims, expMs: claims.exp * 1000 })
  }

  get size(): number { return this.#map.size }
  clear(): void { this.#map.clear() }
}
