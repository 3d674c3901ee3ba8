import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { calculateJwkThumbprint, CompactSign, compactVerify, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK, type KeyObject } from 'jose'

/**
 * The gateway's own signing key (`<dataDir>/keys/gateway.jwk`, EdDSA), created on first
 * start. It signs journal checkpoints `{gw, seq, hash}`; its public half is what
 * `edgewarden keys show` prints and what the cloud side verifies checkpoints with.
 */
export type SigningAlg = 'EdDSA' | 'ES256'

export interface SigningKey {
  readonly privateJwk: JWK
  readonly publicJwk: JWK
  readonly kid: string
  readonly alg: SigningAlg
  readonly created: boolean
  readonly path: string
}

export interface Checkpoint {
  readonly gw: string
  readonly seq: number
  readonly hash: string
}

export function gatewayKeyPaths(dataDir: string): { priv: string; pub: string } {
  return { priv: join(dataDir, 'keys', 'gateway.jwk'), pub: join(dataDir, 'keys', 'gateway.pub.jwk') }
}

/** Makes a key pair as JWKs (kid = JWK thumbprint prefix). */
export async function generateSigningKey(alg: SigningAlg = 'EdDSA'): Promise<{ privateJwk: JWK; publicJwk: JWK; kid: string }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, crv: alg === 'EdDSA' ? 'Ed25519' : undefined })
  const pub = await exportJWK(publicKey)
  const kid = (await calculateJwkThumbprint(pub)).slice(0, 16)
  return {
    publicJwk: { ...pub, kid, alg, use: 'sig' },
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' },
    kid,
  }
}

/** Loads the gateway key of this data dir, creating it when absent. */
export async function ensureGatewayKey(dataDir: string): Promise<SigningKey> {
  const paths = gatewayKeyPaths(dataDir)
  if (existsSync(paths.priv)) {
    const privateJwk = JSON.parse(readFileSync(paths.priv, 'utf8')) as JWK
    const { d: _d, ...publicJwk } = privateJwk
    return { privateJwk, publicJwk, kid: privateJwk.kid!, alg: (privateJwk.alg ?? 'EdDSA') as SigningAlg, created: false, path: paths.priv }
  }
  mkdirSync(join(dataDir, 'keys'), { recursive: true, mode: 0o700 })
  const k = await generateSigningKey('EdDSA')
  // write-then-rename: a power cut never leaves half a key behind
  writeFileSync(paths.priv + '.tmp', JSON.stringify(k.privateJwk), { mode: 0o600 })
  renameSync(paths.priv + '.tmp', paths.priv)
  writeFileSync(paths.pub, JSON.stringify(k.publicJwk, null, 2) + '\n', { mode: 0o644 })
  return { ...k, alg: 'EdDSA', created: true, path: paths.priv }
}

/** The public JWK of the data dir's gateway key, or undefined when none exists yet. */
export function readGatewayPublicKey(dataDir: string): JWK | undefined {
  const { priv } = gatewayKeyPaths(dataDir)
  if (!existsSync(priv)) return undefined
  const { d: _d, ...pub } = JSON.parse(readFileSync(priv, 'utf8')) as JWK
  return pub
}

export class CheckpointSigner {
  #key?: CryptoKey | KeyObject | Uint8Array
  constructor(private readonly k: SigningKey) {}
  async sign(c: Checkpoint): Promise<string> {
    this.#key ??= await importJWK(this.k.privateJwk, this.k.alg)
    const body = Buffer.from(JSON.stringify({ gw: c.gw, seq: c.seq, hash: c.hash }))
    return new CompactSign(body).setProtectedHeader({ alg: this.k.alg, kid: this.k.kid, typ: 'ew-checkpoint' }).sign(this.#key)
  }
}

/** Verifies a checkpoint JWS against a public JWK; throws when the signature or body is bad. */
export async function verifyCheckpoint(jws: string, publicJwk: JWK): Promise<Checkpoint> {
  const alg = publicJwk.alg ?? (publicJwk.kty === 'OKP' ? 'EdDSA' : 'ES256')
  const key = await importJWK(publicJwk, alg)
  const { payload } = await compactVerify(jws, key, { algorithms: [alg] })
  const c = JSON.parse(Buffer.from(payload).toString('utf8')) as Checkpoint
  if (typeof c.gw !== 'string' || !Number.isInteger(c.seq) || typeof c.hash !== 'string') throw new Error('checkpoint body is not {gw, seq, hash}')
  return c
}
