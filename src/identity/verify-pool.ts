import { Worker } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import type { KeyObject } from 'node:crypto'
import { checkSignature } from './signature.js'

/**
 * The worker's whole program: the same checkSignature as the main thread (its source is
 * embedded below), applied to batches. Kept as an eval'd script so it runs the same under
 * tsx, the tests and the compiled dist/ (no loader, no second entry point).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
// below the event loop's priority: a check woken on a busy core waits for it instead of
// preempting the thread that serves every connection (Linux: nice is per thread; the
// thread's id is the last part of /proc/thread-self). Best effort: elsewhere it stays.
if (workerData.nice > 0) {
  try {
    const os = require('node:os')
    const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop())
    if (tid > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + workerData.nice))
  } catch {}
}
const { createHash, createHmac, verify: cryptoVerify, timingSafeEqual, constants } = require('node:crypto')
const c = { createHmac, cryptoVerify, timingSafeEqual, constants }
// key ids are never reused; the previous key set stays for checks queued before a change
let keys = new Map()
let previous = new Map()
// tsx/esbuild's keepNames may wrap inner functions in __name(): a no-op here
const __name = (f) => f
const checkSignature = ${checkSignature.toString()}
parentPort.on('message', (m) => {
  if (m.reset) { previous = keys; keys = new Map() }
  if (m.keys) for (const [id, key] of m.keys) keys.set(id, key)
  const out = new Array(m.jobs.length).fill(null)
  for (let i = 0; i < m.jobs.length; i++) {
    const j = m.jobs[i]
    const input = Buffer.from(j.input, 'latin1')
    const sig = Buffer.from(j.sig, 'base64url')
    for (const id of j.keys) {
      const key = keys.get(id) ?? previous.get(id)
      if (key && checkSignature(key, j.alg, input, sig, c)) { out[i] = createHash('sha256').update(input).digest('base64url'); break }
    }
  }
  if (m.batch >= 0) parentPort.postMessage({ batch: m.batch, out })
})
`

/** input: the JWS signing input (ASCII); sig: the signature segment, base64url: decoded in the worker */
interface Job { readonly alg: string; readonly keys: number[]; readonly input: string; readonly sig: string }
interface Waiting { readonly resolve: (digest: string | undefined) => void; readonly inline: () => string | undefined }

/** checks per message at most, so a burst spreads over the workers */
const MAX_BATCH = 64

/**
 * How far below the event loop the verify workers run. Measured with the connects bench on
 * two cores: a worker woken by postMessage preempted the event loop on its own core (the
 * main thread spent ~17 % of the run runnable but waiting, schedstat), so CONNECTs queued
 * behind a check that could have waited for an idle moment. At +10 a worker still gets ~10 %
 * of a contended core (CFS/EEVDF weights), never starved.
 */
export const VERIFY_NICE = Number(process.env.EW_VERIFY_NICE ?? 10)

/** Worker threads for the asymmetric check: the one auto default leaves a core to the event loop. */
export function defaultVerifyThreads(): number {
  return Math.max(0, Math.min(2, availableParallelism() - 1))
}

/**
 * Runs ES/RS/PS/EdDSA signature checks on worker threads, so the event loop only parses
 * tokens and checks claims (an ES256 verify is ~100 µs of CPU, most of a CONNECT's extra
 * cost over bare Aedes). Checks queued in one event-loop turn go as one message. Only the
 * signature check moves: algorithm allowlist, key selection (family, pinned alg, kid) and
 * every claim check stay on the main thread, unchanged. Fail closed: if a worker dies, its
 * pending checks and all later ones run inline on the main thread.
 */
export class VerifyPool {
  readonly #workers: Worker[] = []
  /** per worker: batch id → the checks it carries */
  readonly #inflight: Map<number, Waiting[]>[] = []
  #next = 0
  #batch = 0
  #jobs: Job[] = []
  #waiting: Waiting[] = []
  #scheduled = false
  /** key ids per KeyObject; replaced (and the workers told) when the key set changes */
  #ids = new WeakMap<KeyObject, number>()
  #nextId = 0
  #newKeys: [number, KeyObject][] = []
  #reset = false
  #generation = -1
  #broken = false
  #closed = false

  /** nice: how far below the event loop's scheduling priority the workers run (0 = the same) */
  constructor(private readonly threads: number, private readonly nice = VERIFY_NICE) {}

