import type { Clock } from '../clock.js'
import type { RefusalReason } from './types.js'

/**
 * Admission control shared by all listeners: the gateway-wide connection cap and a
 * per-address token bucket on new connections (a reconnect loop or a scan from one
 * address cannot starve the others). The address map is bounded and swept.
 */
export class Admission {
  #open = 0
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  readonly #burst: number

  constructor(private readonly maxConnections: number, private readonly ratePerSec: number, private readonly clock: Clock, private readonly maxAddresses = 100_000) {
    this.#burst = Math.max(1, ratePerSec)
  }

  get open(): number { return this.#open }

  /** Returns undefined when admitted (and counts the connection), else why not. */
  admit(address: string): RefusalReason | undefined {
    if (this.#open >= this.maxConnections) return 'max_connections'
    if (this.ratePerSec > 0 && !this.#take(address)) return 'connect_rate'
    this.#open++
    return undefined
  }

  release(): void {
    if (this.#open > 0) this.#open--
  }

  #take(address: string): boolean {
    const now = this.clock.now()
    let b = this.#buckets.get(address)
    if (!b) {
      if (this.#buckets.size >= this.maxAddresses) this.#sweep(now)
      b = { tokens: this.#burst, at: now }
      this.#buckets.set(address, b)
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.ratePerSec)
      b.at = now
    }
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  #sweep(now: number): void {
    const full = this.#burst / this.ratePerSec * 1000
    for (const [k, b] of this.#buckets) if (now - b.at > full) this.#buckets.delete(k)
    // still full: forget the oldest half rather than grow without bound
    if (this.#buckets.size >= this.maxAddresses) {
      let n = this.#buckets.size / 2
      for (const k of this.#buckets.keys()) { if (n-- <= 0) break; this.#buckets.delete(k) }
    }
  }
}
