import { readFileSync } from 'node:fs'

/** Resident set size of a process in bytes, from /proc/<pid>/status (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (!m) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

/** Anonymous resident memory (heap, buffers, malloc) in bytes: RSS without file-backed pages such as LMDB's map. */
export function rssAnonBytes(pid: number): number {
  const m = /^RssAnon:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no RssAnon for pid ${pid}`)
  return Number(m[1]) * 1024
}

/** CPU time (user + system) of a process in milliseconds, from /proc/<pid>/stat. */
export function cpuMs(pid: number, tid?: number): number {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8')
  // fields after the command name, which may contain spaces: state is field 3, utime 14, stime 15
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(rest[11]) + Number(rest[12])
  return ticks * 10 // USER_HZ is 100 on Linux
}

/** CPU share of one core used by `pid` between two samples (the whole process, and its main thread). */
export class CpuMeter {
  #t0 = 0
  #c0 = 0
  #m0 = 0
  /** main thread's share over the last start()…stop(), percent of one core */
  main = NaN
  constructor(private readonly pid: number) {}
  start(): void {
    this.#t0 = performance.now()
    this.#c0 = cpuMs(this.pid)
    this.#m0 = cpuMs(this.pid, this.pid)
  }
  /** percent of one core since start(); NaN when the process is gone (it crashed) */
  stop(): number {
    const dt = performance.now() - this.#t0
    try {
      if (dt <= 0) return 0
      this.main = Math.round(((cpuMs(this.pid, this.pid) - this.#m0) / dt) * 100)
      return Math.round(((cpuMs(this.pid) - this.#c0) / dt) * 100)
    } catch {
      return NaN
    }
  }
}

export function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

/**
 * The Node.js settings the edge image and the systemd unit ship the gateway with, for a node
 * broker the bench starts: V8's young generation (`--max-semi-space-size=32`, NODE_OPTIONS
 * there; bare Aedes gains from it too, so both get it: bench/README.md, "Fan-in: the young
 * generation") and two glibc malloc arenas (per-thread arenas keep what the verify worker and
 * the journal writer freed). BENCH_SEMI_SPACE='' / BENCH_MALLOC_ARENA_MAX='' leave the defaults.
 */
export function shippedNode(): { flags: string[]; env: NodeJS.ProcessEnv } {
  const semi = process.env.BENCH_SEMI_SPACE ?? '32'
  const arenas = process.env.BENCH_MALLOC_ARENA_MAX ?? '2'
  return {
    flags: semi ? [`--max-semi-space-size=${semi}`] : [],
    env: arenas ? { ...process.env, MALLOC_ARENA_MAX: arenas } : process.env,
  }
}
