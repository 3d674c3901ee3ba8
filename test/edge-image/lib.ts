import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

/** Shared by the edge-image tests: the repo root, child processes, the banner, /healthz. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const installScript = join(repoRoot, 'edge-image', 'install.sh')

/**
 * process.env without the caller's EDGEWARDEN_* variables and without tap's own
 * (NODE_OPTIONS hooks, _TAPJS_*, TAP_*), which would instrument the gateway; plus `extra`.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(EDGEWARDEN_|_TAPJS_|TAP_|NODE_OPTIONS$)/.test(k)) env[k] = v
  return { ...env, ...extra }
}

export interface Proc {
  readonly child: ChildProcess
  /** stdout + stderr so far */
  output(): string
  /** resolves with the first match of `re` in the output */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Starts a process; killed (SIGKILL) at teardown if it is still running. */
export function startProcess(t: Test, cmd: string, args: string[], opts: { env: NodeJS.ProcessEnv; cwd: string }): Proc {
  const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const listeners = new Set<() => void>()
  const onData = (d: Buffer) => {
    out += d.toString()
    for (const l of listeners) l()
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      for (const l of listeners) l()
      resolve({ code, signal })
    })
  })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  return {
    child,
    output: () => out,
    exited,
    waitFor(re, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(re)
          if (m) return done(() => resolve(m))
          if (child.exitCode !== null || child.signalCode !== null) done(() => reject(new Error(`exited (${child.exitCode ?? child.signalCode}) before ${re}:\n${out}`)))
        }
        const timer = setTimeout(() => done(() => reject(new Error(`no ${re} within ${timeoutMs} ms:\n${out}`))), timeoutMs)
        const done = (f: () => void) => {
          clearTimeout(timer)
          listeners.delete(check)
          f()
        }
        listeners.add(check)
        check()
      })
    },
  }
}

/** Runs a command to completion; never throws, the caller asserts on the result. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const errCode = (err as { code?: unknown } | null)?.code
      // 127 as a shell says it: the command is not installed
      const code = !err ? 0 : typeof errCode === 'number' ? errCode : errCode === 'ENOENT' ? 127 : 1
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (errCode === 'ENOENT' ? `${cmd}: not found` : '') })
    })
  })
}

/** Ports from the start banner (`MQTT mqtt://host:port`, `admin http://host:port/healthz`). */
export function bannerPorts(text: string): { mqtt: number; admin: number } {
  const mqtt = text.match(/MQTT\s+mqtt:\/\/[^:\s]+:(\d+)/)
  const admin = text.match(/admin\s+http:\/\/[^:\s]+:(\d+)\/healthz/)
  if (!mqtt || !admin) throw new Error('no ports in banner:\n' + text)
  return { mqtt: Number(mqtt[1]), admin: Number(admin[1]) }
}

export const BANNER_DONE = /admin\s+http:\/\/\S+\/healthz/

/** GET http://127.0.0.1:port/healthz → status and parsed body. */
export function healthz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', timeout: 10_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> })
        } catch (err) {
          reject(err as Error)
        }
      })
    })
    req.on('timeout', () => req.destroy(new Error('healthz timeout')))
    req.on('error', reject)
    req.end()
  })
}
