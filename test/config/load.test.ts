import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { loadConfig, Secret } from '../../src/config/index.js'
import { isEwError, type EwError } from '../../src/errors.js'
import { tempDir } from '../helpers/gateway.js'

function loadError(fn: () => unknown): EwError {
  try {
    fn()
  } catch (err) {
    if (isEwError(err)) return err
    throw err
  }
  throw new Error('expected loadConfig to throw')
}

t.test('embedded defaults (SPEC §2/§3)', async (t) => {
  const cwd = tempDir(t)
  const c = loadConfig({ env: {}, cwd })
  t.equal(c.source, 'defaults')
  t.same(c.listeners.map((l) => [l.type, l.port, l.host]), [['mqtt', 1883, '0.0.0.0'], ['ws', 8080, '0.0.0.0']])
  t.equal(c.listeners[1]!.path, '/mqtt')
  t.match(c.admin, { enabled: true, host: '127.0.0.1', port: 9080 })
  t.equal(c.gateway.dataDir, join(cwd, 'data'), 'dataDir resolves against cwd without a file')
  t.equal(c.policies.dir, join(cwd, 'policies'))
  t.same(c.auth.jwt.algorithms, ['ES256', 'RS256', 'EdDSA'])
  t.equal(c.auth.jwt.clockToleranceSec, 30)
  t.equal(c.auth.jwt.requireExp, true)
  t.equal(c.auth.jwt.clientIdBinding, 'strict')
  t.equal(c.auth.jwt.maxTokenBytes, 8192)
  t.equal(c.limits.maxPacketBytes, 256 * 1024, '256KB is binary')
  t.equal(c.limits.connectRatePerAddress, 50, '50/s')
  t.same(c.limits.keepaliveSec, { min: 10, max: 1200 })
  t.equal(c.journal.maxBytes, 2 * 1024 ** 3)
  t.equal(c.broker.persistence, 'lmdb')
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.limits) && Object.isFrozen(c.listeners), 'config is frozen')
})

t.test('./edgewarden.yaml in cwd is picked up; relative paths resolve against the file folder', async (t) => {
  const cwd = tempDir(t)
  writeFileSync(join(cwd, 'edgewarden.yaml'), 'gateway: { id: gw-7, dataDir: ./state }\nauth: { jwt: { jwksFile: keys/jwks.json } }\n')
  const c = loadConfig({ env: {}, cwd })
  t.equal(c.source, join(cwd, 'edgewarden.yaml'))
  t.equal(c.gateway.id, 'gw-7')
  t.equal(c.gateway.dataDir, join(cwd, 'state'))
  t.equal(c.auth.jwt.jwksFile, join(cwd, 'keys/jwks.json'))
  const other = tempDir(t)
  const c2 = loadConfig({ env: {}, cwd: other, file: join(cwd, 'edgewarden.yaml') })
  t.equal(c2.gateway.dataDir, join(cwd, 'state'), 'file folder, not the process cwd')
})

