import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import { ExpiryWheel } from '../../src/identity/expiry-wheel.js'

const ticks = (n: number, ms = 20): Promise<void> => new Promise((r) => setTimeout(r, n * ms))

t.test('never due before its time; due once the clock passes it; removed items never', async (t) => {
  const clock = new ManualClock(1_800_000_000_000)
  const due: string[] = []
  const w = new ExpiryWheel<string>(clock, (x) => due.push(x), 20)
  t.teardown(() => w.close())
  const a = w.add('a', clock.now() + 1_000)
  w.add('b', clock.now() + 5_000)
  const c = w.add('c', clock.now() + 1_000)
  w.remove('c', c)
  t.equal(w.size, 2)
  await ticks(3)
  t.same(due, [], 'nothing before its time')
  clock.advance(999)
  await ticks(3)
  t.same(due, [], 'still 1 ms early')
  clock.advance(1)
  await ticks(3)
  t.same(due, ['a'], 'a at its time; c was removed')
  w.remove('a', a) // already handed out: a no-op
  // a time already past goes to the next sweep
  w.add('late', clock.now() - 10_000)
  await ticks(3)
  t.same(due, ['a', 'late'])
  // a clock jump of years hands out what is due without walking every slot in between,
  // overdue items included
  w.add('late2', clock.now() - 10_000)
  clock.advance(10 * 365 * 86_400_000)
  await ticks(3)
  t.same(due.sort(), ['a', 'b', 'late', 'late2'])
  t.equal(w.size, 0)
})

t.test('an item handed out may be added again from the callback', async (t) => {
  const clock = new ManualClock(1_800_000_000_000)
  let n = 0
  const w: ExpiryWheel<string> = new ExpiryWheel<string>(clock, (x) => { if (++n < 3) w.add(x, clock.now() + 100) }, 20)
  t.teardown(() => w.close())
  w.add('x', clock.now())
  for (let i = 0; i < 3; i++) {
    await ticks(3)
    clock.advance(100)
  }
  await ticks(3)
  t.equal(n, 3)
  t.equal(w.size, 0)
})
