import t from 'tap'
import { Outbox } from '../../src/bridge/outbox.js'
import { ManualClock } from '../../src/clock.js'
import { tempDir } from '../helpers/gateway.js'
import { waitFor } from './util.js'

const limits = { maxMessages: 1000, maxBytes: 1 << 20, onFull: 'drop-oldest' as const }
const p = (s: string) => Buffer.from(s)

t.test('enqueue, take in order, ack removes, rewind resends the unacknowledged', async (t) => {
  const clock = new ManualClock(1_000_000)
  const o = Outbox.open(tempDir(t), limits, clock)
  t.teardown(() => o.close())
  for (let i = 0; i < 10; i++) t.equal(await o.enqueue('t/' + i, p('m' + i), 1, false), true)
  t.equal(o.depth, 10)
  t.equal(o.bytes, 10 * (3 + 2))
  t.equal(o.oldestTs, 1_000_000)
  const a = o.take(4)
  t.same(a.map((m) => m.topic), ['t/0', 't/1', 't/2', 't/3'])
  t.same(a[0]!.payload, p('m0'))
  t.equal(a[0]!.qos, 1)
  const b = o.take(100)
  t.same(b.map((m) => m.topic), ['t/4', 't/5', 't/6', 't/7', 't/8', 't/9'])
  t.equal(o.available, false)
  o.ack(a[1]!.seq)
  o.ack(a[0]!.seq)
  t.equal(o.depth, 8)
  o.rewind()
  t.same(o.take(3).map((m) => m.topic), ['t/2', 't/3', 't/4'], 'unacked come back in order')
  t.equal(o.resent, 3)
  o.ack(a[0]!.seq)
  t.equal(o.depth, 8, 'a second ack is a no-op')
})

t.test('survives a reopen: same messages, same order, sizes restored', async (t) => {
  const dir = tempDir(t)
  const o = Outbox.open(dir, limits, new ManualClock())
  for (let i = 0; i < 100; i++) await o.enqueue('t/' + i, p(String(i)), (i % 2) as 0 | 1, i === 5)
  const first = o.take(10)
  for (const m of first.slice(0, 5)) o.ack(m.seq)
  await o.close()
  const o2 = Outbox.open(dir, limits, new ManualClock())
  t.teardown(() => o2.close())
  t.equal(o2.depth, 95)
  const all = o2.take(1000)
  t.same(all.map((m) => m.payload.toString()), Array.from({ length: 95 }, (_, i) => String(i + 5)))
  t.equal(all[0]!.retain, true)
  t.equal(all[1]!.qos, 0)
  await o2.enqueue('next', p('x'), 1, false)
  t.equal(o2.take(10)[0]!.topic, 'next', 'new messages queue after the old ones')
})

t.test('drop-oldest by count and by bytes; oversized messages dropped; acks of dropped messages ignored', async (t) => {
  const drops: number[] = []
  const o = Outbox.open(tempDir(t), { maxMessages: 3, maxBytes: 40, onFull: 'drop-oldest' }, new ManualClock())
  t.teardown(() => o.close())
  o.onDrop = (count) => drops.push(count)
  const inflight = (await Promise.all([0, 1, 2].map((i) => o.enqueue('t', p('m' + i), 1, false))), o.take(1))
  await o.enqueue('t', p('m3'), 1, false)
  await o.enqueue('t', p('m4'), 1, false)
  t.equal(o.depth, 3)
  t.same(drops, [1, 1])
  o.ack(inflight[0]!.seq)
  t.equal(o.depth, 3, 'the PUBACK of a dropped message changes nothing')
  o.rewind()
  t.same(o.take(10).map((m) => m.payload.toString()), ['m2', 'm3', 'm4'])
  t.equal(await o.enqueue('t', Buffer.alloc(100), 1, false), false, 'larger than maxBytes: dropped itself')
  await o.enqueue('t', Buffer.alloc(36), 1, false)
  t.ok(o.bytes <= 40, `bytes ${o.bytes} within maxBytes`)
  t.same(drops, [1, 1, 1, 2], 'the 37-byte message pushed out two small ones (one for the count, one for the bytes)')
})

t.test('block: writable false at the limit, nothing dropped', async (t) => {
  const o = Outbox.open(tempDir(t), { maxMessages: 2, maxBytes: 1000, onFull: 'block' }, new ManualClock())
  t.teardown(() => o.close())
  await o.enqueue('t', p('a'), 1, false)
  t.equal(o.writable, true)
  await o.enqueue('t', p('b'), 1, false)
  t.equal(o.writable, false)
  const [m] = o.take(1)
  o.ack(m!.seq)
  t.equal(o.writable, true)
})

t.test('long runs compact the index and keep order', async (t) => {
  const o = Outbox.open(tempDir(t), { maxMessages: 1_000_000, maxBytes: 1 << 30, onFull: 'drop-oldest' }, new ManualClock())
  t.teardown(() => o.close())
  let next = 0
  for (let round = 0; round < 3; round++) {
    await Promise.all(Array.from({ length: 5000 }, (_, i) => o.enqueue('t', p(String(round * 5000 + i)), 1, false)))
    for (;;) {
      const batch = o.take(700)
      if (batch.length === 0) break
      for (const m of batch) {
        if (Number(m.payload.toString()) !== next) t.fail(`out of order at ${next}`)
        next++
        o.ack(m.seq)
      }
    }
  }
  t.equal(next, 15000)
  t.equal(o.depth, 0)
  t.equal(o.bytes, 0)
})

