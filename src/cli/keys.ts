import { existsSync, writeFileSync } from 'node:fs'
import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { ewError } from '../errors.js'
import { ensureGatewayKey, generateSigningKey, type SigningAlg } from '../journal/signing.js'

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('the gateway signing key and fleet signing keys')

  keys.command('show')
    .description("print the gateway's public JWK (it signs journal checkpoints; created on first use)")
    .option('-c, --config <file>', 'config file (finds gateway.dataDir)', process.env.EDGEWARDEN_CONFIG)
    .option('--data-dir <dir>', 'data dir (overrides the config)')
    .action(async (o: { config?: string; dataDir?: string }) => {
      const dataDir = o.dataDir ?? loadConfig({ file: o.config }).gateway.dataDir
      const k = await ensureGatewayKey(dataDir)
      if (k.created) process.stderr.write(`created the gateway key ${k.path}\n`)
      process.stdout.write(JSON.stringify(k.publicJwk, null, 2) + '\n')
    })

  keys.command('generate')
    .description('make a key pair for fleet signing (policy bundles): private JWK to --out, public JWK to stdout and <out>.pub.jwk')
    .option('--alg <alg>', 'EdDSA or ES256', 'EdDSA')
    .requiredOption('--out <file>', 'where to write the private JWK (mode 0600)')
    .option('--force', 'overwrite an existing file')
    .action(async (o: { alg: string; out: string; force?: boolean }) => {
      if (o.alg !== 'EdDSA' && o.alg !== 'ES256') throw ewError('EW_USAGE', `--alg must be EdDSA or ES256, not ${o.alg}`)
      const pubPath = o.out.replace(/(\.jwk|\.json)?$/, '.pub.jwk')
      if (!o.force && (existsSync(o.out) || existsSync(pubPath))) throw ewError('EW_USAGE', `${existsSync(o.out) ? o.out : pubPath} exists (use --force to overwrite)`)
      const k = await generateSigningKey(o.alg as SigningAlg)
      writeFileSync(o.out, JSON.stringify(k.privateJwk) + '\n', { mode: 0o600 })
      writeFileSync(pubPath, JSON.stringify(k.publicJwk, null, 2) + '\n', { mode: 0o644 })
      process.stderr.write(`private key: ${o.out}\npublic key:  ${pubPath}\n`)
      process.stdout.write(JSON.stringify(k.publicJwk, null, 2) + '\n')
    })
}
