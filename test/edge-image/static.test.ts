import t from 'tap'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import YAML from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { applyEnv } from '../../src/config/env.js'
import { configSchema } from '../../src/config/schema.js'
import { validate as lintDockerfile, ValidationSeverity } from 'dockerfile-utils'
import { tempDir } from '../helpers/gateway.js'
import { repoRoot, run } from './lib.js'

// Static checks of what the edge image promises; no Docker engine runs here, so the
// files are parsed and every config value they carry goes through the real loader.

interface Instr { cmd: string; args: string; stage: number }

function parseDockerfile(file: string): Instr[] {
  const text = readFileSync(join(repoRoot, file), 'utf8').replace(/\\\r?\n/g, ' ')
  const out: Instr[] = []
  let stage = -1
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const m = line.match(/^(\S+)\s*(.*)$/)!
    const cmd = m[1]!.toUpperCase()
    if (cmd === 'FROM') stage++
    out.push({ cmd, args: m[2]!.replace(/\s+/g, ' '), stage })
  }
  return out
}

const stageOf = (ins: Instr[], n: number) => ins.filter((i) => i.stage === n)
const args = (ins: Instr[], cmd: string) => ins.filter((i) => i.cmd === cmd).map((i) => i.args)
const exec = (a: string): string[] => (a.startsWith('[') ? (JSON.parse(a) as string[]) : ['/bin/sh', '-c', a])

const dockerignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))