t.test('held in memory until taken: a copy of the payload; past the memory budget, and after a rewind, read from LMDB the same', async (t) => {
  const o = Outbox.open(tempDir(t), { maxMessages: 1e6, maxBytes: 1 << 30, onFull: 'drop-oldest' }, new ManualClock())
  t.teardown(() => o.close())
  const src = p('original')
  await o.enqueue('t/copy', src, 1, false)
  src.write('mutated!')
  const first = o.take(1)[0]!
  t.equal(first.payload.toString(), 'original', 'the outbox keeps its own bytes, not a view of the caller\'s buffer')
  o.ack(first.seq)
  // 64 KiB messages: the first 128 fit the 8 MiB held in memory, the rest only in LMDB
  const big = (i: number) => Buffer.alloc(64 * 1024 - 6, String.fromCharCode(97 + (i % 26)))
  const n = 200
  await Promise.all(Array.from({ length: n }, (_, i) => o.enqueue('t/big', big(i), 1, i % 3 === 0)))
  const taken = o.take(1000)
  t.equal(taken.length, n)
  t.ok(taken.every((m, i) => m.payload.equals(big(i)) && m.retain === (i % 3 === 0) && m.qos === 1), 'in order, whole, flags kept, from memory and from LMDB alike')
  t.ok(taken.every((m, i) => i === 0 || m.seq === taken[i - 1]!.seq + 1), 'consecutive sequences')
  for (const m of taken.slice(0, 50)) o.ack(m.seq)
  o.rewind()
  const again = o.take(1000)
  t.same(again.map((m) => m.seq), taken.slice(50).map((m) => m.seq), 'a rewind hands out the unacknowledged again')
  t.ok(again.every((m, i) => m.payload.equals(taken[50 + i]!.payload)), 'resent from LMDB with the same payloads')
  t.equal(o.resent, n - 50)
  for (const m of again) o.ack(m.seq)
  t.equal(o.depth, 0)
  // the memory budget is free again: new messages are held and taken as before
  await o.enqueue('t/after', p('z'), 0, false)
  t.same(o.take(10).map((m) => [m.topic, m.payload.toString(), m.qos]), [['t/after', 'z', 0]])
})

t.test('via the cloud: taken at once, safe on the cloud\'s PUBACK, nothing written', async (t) => {
  const dir = tempDir(t)
  const o = Outbox.open(dir, limits, new ManualClock())
  const settled: number[] = []
  const safe = [0, 1, 2].map((i) => o.enqueue('t/' + i, p('m' + i), 1, false, true).then((v) => { settled.push(i); return v }))
  t.equal(o.available, true, 'takeable without waiting for a commit')
  const sent = o.take(10)
  t.same(sent.map((m) => m.topic), ['t/0', 't/1', 't/2'])
  await new Promise((r) => setTimeout(r, 20))
  t.same(settled, [], 'not safe before the cloud acknowledges')
  o.ack(sent[0]!.seq)
  o.ack(sent[1]!.seq)
  t.equal(await safe[0], true)
  t.equal(await safe[1], true)
  t.same(settled, [0, 1])
  t.equal(o.written, 0, 'nothing written')
  t.equal(o.depth, 1)
  o.rewind()
  t.same(o.take(10).map((m) => m.payload.toString()), ['m2'], 'the unacknowledged one is sent again from memory')
  o.ack(sent[2]!.seq)
  await safe[2]
  await o.close()
  const again = Outbox.open(dir, limits, new ManualClock())
  t.teardown(() => again.close())
  t.equal(again.depth, 0, 'the cloud has them all: nothing left on disk')
})

t.test('via the cloud, not acknowledged: written in queue order with the stored ones, safe once written; a PUBACK never overtakes an earlier one', async (t) => {
  const dir = tempDir(t)
  const o = Outbox.open(dir, limits, new ManualClock())
  const order: string[] = []
  const track = (name: string, pr: Promise<boolean>) => pr.then((v) => { order.push(name); return v })
  await o.enqueue('t/a', p('a'), 1, false)
  const b = track('b', o.enqueue('t/b', p('b'), 1, false, true))
  const c = track('c', o.enqueue('t/c', p('c'), 1, false, true))
  t.equal(o.sentUpTo, 0)
  t.same(o.take(10).map((m) => m.topic), ['t/a', 't/b', 't/c'])
  t.equal(o.sentUpTo, 3)
  // stored first (e.g. the sweep found the cloud slow) while b and c wait for the cloud
  const d = track('d', o.enqueue('t/d', p('d'), 1, false))
  await new Promise((r) => setTimeout(r, 30))
  t.same(order, [], 'd is written, but its PUBACK waits for b and c')
  t.equal(o.storeUnacknowledged(2), 1, 'only b: c was queued after sequence 2')
  t.equal(await b, true)
  t.same(order, ['b'])
  await waitFor(() => o.written === 3, 'a, b and d written')
  t.equal(o.storeUnacknowledged(), 1, 'c')
  await Promise.all([c, d])
  t.same(order, ['b', 'c', 'd'])
  t.equal(o.written, 4)
  // a power cut now: what was acknowledged locally is all on disk, in order
  await o.close()
  const again = Outbox.open(dir, limits, new ManualClock())
  t.teardown(() => again.close())
  t.same(again.take(10).map((m) => m.payload.toString()), ['a', 'b', 'c', 'd'])
})

