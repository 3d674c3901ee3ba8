import t from 'tap'
import { RecordLimiter } from '../../src/listeners/record-limiter.js'
import { MemoryJournal } from '../../src/journal/memory.js'

t.test('per group: 5 per reason and 20 in all, then one summary with the counts; every event accounted for', async (t) => {
  const j = new MemoryJournal()
  const l = new RecordLimiter(j, 5, 20, 60_000)
  t.teardown(() => l.flush())
  for (let i = 0; i < 100; i++) l.record('protocol_error\0' + '10.0.0.1', 'a', { type: 'protocol_error', reason: 'a', remote: '10.0.0.1' })
  for (let i = 0; i < 30; i++) l.record('protocol_error\0' + '10.0.0.1', 'r' + (i % 10), { type: 'protocol_error', reason: 'r' + (i % 10), remote: '10.0.0.1' })
  for (let i = 0; i < 3; i++) l.record('protocol_error\0' + '10.0.0.2', 'a', { type: 'protocol_error', reason: 'a', remote: '10.0.0.2' })
  t.equal(j.entries.filter((e) => e.remote === '10.0.0.1').length, 20, 'first address: 20 written as they came')
  t.equal(j.entries.filter((e) => e.remote === '10.0.0.1' && e.reason === 'a').length, 5, '5 of them of one reason')
  t.equal(j.entries.filter((e) => e.remote === '10.0.0.2').length, 3, 'another address is not held back by the first')
  l.flush()
  const summary = j.entries.filter((e) => e.suppressed === true)
  t.equal(summary.length, 1, 'one summary for the group that was held back')
  t.match(summary[0], { type: 'protocol_error', remote: '10.0.0.1', reason: 'various', count: 110 })
  const reasons = summary[0]!.reasons as Record<string, number>
  t.equal(reasons.a, 95)
  t.equal(Object.values(reasons).reduce((a, b) => a + b, 0), 110)
  // a new interval starts clean
  l.record('protocol_error\0' + '10.0.0.1', 'a', { type: 'protocol_error', reason: 'a', remote: '10.0.0.1' })
  t.equal(j.entries.filter((e) => e.remote === '10.0.0.1' && !e.suppressed).length, 21)
})

t.test('the number of groups is bounded: overflow shares one', async (t) => {
  const j = new MemoryJournal()
  const l = new RecordLimiter(j, 1, 1, 60_000, 10)
  t.teardown(() => l.flush())
  for (let i = 0; i < 1000; i++) l.record('g' + i, 'a', { type: 'connection_refused', reason: 'a', remote: String(i) })
  t.equal(j.entries.length, 11, '10 groups + the overflow group write one each')
  l.flush()
  t.match(j.entries.at(-1), { suppressed: true, count: 989 })
})
