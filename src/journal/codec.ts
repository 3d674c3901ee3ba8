import { createHash } from 'node:crypto'
import { Packr } from 'msgpackr'
import type { JournalRecord } from './types.js'

/**
 * Record bytes and the hash chain (SPEC §7).
 *
 * A stored record is a msgpack map whose LAST entry is `hash` (a 64-char hex string).
 * The hashed bytes are that same encoding without the trailing `hash` entry and with the
 * map count one lower: `hash = sha256(prev ‖ body)` where `prev` is the previous record's
 * hash as 32 raw bytes. Verifiers work on the stored bytes and never re-encode, so any
 * msgpack implementation (the cloud side, another language) checks the chain identically.
 */

// plain maps (no msgpackr record extension): readable by any msgpack decoder
export const packr = new Packr({ useRecords: false, mapsAsObjects: true })

export const GENESIS = '0'.repeat(64)
const HASH_KEY = Buffer.from([0xa4, 0x68, 0x61, 0x73, 0x68]) // fixstr "hash"
/** fixstr "hash" + str8 header (0xd9, 64) + 64 hex chars */
export const HASH_TAIL_BYTES = HASH_KEY.length + 2 + 64

export function chainHash(prevHex: string, body: Uint8Array): string {
  return createHash('sha256').update(Buffer.from(prevHex, 'hex')).update(body).digest('hex')
}

/** Adds 1 (or -1) to the entry count of the msgpack map header at the start of buf, in place. */
export function bumpMapCount(buf: Buffer, by: 1 | -1): void {
  const b = buf[0]!
  if (b >= 0x80 && b <= 0x8f) {
    const n = (b & 0x0f) + by
    if (n < 0 || n > 15) throw new Error('map count out of fixmap range')
    buf[0] = 0x80 | n
  } else if (b === 0xde) buf.writeUInt16BE(buf.readUInt16BE(1) + by, 1)
  else if (b === 0xdf) buf.writeUInt32BE(buf.readUInt32BE(1) + by, 1)
  else throw new Error('record is not a msgpack map')
}

/**
 * Seals records straight from the writer thread's flat fields (lmdb.ts' commit groups): the
 * msgpack map is written field by field into one scratch buffer behind the previous hash, so
 * a record costs no object, no generic encoder walk and one allocation (its stored bytes).
 * The bytes are msgpackr's for the same record (map16 header, the shortest int, float64 for
 * the rest, str/bin by byte length); a value that is not a string, number, boolean or null
 * (an array, an object) goes through `pack`. One exception: a lone UTF-16 surrogate in a
 * string becomes U+FFFD (EF BF BD, as Buffer writes it), where msgpackr's own loop for
 * strings under 64 units writes CESU bytes (ED A0 80), which are not UTF-8. Neither keeps the
 * value; the chain is over the stored bytes either way. Self-contained: the writer thread
 * evaluates its source text.
 */
export class FlatSealer {
  /** prev (32 raw bytes) then the record body, for the one sha256 call */
  buf: Buffer
  o = 0
  /** the last sealed record's stored bytes and hash */
  bytes: Buffer = Buffer.alloc(0)
  hash = ''

  constructor(private readonly pack: (v: unknown) => Buffer, private readonly sha256Hex: (d: Uint8Array) => string, private readonly binName: string) {
    this.buf = Buffer.allocUnsafeSlow(64 * 1024)
  }

