import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { shippedNode } from './proc.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface CliGateway { proc: ChildProcess; mqtt: number; admin: number }

/**
 * `edgewarden start --config FILE` as a child process (from source), resolved with the ports
 * its banner prints. Its SIGTERM-then-SIGKILL stop goes onto `cleanups`.
 * EW_BENCH_PROF=DIR: a CPU profile of the gateway process, written when it exits.
 * EW_BENCH_NODE_FLAGS="--trace-gc …": more Node flags for the gateway process.
 * EW_BENCH_GATEWAY_LOG=FILE: the gateway's stdout and stderr, appended to FILE.
 */
export function spawnCliGateway(config: string, cleanups: (() => unknown)[]): Promise<CliGateway> {
  const prof = process.env.EW_BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.EW_BENCH_PROF] : []
  const shipped = shippedNode()
  const extra = process.env.EW_BENCH_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? []
  const proc = spawn(process.execPath, [...prof, ...shipped.flags, ...extra, join(ROOT, 'bin/edgewarden.js'), 'start', '--config', config], { cwd: ROOT, env: { ...shipped.env, EDGEWARDEN_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  cleanups.push(() => new Promise<void>((resolve) => {
    if (proc.exitCode !== null) return resolve()
    const force = setTimeout(() => proc.kill('SIGKILL'), 10_000)
    proc.once('exit', () => { clearTimeout(force); resolve() })
    proc.kill('SIGTERM')
  }))
  let out = ''
  return new Promise((resolve, reject) => {
    const log = process.env.EW_BENCH_GATEWAY_LOG
    const on = (d: Buffer): void => {
      if (log) appendFileSync(log, d)
      if (out.length > 64 * 1024) return
      out += d.toString()
      const m = /MQTT\s+mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      const a = /admin\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (m && a) resolve({ proc, mqtt: Number(m[1]), admin: Number(a[1]) })
    }
    proc.stdout!.on('data', on)
    proc.stderr!.on('data', on)
    proc.once('exit', (code) => reject(new Error(`gateway exited ${code}: ${out}`)))
  })
}
