import t from 'tap'
import { appendFileSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { loadConfig } from '../../src/config/load.js'
import { dirname, join } from 'node:path'
import { tempDir } from '../helpers/gateway.js'
import { BANNER_DONE, bannerPorts, cleanEnv, healthz, installScript, repoRoot, run, startProcess } from './lib.js'

// install.sh into a temp prefix (no systemd, no root), then the installed gateway is
// started from there on ephemeral ports and answers /healthz. Two installs (tsc + npm ci
// each) take tens of seconds on a busy machine: the file gets 5 minutes.
t.setTimeout(300_000)

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

// As root the systemd part runs too, confined to temp dirs: --user root (no useradd),
// --etc-dir/--unit-dir in the temp dir (install.sh only calls systemctl for /etc/systemd/system).
const asRoot = process.getuid?.() === 0
const TINI = '/usr/bin/tini'

t.test(`install.sh --prefix DIR ${asRoot ? '(with env file and unit in temp dirs)' : '--no-systemd'} installs a runnable gateway, idempotently`, async (t) => {
  const dir = tempDir(t)
  const prefix = join(dir, 'opt', 'edgewarden')
  const etc = join(dir, 'etc')
  const units = join(dir, 'units')
  const installArgs = [installScript, '--prefix', prefix, ...(asRoot ? ['--user', 'root', '--etc-dir', etc, '--unit-dir', units, '--node', process.execPath] : ['--no-systemd'])]
  const first = await run('bash', installArgs, { timeoutMs: 180_000 })
  t.equal(first.code, 0, first.stdout + first.stderr)
  t.ok(existsSync(join(prefix, 'dist/cli/main.js')), 'compiled CLI')
  t.ok(existsSync(join(prefix, 'node_modules/lmdb/package.json')), 'production dependencies')
  for (const dev of ['typescript', 'tap', 'tsx']) t.notOk(existsSync(join(prefix, 'node_modules', dev)), `no dev dependency ${dev}`)
  t.notOk(existsSync(join(prefix, 'src')), 'no sources')

  if (asRoot) {
    const envFile = join(etc, 'env')
    t.equal(statSync(envFile).mode & 0o777, 0o640, 'env file is not world-readable')
    const vars = Object.fromEntries(readFileSync(envFile, 'utf8').split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
    t.ok(loadConfig({ env: { ...vars, EDGEWARDEN_GATEWAY_DATADIR: join(dir, 'cfg') }, cwd: dir }), 'the env template is a valid config')
    const unit = readFileSync(join(units, 'edgewarden.service'), 'utf8')
    t.match(unit, `ExecStart=${process.execPath} ${prefix}/bin/edgewarden.js start`, 'unit runs the installed tree with the chosen node')
    t.match(unit, `EnvironmentFile=${envFile}`)
    t.match(unit, `WorkingDirectory=${prefix}`)
    const verify = await run('systemd-analyze', ['verify', join(units, 'edgewarden.service')])
    if (verify.code === 127 || /ENOENT/.test(verify.stderr)) t.pass('systemd-analyze verify', { skip: 'systemd-analyze is not installed' })
    else t.notMatch(verify.stderr, /edgewarden\.service:\d+/, 'the generated unit verifies without warnings')
    appendFileSync(envFile, 'EDGEWARDEN_LOG_LEVEL=warn\n')
  }

  // a second run upgrades in place: a fresh tree, no leftovers beside it, config kept
  writeFileSync(join(prefix, 'stale-marker'), 'x')
  const second = await run('bash', installArgs, { timeoutMs: 180_000 })
  t.equal(second.code, 0, second.stdout + second.stderr)
  t.notOk(existsSync(join(prefix, 'stale-marker')), 'the tree was replaced')
  t.same(readdirSync(dirname(prefix)), ['edgewarden'], 'no .new/.old directories left')
  if (asRoot) t.match(readFileSync(join(etc, 'env'), 'utf8'), /EDGEWARDEN_LOG_LEVEL=warn/, 'the env file is kept on upgrade')

  const data = join(dir, 'data')
  const env = cleanEnv({
    // as on a balena device: the id comes from the device name through entrypoint.sh
    BALENA_DEVICE_NAME_AT_INIT: 'edge dev/1',
    EDGEWARDEN_GATEWAY_DATADIR: data,
    EDGEWARDEN_LISTENERS: '[{type: mqtt, host: 127.0.0.1, port: 0}]',
    EDGEWARDEN_ADMIN_PORT: '0',
  })
  // the container's process tree: tini -> entrypoint.sh -> node (tini -s: here it is not PID 1);
  // cwd without an edgewarden.yaml: configuration by environment alone
  const command = [join(prefix, 'edge-image/entrypoint.sh'), process.execPath, join(prefix, 'bin/edgewarden.js'), 'start']
  if (!existsSync(TINI)) t.comment(`${TINI} is not installed (Debian package tini): starting without it`)
  const gw = existsSync(TINI) ? startProcess(t, TINI, ['-s', '--', ...command], { env, cwd: dir }) : startProcess(t, command[0]!, command.slice(1), { env, cwd: dir })
  await gw.waitFor(BANNER_DONE, 30_000)
  const ports = bannerPorts(gw.output())
  const h = await healthz(ports.admin)
  t.equal(h.status, 200)
  t.equal(h.body.gateway, 'edge-dev-1', 'gateway id from the device name, sanitized by entrypoint.sh')
  t.ok(existsSync(join(data, 'keys/dev-es256.jwk')), 'state lives in the configured data dir')

  const probe = join(prefix, 'edge-image/healthcheck.mjs')
  const ok = await run(process.execPath, [probe], { env: cleanEnv({ EDGEWARDEN_ADMIN_PORT: String(ports.admin) }) })
  t.equal(ok.code, 0, 'healthcheck.mjs passes against the running gateway: ' + ok.stderr)

  gw.child.kill('SIGTERM')
  const exit = await gw.exited
  t.same(exit, { code: 0, signal: null }, `SIGTERM${existsSync(TINI) ? ' (forwarded by tini)' : ''}: clean exit 0`)
  const down = await run(process.execPath, [probe], { env: cleanEnv({ EDGEWARDEN_ADMIN_PORT: String(ports.admin) }) })
  t.equal(down.code, 1, 'healthcheck.mjs fails once the gateway is gone')
})
