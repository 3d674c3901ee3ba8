import t from 'tap'
import { execFile } from 'node:child_process'
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
