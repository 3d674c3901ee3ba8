import { createHash, hash as oneShotHash } from 'node:crypto'
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

/** What sealWith needs: the encoder, sha256, and a scratch buffer it may replace with a larger one. */
export interface SealKit {
  readonly pack: (value: unknown) => Buffer
  readonly sha256Hex: (data: Uint8Array) => string
  scratch: Buffer
}

/**
 * Encodes a record (its last key must be `prev`, holding prevHex), chains it, returns the stored
 * bytes and its hash. Self-contained but for bumpMapCount: the journal's writer thread
 * (writer.ts) evaluates the source text of both, so both threads seal records with this code.
 */
export function sealWith(kit: SealKit, record: Record<string, unknown>, prevHex: string): { bytes: Buffer; hash: string } {
  let body = kit.pack(record)
  // a fixmap of 15 cannot take one more entry in place: re-encode with room (map16)
  if (body[0] === 0x8f) body = Buffer.concat([Buffer.from([0xde, 0, 15]), body.subarray(1)])
  const need = 32 + body.length
  if (kit.scratch.length < need) kit.scratch = Buffer.allocUnsafeSlow(need * 2)
  // one sha256 call over prev ‖ body, no Hash object per record
  kit.scratch.write(prevHex, 0, 32, 'hex')
  body.copy(kit.scratch, 32)
  const hash = kit.sha256Hex(kit.scratch.subarray(0, need))
  // + fixstr "hash", str8 header (0xd9, 64), 64 hex chars
  const bytes = Buffer.allocUnsafe(body.length + 7 + 64)
  body.copy(bytes, 0)
  let o = body.length
  bytes[o++] = 0xa4; bytes[o++] = 0x68; bytes[o++] = 0x61; bytes[o++] = 0x73; bytes[o++] = 0x68
  bytes[o++] = 0xd9; bytes[o++] = 64
  bytes.write(hash, o, 'latin1')
  bumpMapCount(bytes, 1)
  return { bytes, hash }
}

const kit: SealKit = { pack: (v) => packr.pack(v), sha256Hex: (d) => oneShotHash('sha256', d, 'hex'), scratch: Buffer.allocUnsafeSlow(64 * 1024) }

/** Encodes a record (without hash), chains it, returns the stored bytes and its hash. */
export function sealRecord(record: Record<string, unknown>, prevHex: string): { bytes: Buffer; hash: string } {
  return sealWith(kit, record, prevHex)
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
  return Buffer.from(bytes.buffer, bytes.byteOffset + bytes.byteLength - 64, 64).toString('latin1')
}

export function decodeRecord(bytes: Uint8Array): JournalRecord {
  return packr.unpack(bytes) as JournalRecord
}
