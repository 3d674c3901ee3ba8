import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { exportJWK, generateKeyPair, calculateJwkThumbprint, type JWK } from 'jose'

export interface DevKey {
  readonly privateJwk: JWK
  readonly publicJwk: JWK
  readonly kid: string
  readonly created: boolean
  readonly path: string
}

export function devKeyPaths(dataDir: string): { priv: string; pub: string } {
  return { priv: join(dataDir, 'keys', 'dev-es256.jwk'), pub: join(dataDir, 'keys', 'dev-es256.pub.jwk') }
}

/** Loads the development ES256 token-signing key of this data dir, creating it on first start. */
export async function ensureDevKey(dataDir: string): Promise<DevKey> {
  const paths = devKeyPaths(dataDir)
  if (existsSync(paths.priv)) {
    const privateJwk = JSON.parse(readFileSync(paths.priv, 'utf8')) as JWK
    const { d: _d, ...publicJwk } = privateJwk
    return { privateJwk, publicJwk, kid: privateJwk.kid!, created: false, path: paths.priv }
  }
  mkdirSync(join(dataDir, 'keys'), { recursive: true, mode: 0o700 })
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const publicJwk = await exportJWK(publicKey)
  const kid = (await calculateJwkThumbprint(publicJwk)).slice(0, 16)
  const pub: JWK = { ...publicJwk, kid, alg: 'ES256', use: 'sig' }
  const priv: JWK = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' }
  // write-then-rename: a power cut never leaves half a key behind
  writeFileSync(paths.priv + '.tmp', JSON.stringify(priv), { mode: 0o600 })
  renameSync(paths.priv + '.tmp', paths.priv)
  writeFileSync(paths.pub, JSON.stringify(pub, null, 2) + '\n', { mode: 0o644 })
  return { privateJwk: priv, publicJwk: pub, kid, created: true, path: paths.priv }
}

/** Reads the dev key without creating one (CLI `token`). */
export function readDevKey(dataDir: string): JWK | undefined {
  const { priv } = devKeyPaths(dataDir)
  return existsSync(priv) ? (JSON.parse(readFileSync(priv, 'utf8')) as JWK) : undefined
}
