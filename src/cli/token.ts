import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import type { JWK } from 'jose'
import { loadConfig } from '../config/load.js'
import { ensureDevKey } from '../identity/devkey.js'
import { mintToken } from '../identity/mint.js'
import { IDENTITY_KINDS, type IdentityKind } from '../identity/types.js'
import { parseDuration } from '../config/units.js'
import { ewError } from '../errors.js'

export function registerToken(program: Command): void {
  program.command('token')
    .description('mint a token with the dev key of the data dir (or --key) for tests and getting started')
    .requiredOption('--sub <id>', 'subject (identity)')
    .option('--groups <a,b>', 'comma-separated groups')
    .option('--kind <kind>', `one of ${IDENTITY_KINDS.join(', ')}`)
    .option('--ttl <duration>', 'lifetime, e.g. 15m, 1h, 7d', '1h')
    .option('--client-id <id>', 'bind the MQTT clientId (client_id claim)')
    .option('--key <file>', 'private JWK to sign with instead of the dev key')
    .option('-c, --config <file>', 'config file (finds the data dir, issuer and audience)', process.env.EDGEWARDEN_CONFIG)
    .action(async (o: { sub: string; groups?: string; kind?: string; ttl: string; clientId?: string; key?: string; config?: string }) => {
      if (o.kind && !IDENTITY_KINDS.includes(o.kind as IdentityKind)) throw ewError('EW_USAGE', `--kind must be one of ${IDENTITY_KINDS.join(', ')}`)
      const ttlMs = parseDuration(o.ttl)
      if (ttlMs === undefined || ttlMs <= 0) throw ewError('EW_USAGE', `--ttl: not a duration: ${o.ttl}`)
      const config = loadConfig({ file: o.config })
      let key: JWK
      if (o.key) {
        try {
          key = JSON.parse(readFileSync(o.key, 'utf8')) as JWK
        } catch {
          throw ewError('EW_USAGE', `--key: cannot read a JWK from ${o.key}`)
        }
        if (!('d' in key)) throw ewError('EW_USAGE', `--key: ${o.key} is not a private key`)
      } else {
        const jwt = config.auth.jwt
        // the gateway verifies with the dev key only when no key source is configured
        if (jwt.jwksFile || jwt.jwksUrl || jwt.publicKey || jwt.secret) {
          throw ewError('EW_USAGE', `${config.source}: auth.jwt has a key source, so the gateway does not accept dev-key tokens; pass --key with a private JWK it trusts`)
        }
        key = (await ensureDevKey(config.gateway.dataDir)).privateJwk
      }
      const aud = config.auth.jwt.audience
      const token = await mintToken(key, {
        sub: o.sub,
        groups: o.groups?.split(',').map((s) => s.trim()).filter(Boolean),
        kind: o.kind as IdentityKind | undefined,
        clientId: o.clientId,
        ttlSec: Math.round(ttlMs / 1000),
        issuer: config.auth.jwt.issuer,
        audience: typeof aud === 'string' ? aud : aud?.[0],
      })
      process.stdout.write(token + '\n')
    })
}
