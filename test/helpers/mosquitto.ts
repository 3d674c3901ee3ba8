import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect as netConnect, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

export interface MosquittoOptions {
  /** username → password; when set, anonymous clients are refused */
  readonly users?: Readonly<Record<string, string>>
  /** serve MQTT over TLS with these PEM files (paths) */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string; readonly requireCert?: boolean }
  /**
   * keep sessions and queued messages across stop()/start() (mosquitto persistence in
   * its temp dir), with unbounded per-client queues: a persistent subscriber then gets
   * everything published while it was away, which outage tests rely on
   */
  readonly persistence?: boolean
  /** extra lines for mosquitto.conf */
  readonly extra?: readonly string[]
}

export interface Mosquitto {
  readonly host: '127.0.0.1'
  readonly port: number
  /** mqtt://127.0.0.1:PORT or mqtts://… */
  readonly url: string
  readonly running: boolean
  /** the running broker's process id (benchmarks read its CPU time) */
  readonly pid: number | undefined
  /** stops the broker (SIGTERM: a persistent broker saves its state), keeps the port number */
  stop(): Promise<void>
  /** starts it again on the same port; resolves once it accepts connections */
  start(): Promise<void>
  /** what mosquitto wrote to stderr/stdout (it logs connects, auth failures) */
  output(): string
}

const BIN = '/usr/sbin/mosquitto'

/**
 * A real Mosquitto on a free 127.0.0.1 port, killed at test teardown. Used as the cloud
 * broker by the bridge tests; stop()/start() simulate an outage on the same address.
 */
export async function startMosquitto(t: Test, opts: MosquittoOptions = {}): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'ew-mosq-'))
  const port = await freePort()
  const lines = [
    `listener ${port} 127.0.0.1`,
    `allow_anonymous ${opts.users ? 'false' : 'true'}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'max_keepalive 65535',
  ]
  // as root, mosquitto drops to the `mosquitto` user, which cannot read our 0700 temp dir
  if (process.getuid?.() === 0) lines.push('user root')
  if (opts.users) {
    const pw = join(dir, 'passwd')
    writeFileSync(pw, '')
    for (const [u, p] of Object.entries(opts.users)) execFileSync('mosquitto_passwd', ['-b', pw, u, p], { stdio: 'pipe' })
    lines.push(`password_file ${pw}`)
  }
  if (opts.tls) {
    lines.push(`certfile ${opts.tls.cert}`, `keyfile ${opts.tls.key}`)
    if (opts.tls.ca) lines.push(`cafile ${opts.tls.ca}`)
    if (opts.tls.requireCert) lines.push('require_certificate true')
  }
  if (opts.persistence) {
    lines.push('persistence true', `persistence_location ${dir}/`, 'autosave_interval 0', 'max_queued_messages 0', 'max_queued_bytes 0', 'max_inflight_messages 0')
  } else {
    lines.push('persistence false')
  }
  lines.push(...(opts.extra ?? []))
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, lines.join('\n') + '\n')

  let child: ChildProcess | undefined
  let out = ''
  const stop = (): Promise<void> => new Promise((resolve) => {
    const c = child
    child = undefined
    if (!c || c.exitCode !== null || c.signalCode !== null) return resolve()
    const force = setTimeout(() => c.kill('SIGKILL'), 5000)
    c.once('exit', () => { clearTimeout(force); resolve() })
    c.kill('SIGTERM')
  })
  const start = async (): Promise<void> => {
    if (child) return
    const c = spawn(BIN, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = c
    c.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    c.stderr!.on('data', (d: Buffer) => { out += d.toString() })
    const deadline = Date.now() + 10_000
    for (;;) {
      if (c.exitCode !== null) throw new Error(`mosquitto exited with ${c.exitCode}: ${out.slice(-2000)}`)
      if (await accepts(port)) return
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${out.slice(-2000)}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }
  t.teardown(async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  })
  await start()
  return {
    host: '127.0.0.1',
    port,
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    get running() { return child !== undefined },
    get pid() { return child?.pid },
    stop,
    start,
    output: () => out,
  }
}

/** An ephemeral port that was free a moment ago (mosquitto cannot bind port 0 and report it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo
      s.close(() => resolve(port))
    })
  })
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = netConnect({ host: '127.0.0.1', port })
    sock.once('connect', () => { sock.destroy(); resolve(true) })
    sock.once('error', () => resolve(false))
  })
}
