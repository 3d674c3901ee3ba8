import t from 'tap'
import { spawn, execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/gateway.js'
import { connect, connackCode, waitClose } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'

const BIN = fileURLToPath(new URL('../../bin/edgewarden.js', import.meta.url))
const ENV = { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', EDGEWARDEN_FROM_SOURCE: '1' }

/** A port that was free a moment ago (bind 0, read, close). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

function cli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: ENV, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

t.test('edgewarden start: tokens from `edgewarden token` accepted; SIGTERM closes clients and exits 0', async (t) => {
  const dir = tempDir(t)
  const [mqttPort, wsPort, adminPort] = [await freePort(), await freePort(), await freePort()]
  const file = join(dir, 'edgewarden.yaml')
  writeFileSync(file, [
    'gateway: { id: gw-shutdown, dataDir: ./data }',
    'log: { level: warn }',
    'listeners:',
    `  - { type: mqtt, host: 127.0.0.1, port: ${mqttPort} }`,
    `  - { type: ws, host: 127.0.0.1, port: ${wsPort}, path: /mqtt }`,
    `admin: { host: 127.0.0.1, port: ${adminPort} }`,
    '',
  ].join('\n'))
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], { cwd: dir, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += String(d) })
  child.stderr.on('data', (d) => { stderr += String(d) })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })

  await waitFor(() => /is running/.test(stdout) || child.exitCode !== null, 20_000, 'the banner')
  t.match(stdout, `mqtt://127.0.0.1:${mqttPort}`, 'banner names the MQTT address')
  t.match(stdout, /edgewarden token --sub/, 'banner explains how to mint a token')

  const minted = await cli(['token', '--sub', 'x', '--config', file], dir)
  t.equal(minted.code, 0, 'token exits 0')
  const token = minted.stdout.trim()
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'prints a compact JWS')
  const url = `mqtt://127.0.0.1:${mqttPort}`
  t.equal(await connackCode(t, url, { clientId: 'not-x', password: token }), 4, 'bound to its sub')
  const c = await connect(t, url, { clientId: 'x', password: token })
  t.ok(c.connected, 'the running gateway accepts the minted token')
  const ws = await connect(t, `ws://127.0.0.1:${wsPort}/mqtt`, { clientId: 'y', password: (await cli(['token', '--sub', 'y', '--config', file], dir)).stdout.trim() })
  t.ok(ws.connected, 'over WebSocket too')
  const health = await fetch(`http://127.0.0.1:${adminPort}/healthz`)
  t.equal(health.status, 200)
  await health.text()

  let clientError: Error | undefined
  c.on('error', (e) => { clientError = e })
  const closed = waitClose(c, 10_000)
  const wsClosed = waitClose(ws, 10_000)
  child.kill('SIGTERM')
  await closed
  await wsClosed
  t.pass('clients closed by the shutdown')
  t.equal(clientError, undefined, 'no error on the client side')
  const { code, signal } = await Promise.race([exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no exit within 10 s')), 10_000))])
  t.equal(signal, null, 'not killed by the signal')
  t.equal(code, 0, 'exit code 0')
  t.notMatch(stderr, /error/i, 'nothing on stderr but warnings')
  t.notMatch(stdout + stderr, token.split('.')[2]!, 'the token is never printed by the gateway')
  // the ports are free again
  const again = createServer()
  await new Promise<void>((resolve, reject) => { again.once('error', reject); again.listen(mqttPort, '127.0.0.1', () => resolve()) })
  again.close()
  t.pass('MQTT port released')
})

t.test('SIGINT also stops cleanly', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'edgewarden.yaml')
  writeFileSync(file, `listeners: [{ type: mqtt, host: 127.0.0.1, port: ${await freePort()} }]\nadmin: { enabled: false }\nlog: { level: warn }\n`)
  const child = spawn(process.execPath, [BIN, 'start', '--config', file], { cwd: dir, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  child.stdout.on('data', (d) => { stdout += String(d) })
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  await waitFor(() => /is running/.test(stdout), 20_000, 'the banner')
  t.match(stdout, 'Tokens are verified with the development key', 'first start creates a dev key')
  child.kill('SIGINT')
  t.equal(await exited, 0)
})
