import t from 'tap'
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))

/**
 * Runs a child that (optionally) imports the gateway's entry, then turns mqtt-packet's loggers on
 * at run time and parses a packet. A real `debug` logger checks whether it is enabled on every
 * call, so it prints; the quiet one is an empty function and prints nothing.
 */
function child(opts: { entry?: string; env?: Record<string, string> }): Promise<string> {
  const script = `
    import { createRequire } from 'node:module'
    ${opts.entry ? `await import(${JSON.stringify(root + opts.entry)})` : ''}
    const require = createRequire(${JSON.stringify(root + 'package.json')})
    const mqttPacket = require('mqtt-packet')
    createRequire(require.resolve('mqtt-packet'))('debug').enable('mqtt-packet:*')
    const parser = mqttPacket.parser()
    let parsed = 0
    parser.on('packet', () => { parsed++ })
    parser.parse(mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    if (parsed !== 1) throw new Error('not parsed')
  `
  const env = { ...process.env, ...opts.env }
  delete env.DEBUG
  Object.assign(env, opts.env)
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, env, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`))
      else resolve(stderr)
    })
  })
}

t.test('without the gateway, enabling mqtt-packet:* at run time prints (the control)', async (t) => {
  t.match(await child({}), /mqtt-packet:parser/)
})

t.test('after the gateway entry is loaded, disabled loggers stay silent', async (t) => {
  t.notMatch(await child({ entry: 'src/index.ts' }), /mqtt-packet/)
})

t.test('a module that loads aedes loads it first', async (t) => {
  t.notMatch(await child({ entry: 'src/broker/create.ts' }), /mqtt-packet/)
})

t.test('a namespace DEBUG enables at start keeps its real logger', async (t) => {
  const out = await child({ entry: 'src/index.ts', env: { DEBUG: 'mqtt-packet:parser' } })
  t.match(out, /mqtt-packet:parser/)
  t.notMatch(out, /mqtt-packet:writeToStream/, 'the other namespace was quiet at start and stays quiet')
})

t.test('every module that loads a package using debug imports quiet-debug first', async (t) => {
  // packages whose own code, or a dependency's, creates debug loggers at load time
  const users = /^(aedes|mqtt|mqtt-packet|ioredis|mqemitter-redis|aedes-persistence-redis)(\/|$)/
  const files = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  let checked = 0
  for (const f of files) {
    const text = readFileSync(join(root, 'src', f), 'utf8')
    const imports = [...text.matchAll(/^import\s+(type\s+)?(?:[^'"]*?\s+from\s+)?['"]([^'"]+)['"]/gm)]
    const loads = imports.some((m) => !m[1] && users.test(m[2]!)) || /(?:require|import)\(['"](aedes|mqtt|mqtt-packet|ioredis|mqemitter-redis|aedes-persistence-redis)['"]\)/.test(text)
    if (!loads) continue
    checked++
    t.match(imports[0]?.[2] ?? '', /quiet-debug\.js$/, `src/${f}: quiet-debug is its first import`)
  }
  t.ok(checked >= 5, `${checked} modules checked`)
})

t.test("debug's API keeps working through the quiet factory", async (t) => {
  // installs itself when first imported
  await import('../../src/broker/quiet-debug.js')
  const require = createRequire(root + 'package.json')
  const d = createRequire(require.resolve('mqtt-packet'))('debug') as ((ns: string) => ((...a: unknown[]) => void) & { enabled: boolean; namespace: string; extend(s: string): { namespace: string } }) & { log: unknown; default: unknown }
  t.equal(d.default, d)
  const lines: unknown[][] = []
  const saved = d.log
  t.teardown(() => { d.log = saved })
  // the module's sink: its loggers read it from the real factory
  d.log = (...a: unknown[]) => { lines.push(a) }
  const off = d('ew-quiet-test:off')
  t.equal(off.enabled, false)
  off('not printed %s', 1)
  t.equal(lines.length, 0)
  off.enabled = true
  off('printed %s', 2)
  t.equal(lines.length, 1, 'enabled = true turns one logger on, as in debug')
  t.match(String(lines[0]![0]), /ew-quiet-test:off printed/)
  t.equal(lines[0]![1], 2, 'the arguments reach the real logger')
  off.enabled = false
  off('not printed %s', 3)
  t.equal(lines.length, 1)
  t.equal(off.extend('sub').namespace, 'ew-quiet-test:off:sub')
})