t.test('an unknown key names file, line and key; exit code 2', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'bad.yaml')
  writeFileSync(file, 'gateway:\n  id: gw-1\nlisteners:\n  - type: mqtt\n    port: 1883\n    bogus: 1\n')
  const e = loadError(() => loadConfig({ file, env: {}, cwd: dir }))
  t.equal(e.code, 'EW_CONFIG_INVALID')
  t.equal(e.exitCode, 2)
  t.match(e.message, `${file}:6:`)
  t.match(e.message, 'listeners[0].bogus')
  t.match(e.message, /unknown key/)
  t.equal(e.details.line, 6)
  t.equal(e.details.key, 'listeners[0].bogus')

  writeFileSync(file, 'limits:\n  maxPacketBytes: 12 parsecs\n')
  const e2 = loadError(() => loadConfig({ file, env: {}, cwd: dir }))
  t.match(e2.message, `${file}:2: limits.maxPacketBytes`)

  writeFileSync(file, 'auth:\n  jwt:\n    clientIdBinding: loose\n')
  t.match(loadError(() => loadConfig({ file, env: {}, cwd: dir })).message, /bad\.yaml:3: auth\.jwt\.clientIdBinding: must be one of "strict", "none"/)

  writeFileSync(file, 'auth:\n  jwt:\n    algorithms: [ES256, none]\n')
  t.match(loadError(() => loadConfig({ file, env: {}, cwd: dir })).message, /auth\.jwt\.algorithms\[1\]/, "'none' is not an algorithm")

  writeFileSync(file, 'auth:\n  jwt:\n    algorithms: [HS256]\n')
  t.match(loadError(() => loadConfig({ file, env: {}, cwd: dir })).message, /bad\.yaml:3: auth\.jwt\.algorithms\[0\]: HS256 needs auth\.jwt\.secret/)

  writeFileSync(file, 'listeners:\n  - { type: mqtt, port: 1883 }\n  - { type: mqtt, port: 1883 }\n')
  t.match(loadError(() => loadConfig({ file, env: {}, cwd: dir })).message, /bad\.yaml:3: listeners\[1\]\.port: port 1883 is already used/)

  writeFileSync(file, 'gateway: {\n  id: [\n')
  const e3 = loadError(() => loadConfig({ file, env: {}, cwd: dir }))
  t.equal(e3.exitCode, 2)
  t.match(e3.message, /bad\.yaml:\d+: invalid YAML/)

  writeFileSync(file, '- a\n- b\n')
  t.match(loadError(() => loadConfig({ file, env: {}, cwd: dir })).message, /bad\.yaml:1: the config must be a mapping/)

  const missing = loadError(() => loadConfig({ file: join(dir, 'nope.yaml'), env: {}, cwd: dir }))
  t.equal(missing.code, 'EW_CONFIG_NOT_FOUND')
  t.equal(missing.exitCode, 2)
})

t.test('EDGEWARDEN_* env overrides: nested keys, arrays, sizes, rates, booleans', async (t) => {
  const cwd = tempDir(t)
  const file = join(cwd, 'c.yaml')
  writeFileSync(file, 'limits:\n  maxPacketBytes: 64KB\nlisteners:\n  - { type: mqtt, port: 1883 }\n')
  const c = loadConfig({
    file, cwd,
    env: {
      EDGEWARDEN_LIMITS_MAX_PACKET_BYTES: '1KB',
      EDGEWARDEN_LIMITS_KEEPALIVE_SEC_MIN: '5',
      EDGEWARDEN_LIMITS_CONNECTRATEPERADDRESS: '120/m',
      EDGEWARDEN_AUTH_JWT_JWKS_URL: 'https://idp.example.com/jwks.json',
      EDGEWARDEN_AUTH_JWT_ALGORITHMS: '[ES256, EdDSA]',
      EDGEWARDEN_AUTH_JWT_REQUIRE_EXP: 'false',
      EDGEWARDEN_AUTH_JWT_AUDIENCE: 'edgewarden',
      EDGEWARDEN_LISTENERS_0_PORT: '1999',
      EDGEWARDEN_GATEWAY_ID: 'gw-env',
      EDGEWARDEN_CONFIG: 'ignored.yaml',
      UNRELATED: 'x',
    },
  })
  t.equal(c.limits.maxPacketBytes, 1024, 'env wins over the file; 1KB = 1024 bytes')
  t.equal(c.limits.keepaliveSec.min, 5)
  t.equal(c.limits.keepaliveSec.max, 1200, 'sibling keeps its default')
  t.equal(c.limits.connectRatePerAddress, 2)
  t.equal(c.auth.jwt.jwksUrl, 'https://idp.example.com/jwks.json')
  t.same(c.auth.jwt.algorithms, ['ES256', 'EdDSA'])
  t.equal(c.auth.jwt.requireExp, false)
  t.equal(c.auth.jwt.audience, 'edgewarden')
  t.equal(c.listeners[0]!.port, 1999)
  t.equal(c.gateway.id, 'gw-env')

  const whole = loadConfig({ cwd, env: { EDGEWARDEN_LISTENERS: '[{type: mqtt, port: 1884}, {type: ws, port: 8081, path: /x}]' } })
  t.same(whole.listeners.map((l) => [l.type, l.port, l.path]), [['mqtt', 1884, '/mqtt'], ['ws', 8081, '/x']])

  const onDefault = loadConfig({ cwd, env: { EDGEWARDEN_LISTENERS_1_PATH: '/ws' } })
  t.equal(onDefault.listeners[1]!.path, '/ws', 'an index edits the default listener list')
  t.equal(onDefault.listeners[0]!.port, 1883)

  const bad = loadError(() => loadConfig({ cwd, env: { EDGEWARDEN_LIMITS_MAX_PACKET_BYTES: 'lots' } }))
  t.equal(bad.exitCode, 2)
  t.match(bad.message, /^EDGEWARDEN_LIMITS_MAX_PACKET_BYTES: limits\.maxPacketBytes: /, 'names the variable and the key')
  const badBool = loadError(() => loadConfig({ cwd, env: { EDGEWARDEN_AUTH_JWT_REQUIRE_EXP: 'maybe' } }))
  t.match(badBool.message, /EDGEWARDEN_AUTH_JWT_REQUIRE_EXP: auth\.jwt\.requireExp/)
})

