import { readFileSync } from 'node:fs'
import { CompactEncrypt, importJWK, type CryptoKey, type JWK, type KeyObject } from 'jose'
import { ewError } from '../errors.js'

/**
 * `journal.recordPayloads: sealed`: each recorded payload becomes a compact JWE to the
 * auditors' public key (`masking.sealTo`), so the journal (and the cloud copy) holds the
 * raw payload that only an auditor can open.
 */
export type Sealer = (payload: Uint8Array) => Promise<string>

export async function loadSealer(sealTo: string | undefined): Promise<Sealer> {
  if (!sealTo) throw ewError('EW_CONFIG_INVALID', 'journal.recordPayloads: sealed needs masking.sealTo (a public JWK file)')
  let jwk: JWK
  try {
    jwk = JSON.parse(readFileSync(sealTo, 'utf8')) as JWK
  } catch {
    throw ewError('EW_CONFIG_NOT_FOUND', `masking.sealTo: cannot read a JWK from ${sealTo}`)
  }
  if ('d' in jwk) throw ewError('EW_CONFIG_INVALID', `masking.sealTo: ${sealTo} holds a private key; give the auditors' public key`)
  const alg = jwk.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW'
  let key: CryptoKey | KeyObject | Uint8Array
  try {
    key = await importJWK(jwk, alg)
  } catch (err) {
    throw ewError('EW_CONFIG_INVALID', `masking.sealTo: ${sealTo} is not a usable encryption key (${(err as Error).message})`)
  }
  const header = { alg, enc: 'A256GCM', ...(jwk.kid ? { kid: jwk.kid } : {}) }
  return (payload) => new CompactEncrypt(payload).setProtectedHeader(header).encrypt(key)
}
