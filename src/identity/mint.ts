import { SignJWT, importJWK, type JWK } from 'jose'
import type { IdentityKind } from './types.js'

export interface MintOptions {
  readonly sub: string
  readonly groups?: readonly string[]
  readonly kind?: IdentityKind
  readonly clientId?: string
  /** seconds */
  readonly ttlSec?: number
  readonly issuer?: string
  readonly audience?: string | readonly string[]
  readonly extra?: Record<string, unknown>
}

/** Signs a token with a private JWK (the dev key, or one given to `edgewarden token --key`). */
export async function mintToken(privateJwk: JWK, o: MintOptions): Promise<string> {
  const alg = privateJwk.alg ?? (privateJwk.kty === 'OKP' ? 'EdDSA' : privateJwk.kty === 'RSA' ? 'RS256' : 'ES256')
  const key = await importJWK(privateJwk, alg)
  const claims: Record<string, unknown> = { ...o.extra }
  if (o.groups?.length) claims.groups = [...o.groups]
  if (o.kind) claims.kind = o.kind
  if (o.clientId) claims.client_id = o.clientId
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT', ...(privateJwk.kid ? { kid: privateJwk.kid } : {}) })
    .setSubject(o.sub).setIssuedAt()
  if (o.ttlSec !== undefined) jwt = jwt.setExpirationTime(Math.floor(Date.now() / 1000) + o.ttlSec)
  if (o.issuer) jwt = jwt.setIssuer(o.issuer)
  if (o.audience) jwt = jwt.setAudience(o.audience as string | string[])
  return jwt.sign(key)
}
