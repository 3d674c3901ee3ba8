/**
 * Watches the MQTT fixed headers in a byte stream and reports a packet whose declared
 * length exceeds the limit, before the parser buffers its body. Aedes has no packet size
 * limit of its own; without this, one CONNECT declaring 256 MiB makes the broker buffer
 * it. The state carries across chunk boundaries; the cost is a few comparisons per packet.
 *
 * The whole state is one number (see scanHeaders), so a connection's guard is a field on
 * its parser rather than an object, a bound function and a closure per connection.
 *
 * The same scan bounds how much of a connection's input is parsed at once (BATCH_BYTES):
 * Aedes parses everything its stream has buffered (up to ~80 KiB: a 64 KiB read on top of
 * the stream's 16 KiB high-water mark) and reads again only once every packet of that batch
 * is done. A QoS 1 publish waits in memory for its journal commit (and the cloud's PUBACK
 * when bridged), so with ten busy publishers some 3,000 messages were in flight at once, each
 * surviving young-generation GCs. Cut at the first packet boundary past BATCH_BYTES, the rest
 * goes back to the stream (unshift) and is parsed once the batch is done: about 1,600 in
 * flight, ~1.9 µs less CPU a bridged message (bench/README.md, "Parse batches").
 */

/** scanHeaders' verdict: a packet is too large or its length field is malformed (sticky) */
export const REFUSED = -Infinity

/**
 * Input parsed at once per connection, at least: the batch ends at the first packet boundary
 * from here on. 32 KiB: 16 KiB saved a little more on the bridge but cost local QoS 1 fan-in
 * ~7 points against bare Aedes (more, smaller batches); 4 and 8 KiB cost more everywhere.
 */
export const BATCH_BYTES = 32 * 1024

/** where the last scanHeaders call stopped (its `to`, or the boundary it stopped at) */
let stoppedAt = 0

/**
 * Scans `buf` from `state` and returns the state after it, or REFUSED. State 0: at a fixed
 * header's first byte; n > 0: n body bytes to skip; negative: inside the remaining-length
 * field, -(1 + bytes read + 8 × length so far) (at most 3 bytes read, so length < 2^21).
 * Scans buf[from, to); with `toBoundary` it stops at the first packet boundary (state 0) at
 * or after `from`. Where it stopped is `scanStoppedAt()`.
 */
export function scanHeaders(state: number, buf: Uint8Array, maxBytes: number, from = 0, to = buf.length, toBoundary = false): number {
  if (state === REFUSED) return REFUSED
  let i = from
  while (i < to) {
    if (state > 0) {
      const take = Math.min(state, to - i)
      state -= take
      i += take
      continue
    }
    if (state === 0) {
      if (toBoundary) break
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
  stoppedAt = i
  return state
}

/** where the last scanHeaders call stopped */
export function scanStoppedAt(): number {
  return stoppedAt
}

const kState = Symbol('packetSizeState')

/** mqtt-packet's Parser as far as the guard uses it; Aedes sets `client` (its stream is `conn`) */
export interface GuardableParser { parse(buf: Buffer): number; [kState]?: number; client?: { conn?: BatchStream } }

/** The stream a parser reads from, as far as a cut batch needs it. */
interface BatchStream { unshift?(chunk: Buffer): void; readonly destroyed?: boolean; readonly readableEnded?: boolean }

/**
 * Whether a stream can take the rest of a cut chunk back: a parser used on its own has none,
 * and a destroyed stream or one past its 'end' cannot (Node destroys a stream that is
 * unshifted after 'end'). Aedes reads it again once the packets parsed so far are done: at
 * least one completes in what is parsed, since the cut is at a packet boundary.
 */
function takesBack(conn: BatchStream | undefined): conn is BatchStream & { unshift(chunk: Buffer): void } {
  return typeof conn?.unshift === 'function' && !conn.destroyed && !conn.readableEnded
}

/**
 * Puts the guard in front of mqtt-packet parsers: one shared parse function (the parser is
 * `this`) and the state as a number on each parser. onTooLarge gets the parser whose
 * stream sent the packet; the chunk is not parsed. A chunk longer than BATCH_BYTES is parsed
 * up to the first packet boundary past it; the rest goes back to the parser's stream.
 */
export class ParserGuard {
  readonly #guarded: (this: GuardableParser, buf: Buffer) => number
  #inner: ((buf: Buffer) => number) | undefined

  constructor(readonly maxBytes: number, onTooLarge: (parser: GuardableParser) => void) {
    const self = this
    this.#guarded = function guardedParse(this: GuardableParser, buf: Buffer): number {
      let state = this[kState]!
      let rest: Buffer | undefined
      let conn: BatchStream | undefined
      if (buf.length > BATCH_BYTES && state !== REFUSED) {
        state = scanHeaders(state, buf, maxBytes, 0, BATCH_BYTES)
        // the packet under way at the limit completes this batch
        if (state !== REFUSED) state = scanHeaders(state, buf, maxBytes, BATCH_BYTES, buf.length, true)
        const cut = stoppedAt
        // a boundary before the chunk's end: the rest waits on the stream. None (one large
        // packet runs to the end): the chunk is parsed whole, as before.
        if (state === 0 && cut < buf.length && takesBack((conn = this.client?.conn))) {
          rest = buf.subarray(cut)
          buf = buf.subarray(0, cut)
        } else if (state !== REFUSED && cut < buf.length) {
          // no stream to give it back to: the rest is scanned and parsed now
          state = scanHeaders(state, buf, maxBytes, cut)
        }
      } else {
        state = scanHeaders(state, buf, maxBytes)
      }
      this[kState] = state
      if (state === REFUSED) {
        onTooLarge(this)
        return 0
      }
      const n = self.#inner!.call(this, buf)
      // after the parse, not before: a packet Aedes completes within it (a DISCONNECT) makes it
      // read the stream at once, which must find nothing rather than parse the rest inside this
      // parse (found by review). If the stream went away meanwhile, the rest goes with it.
      if (rest && takesBack(conn)) conn.unshift(rest)
      return n
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
