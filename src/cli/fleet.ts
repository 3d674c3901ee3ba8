import '../broker/quiet-debug.js'
import { readFileSync, writeFileSync } from 'node:fs'
import type { Command } from 'commander'
import type { JWK } from 'jose'
import mqtt from 'mqtt'
import { readPolicyDir, lintPolicyFiles, formatIssue } from '../policy/index.js'
import { signBundle } from '../fleet/bundle.js'
import { loadConfig } from '../config/load.js'
import { ewError } from '../errors.js'
import { policyGroup } from './policy-group.js'

/** `policy bundle` and `policy push` (SPEC §8), added to the `policy` command group. */
export function registerFleet(program: Command): void {
  const policy = policyGroup(program)
  policy.command('bundle')
    .description('lint a policy dir and sign it as a fleet bundle (compact JWS) on stdout')
    .requiredOption('--dir <dir>', 'policy dir')
    .requiredOption('--version <n>', 'bundle version: must be higher than the one gateways run')
    .requiredOption('--key <jwk>', 'private signing JWK (EdDSA or ES256), e.g. from `edgewarden keys generate`')
    .option('--target <ids>', "comma-separated gateway ids, or '*'", '*')
    .option('--fleet <name>', 'fleet name (default: gateway.fleet from config)')
    .option('--out <file>', 'write the bundle here instead of stdout')
    .option('-c, --config <file>', 'config file', process.env.EDGEWARDEN_CONFIG)
    .action(async (o: { dir: string; version: string; key: string; target: string; fleet?: string; out?: string; config?: string }) => {
      const version = Number(o.version)
      if (!Number.isSafeInteger(version) || version < 1) throw ewError('EW_USAGE', '--version must be a positive integer')
      const files = readPolicyDir(o.dir)
      if (!files || files.length === 0) throw ewError('EW_USAGE', `--dir: no policy files in ${o.dir}`)
      const lint = lintPolicyFiles(files)
      for (const i of lint.issues) process.stderr.write(formatIssue(i) + '\n')
      if (!lint.doc) throw ewError('EW_POLICY_INVALID', `${o.dir}: the policy does not lint clean; no bundle written`)
      let key: JWK
      try {
        key = JSON.parse(readFileSync(o.key, 'utf8')) as JWK
      } catch {
        throw ewError('EW_USAGE', `--key: cannot read a JWK from ${o.key}`)
      }
      if (!('d' in key) || !(key.kty === 'OKP' || (key.kty === 'EC' && key.crv === 'P-256'))) throw ewError('EW_USAGE', '--key: an EdDSA (Ed25519) or ES256 (P-256) private JWK is required')
      const fleet = o.fleet ?? loadConfig({ file: o.config }).gateway.fleet
      const target = o.target.split(',').map((s) => s.trim()).filter(Boolean)
      const jws = await signBundle({ fleet, version, issuedAt: new Date().toISOString(), target, files: Object.fromEntries(files.map((f) => [f.name, f.text])) }, key)
      if (o.out) writeFileSync(o.out, jws + '\n')
      else process.stdout.write(jws + '\n')
    })
  policy.command('push')
    .description('publish a bundle, retained, on the fleet policy topic of the cloud broker')
    .argument('<bundle>', 'bundle file (from `policy bundle`)')
    .requiredOption('--upstream <url>', 'cloud broker URL (mqtt:// or mqtts://)')
    .option('--topic <topic>', 'fleet policy topic (default: fleet.policyTopic from config); append /<gateway id> to target one gateway')
    .option('--username <name>', 'cloud broker username')
    .option('--password-env <VAR>', 'environment variable holding the cloud broker password')
    .option('--ca <file>', 'CA certificate for mqtts')
    .option('-c, --config <file>', 'config file', process.env.EDGEWARDEN_CONFIG)
    .action(async (file: string, o: { upstream: string; topic?: string; username?: string; passwordEnv?: string; ca?: string; config?: string }) => {
      const topic = o.topic ?? loadConfig({ file: o.config }).fleet?.policyTopic
      if (!topic) throw ewError('EW_USAGE', '--topic is required when the config has no fleet.policyTopic')
      let jws: string
      try {
        jws = readFileSync(file, 'utf8').trim()
      } catch {
        throw ewError('EW_USAGE', `cannot read ${file}`)
      }
      const password = o.passwordEnv ? process.env[o.passwordEnv] : undefined
      if (o.passwordEnv && password === undefined) throw ewError('EW_USAGE', `--password-env: ${o.passwordEnv} is not set`)
      const client = await mqtt.connectAsync(o.upstream, { clientId: `edgewarden-push-${process.pid}`, username: o.username, password, ca: o.ca ? readFileSync(o.ca) : undefined, reconnectPeriod: 0, connectTimeout: 10_000 })
      try {
        await client.publishAsync(topic, jws, { qos: 1, retain: true })
        process.stdout.write(`pushed ${jws.length} bytes to ${topic} (retained)\n`)
      } finally {
        await client.endAsync()
      }
    })
}