for (const [file, base] of [['edge-image/Dockerfile', /^node:20-bookworm-slim$/], ['edge-image/Dockerfile.template', /^balenalib\/%%BALENA_MACHINE_NAME%%-debian-node:20-bookworm-(build|run)$/]] as const) {
  t.test(file, async (t) => {
    const ins = parseDockerfile(file)
    const argDefaults = Object.fromEntries(args(ins.filter((i) => i.stage < 0), 'ARG').map((a) => a.split('=') as [string, string]))
    const froms = args(ins, 'FROM').map((a) => a.replace(/\$\{(\w+)\}/g, (_, n: string) => argDefaults[n] ?? ''))
    t.ok(froms.length >= 2, 'multi-stage')
    for (const f of froms) t.match(f.split(' ')[0], base, `base image ${f}`)
    const last = froms.length - 1
    const build = stageOf(ins, 0)
    const runtime = stageOf(ins, last)
    const buildName = froms[0]!.split(/ AS /i)[1]
    t.ok(args(build, 'RUN').some((r) => /npm ci(?! --omit)/.test(r)), 'build stage installs dev dependencies')
    t.ok(args(build, 'RUN').some((r) => /npm run build/.test(r)), 'build stage compiles')
    t.ok(args(runtime, 'RUN').some((r) => /npm ci\b.*--omit=dev/.test(r)), 'runtime installs production dependencies only')
    t.notOk(args(runtime, 'RUN').some((r) => /npm run build|npm ci(?!.*--omit=dev)/.test(r)), 'runtime has no dev dependencies')
    t.ok(args(runtime, 'COPY').some((c) => c.includes(`--from=${buildName}`) && c.includes('dist')), 'runtime takes dist/ from the build stage')
    const users = args(runtime, 'USER')
    t.equal(users.length, 1, 'one USER')
    t.notMatch(users[0], /^(root|0)(:|$)/, 'runs as a non-root user')
    t.ok(args(runtime, 'RUN').some((r) => r.includes('useradd') && r.includes(users[0]!.split(':')[0]!)), 'the user is created')
    t.ok(args(runtime, 'VOLUME').some((v) => v.includes('/data')), 'VOLUME /data')
    t.ok(args(runtime, 'ENV').some((e) => /EDGEWARDEN_GATEWAY_DATADIR=\/data\b/.test(e)), 'data dir is /data')
    t.ok(args(runtime, 'ENV').some((e) => /\bMALLOC_ARENA_MAX=2\b/.test(e)), 'two glibc malloc arenas (RSS per connection)')
    t.ok(args(runtime, 'ENV').some((e) => /\bNODE_OPTIONS=--max-semi-space-size=32\b/.test(e)), 'a young generation of 2 x 32 MiB (publish throughput)')
    t.same(args(runtime, 'EXPOSE').join(' ').split(' ').map(Number).sort(), [1883, 8080, 8443, 8883], 'EXPOSE 1883 8883 8080 8443')
    const health = args(runtime, 'HEALTHCHECK')
    t.equal(health.length, 1, 'HEALTHCHECK')
    t.match(health[0], /CMD \[.*healthcheck\.mjs/, 'health check probes /healthz through healthcheck.mjs')
    const entry = exec(args(runtime, 'ENTRYPOINT')[0]!)
    t.equal(entry[0], '/usr/bin/tini', 'tini is PID 1')
    t.ok(args(runtime, 'RUN').some((r) => /\btini\b/.test(r)), 'tini is installed')
    t.same(exec(args(runtime, 'CMD')[0]!).slice(-2), ['/app/bin/edgewarden.js', 'start'], 'CMD starts the gateway')
    t.equal(args(runtime, 'STOPSIGNAL')[0], 'SIGTERM')
    // every COPY source exists and survives .dockerignore
    for (const c of [...args(build, 'COPY'), ...args(runtime, 'COPY')].filter((c) => !c.includes('--from'))) {
      const parts = c.split(' ').slice(0, -1)
      for (const src of parts) {
        t.ok(existsSync(join(repoRoot, src)), `COPY source ${src} exists`)
        t.notOk(dockerignore.some((p) => p.replace(/^\*\*\//, '') === src.split('/')[0]), `COPY source ${src} is not dockerignored`)
      }
    }
  })
}

// dockerfile-utils (the linter behind VS Code's Dockerfile support), every rule at error
t.test('Dockerfiles lint clean', async (t) => {
  const strict = Object.fromEntries(['deprecatedMaintainer', 'directiveCasing', 'emptyContinuationLine', 'instructionCasing', 'instructionCmdMultiple',
    'instructionEntrypointMultiple', 'instructionHealthcheckMultiple', 'instructionJSONInSingleQuotes', 'instructionWorkdirRelative'].map((k) => [k, ValidationSeverity.ERROR]))
  for (const file of ['edge-image/Dockerfile', 'edge-image/Dockerfile.template']) {
    const problems = lintDockerfile(readFileSync(join(repoRoot, file), 'utf8'), strict).map((d) => `${file}:${d.range.start.line + 1}: ${d.message}`)
    t.same(problems, [], file)
  }
  // the linter is live: it flags what it should
  t.ok(lintDockerfile('FROM node:20\nHEALTHCHECK --intervl=3s CMD true\n', strict).length > 0, 'a bad flag is reported')
})

t.test('Dockerfile and Dockerfile.template differ only in their base images and package tool', async (t) => {
  const strip = (file: string) => parseDockerfile(file).filter((i) => i.cmd !== 'FROM' && i.cmd !== 'ARG' && !/apt-get|install_packages/.test(i.args)).map((i) => `${i.cmd} ${i.args}`)
  t.same(strip('edge-image/Dockerfile.template'), strip('edge-image/Dockerfile'))
})

t.test('docker-compose.yml: one balena service with a named volume and env-only config', async (t) => {
  const compose = YAML.parse(readFileSync(join(repoRoot, 'edge-image/docker-compose.yml'), 'utf8')) as {
    version: string; services: Record<string, Record<string, unknown>>; volumes: Record<string, unknown>
  }
  t.match(compose.version, /^2(\.\d)?$/, 'compose format 2.x (balena supports 2.4)')
  const svc = compose.services.edgewarden!
  t.ok(svc, 'edgewarden service')
  const build = svc.build as { context: string; dockerfile: string }
  t.ok(existsSync(join(repoRoot, build.context, build.dockerfile)), 'dockerfile exists relative to the project root')
  t.ok(['always', 'unless-stopped', 'on-failure'].includes(svc.restart as string), 'restart policy')
  const volumes = svc.volumes as string[]
  t.ok(volumes.length > 0)
  for (const v of volumes) {
    const [src] = v.split(':')
    t.notMatch(src, /^[./~]/, `${v}: a named volume (balena refuses bind mounts)`)
    t.ok(src! in compose.volumes, `${src} is declared`)
  }
  t.ok(volumes.some((v) => v.split(':')[1] === '/data'), 'the named volume is mounted on /data')
  t.same((svc.ports as string[]).map((p) => Number(p.split(':')[1])).sort(), [1883, 8080, 8443, 8883])
  t.notOk(svc.privileged, 'not privileged')
  t.not(svc.network_mode, 'host', 'bridge network (no host networking needed)')
  const labels = Object.keys((svc.labels ?? {}) as object)
  t.ok(labels.every((l) => l.startsWith('io.balena.')), 'only balena labels')
  t.notOk(labels.some((l) => l.startsWith('io.balena.features.')), 'no host features requested')
  const env = svc.environment as Record<string, string>
  t.equal(env.EDGEWARDEN_GATEWAY_DATADIR, '/data')
  t.ok(loadConfig({ env, cwd: tempDir(t) }), 'the service environment is a valid config')
})

t.test('balena.yml: the fields balenaCloud expects, and defaults the loader accepts', async (t) => {
  const manifest = YAML.parse(readFileSync(join(repoRoot, 'balena.yml'), 'utf8')) as {
    name: string; type: string; version: string; description: string
    assets: { repository: { type: string; data: { url: string } } }
    data: { applicationEnvironmentVariables: Record<string, string | number>[]; defaultDeviceType: string; supportedDeviceTypes: string[] }
  }
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string }
  t.equal(manifest.name, pkg.name)
  t.equal(manifest.type, 'sw.application')
  t.equal(manifest.version, pkg.version, 'version follows package.json')
  t.ok(manifest.description.length > 20, 'description')
  t.equal(manifest.assets.repository.type, 'blob.asset')
  t.match(manifest.assets.repository.data.url, /^https:\/\//)
  const types = manifest.data.supportedDeviceTypes
  for (const dt of ['raspberrypi4-64', 'raspberrypi5', 'raspberrypi3-64', 'generic-aarch64', 'intel-nuc']) t.ok(types.includes(dt), `supports ${dt}`)
  t.ok(types.includes(manifest.data.defaultDeviceType), 'default device type is supported')
  t.notOk(types.includes('raspberrypi3'), '32-bit armv7 is left out (the LMDB map needs a 64-bit address space)')

  const vars = manifest.data.applicationEnvironmentVariables
  t.ok(vars.every((v) => Object.keys(v).length === 1), 'a list of single-variable maps')
  const env: Record<string, string> = Object.fromEntries(vars.map((v) => Object.entries(v)[0]!).map(([k, v]) => [k, String(v)]))
  for (const name of Object.keys(env)) {
    t.match(name, /^EDGEWARDEN_/)
    t.equal(applyEnv(configSchema as never, {}, { [name]: env[name] }).length, 1, `${name} sets a config key`)
  }
  const dir = tempDir(t)
  const cfg = loadConfig({ env: { ...env, EDGEWARDEN_GATEWAY_DATADIR: join(dir, 'data') }, cwd: dir })
  t.equal(cfg.journal.maxBytes, 512 * 1024 ** 2, 'sizes are normalized')
  t.equal(cfg.log.level, env.EDGEWARDEN_LOG_LEVEL)
  t.equal(cfg.gateway.dataDir, join(dir, 'data'))
})

t.test('every EDGEWARDEN_ variable in edge-image/README.md names a config key', async (t) => {
  const readme = readFileSync(join(repoRoot, 'edge-image/README.md'), 'utf8')
  const names = [...new Set(readme.match(/\bEDGEWARDEN_[A-Z0-9_]*[A-Z0-9]\b/g) ?? [])]
  t.ok(names.length >= 15, `the README documents the variables (${names.length})`)
  const notConfig = new Set(['EDGEWARDEN_CONFIG', 'EDGEWARDEN_MASK_KEY'])
  for (const name of names) {
    if (notConfig.has(name)) continue
    t.equal(applyEnv(configSchema as never, {}, { [name]: 'x' }).length, 1, name)
  }
})

t.test('systemd unit', async (t) => {
  const file = join(repoRoot, 'edge-image/systemd/edgewarden.service')
  const keys = new Map<string, string[]>()
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/^([A-Za-z]+)=(.*)$/)
    if (m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!])
  }
  const one = (k: string) => keys.get(k)?.[0]
  t.equal(one('User'), 'edgewarden', 'dedicated user')
  t.equal(one('EnvironmentFile'), '/etc/edgewarden/env')
  t.equal(one('StateDirectory'), 'edgewarden')
  t.ok(keys.get('Environment')!.includes('EDGEWARDEN_GATEWAY_DATADIR=/var/lib/edgewarden'), 'data dir is the state directory')
  t.ok(keys.get('Environment')!.includes('MALLOC_ARENA_MAX=2'), 'two glibc malloc arenas, as in the image')
  t.ok(keys.get('Environment')!.includes('NODE_OPTIONS=--max-semi-space-size=32'), 'the young generation of the image')
  t.equal(one('ExecStart'), '/usr/bin/node /opt/edgewarden/bin/edgewarden.js start')
  t.equal(one('NoNewPrivileges'), 'yes')
  t.equal(one('ProtectSystem'), 'strict')
  t.equal(one('ReadWritePaths'), '/var/lib/edgewarden')
  t.equal(one('Restart'), 'on-failure')
  t.equal(one('KillSignal'), 'SIGTERM')
  t.match(one('TimeoutStopSec'), /^\d+$/)
  t.notOk(keys.has('MemoryDenyWriteExecute'), 'V8 needs W+X pages')
  const analyze = await run('systemd-analyze', ['--version'])
  if (analyze.code !== 0) {
    t.pass('systemd-analyze verify', { skip: 'systemd-analyze is not installed: unit syntax not verified' })
    return
  }
  // systemd-analyze exits 0 on unknown keys and bad values, but says so on stderr
  const res = await run('systemd-analyze', ['verify', file])
  t.equal(res.code, 0, res.stderr)
  t.notMatch(res.stderr, /edgewarden\.service:\d+/, 'no warnings about the unit')
})

t.test('scripts are executable and parse', async (t) => {
  for (const [file, shell] of [['edge-image/entrypoint.sh', 'sh'], ['edge-image/install.sh', 'bash']] as const) {
    t.ok(statSync(join(repoRoot, file)).mode & 0o100, `${file} is executable (COPY and the tarball keep the mode)`)
    const syntax = await run(shell, ['-n', join(repoRoot, file)])
    t.equal(syntax.code, 0, `${shell} -n ${file}: ${syntax.stderr}`)
  }
})

t.test('entrypoint.sh derives the gateway id and writes a pasted fleet key', async (t) => {
  const entry = join(repoRoot, 'edge-image/entrypoint.sh')
  const dir = tempDir(t)
  const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', EDGEWARDEN_GATEWAY_DATADIR: dir }
  const envOf = async (env: Record<string, string>) => {
    const r = await run('sh', [entry, 'env'], { env: { ...base, ...env } })
    t.equal(r.code, 0, r.stderr)
    return Object.fromEntries(r.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
  }
  t.equal((await envOf({ BALENA_DEVICE_NAME_AT_INIT: 'dry cloud/7', BALENA_DEVICE_UUID: 'abc' })).EDGEWARDEN_GATEWAY_ID, 'dry-cloud-7', 'device name, sanitized')
  t.equal((await envOf({ BALENA_DEVICE_UUID: 'f00d' })).EDGEWARDEN_GATEWAY_ID, 'f00d', 'else the device UUID')
  t.equal((await envOf({ BALENA_DEVICE_NAME_AT_INIT: 'x', EDGEWARDEN_GATEWAY_ID: 'gw-7' })).EDGEWARDEN_GATEWAY_ID, 'gw-7', 'an explicit id wins')
  t.equal((await envOf({})).EDGEWARDEN_GATEWAY_ID, undefined, 'outside balena the config default applies')
  const jwk = '{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}'
  const got = await envOf({ EDGEWARDEN_FLEET_PUBLICKEY: jwk })
  t.equal(got.EDGEWARDEN_FLEET_PUBLICKEY, join(dir, 'keys/fleet.pub.jwk'), 'the variable now names a file')
  t.same(JSON.parse(readFileSync(join(dir, 'keys/fleet.pub.jwk'), 'utf8')), JSON.parse(jwk))
  t.equal((await envOf({ EDGEWARDEN_FLEET_PUBLICKEY: '/etc/keys/fleet.jwk' })).EDGEWARDEN_FLEET_PUBLICKEY, '/etc/keys/fleet.jwk', 'a path is left alone')
})
