import { createHmac, createPrivateKey, sign, type KeyObject } from 'node:crypto'
import type { JWK } from 'jose'

/**
 * Mints ES256 tokens with node:crypto's synchronous sign: pre-minting tens of thousands of
 * fresh tokens (one per CONNECT) with jose's async path would add seconds per scenario.
 * The result is the same compact JWS `mintToken` produces (alg ES256, kid, sub, iat, exp).
 */
export class TokenMinter {
  readonly #key: KeyObject | Buffer
  readonly #header: string
  /** an EC private JWK (ES256), or `{kty:'oct', k}` for HS256 (the what-if run) */
  constructor(privateJwk: JWK) {
    const hs = privateJwk.kty === 'oct'
    this.#key = hs ? Buffer.from(privateJwk.k!, 'base64url') : createPrivateKey({ key: privateJwk as never, format: 'jwk' })
    this.#header = b64(JSON.stringify({ alg: hs ? 'HS256' : 'ES256', typ: 'JWT', ...(privateJwk.kid ? { kid: privateJwk.kid } : {}) }))
  }

  /** A token binding clientId `sub` (strict binding), valid for `ttlSec`. */
  mint(sub: string, ttlSec = 3600): string {
    const now = Math.floor(Date.now() / 1000)
    // jti: two tokens minted for one sub in the same second still differ (HS256 is deterministic)
    const input = `${this.#header}.${b64(JSON.stringify({ sub, iat: now, exp: now + ttlSec, jti: (seq++).toString(36) }))}`
    const sig = Buffer.isBuffer(this.#key)
      ? createHmac('sha256', this.#key).update(input).digest()
      : sign('sha256', Buffer.from(input), { key: this.#key, dsaEncoding: 'ieee-p1363' })
    return `${input}.${sig.toString('base64url')}`
  }
}

let seq = 0

function b64(s: string): string {
  return Buffer.from(s).toString('base64url')
}
