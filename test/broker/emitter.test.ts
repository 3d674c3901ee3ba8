import t from 'tap'
import mqemitter from 'mqemitter'
import { createEmitter } from '../../src/broker/emitter.js'

/** 100 deliveries held open (concurrency reached), then a burst queued behind them, then released. */
function burst(mq: ReturnType<typeof mqemitter>, n: number): { order: number[]; release(): void } {
  const order: number[] = []
  const held: (() => void)[] = []
  mq.on('held', (_m: unknown, cb: () => void) => { held.push(cb) })
  mq.on('burst/#', (m, cb) => { order.push((m as unknown as { n: number }).n); cb() })
  for (let i = 0; i < 100; i++) mq.emit({ topic: 'held' })
  for (let i = 0; i < n; i++) mq.emit({ topic: 'burst/x', n: i } as never)
  return { order, release: () => { for (const cb of held) cb() } }
}

t.test("Aedes' stock emitter overflows the stack draining a few thousand queued messages", async (t) => {
  const b = burst(mqemitter({ concurrency: 100, matchEmptyLevels: true }), 50_000)
  t.throws(() => b.release(), RangeError, 'the failure this module exists for (if mqemitter fixes it, drop ours)')
})

t.test('createEmitter drains the same burst in order with a bounded stack', async (t) => {
  const mq = createEmitter(100)
  const b = burst(mq, 50_000)
  t.doesNotThrow(() => b.release())
  for (let i = 0; i < 200 && b.order.length < 50_000; i++) await new Promise((r) => setImmediate(r))
  t.equal(b.order.length, 50_000, 'every message delivered')
  t.ok(b.order.every((n, i) => n === i), 'in emit order')
  t.equal((mq as unknown as { length: number }).length, 0, 'queue empty')
})
