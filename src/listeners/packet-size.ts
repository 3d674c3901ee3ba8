/**
 * Watches the MQTT fixed headers in a byte stream and reports a packet whose declared
 * length exceeds the limit, before the parser buffers its body. Aedes has no packet size
 * limit of its own; without this, one CONNECT declaring 256 MiB makes the broker buffer
 * it. The state carries across chunk boundaries; the cost is a few comparisons per packet.
 *
 * The whole state is one number (see scanHeaders), so a connection's guard is a field on
 * its parser rather than an object, a bound function and a closure per connection.
 */

/** scanHeaders' verdict: a packet is too large or its length field is malformed (sticky) */
export const REFUSED = -Infinity

/**
 * Scans `buf` from `state` and returns the state after it, or REFUSED. State 0: at a fixed
 * header's first byte; n > 0: n body bytes to skip; negative: inside the remaining-length
 * field, -(1 + bytes read + 8 × length so far) (at most 3 bytes read, so length < 2^21).
 */
export function scanHeaders(state: number, buf: Uint8Array, maxBytes: number): number {
  if (state === REFUSED) return REFUSED
  const n = buf.length
  let i = 0
  while (i < n) {
    if (state > 0) {
      const take = Math.min(state, n - i)
      state -= take
      i += take
      continue
    }
    if (state === 0) {
      // first byte of a fixed header
      state = -1
      i++
      continue
    }
    const v = -state - 1
    const lengthBytes = v % 8
    const b = buf[i++]!
    const length = (v - lengthBytes) / 8 + (b & 0x7f) * 128 ** lengthBytes
    if (length + 2 + lengthBytes > maxBytes) return REFUSED
    if ((b & 0x80) === 0) {
      // body next; a zero-length packet is followed directly by the next header
      state = length
    } else if (lengthBytes + 1 >= 4) {
      return REFUSED
    } else {
      state = -(1 + lengthBytes + 1 + 8 * length)
    }
  }
  return state
}

const kState = Symbol('packetSizeState')

/** mqtt-packet's Parser as far as the guard uses it */
export interface GuardableParser { parse(buf: Buffer): number; [kState]?: number }

/**
 * Puts the guard in front of mqtt-packet parsers: one shared parse function (the parser is
 * `this`) and the state as a number on each parser. onTooLarge gets the parser whose
 * stream sent the packet; the chunk is not parsed.
 */
export class ParserGuard {
  readonly #guarded: (this: GuardableParser, buf: Buffer) => number
  #inner: ((buf: Buffer) => number) | undefined

  constructor(readonly maxBytes: number, onTooLarge: (parser: GuardableParser) => void) {
    const self = this
    this.#guarded = function guardedParse(this: GuardableParser, buf: Buffer): number {
      const state = scanHeaders(this[kState]!, buf, maxBytes)
      this[kState] = state
      if (state !== REFUSED) return self.#inner!.call(this, buf)
      onTooLarge(this)
      return 0
    }
  }

  install(parser: GuardableParser): void {
    if (parser.parse === this.#guarded) return
    // the prototype's parse: every parser is mqtt-packet's Parser
    this.#inner ??= parser.parse
    parser[kState] = 0
    parser.parse = this.#guarded
  }
}
