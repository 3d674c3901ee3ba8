import t from 'tap'
import { Registry } from 'prom-client'
import { tallied } from '../../src/admin/metrics.js'

t.test('tallied: increments are folded in at each read, none lost or counted twice', async (t) => {
  const registry = new Registry()
  const c = tallied(registry, 'test_decisions_total', 'decisions', 'effect', ['allow', 'deny'] as const)
  t.match(await registry.metrics(), /# TYPE test_decisions_total counter/)
  t.notMatch(await registry.metrics(), /test_decisions_total\{/, 'no series before the first increment')
  for (let i = 0; i < 5; i++) c.inc('allow')
  c.inc('deny')
  const first = await registry.metrics()
  t.match(first, /test_decisions_total\{effect="allow"\} 5/)
  t.match(first, /test_decisions_total\{effect="deny"\} 1/)
  t.match(await registry.metrics(), /test_decisions_total\{effect="allow"\} 5/, 'a second read adds nothing')
  c.inc('allow')
  t.match(await registry.metrics(), /test_decisions_total\{effect="allow"\} 6/, 'later increments add up')
  const json = await registry.getMetricsAsJSON()
  t.match(json.find((m) => m.name === 'test_decisions_total')?.values, [{ labels: { effect: 'allow' }, value: 6 }, { labels: { effect: 'deny' }, value: 1 }])
})
