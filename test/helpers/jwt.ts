import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { SignJWT, exportJWK, type JWK } from 'jose'

/** A signing key pair for tests, with its public key as PEM and as JWK. */
export interface TestKey {
  readonly alg: 'ES256' | 'RS256' | 'EdDSA'
  readonly kid: string
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  readonly publicPem: string
  readonly publicJwk: JWK
}

export async function makeKey(alg: TestKey['alg'], kid: string): Promise<TestKey> {
  const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ed25519')
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' }
  return { alg, kid, privateKey: pair.privateKey, publicKey: pair.publicKey, publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(), publicJwk }
}

export const nowSec = (): number => Math.floor(Date.now() / 1000)

/** A token signed by jose (independent of the verifier under test). */
export async function signToken(k: TestKey, claims: Record<string, unknown>, o: { kid?: string | null; nowSec?: number } = {}): Promise<string> {
  const kid = o.kid === null ? undefined : (o.kid ?? k.kid)
  return new SignJWT({ iat: o.nowSec ?? nowSec(), ...claims }).setProtectedHeader({ alg: k.alg, typ: 'JWT', ...(kid ? { kid } : {}) }).sign(k.privateKey)
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')

/** An HMAC token with any header: for `alg: none`, key-confusion and HS256 cases. */
export function hmacToken(secret: Buffer | string, claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' }): string {
  const input = `${b64(header)}.${b64(claims)}`
  const sig = createHmac('sha256', secret).update(input).digest('base64url')
  return `${input}.${sig}`
}

/** `alg: none` tokens: the unsecured form (empty signature) and one with a junk signature. */
export function noneTokens(claims: Record<string, unknown>): string[] {
  const input = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}`
  return [`${input}.`, `${input}.${Buffer.from('x').toString('base64url')}`, `${b64({ alg: 'None' })}.${b64(claims)}.`]
}
