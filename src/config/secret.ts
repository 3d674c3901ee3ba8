import { inspect } from 'node:util'

/**
 * A secret value from config (`env:NAME` or literal). It prints as `[secret]` in logs,
 * JSON, errors and inspect output; only `reveal()` gives the value, at the point of use.
 */
export class Secret {
  readonly #value: string
  readonly source: string
  constructor(value: string, source: string) {
    this.#value = value
    this.source = source
  }
  reveal(): string { return this.#value }
  toString(): string { return '[secret]' }
  toJSON(): string { return '[secret]' }
  [inspect.custom](): string { return `Secret(${this.source})` }
}
