import t from 'tap'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { tempDir } from '../helpers/gateway.js'
import { BANNER_DONE, bannerPorts, cleanEnv, healthz, installScript, repoRoot, run, startProcess } from './lib.js'

// install.sh into a temp prefix (no systemd, no root), then the installed gateway is
// started from there on ephemeral ports and answers /healthz.

t.test('install.sh --dry-run changes nothing', async (t) => {
  const dir = tempDir(t)
  const res = await run('bash', [installScript, '--prefix', join(dir, 'opt'), '--dry-run', '--etc-dir', join(dir, 'etc'), '--unit-dir', join(dir, 'units')])
  t.equal(res.code, 0, res.stderr)
  t.match(res.stdout, /\+ npm --prefix \S+ ci --omit=dev/, 'prints the production install')
  t.match(res.stdout, /edgewarden\.service/, 'prints the unit it would write')
  t.same(readdirSync(dir), [], 'nothing written')
})

t.test('install.sh rejects an unknown option with exit 2', async (t) => {
  const res = await run('bash', [installScript, '--frobnicate'])
  t.equal(res.code, 2)
  t.match(res.stderr, /unknown option: --frobnicate/)
})

t.test('install.sh --prefix DIR --no-systemd installs a runnable gateway, idempotently', async (t) => {
  const dir = tempDir(t)
  const prefix = join(dir, 'opt', 'edgewarden')
  const first = await run('bash', [installScript, '--prefix', prefix, '--no-systemd'], { timeoutMs: 180_000 })
  t.equal(first.code, 0, first.stdout + first.stderr)
  t.ok(existsSync(join(prefix, 'dist/cli/main.js')), 'compiled CLI')
  t.ok(existsSync(join(prefix, 'node_modules/lmdb/package.json')), 'production dependencies')
  for (const dev of ['typescript', 'tap', 'tsx']) t.notOk(existsSync(join(prefix, 'node_modules', dev)), `no dev dependency ${dev}`)
  t.notOk(existsSync(join(prefix, 'src')), 'no sources')

  // a second run upgrades in place: a fresh tree, no leftovers beside it
  writeFileSync(join(prefix, 'stale-marker'), 'x')
  const second = await run('bash', [installScript, '--prefix', prefix, '--no-systemd'], { timeoutMs: 180_000 })
  t.equal(second.code, 0, second.stdout + second.stderr)
  t.notOk(existsSync(join(prefix, 'stale-marker')), 'the tree was replaced')
  t.same(readdirSync(dirname(prefix)), ['edgewarden'], 'no .new/.old directories left')

  const data = join(dir, 'data')
  const env = cleanEnv({
    EDGEWARDEN_GATEWAY_ID: 'gw-installed',
    EDGEWARDEN_GATEWAY_DATADIR: data,
    EDGEWARDEN_LISTENERS: '[{type: mqtt, host: 127.0.0.1, port: 0}]',
    EDGEWARDEN_ADMIN_PORT: '0',
  })
  // cwd without an edgewarden.yaml: configuration by environment alone
  const gw = startProcess(t, process.execPath, [join(prefix, 'bin/edgewarden.js'), 'start'], { env, cwd: dir })
  await gw.waitFor(BANNER_DONE, 30_000)
  const ports = bannerPorts(gw.output())
  const h = await healthz(ports.admin)
  t.equal(h.status, 200)
  t.equal(h.body.gateway, 'gw-installed', 'gateway id from the environment')
  t.ok(existsSync(join(data, 'keys/dev-es256.jwk')), 'state lives in the configured data dir')

  const probe = join(prefix, 'edge-image/healthcheck.mjs')
  const ok = await run(process.execPath, [probe], { env: cleanEnv({ EDGEWARDEN_ADMIN_PORT: String(ports.admin) }) })
  t.equal(ok.code, 0, 'healthcheck.mjs passes against the running gateway: ' + ok.stderr)

  gw.child.kill('SIGTERM')
  const exit = await gw.exited
  t.same(exit, { code: 0, signal: null }, 'SIGTERM: clean exit 0')
  const down = await run(process.execPath, [probe], { env: cleanEnv({ EDGEWARDEN_ADMIN_PORT: String(ports.admin) }) })
  t.equal(down.code, 1, 'healthcheck.mjs fails once the gateway is gone')
})
