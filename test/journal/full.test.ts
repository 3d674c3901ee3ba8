import t from 'tap'
import { tempDir } from '../helpers/gateway.js'
import { openJournal } from './helpers.js'
import { decodeRecord } from '../../src/journal/codec.js'
import { verifyJournal } from '../../src/journal/verify.js'

const payload = Buffer.alloc(200, 0x61)
const MAX = 32 * 1024

t.test('onFull: block — writable turns false when full of unshipped records, shipping frees room', async (t) => {
  const dir = tempDir(t)
  const j = openJournal(t, dir, { maxBytes: MAX, onFull: 'block' })
  let n = 0
  while (j.writable && n < 10_000) {
    await j.append({ type: 'publish', topic: 't', payload })
    n++
  }
  t.notOk(j.writable, 'blocked')
  t.ok(n > 50 && n < 200, `filled after ${n} records`)
  t.ok(j.bytes <= MAX + 1024, 'at most the record that tripped it over maxBytes')
  // refusals are still journaled (reserve past maxBytes), until the hard limit
  const denied = await j.append({ type: 'publish_denied', topic: 't', reason: 'journal_full' })
  t.equal(denied, n + 1)
  let refused = 0
  for (let i = 0; i < 2000 && refused === 0; i++) await j.append({ type: 'connect', clientId: 'x', payload }).catch(() => refused++)
  t.equal(refused, 1, 'past the hard limit appends reject')

  await j.markShipped(j.committedSeq)
  t.ok(j.writable, 'shipped records pruned: writable again')
  t.ok(j.bytes < MAX)
  await j.flush()
  const last = decodeRecord(j.dbs.records.getBinary(j.lastSeq)!)
  t.equal(last.type, 'buffer_dropped', 'the refused records are counted')
  t.equal(last.count, 1)
  const v = await verifyJournal(j.dbs)
  t.ok(v.ok, v.problem ?? "verifies")
})

t.test('onFull: block — the blocked state is recomputed at open', async (t) => {
  const dir = tempDir(t)
  const j = openJournal(t, dir, { maxBytes: MAX, onFull: 'block' })
  while (j.writable) await j.append({ type: 'publish', topic: 't', payload })
  await j.close()
  const j2 = openJournal(t, dir, { maxBytes: MAX, onFull: 'block' })
  t.notOk(j2.writable, 'reopened full of unshipped records: still blocked')
  await j2.markShipped(j2.lastSeq)
  t.ok(j2.writable, 'shipping unblocks it')
})

t.test('onFull: drop-oldest — the oldest unshipped records go, a buffer_dropped record counts them', async (t) => {
  const j = openJournal(t, tempDir(t), { maxBytes: MAX, onFull: 'drop-oldest' })
  for (let i = 0; i < 400; i++) await j.append({ type: 'publish', topic: `t/${i}`, payload })
  t.ok(j.writable, 'never blocks')
  t.ok(j.bytes <= MAX, 'stays under maxBytes')
  await j.flush()
  let dropped = 0
  let kinds = 0
  for (const { value } of j.dbs.records.getRange()) {
    const r = decodeRecord(value)
    if (r.type === 'buffer_dropped') { dropped += r.count as number; kinds++ }
  }
  const kept = [...j.dbs.records.getKeys()].length
  t.ok(kinds >= 1, 'buffer_dropped written')
  t.ok(j.firstSeq > 1)
  t.equal(kept, j.lastSeq - j.firstSeq + 1, 'what is kept is gapless')
  t.ok(dropped > 0 && dropped <= j.firstSeq - 1, `dropped ${dropped} of ${j.firstSeq - 1} gone`)
  const v = await verifyJournal(j.dbs)
  t.ok(v.ok, v.problem ?? "verifies")
})

t.test('shipped records are pruned before unshipped ones are dropped', async (t) => {
  const j = openJournal(t, tempDir(t), { maxBytes: MAX, onFull: 'drop-oldest' })
  for (let i = 0; i < 60; i++) await j.append({ type: 'publish', topic: `t/${i}`, payload })
  await j.markShipped(60)
  for (let i = 0; i < 60; i++) await j.append({ type: 'publish', topic: `u/${i}`, payload })
  await j.flush()
  for (const { value } of j.dbs.records.getRange()) t.not(decodeRecord(value).type, 'buffer_dropped', 'nothing unshipped dropped')
  t.ok(j.firstSeq > 1 && j.firstSeq <= 61, `only shipped records pruned (first kept ${j.firstSeq})`)
})
