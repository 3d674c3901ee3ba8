import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/gateway.js'

const BIN = fileURLToPath(new URL('../../bin/edgewarden.js', import.meta.url))

function run(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', EDGEWARDEN_FROM_SOURCE: '1', ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: child.exitCode ?? (err as { code?: number } | null)?.code ?? null, stdout, stderr })
    })
  })
}

t.test('start --config with an invalid key: exit 2, stderr names file:line and key', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'bad.yaml')
  writeFileSync(file, 'gateway:\n  id: gw-1\nlimits:\n  maxConnections: 10\n  maxConections: 20\n')
  const r = await run(['start', '--config', file], {}, dir)
  t.equal(r.code, 2)
  t.match(r.stderr, `${file}:5: limits.maxConections: unknown key`)
  t.equal(r.stdout, '', 'nothing started')
})

t.test('start with a missing env: secret: exit 2 naming the key; an invalid value is never printed', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 's.yaml')
  writeFileSync(file, 'auth:\n  jwt:\n    algorithms: [HS256]\n    secret: env:EW_CLI_TEST_SECRET\n')
  const r = await run(['start', '--config', file], {}, dir)
  t.equal(r.code, 2)
  t.match(r.stderr, `${file}:4: auth.jwt.secret: environment variable EW_CLI_TEST_SECRET is not set`)

  const value = 'rediss://u:s3cr3t-value@h'
  const r2 = await run(['start', '--config', file], { EW_CLI_TEST_SECRET: 'x', EDGEWARDEN_BROKER_CLUSTER_REDIS: value.replace('rediss', 'tcp') }, dir)
  t.equal(r2.code, 2)
  t.match(r2.stderr, 'EDGEWARDEN_BROKER_CLUSTER_REDIS: broker.cluster.redis')
  t.notMatch(r2.stderr + r2.stdout, 's3cr3t-value')
})

t.test('env override error names the variable; bad usage exits 2', async (t) => {
  const dir = tempDir(t)
  const r = await run(['start'], { EDGEWARDEN_LIMITS_MAX_PACKET_BYTES: 'huge' }, dir)
  t.equal(r.code, 2)
  t.match(r.stderr, 'EDGEWARDEN_LIMITS_MAX_PACKET_BYTES: limits.maxPacketBytes')
  const r2 = await run(['token'], {}, dir)
  t.equal(r2.code, 2, 'token without --sub')
  const r3 = await run(['token', '--sub', 'x', '--ttl', 'forever'], {}, dir)
  t.equal(r3.code, 2)
  t.match(r3.stderr, '--ttl')
})