  /**
   * One record: seq, ts, gw, then `names` with their values from vals[p…] (a payload named
   * binName is two values, offset and length into `payloads`), then prev. Returns the index
   * in vals after the record's values; `bytes` and `hash` hold the result.
   */
  seal(seq: number, ts: number, gw: string, names: readonly string[], vals: readonly unknown[], p: number, payloads: Buffer | undefined, prevHex: string): number {
    this.o = 0
    this.room(3 + 32)
    this.buf.write(prevHex, 0, 32, 'hex')
    this.o = 32
    const count = names.length + 4
    const head = this.o
    this.buf[this.o++] = 0xde
    this.buf[this.o++] = count >> 8
    this.buf[this.o++] = count & 0xff
    this.str('seq'); this.num(seq)
    this.str('ts'); this.num(ts)
    this.str('gw'); this.str(gw)
    for (let j = 0; j < names.length; j++) {
      const k = names[j]!
      if (k === this.binName) {
        const at = vals[p++] as number
        const len = vals[p++] as number
        this.str('payload')
        this.bin(payloads!, at, len)
      } else {
        this.str(k)
        this.val(vals[p++])
      }
    }
    this.str('prev')
    if (prevHex.length === 64) {
      // always 64 hex digits (a hash, or the genesis): no UTF-8 length to find out
      this.room(66)
      this.buf[this.o++] = 0xd9
      this.buf[this.o++] = 64
      this.o += this.buf.write(prevHex, this.o, 64, 'latin1')
    } else this.str(prevHex)
    const end = this.o
    const hash = this.sha256Hex(this.buf.subarray(0, end))
    // + fixstr "hash", str8 header (0xd9, 64), 64 hex chars; one more map entry
    const out = Buffer.allocUnsafe(end - head + 7 + 64)
    this.buf.copy(out, 0, head, end)
    out.writeUInt16BE(count + 1, 1)
    let o = end - head
    out[o++] = 0xa4; out[o++] = 0x68; out[o++] = 0x61; out[o++] = 0x73; out[o++] = 0x68
    out[o++] = 0xd9; out[o++] = 64
    out.write(hash, o, 'latin1')
    this.bytes = out
    this.hash = hash
    // one large record (a payload of many MiB) must not keep its scratch for the thread's life:
    // past 1 MiB, and four times what this record needed, it goes back to 64 KiB
    // (literals: the writer thread evaluates this class's source, without the module around it)
    if (this.buf.length > 1024 * 1024 && end * 4 < this.buf.length) this.buf = Buffer.allocUnsafeSlow(64 * 1024)
    return p
  }

  private room(n: number): void {
    if (this.o + n <= this.buf.length) return
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.o + n + 1024))
    this.buf.copy(grown, 0, 0, this.o)
    this.buf = grown
  }

  private val(v: unknown): void {
    switch (typeof v) {
      case 'string': return this.str(v)
      case 'number': return this.num(v)
      case 'boolean': this.room(1); this.buf[this.o++] = v ? 0xc3 : 0xc2; return
      default: {
        if (v === null) { this.room(1); this.buf[this.o++] = 0xc0; return }
        if (v instanceof Uint8Array) return this.bin(v, 0, v.byteLength)
        const b = this.pack(v)
        this.room(b.length)
        this.buf.set(b, this.o)
        this.o += b.length
      }
    }
  }

  private str(s: string): void {
    const len = s.length
    if (len < 0x100) {
      // ASCII up to 255 (keys, ids, topics): byte by byte, no call out; its header is known
      // before the bytes (one byte a character)
      const h = len < 32 ? 1 : 2
      this.room(h + len)
      const buf = this.buf
      let o = this.o + h
      let i = 0
      for (; i < len; i++) {
        const c = s.charCodeAt(i)
        if (c >= 0x80) break
        buf[o++] = c
      }
      if (i === len) {
        if (h === 1) buf[this.o] = 0xa0 | len
        else { buf[this.o] = 0xd9; buf[this.o + 1] = len }
        this.o = o
        return
      }
    }
    const n = Buffer.byteLength(s, 'utf8')
    this.room(5 + n)
    const buf = this.buf
    if (n < 32) buf[this.o++] = 0xa0 | n
    else if (n < 0x100) { buf[this.o++] = 0xd9; buf[this.o++] = n }
    else if (n < 0x10000) { buf[this.o++] = 0xda; buf[this.o++] = n >> 8; buf[this.o++] = n & 0xff }
    else { buf[this.o++] = 0xdb; buf.writeUInt32BE(n, this.o); this.o += 4 }
    this.o += buf.write(s, this.o, 'utf8')
  }

  private num(v: number): void {
    this.room(9)
    const buf = this.buf
    if (v >>> 0 === v) {
      if (v < 0x80) buf[this.o++] = v
      else if (v < 0x100) { buf[this.o++] = 0xcc; buf[this.o++] = v }
      else if (v < 0x10000) { buf[this.o++] = 0xcd; buf[this.o++] = v >> 8; buf[this.o++] = v & 0xff }
      else { buf[this.o++] = 0xce; buf.writeUInt32BE(v, this.o); this.o += 4 }
    } else if (v >> 0 === v) {
      if (v >= -0x20) buf[this.o++] = v & 0xff
      else if (v >= -0x80) { buf[this.o++] = 0xd0; buf[this.o++] = v & 0xff }
      else if (v >= -0x8000) { buf[this.o++] = 0xd1; buf.writeInt16BE(v, this.o); this.o += 2 }
      else { buf[this.o++] = 0xd2; buf.writeInt32BE(v, this.o); this.o += 4 }
    } else {
      buf[this.o++] = 0xcb
      buf.writeDoubleBE(v, this.o)
      this.o += 8
    }
  }

  private bin(src: Uint8Array, at: number, len: number): void {
    this.room(5 + len)
    const buf = this.buf
    if (len < 0x100) { buf[this.o++] = 0xc4; buf[this.o++] = len }
    else if (len < 0x10000) { buf[this.o++] = 0xc5; buf[this.o++] = len >> 8; buf[this.o++] = len & 0xff }
    else { buf[this.o++] = 0xc6; buf.writeUInt32BE(len, this.o); this.o += 4 }
    buf.set(src.subarray(at, at + len), this.o)
    this.o += len
  }
}

