import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { freePort } from './mosquitto.js'

export interface Postgres {
  readonly port: number
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust auth on loopback) */
  readonly url: string
  stop(): Promise<void>
  output(): string
  /** the postmaster's pid (benchmarks sum the CPU time of it and its backends) */
  pid(): number | undefined
}

/** /usr/lib/postgresql/<newest>/bin, or undefined when Debian's `postgresql` is not installed. */
export function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const v = readdirSync(root).filter((d) => existsSync(join(root, d, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))[0]
  return v ? join(root, v, 'bin') : undefined
}

/**
 * A throwaway PostgreSQL cluster (initdb + postgres) in a temp dir on a free 127.0.0.1 port,
 * stopped and deleted at teardown. initdb and postgres refuse to run as root: as root they
 * run as the `postgres` user (runuser) in a temp dir that user owns.
 */
export async function startPostgres(t: Test, extraConf: readonly string[] = []): Promise<Postgres> {
  const bin = postgresBin()
  if (!bin) throw new Error('PostgreSQL binaries not found: apt-get install -y postgresql')
  const asRoot = process.getuid?.() === 0
  const dir = mkdtempSync(join(tmpdir(), 'ew-pg-'))
  const data = join(dir, 'data')
  const pgUser = asRoot ? Number(execFileSync('id', ['-u', 'postgres']).toString().trim()) : undefined
  const pgGroup = asRoot ? Number(execFileSync('id', ['-g', 'postgres']).toString().trim()) : undefined
  if (asRoot) chownSync(dir, pgUser!, pgGroup!)
  const run = (cmd: string, args: string[]): [string, string[]] => asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]
  const [c1, a1] = run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'])
  execFileSync(c1, a1, { stdio: 'pipe' })
  const port = await freePort()
  const conf = [
    `port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`,
    // a test cluster: no durability needed, keep it light on a shared 2-core machine
    'fsync = off', 'synchronous_commit = off', 'full_page_writes = off', 'shared_buffers = 128MB',
    'max_connections = 50', 'logging_collector = off',
    ...extraConf,
  ]
  writeFileSync(join(data, 'postgresql.auto.conf'), conf.join('\n') + '\n')
  if (asRoot) chownSync(join(data, 'postgresql.auto.conf'), pgUser!, pgGroup!)
  const [c2, a2] = run(join(bin, 'postgres'), ['-D', data])
  let out = ''
  const child: ChildProcess = spawn(c2, a2, { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  const stop = (): Promise<void> => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.once('exit', () => { clearTimeout(force); resolve() })
    // runuser does not forward signals: SIGINT ("fast" shutdown) goes to the postmaster itself
    let pid: number | undefined
    try { pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]) } catch { pid = undefined }
    try { if (pid) process.kill(pid, 'SIGINT'); else child.kill('SIGINT') } catch { child.kill('SIGKILL') }
  })
  t.teardown(async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  })
  const deadline = Date.now() + 20_000
  while (!out.includes('database system is ready to accept connections')) {
    if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}: ${out.slice(-2000)}`)
    if (Date.now() > deadline) throw new Error(`postgres did not start: ${out.slice(-2000)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  const pid = (): number | undefined => {
    try { return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]) } catch { return undefined }
  }
  return { port, url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop, output: () => out, pid }
}