t.test('env:NAME secrets: resolved, missing → exit 2 naming the key, never printed', async (t) => {
  const cwd = tempDir(t)
  const file = join(cwd, 's.yaml')
  writeFileSync(file, 'auth:\n  jwt:\n    algorithms: [HS256]\n    secret: env:EW_TEST_HS_SECRET\nupstream:\n  url: mqtts://cloud.example.com:8883\n  password: env:EW_TEST_UP_PW\n')
  const value = 'hunter2-very-secret-value'
  const c = loadConfig({ file, cwd, env: { EW_TEST_HS_SECRET: value, EW_TEST_UP_PW: 'pw-' + value } })
  t.ok(c.auth.jwt.secret instanceof Secret)
  t.equal(c.auth.jwt.secret!.reveal(), value)
  t.equal(c.upstream!.password!.reveal(), 'pw-' + value)
  const printed = [JSON.stringify(c), inspect(c, { depth: 20 }), String(c.auth.jwt.secret), `${c.upstream!.password}`, JSON.stringify({ s: c.auth.jwt.secret })]
  for (const p of printed) t.notMatch(p, value, 'secret value not in printed config')
  t.match(JSON.stringify(c), '"secret":"[secret]"')

  const e = loadError(() => loadConfig({ file, cwd, env: { EW_TEST_UP_PW: value } }))
  t.equal(e.exitCode, 2)
  t.match(e.message, `${file}:4: auth.jwt.secret: environment variable EW_TEST_HS_SECRET is not set`)
  t.notMatch(e.message + inspect(e), value)
  t.notMatch(JSON.stringify(e.details), value)

  const empty = loadError(() => loadConfig({ file, cwd, env: { EW_TEST_HS_SECRET: '', EW_TEST_UP_PW: value } }))
  t.match(empty.message, /auth\.jwt\.secret: environment variable EW_TEST_HS_SECRET is not set/)

  // a secret given directly by an EDGEWARDEN_ variable is a Secret too
  const viaEnv = loadConfig({ cwd, env: { EDGEWARDEN_AUTH_JWT_SECRET: value, EDGEWARDEN_AUTH_JWT_ALGORITHMS: '[HS256]' } })
  t.equal(viaEnv.auth.jwt.secret?.reveal(), value)
  t.notMatch(JSON.stringify(viaEnv) + inspect(viaEnv, { depth: 20 }), value)

  // an invalid secret must not be echoed in the error
  const badRedis = loadError(() => loadConfig({ cwd, env: { EDGEWARDEN_BROKER_CLUSTER_REDIS: 'tcp://user:' + value + '@x' } }))
  t.notMatch(badRedis.message, value)
})
