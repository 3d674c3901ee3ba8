import { promisify } from 'node:util'
import { constants, gunzip, gzip } from 'node:zlib'
import { packr } from './codec.js'

const gzipAsync = promisify(gzip)
const gunzipAsync = promisify(gunzip)

/**
 * One shipped batch (the payload on `upstream.audit.topic`): gzip(msgpack(AuditBatch)).
 * Records travel as their stored bytes so the receiver recomputes each hash exactly as
 * the gateway did (codec.ts); `checkpoint` is the gateway-signed JWS of `{gw, seq, hash}`
 * for the batch's last record. The receiver deduplicates by seq (delivery is at least once).
 */
export interface AuditBatch {
  readonly v: 1
  readonly gw: string
  readonly fleet: string
  readonly first: number
  readonly last: number
  readonly records: Uint8Array[]
  readonly checkpoint: string
}

/**
 * Level 1 (fastest): on a bridged stream every journal record is shipped, and level 6 cost
 * 1.95 µs of CPU per record against 0.75 at level 1, for 5 % fewer bytes (records carry 32
 * incompressible hash bytes each). One output chunk for a whole batch: fewer round trips
 * between the zlib thread and the event loop.
 */
const GZIP = { level: constants.Z_BEST_SPEED, chunkSize: 256 * 1024 }

export function encodeBatch(b: AuditBatch): Promise<Buffer> {
  return gzipAsync(packr.pack(b), GZIP)
}

/**
 * The records of a batch as msgpack writes them (each a bin: header, then the stored bytes),
 * appended one by one into one growing buffer: the shipper copies each record once, straight
 * from LMDB's read buffer, instead of into a Buffer of its own and again into the packed batch.
 */
export class RecordFrames {
  #buf: Buffer
  #at = HEAD_ROOM
  /** where the last record's bytes start */
  #lastAt = HEAD_ROOM
  count = 0
  /** the record bytes held, without the bin headers */
  bytes = 0

  readonly #initial: number

  constructor(initialBytes = 64 * 1024) {
    this.#initial = initialBytes
    this.#buf = Buffer.allocUnsafeSlow(HEAD_ROOM + initialBytes)
  }

  /** Empties it for the next batch (call only once the last batch is encoded): the buffer is kept, unless one huge record grew it past KEEP_BYTES. */
  reset(): void {
    if (this.#buf.length > KEEP_BYTES) this.#buf = Buffer.allocUnsafeSlow(HEAD_ROOM + this.#initial)
    this.#at = HEAD_ROOM
    this.#lastAt = HEAD_ROOM
    this.count = 0
    this.bytes = 0
  }

  /** Appends one record; `length` is the record's (a view of LMDB's shared buffer says it, its ArrayBuffer is larger). */
  add(record: Uint8Array): void {
    const length = record.length
    this.#reserve(5 + length)
    const b = this.#buf
    let o = this.#at
    if (length < 0x100) { b[o++] = 0xc4; b[o++] = length } else if (length < 0x10000) { b[o++] = 0xc5; b.writeUInt16BE(length, o); o += 2 } else { b[o++] = 0xc6; b.writeUInt32BE(length, o); o += 4 }
    // LMDB's shared read buffer: set() would copy all of its ArrayBuffer's view (its byteLength), not `length` bytes
    b.set(record.byteLength === length ? record : Uint8Array.prototype.subarray.call(record, 0, length), o)
    this.#lastAt = o
    this.#at = o + length
    this.count++
    this.bytes += length
  }

  /** bytes the buffer holds now */
  get capacity(): number { return this.#buf.length }

  /** the frames so far (a view, valid until reset) */
  get frames(): Buffer { return this.#buf.subarray(HEAD_ROOM, this.#at) }

  /** the last record added, its bytes without the bin header (a view, valid until reset) */
  get lastRecord(): Buffer { return this.#buf.subarray(this.#lastAt, this.#at) }

  /** `prefix` then the frames, as one buffer: written into the room kept before the frames when it fits (a view, valid until reset) */
  behind(prefix: Buffer): Buffer {
    if (prefix.length > HEAD_ROOM) return Buffer.concat([prefix, this.frames])
    prefix.copy(this.#buf, HEAD_ROOM - prefix.length)
    return this.#buf.subarray(HEAD_ROOM - prefix.length, this.#at)
  }

  #reserve(n: number): void {
    if (this.#at + n <= this.#buf.length) return
    const next = Buffer.allocUnsafeSlow(Math.max(this.#buf.length * 2, this.#at + n))
    this.#buf.copy(next, 0, 0, this.#at)
    this.#buf = next
  }
}

/**
 * encodeBatch() for records already framed (RecordFrames): the same map, decoded the same by
 * decodeBatch(), with `records` as its last entry.
 */
export function encodeFramedBatch(b: Omit<AuditBatch, 'records'>, records: RecordFrames): Promise<Buffer> {
  const head = packr.pack({ v: b.v, gw: b.gw, fleet: b.fleet, first: b.first, last: b.last, checkpoint: b.checkpoint })
  // one more entry in the map's count: msgpackr writes objects' maps as map16 (0xde, count), a fixmap would be 0x86
  if (head[0] === 0xde && head.readUInt16BE(1) === 6) head.writeUInt16BE(7, 1)
  else if (head[0] === 0x86) head[0] = 0x87
  else throw new Error('audit batch: unexpected map header')
  const n = records.count
  const arr = n < 16 ? Buffer.from([0x90 | n]) : n < 0x10000 ? Buffer.from([0xdc, n >> 8, n & 0xff]) : Buffer.from([0xdd, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff])
  return gzipAsync(records.behind(Buffer.concat([head, RECORDS_KEY, arr])), GZIP)
}

/** a batch of records is at most ~1 MiB (the shipper's MAX_BATCH_BYTES), but one record may be larger: a buffer grown past this is not kept */
const KEEP_BYTES = 4 * 1024 * 1024

/** room kept before the frames for the rest of the batch (its ids, counts and checkpoint: a few hundred bytes), so it need not be copied whole */
const HEAD_ROOM = 1024

/** fixstr "records" */
const RECORDS_KEY = Buffer.from([0xa7, ...Buffer.from('records')])

/** Throws on anything that is not a well-formed batch (hostile input from the wire). */
export async function decodeBatch(payload: Buffer, maxBytes = 64 * 1024 * 1024): Promise<AuditBatch> {
  const raw = await gunzipAsync(payload, { maxOutputLength: maxBytes })
  const b = packr.unpack(raw) as AuditBatch
  if (!b || b.v !== 1 || typeof b.gw !== 'string' || !Number.isInteger(b.first) || !Number.isInteger(b.last) || !Array.isArray(b.records) || typeof b.checkpoint !== 'string') {
    throw new Error('not an audit batch')
  }
  return b
}