t.test('a resend after a rewind mixes LMDB and memory in order; close writes what only memory held', async (t) => {
  const dir = tempDir(t)
  const o = Outbox.open(dir, limits, new ManualClock())
  for (const s of ['1', '2', '3']) await o.enqueue('t', p(s), 1, false)
  t.same(o.take(10).map((m) => m.payload.toString()), ['1', '2', '3'], 'stored ones taken (and let go from memory)')
  void o.enqueue('t', p('4'), 1, false, true)
  void o.enqueue('t', p('5'), 1, false, true)
  // their PUBACKs wait for 4 and 5: wait for the writes instead
  void o.enqueue('t', p('6'), 1, false)
  void o.enqueue('t', p('7'), 1, false)
  await waitFor(() => o.written === 5, 'two more written')
  await new Promise((r) => setTimeout(r, 50))
  t.same(o.take(10).map((m) => m.payload.toString()), ['4', '5', '6', '7'])
  o.rewind()
  t.same(o.take(10).map((m) => m.payload.toString()), ['1', '2', '3', '4', '5', '6', '7'], 'LMDB, memory, LMDB: queue order')
  o.rewind()
  t.same(o.take(2).map((m) => m.payload.toString()), ['1', '2'], 'a short take stops in LMDB')
  t.same(o.take(3).map((m) => m.payload.toString()), ['3', '4', '5'], 'and goes on into memory')
  await o.close()
  const again = Outbox.open(dir, limits, new ManualClock())
  t.teardown(() => again.close())
  t.same(again.take(10).map((m) => m.payload.toString()), ['1', '2', '3', '4', '5', '6', '7'], 'the two held only in memory were written at close')
})

t.test('via the cloud applies only when no write is pending ahead; drop-oldest settles a dropped one as not delivered', async (t) => {
  const o = Outbox.open(tempDir(t), { maxMessages: 2, maxBytes: 1 << 20, onFull: 'drop-oldest' }, new ManualClock())
  t.teardown(() => o.close())
  const stored = o.enqueue('t', p('s'), 1, false)
  const behind = o.enqueue('t', p('v'), 1, false, true)
  t.equal(o.available, false, 'behind a pending write it is stored first: the drain must not take it before the earlier one')
  await Promise.all([stored, behind])
  t.equal(o.written, 2)
  t.same(o.take(10).map((m) => m.payload.toString()), ['s', 'v'])
  for (const m of o.take(10)) o.ack(m.seq)
  o.rewind()
  for (const m of o.take(10)) o.ack(m.seq)
  t.equal(o.depth, 0)
  const first = o.enqueue('t', p('x'), 1, false, true)
  void o.enqueue('t', p('y'), 1, false, true)
  void o.enqueue('t', p('z'), 1, false, true)
  t.equal(await first, false, 'pushed out before the cloud had it: settled, not delivered')
  t.equal(o.depth, 2)
})

t.test('promises settle in queue order, whichever way each message went (PUBACK order, MQTT-4.6.0-2)', async (t) => {
  const o = Outbox.open(tempDir(t), { maxMessages: 100, maxBytes: 1 << 20, onFull: 'block' }, new ManualClock())
  t.teardown(() => o.close())
  const order: string[] = []
  const track = (name: string, pr: Promise<boolean>) => pr.then(() => { order.push(name) })
  const v = track('v', o.enqueue('t', p('v'), 1, false, true))
  const [m] = o.take(1)
  const s1 = track('s1', o.enqueue('t', p('s1'), 1, false))
  o.ack(m!.seq)
  // s2 is written in the same commit as s1, and settles after it
  const s2 = track('s2', o.enqueue('t', p('s2'), 1, false))
  await Promise.all([v, s1, s2])
  t.same(order, ['v', 's1', 's2'])
  // one held for the cloud holds back the stored ones after it, and they follow it at once
  const later: string[] = []
  const w = o.enqueue('t', p('w'), 1, false, true).then(() => { later.push('w') })
  const x = o.enqueue('t', p('x'), 1, false).then(() => { later.push('x') })
  await waitFor(() => o.written === 3, 'x written')
  await new Promise((r) => setTimeout(r, 20))
  t.same(later, [], 'x is written but waits for w')
  for (const q of o.take(10)) if (q.payload.toString() === 'w') o.ack(q.seq)
  await Promise.all([w, x])
  t.same(later, ['w', 'x'])
})
