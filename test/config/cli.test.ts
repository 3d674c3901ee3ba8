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
  t.equal(r.code, 2, `exit 2 (stderr: ${r.stderr.slice(0, 300)})`)
  t.match(r.stderr, `${file}:5: limits.maxConections: unknown key`)
  t.equal(r.stdout, '', 'nothing started')
})

t.test('start with a missing env: secret: exit 2 naming the key; an invalid value is never printed', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 's.yaml')
  writeFileSync(file, 'auth:\n  jwt:\n    algorithms: [HS256]\n    secret: env:EW_CLI_TEST_SECRET\n')
  const r = await run(['start', '--config', file], {}, dir)
  t.equal(r.code, 2, `exit 2 (stderr: ${r.stderr.slice(0, 300)})`)
  t.match(r.stderr, `${file}:4: auth.jwt.secret: environment variable EW_CLI_TEST_SECRET is not set`)

  const value = 'rediss://u:s3cr3t-value@h'
  const r2 = await run(['start', '--config', file], { EW_CLI_TEST_SECRET: 'x', EDGEWARDEN_BROKER_CLUSTER_REDIS: value.replace('rediss', 'tcp') }, dir)
  t.equal(r2.code, 2, `exit 2 (stderr: ${r2.stderr.slice(0, 300)})`)
  t.match(r2.stderr, 'EDGEWARDEN_BROKER_CLUSTER_REDIS: broker.cluster.redis')
  t.notMatch(r2.stderr + r2.stdout, 's3cr3t-value')
})

t.test('env override error names the variable; bad usage exits 2', async (t) => {
  const dir = tempDir(t)
  // independent processes: run them side by side (each one compiles the sources through tsx)
  const [r, r2, r3] = await Promise.all([
    run(['start'], { EDGEWARDEN_LIMITS_MAX_PACKET_BYTES: 'huge' }, dir),
    run(['token'], {}, dir),
    run(['token', '--sub', 'x', '--ttl', 'forever'], {}, dir),
  ])
  t.equal(r.code, 2, `exit 2 (stderr: ${r.stderr.slice(0, 300)})`)
  t.match(r.stderr, 'EDGEWARDEN_LIMITS_MAX_PACKET_BYTES: limits.maxPacketBytes')
  t.equal(r2.code, 2, 'token without --sub')
  t.equal(r3.code, 2, `exit 2 (stderr: ${r3.stderr.slice(0, 300)})`)
  t.match(r3.stderr, '--ttl')
})

t.test('token refuses the dev key when a key source is configured; start on a busy port exits 1', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'k.yaml')
  writeFileSync(file, 'auth:\n  jwt:\n    jwksUrl: https://idp.example.com/jwks.json\n')
  const r = await run(['token', '--sub', 'x', '--config', file], {}, dir)
  t.equal(r.code, 2, `exit 2 (stderr: ${r.stderr.slice(0, 300)})`)
  t.match(r.stderr, /--key/)
  t.equal(r.stdout, '')

  const { createServer } = await import('node:net')
  const busy = createServer()
  await new Promise<void>((res) => busy.listen(0, '127.0.0.1', () => res()))
  t.teardown(() => busy.close())
  const port = (busy.address() as { port: number }).port
  const f2 = join(dir, 'busy.yaml')
  writeFileSync(f2, `listeners: [{ type: mqtt, host: 127.0.0.1, port: ${port} }]\nadmin: { enabled: false }\nlog: { level: silent }\nbroker: { persistence: memory }\n`)
  const r2 = await run(['start', '--config', f2], {}, dir)
  t.equal(r2.code, 1, 'runtime failure')
  t.match(r2.stderr, `mqtt:${port}: cannot listen on 127.0.0.1:${port} (EADDRINUSE)`)
})