  /**
   * Resolves with the signing input's digest (signatureDigest) when one of `keys` verifies
   * the signature, else undefined; never rejects. `inline` is the same check on this thread.
   */
  check(generation: number, keys: readonly KeyObject[], alg: string, input: string, sigB64: string, inline: () => string | undefined): Promise<string | undefined> {
    if (this.#broken || this.#closed) return Promise.resolve(inline())
    if (this.#workers.length === 0) this.#start()
    if (generation !== this.#generation) {
      // key set changed: checks from now on name only keys of the new set (fresh ids); the
      // worker keeps the previous set for checks queued before the change (chosen then)
      this.#generation = generation
      this.#ids = new WeakMap()
      this.#reset = true
    }
    const ids: number[] = []
    for (const k of keys) {
      let id = this.#ids.get(k)
      if (id === undefined) {
        this.#ids.set(k, (id = this.#nextId++))
        this.#newKeys.push([id, k])
      }
      ids.push(id)
    }
    return new Promise((resolve) => {
      this.#jobs.push({ alg, keys: ids, input, sig: sigB64 })
      this.#waiting.push({ resolve, inline })
      if (!this.#scheduled) {
        this.#scheduled = true
        // every CONNECT read in this poll phase rides in one message
        setImmediate(() => this.#flush())
      }
    })
  }

  /** Starts the workers ahead of the first check (otherwise the first check starts them). */
  warm(): void {
    if (!this.#broken && !this.#closed && this.#workers.length === 0) this.#start()
  }

  #start(): void {
    for (let i = 0; i < this.threads; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, name: 'edgewarden-jwt-verify', workerData: { nice: this.nice } })
      const inflight = new Map<number, Waiting[]>()
      w.on('message', (m: { batch: number; out: (string | null)[] }) => {
        const waiting = inflight.get(m.batch)
        if (!waiting) return
        inflight.delete(m.batch)
        for (let j = 0; j < waiting.length; j++) waiting[j]!.resolve(m.out[j] ?? undefined)
        // what queued up meanwhile goes now, as one message
        if (this.#jobs.length > 0) this.#flush()
        if (this.#pending() === 0) for (const x of this.#workers) x.unref()
      })
      const die = (): void => this.#fail()
      w.on('error', die)
      w.on('exit', () => { if (!this.#closed) die() })
      w.unref()
      this.#workers.push(w)
      this.#inflight.push(inflight)
    }
  }

  #pending(): number {
    let n = 0
    for (const m of this.#inflight) n += m.size
    return n
  }

  /**
   * Sends the queued checks to an idle worker. With every worker busy they wait for the
   * next answer: the busier the gateway, the larger (and cheaper per check) the batches.
   */
  #flush(): void {
    this.#scheduled = false
    if (this.#jobs.length === 0) return
    if (this.#broken || this.#closed) {
      const waiting = this.#waiting
      this.#jobs = []
      this.#waiting = []
      for (const w of waiting) w.resolve(w.inline())
      return
    }
    let i = -1
    for (let k = 0; k < this.#workers.length; k++) {
      const j = (this.#next + k) % this.#workers.length
      if (this.#inflight[j]!.size === 0) { i = j; break }
    }
    if (i < 0) return
    this.#next = (i + 1) % this.#workers.length
    const jobs = this.#jobs.length > MAX_BATCH ? this.#jobs.splice(0, MAX_BATCH) : this.#jobs
    const waiting = jobs === this.#jobs ? this.#waiting : this.#waiting.splice(0, MAX_BATCH)
    if (jobs === this.#jobs) {
      this.#jobs = []
      this.#waiting = []
    }
    const batch = this.#batch++
    const keys = this.#newKeys.length > 0 ? this.#newKeys : undefined
    const reset = this.#reset
    this.#newKeys = []
    this.#reset = false
    // every worker learns a new key before its next batch (one port delivers in order)
    if (keys || reset) for (let j = 0; j < this.#workers.length; j++) if (j !== i) this.#workers[j]!.postMessage({ batch: -1, jobs: [], keys, reset })
    const w = this.#workers[i]!
    this.#inflight[i]!.set(batch, waiting)
    // referenced while checks are pending: a client waits on the answer
    w.ref()
    w.postMessage({ batch, jobs, keys, reset })
    // more than one batch queued: another idle worker may take the rest
    if (this.#jobs.length > 0) this.#flush()
  }

  /** A worker died: everything pending and everything after runs inline (still checked). */
  #fail(): void {
    if (this.#broken) return
    this.#broken = true
    this.#stop()
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#stop()
  }

  /** (broken or closed) queued and in-flight checks run inline; the workers go */
  #stop(): void {
    this.#flush()
    for (const m of this.#inflight) {
      for (const waiting of m.values()) for (const w of waiting) w.resolve(w.inline())
      m.clear()
    }
    for (const w of this.#workers) void w.terminate()
  }
}
