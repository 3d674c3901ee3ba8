/**
 * Per-client token buckets, one slot per rule that has a `rate`. State is a Float64Array
 * per client (tokens, last refill per slot), bounded in count (oldest client evicted
 * first) and dropped when the client disconnects.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, Float64Array>()
  constructor(
    private readonly rates: readonly number[],
    private readonly maxClients = 100_000,
  ) {}

  get size(): number { return this.#buckets.size }

  /** Takes one token from the client's bucket for `slot`; false when it is empty. */
  take(clientId: string, slot: number, now: number): boolean {
    let b = this.#buckets.get(clientId)
    if (b === undefined) {
      if (this.#buckets.size >= this.maxClients) this.#buckets.delete(this.#buckets.keys().next().value!)
      b = new Float64Array(this.rates.length * 2).fill(Number.NaN)
      this.#buckets.set(clientId, b)
    }
    const rate = this.rates[slot]!
    const burst = Math.max(1, rate)
    const at = slot * 2
    let tokens = b[at]!
    if (Number.isNaN(tokens)) tokens = burst
    else tokens = Math.min(burst, tokens + ((now - b[at + 1]!) / 1000) * rate)
    b[at + 1] = now
    if (tokens < 1) {
      b[at] = tokens
      return false
    }
    b[at] = tokens - 1
    return true
  }

  release(clientId: string): void {
    this.#buckets.delete(clientId)
  }
}
