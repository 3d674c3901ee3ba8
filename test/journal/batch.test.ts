import t from 'tap'
import { decodeBatch, encodeBatch, encodeFramedBatch, RecordFrames } from '../../src/journal/batch.js'
import { tempDir } from '../helpers/gateway.js'
import { openJournalDbs } from '../../src/journal/store.js'
import { storedHash } from '../../src/journal/codec.js'
import { openDataEnv } from '../../src/storage/env.js'

const head = { v: 1 as const, gw: 'gw-batch', fleet: 'acme', first: 7, last: 0, checkpoint: 'eyJhbGciOiJFZERTQSJ9.e30.sig' }

/** records whose sizes straddle each bin header's limits (bin8, bin16, bin32) */
const sizes = [0, 1, 255, 256, 65_535, 65_536, 70_000]

t.test('a framed batch decodes to what encodeBatch of the same records decodes to', async (t) => {
  // array headers: fixarray (< 16), array16, array32 (65,536 records and more)
  for (const count of [1, 15, 16, 65_535, 65_536]) {
    const records = Array.from({ length: count }, (_, i) => Buffer.alloc(count > 100 ? i % 3 : sizes[i % sizes.length]!, i & 0xff))
    const frames = new RecordFrames(16)
    for (const r of records) frames.add(r)
    const b = { ...head, last: head.first + count - 1 }
    const framed = await decodeBatch(await encodeFramedBatch(b, frames))
    const packed = await decodeBatch(await encodeBatch({ ...b, records }))
    t.same(framed, packed, `${count} records`)
    t.equal(framed.records.length, count)
    t.ok(framed.records.every((r, i) => Buffer.compare(Buffer.from(r), records[i]!) === 0), `${count} records, byte for byte`)
  }
})

t.test('a head larger than the room kept before the frames (a long checkpoint) is joined by copying', async (t) => {
  for (const checkpoint of ['c'.repeat(900), 'c'.repeat(5000)]) {
    const frames = new RecordFrames()
    frames.add(Buffer.from('one'))
    frames.add(Buffer.from('two'))
    const d = await decodeBatch(await encodeFramedBatch({ ...head, last: 8, checkpoint }, frames))
    t.equal(d.checkpoint, checkpoint)
    t.same(d.records.map((r) => Buffer.from(r).toString()), ['one', 'two'])
  }
})

t.test('reset() empties the frames for the next batch; the buffer grows as needed', async (t) => {
  const frames = new RecordFrames(8)
  frames.add(Buffer.from('first batch'))
  frames.reset()
  t.equal(frames.count, 0)
  t.equal(frames.bytes, 0)
  frames.add(Buffer.alloc(100_000, 1))
  frames.add(Buffer.from('two'))
  t.equal(frames.count, 2)
  t.equal(frames.bytes, 100_003)
  t.equal(frames.lastRecord.toString(), 'two', 'the last record, without its bin header')
  t.throws(() => storedHash(frames.lastRecord), { message: /3 bytes is too short to end with a hash/ }, 'a record too short to hold a hash is refused, not read past its start')
  // one huge record grows the buffer; it is not kept past the batch
  frames.reset()
  frames.add(Buffer.alloc(5 * 1024 * 1024))
  t.ok(frames.capacity > 5 * 1024 * 1024)
  frames.reset()
  t.ok(frames.capacity < 1024 * 1024, 'a buffer grown past 4 MiB is let go at reset')
  frames.add(Buffer.alloc(100_000, 1))
  frames.add(Buffer.from('two'))
  const d = await decodeBatch(await encodeFramedBatch({ ...head, last: 8 }, frames))
  t.same(d.records.map((r) => r.length), [100_000, 3])
})

t.test('records read through recordViews (LMDB\'s shared buffer, larger than the value) are framed by their own length', async (t) => {
  const env = openDataEnv(tempDir(t))
  t.teardown(() => env.release())
  const dbs = openJournalDbs(env)
  // over 16 MiB (lmdb-js' shared read buffer) a value takes another read path than the small ones around it
  const values = [Buffer.from('short'), Buffer.alloc(300 * 1024, 0x61), Buffer.alloc(17 * 1024 * 1024, 0x62), Buffer.from('after the large one')]
  await env.root.transaction(() => { values.forEach((v, i) => dbs.records.put(i + 1, v)) })
  const frames = new RecordFrames()
  for (const { value } of dbs.recordViews.getRange({ start: 1, end: 5 })) frames.add(value)
  t.equal(frames.count, 4)
  const d = await decodeBatch(await encodeFramedBatch({ ...head, last: 9 }, frames))
  t.same(d.records.map((r) => Buffer.from(r)), values)
  const small = dbs.recordViews.get(1)!
  t.ok(small.buffer.byteLength > small.length, 'a view: its buffer is larger than the value')
  t.ok(small.buffer.byteLength <= 16 * 1024 * 1024, `the shared read buffer did not grow for the large value (${small.buffer.byteLength} bytes)`)
})
