import { isUtf8 } from 'node:buffer'
import { addExtension, Packr, Unpackr } from 'msgpackr'
import type { MaskFormat } from './types.js'

export type Codec = 'json' | 'msgpack' | 'text'

/**
 * A MessagePack extension value msgpackr has no meaning for: kept as type + bytes and
 * written back unchanged, so device-specific extensions survive masking.
 */
export class OpaqueExt {
  constructor(readonly type: number, readonly data: Uint8Array) {}
}

// Extension types msgpackr itself defines (undefined, bigint, records, errors, references,
// sets, typed arrays, bundled strings, timestamp) keep msgpackr's meaning; every other type
// is registered as opaque (msgpackr indexes them by the unsigned type byte). msgpackr's registry is process-wide: without this such payloads
// fail to decode anywhere, so registering them changes nothing for other users.
const MSGPACKR_TYPES = new Set([0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78, 0xff])
for (let t = 1; t < 0x100; t++) {
  if (MSGPACKR_TYPES.has(t)) continue
  const type = t < 0x80 ? t : t - 0x100
  const unpack = (data: Uint8Array): OpaqueExt => new OpaqueExt(type, Uint8Array.prototype.slice.call(data))
  if (t === 1) {
    // the writer: msgpackr hands us room in its buffer and we write header + bytes with the value's own type
    addExtension({ Class: OpaqueExt, type: t, unpack, pack: (v: OpaqueExt, allocate: (n: number) => { target: Uint8Array; position: number }) => {
      const bytes = extBytes(v)
      const { target, position } = allocate(bytes.length)
      target.set(bytes, position)
    } } as never)
  } else {
    addExtension({ type: t, unpack } as never)
  }
}

const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false, structuredClone: false })
const packr = new Packr({ mapsAsObjects: false, useRecords: false, structuredClone: false, variableMapSize: true })

export class ParseError extends Error {}

/** MessagePack: the whole buffer must be one value (no trailing bytes). */
export function decodeMsgpack(buf: Buffer): unknown {
  let values: unknown[]
  try {
    values = unpackr.unpackMultiple(buf) as unknown[]
  } catch (err) {
    // msgpackr's messages name types and lengths, never values; still, keep them short
    throw new ParseError(`invalid MessagePack: ${(err as Error).message.replace(/[^\w .:-]/g, '').slice(0, 80)}`)
  }
  if (values.length !== 1) throw new ParseError(`invalid MessagePack: ${values.length} values in one payload`)
  return values[0]
}

export function encodeMsgpack(v: unknown): Buffer {
  return packr.pack(v)
}

export function decodeJson(buf: Buffer): unknown {
  if (!isUtf8(buf)) throw new ParseError('invalid JSON: not UTF-8')
  try {
    // a UTF-8 byte order mark is not JSON, but common from some firmware: skip it
    const start = buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0
    return JSON.parse(buf.toString('utf8', start)) as unknown
  } catch (err) {
    // V8's message quotes the input: only the position may reach the journal
    const at = /position (\d+)/.exec((err as Error).message)
    throw new ParseError(at ? `invalid JSON at position ${at[1]}` : 'invalid JSON')
  }
}

export function encodeJson(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8')
}

/**
 * `auto`: JSON when the payload starts with `{`, `[` or `"`; MessagePack when it starts
 * with a map or array marker; UTF-8 text otherwise. Anything else is not a format a
 * mask can read (undefined → onParseError).
 */
export function sniff(buf: Buffer): Codec | undefined {
  let i = buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0
  while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === 0x0a || buf[i] === 0x0d)) i++
  if (i === buf.length) return 'text'
  const b = buf[i]!
  if (b === 0x7b || b === 0x5b || b === 0x22) return 'json'
  if (i === 0 && ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf))) return 'msgpack'
  return isUtf8(buf) ? 'text' : undefined
}

export function codecFor(format: MaskFormat, buf: Buffer): Codec | undefined {
  return format === 'auto' ? sniff(buf) : format
}

function extBytes(e: OpaqueExt): Uint8Array {
  const n = e.data.length
  const t = e.type & 0xff
  let head: Uint8Array
  const fixed: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 }
  if (fixed[n] !== undefined) head = Uint8Array.of(fixed[n]!, t)
  else if (n < 0x100) head = Uint8Array.of(0xc7, n, t)
  else if (n < 0x10000) head = Uint8Array.of(0xc8, n >> 8, n & 0xff, t)
  else head = Uint8Array.of(0xc9, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff, t)
  return Buffer.concat([head, e.data])
}
