import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import type { Test } from 'tap'

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server'

export interface TestRedis {
  readonly port: number
  /** redis://127.0.0.1:PORT */
  readonly url: string
  /** the running server's pid (benchmarks read its CPU time) */
  readonly pid: number | undefined
  /** kills the server (an outage); start() brings it back on the same port, empty */
  stop(): Promise<void>
  start(): Promise<void>
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

/**
 * A throwaway Debian `redis-server` on a free loopback port, nothing written to disk;
 * killed at teardown.
 */
export async function startRedis(t: Test): Promise<TestRedis> {
  const port = await freePort()
  let proc: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const p = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
    proc = p
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out.slice(-500)}`)), 10_000)
      p.stdout!.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.includes('Ready to accept connections')) { clearTimeout(timer); resolve() }
      })
      p.once('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited (${code}): ${out.slice(-500)}`)) })
      p.once('error', (err) => { clearTimeout(timer); reject(err) })
    })
  }
  const stop = async (): Promise<void> => {
    const p = proc
    proc = undefined
    if (!p || p.exitCode !== null) return
    await new Promise<void>((resolve) => { p.once('exit', () => resolve()); p.kill('SIGKILL') })
  }
  t.teardown(stop)
  await start()
  return { port, url: `redis://127.0.0.1:${port}`, stop, start, get pid() { return proc?.pid } }
}