/** fields the journal sets itself (SPEC §7); compared, not looked up in a Set: a record's ~12 names are tested on every append */
export const reserved = (k: string): boolean => k === 'seq' || k === 'ts' || k === 'gw' || k === 'prev' || k === 'hash'

let sealer: FlatSealer | undefined

/**
 * Seals one record object `{seq, ts, gw, …fields, prev}` (prev = prevHex) as the journal's
 * writer does, into its stored bytes and hash; for tools and tests that build records by hand.
 * seq, ts and gw are required; they go first and prev last whatever the object's key order,
 * and undefined fields are left out (as the journal leaves them out).
 */
export function sealRecord(record: Record<string, unknown>, prevHex: string): { bytes: Buffer; hash: string } {
  sealer ??= new FlatSealer((v) => packr.pack(v), (d) => createHash('sha256').update(d).digest('hex'), '\u0000none')
  const names: string[] = []
  const vals: unknown[] = []
  for (const k in record) {
    if (reserved(k) || record[k] === undefined) continue
    names.push(k)
    vals.push(record[k])
  }
  sealer.seal(record.seq as number, record.ts as number, record.gw as string, names, vals, 0, undefined, prevHex)
  return { bytes: sealer.bytes, hash: sealer.hash }
}

export interface OpenedRecord {
  readonly record: JournalRecord
  /** sha256(prev ‖ body) recomputed from the bytes */
  readonly computed: string
}

/** Decodes stored bytes and recomputes their hash; throws on bytes that are not a record. */
export function openRecord(bytes: Uint8Array): OpenedRecord {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const record = packr.unpack(buf) as JournalRecord
  if (!record || typeof record !== 'object' || typeof record.prev !== 'string') throw new Error('not a journal record')
  const tail = buf.subarray(buf.length - HASH_TAIL_BYTES)
  if (!tail.subarray(0, HASH_KEY.length).equals(HASH_KEY) || tail[HASH_KEY.length] !== 0xd9 || tail[HASH_KEY.length + 1] !== 64) {
    throw new Error('hash is not the last entry of the record')
  }
  const body = Buffer.from(buf.subarray(0, buf.length - HASH_TAIL_BYTES))
  bumpMapCount(body, -1)
  return { record, computed: chainHash(record.prev, body) }
}

/** The hash a stored record claims (its last 64 bytes), without decoding it. */
export function storedHash(bytes: Uint8Array): string {
  if (bytes.byteLength < 64) throw new Error(`a stored record of ${bytes.byteLength} bytes is too short to end with a hash`)
  return Buffer.from(bytes.buffer, bytes.byteOffset + bytes.byteLength - 64, 64).toString('latin1')
}

export function decodeRecord(bytes: Uint8Array): JournalRecord {
  return packr.unpack(bytes) as JournalRecord
}
