/** Time source passed into every stage, so tests can move time. */
export interface Clock {
  /** milliseconds since the epoch */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/** A clock tests advance by hand. */
export class ManualClock implements Clock {
  constructor(private t = Date.now()) {}
  now(): number { return this.t }
  advance(ms: number): void { this.t += ms }
  set(ms: number): void { this.t = ms }
}
