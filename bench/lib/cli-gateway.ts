import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { shippedNode } from './proc.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface CliGateway { proc: ChildProcess; mqtt: number; admin: number }

/**
 * `edgewarden start --config FILE` as a child process (from source), resolved with the ports
 * its banner prints. Its SIGTERM-then-SIGKILL stop goes onto `cleanups`.
 * EW_BENCH_PROF=DIR: a CPU profile of the gateway process, written when it exits.
 */
export function spawnCliGateway(config: string, cleanups: (() => unknown)[]): Promise<CliGateway> {
  const prof = process.env.EW_BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.EW_BENCH_PROF] : []
  const shipped = shippedNode()
  const proc = spawn(process.execPath, [...prof, ...shipped.flags, join(ROOT, 'bin/edgewarden.js'), 'start', '--config', config], { cwd: ROOT, env: { ...shipped.env, EDGEWARDEN_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  cleanups.push(() => new Promise<void>((resolve) => {
    if (proc.exitCode !== null) return resolve()
    const force = setTimeout(() => proc.kill('SIGKILL'), 10_000)
    proc.once('exit', () => { clearTimeout(force); resolve() })
    proc.kill('SIGTERM')
  }))
  let out = ''
  return new Promise((resolve, reject) => {
    const on = (d: Buffer): void => {
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
