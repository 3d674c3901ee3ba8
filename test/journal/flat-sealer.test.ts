import t from 'tap'
import { createHash } from 'node:crypto'
import { FlatSealer, GENESIS, bumpMapCount, openRecord, packr } from '../../src/journal/codec.js'

const BIN = '\u0000payload'

/** The encoding before FlatSealer: msgpackr over the record object, hash appended (SPEC §7). */
function reference(rec: Record<string, unknown>, prevHex: string): { bytes: Buffer; hash: string } {
  const body = packr.pack(rec)
  const hash = createHash('sha256').update(Buffer.from(prevHex, 'hex')).update(body).digest('hex')
  const bytes = Buffer.concat([body, Buffer.from([0xa4, 0x68, 0x61, 0x73, 0x68, 0xd9, 64]), Buffer.from(hash, 'latin1')])
  bumpMapCount(bytes, 1)
  return { bytes, hash }
}

const sha = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex')

// deterministic variety: every branch of the encoder, at its boundaries
const strings = ['', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(70_000), 'é', 'é'.repeat(15), 'é'.repeat(16), 'ü'.repeat(127), 'ü'.repeat(128), '日本'.repeat(11), '😀 emoji', 'a\u0000b', 'tab\there']
const numbers = [0, -0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 1.5, 0.1, -2.25, 1764146000000, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity]
const others: unknown[] = [true, false, null, ['a', 'b'], { path: 'x.y', action: 'redact' }, [{ a: 1 }], []]
const payloads = [0, 1, 255, 256, 65535, 65536].map((n) => Buffer.alloc(n, n & 0xff))

t.test('FlatSealer writes msgpackr\'s bytes for every kind of field', async (t) => {
  const sealer = new FlatSealer((v) => packr.pack(v), sha, BIN)
  let prev = GENESIS
  let seq = 1
  const values: unknown[] = [...strings, ...numbers, ...others]
  for (const v of values) {
    const rec = { seq, ts: 1764146000000 + seq, gw: 'gw-1', type: 'publish', clientId: 'c', field: v, prev }
    sealer.seal(seq, rec.ts, rec.gw, ['type', 'clientId', 'field'], ['publish', 'c', v], 0, undefined, prev)
    const want = reference(rec, prev)
    t.same(sealer.bytes.toString('hex'), want.bytes.toString('hex'), `${typeof v} ${String(v).slice(0, 20)}`)
    t.equal(sealer.hash, want.hash)
    const opened = openRecord(sealer.bytes)
    t.equal(opened.computed, sealer.hash, 'the chain checks from the stored bytes')
    prev = sealer.hash
    seq++
  }
})

t.test('payloads from the group buffer, and records of up to 40 fields', async (t) => {
  const sealer = new FlatSealer((v) => packr.pack(v), sha, BIN)
  let prev = GENESIS
  for (const [i, p] of payloads.entries()) {
    const group = Buffer.concat([Buffer.from('xyz'), p, Buffer.from('tail')])
    const vals = ['publish', 'topic/a', 3, p.length, 1]
    const next = sealer.seal(i + 1, 5, 'gw', ['type', 'topic', BIN, 'qos'], vals, 0, group, prev)
    t.equal(next, vals.length, 'returns the index after the record\'s values')
    const want = reference({ seq: i + 1, ts: 5, gw: 'gw', type: 'publish', topic: 'topic/a', payload: p, qos: 1, prev }, prev)
    t.same(sealer.bytes, want.bytes, `payload of ${p.length} bytes`)
    prev = sealer.hash
  }
  for (const n of [10, 11, 12, 40]) {
    const names = Array.from({ length: n }, (_, i) => (i === 0 ? 'type' : `f${i}`))
    const vals = names.map((k, i) => (i === 0 ? 'publish' : i % 2 ? `v${i}` : i))
    const rec: Record<string, unknown> = { seq: n, ts: 1, gw: 'g' }
    names.forEach((k, i) => { rec[k] = vals[i] })
    rec.prev = prev
    sealer.seal(n, 1, 'g', names, vals, 0, undefined, prev)
    t.same(sealer.bytes, reference(rec, prev).bytes, `${n + 4} fields`)
    t.equal(openRecord(sealer.bytes).computed, sealer.hash)
  }
})

t.test('a lone surrogate is written as U+FFFD, valid UTF-8 (msgpackr writes CESU bytes under 64 units)', async (t) => {
  const sealer = new FlatSealer((v) => packr.pack(v), sha, BIN)
  for (const s of ['\ud800', 'ab\udc00cd', 'x'.repeat(40) + '\ud83d', '\ud800'.repeat(70)]) {
    sealer.seal(1, 2, 'gw', ['type', 'sub'], ['connect', s], 0, undefined, GENESIS)
    const want = Buffer.from(s, 'utf8')
    t.ok(sealer.bytes.includes(want), `the string's bytes are Buffer's UTF-8 (${want.length} bytes)`)
    t.notOk(sealer.bytes.includes(Buffer.from([0xed, 0xa0, 0x80])) || sealer.bytes.includes(Buffer.from([0xed, 0xb0, 0x80])), 'no CESU surrogate bytes')
    const opened = openRecord(sealer.bytes)
    t.equal(opened.computed, sealer.hash, 'the chain checks')
    t.equal(opened.record.sub, want.toString('utf8'), 'decodes to the U+FFFD form')
  }
})

t.test('a scratch buffer outgrown mid-record keeps what was written', async (t) => {
  const sealer = new FlatSealer((v) => packr.pack(v), sha, BIN)
  sealer.buf = Buffer.alloc(40)
  const big = 'y'.repeat(100_000)
  sealer.seal(1, 2, 'gw', ['type', 'a', 'b'], ['publish', 'é'.repeat(50), big], 0, undefined, GENESIS)
  const want = reference({ seq: 1, ts: 2, gw: 'gw', type: 'publish', a: 'é'.repeat(50), b: big, prev: GENESIS }, GENESIS)
  t.same(sealer.bytes, want.bytes)
})

t.test('the scratch buffer goes back to 64 KiB after one large record', async (t) => {
  const sealer = new FlatSealer((v) => packr.pack(v), sha, BIN)
  const big = Buffer.alloc(8 * 2 ** 20, 7)
  sealer.seal(1, 2, 'gw', ['type', 'blob'], ['publish', big], 0, undefined, GENESIS)
  t.ok(sealer.buf.length > 8 * 2 ** 20, 'grown for the large record')
  const first = sealer.hash
  sealer.seal(2, 3, 'gw', ['type', 'topic'], ['publish', 'a/b'], 0, undefined, first)
  t.equal(sealer.buf.length, 64 * 1024, 'back to 64 KiB for a small one')
  t.same(sealer.bytes, reference({ seq: 2, ts: 3, gw: 'gw', type: 'publish', topic: 'a/b', prev: first }, first).bytes, 'and the record is right')
  // a steady run of records of a few hundred KiB keeps its scratch (no reallocation each time)
  const mid = Buffer.alloc(300 * 1024, 1)
  sealer.seal(3, 4, 'gw', ['type', 'blob'], ['publish', mid], 0, undefined, sealer.hash)
  const kept = sealer.buf
  sealer.seal(4, 5, 'gw', ['type', 'blob'], ['publish', mid], 0, undefined, sealer.hash)
  t.equal(sealer.buf, kept, 'kept across records of similar size')
})
