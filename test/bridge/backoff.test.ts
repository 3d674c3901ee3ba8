import t from 'tap'
import { Backoff } from '../../src/bridge/backoff.js'
import { UpstreamLink, type Timers } from '../../src/bridge/link.js'
import { MemoryJournal } from '../../src/journal/memory.js'
import { ManualClock } from '../../src/clock.js'
import { silentLogger } from '../../src/logger.js'
import { freePort } from '../helpers/mosquitto.js'
import { upstreamConfig, waitFor } from './util.js'

t.test('backoff: exponential ceiling, full jitter between minMs and the ceiling, reset', async (t) => {
  const low = new Backoff(100, 1000, () => 0)
  t.same([low.next(), low.next(), low.next()], [100, 100, 100], 'random 0 → always minMs')
  const high = new Backoff(100, 1000, () => 1)
  t.same([1, 2, 3, 4, 5, 6].map(() => high.next()), [200, 400, 800, 1000, 1000, 1000], 'random 1 → doubling ceiling, capped at maxMs')
  high.reset()
  t.equal(high.next(), 200, 'reset starts over')
  const real = new Backoff(100, 30_000)
  const seen = new Set<number>()
  for (let i = 0; i < 200; i++) {
    real.reset()
    for (let k = 0; k < 5; k++) real.next()
    const d = real.next()
    t.ok(d >= 100 && d <= 6400, `attempt 6 delay ${d} within [100, 6400]`)
    seen.add(d)
  }
  t.ok(seen.size > 50, 'delays are spread (jitter), not one value for the whole fleet')
  t.equal(new Backoff(100, 50, () => 1).next(), 100, 'maxMs below minMs is treated as minMs')
})

t.test('link: retries an unreachable cloud on jittered, growing delays; upstream_down journaled once', async (t) => {
  const port = await freePort()
  const scheduled: { fn: () => void; ms: number }[] = []
  const timers: Timers = { setTimeout: (fn, ms) => { scheduled.push({ fn, ms }); return scheduled.length }, clearTimeout: () => {} }
  const journal = new MemoryJournal()
  const randoms = [0.5, 0.25, 1, 0, 0.75]
  let r = 0
  const link = new UpstreamLink({
    config: upstreamConfig(`mqtt://127.0.0.1:${port}`, { minMs: 100, maxMs: 1000 }),
    gatewayId: 'gw-b', logger: silentLogger, journal, clock: new ManualClock(), random: () => randoms[r++ % randoms.length]!, timers,
  })
  t.teardown(() => link.stop())
  link.start()
  for (let i = 1; i <= 5; i++) {
    await waitFor(() => scheduled.length === i, `retry ${i} scheduled`)
    if (i < 5) scheduled[i - 1]!.fn()
  }
  // ceilings 200, 400, 800, 1000, 1000 with the randoms above
  t.same(scheduled.map((s) => s.ms), [150, 175, 800, 100, 775])
  t.equal(link.connected, false)
  t.equal(link.status().state, 'down')
  t.equal(link.status().attempts, 5)
  t.match(link.status().lastError, /ECONNREFUSED/)
  t.equal(journal.entries.filter((e) => e.type === 'upstream_down').length, 1, 'one upstream_down for the outage, not one per attempt')
  await t.rejects(link.publish('x', Buffer.from('y'), { qos: 1 }), { code: 'EW_UPSTREAM_UNAVAILABLE' })
})
