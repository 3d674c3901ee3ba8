import type { KeyObject } from 'node:crypto'
import { createHash, createHmac, verify as cryptoVerify, timingSafeEqual, constants } from 'node:crypto'

/** What checkSignature needs from node:crypto, passed in so the worker (verify-pool.ts) runs this very function. */
export interface SignatureCheck {
  readonly createHmac: typeof createHmac
  readonly cryptoVerify: typeof cryptoVerify
  readonly timingSafeEqual: typeof timingSafeEqual
  readonly constants: typeof constants
}

export const NODE_CRYPTO: SignatureCheck = { createHmac, cryptoVerify, timingSafeEqual, constants }

/**
 * One signature check for an algorithm from the allowlist with a key the caller already
 * matched to it (family, pinned alg, kid). Self-contained (no closure over module scope):
 * the verify worker evaluates its source text.
 */
export function checkSignature(key: KeyObject, alg: string, input: Uint8Array, sig: Uint8Array, c: SignatureCheck): boolean {
  const hash = alg.endsWith('256') ? 'sha256' : alg.endsWith('384') ? 'sha384' : 'sha512'
  try {
    if (alg.startsWith('HS')) {
      // an HMAC token is only ever checked against a secret key, never public key bytes
      if (key.type !== 'secret') return false
      const mac = c.createHmac(hash, key).update(input).digest()
      return mac.length === sig.length && c.timingSafeEqual(mac, sig)
    }
    if (key.type !== 'public') return false
    // the key's type must fit the alg here too, not only in key selection: node would check
    // an ES256 token with an RSA key as PKCS#1 v1.5 (RFC 8725 §3.1: the alg and key go together)
    const type = key.asymmetricKeyType
    if (alg === 'EdDSA') return type === 'ed25519' && c.cryptoVerify(null, input, key, sig)
    if (alg.startsWith('ES')) return type === 'ec' && c.cryptoVerify(hash, input, { key, dsaEncoding: 'ieee-p1363' }, sig)
    if (alg.startsWith('PS')) return (type === 'rsa' || type === 'rsa-pss') && c.cryptoVerify(hash, input, { key, padding: c.constants.RSA_PKCS1_PSS_PADDING, saltLength: c.constants.RSA_PSS_SALTLEN_DIGEST }, sig)
    if (alg.startsWith('RS')) return type === 'rsa' && c.cryptoVerify(hash, input, key, sig)
    return false
  } catch {
    return false
  }
}

/**
 * What the verified-token cache compares: sha256 of the JWS signing input (header.payload),
 * base64url. The verify worker computes the same for the tokens it verifies.
 */
export function signingInputDigest(signingInput: string): string {
  return createHash('sha256').update(signingInput, 'latin1').digest('base64url')
}
