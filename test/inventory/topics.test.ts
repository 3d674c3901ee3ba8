import t from 'tap'
import { addTopic, covers } from '../../src/inventory/topics.js'
import type { TopicStat } from '../../src/inventory/types.js'

t.test('past max distinct topics the varying level compacts to +', async (t) => {
  const set = new Map<string, TopicStat>()
  for (let i = 0; i < 10; i++) addTopic(set, `site/1/dev/d${i}/telemetry`, 1, 10, 8)
  addTopic(set, 'site/1/status', 2, 4, 8)
  t.same([...set].sort(), [['site/1/dev/+/telemetry', { count: 10, bytes: 100 }], ['site/1/status', { count: 2, bytes: 4 }]].sort())
  // later topics the wildcard covers are counted there, not added
  addTopic(set, 'site/1/dev/d99/telemetry', 1, 10, 8)
  t.equal(set.get('site/1/dev/+/telemetry')!.count, 11)
  t.equal(set.size, 2)
})

t.test('compaction stays bounded whatever the topics (random depths, names)', async (t) => {
  const set = new Map<string, TopicStat>()
  let total = 0
  for (let i = 0; i < 5000; i++) {
    const depth = 1 + (i % 7)
    const topic = Array.from({ length: depth }, (_, k) => `l${k}-${(i * 7919 + k * 31) % 97}`).join('/')
    addTopic(set, topic, 1, 1, 16)
    total++
    if (set.size > 16) t.fail(`size ${set.size} after ${i}`)
  }
  t.ok(set.size <= 16)
  t.equal([...set.values()].reduce((n, s) => n + s.count, 0), total, 'no count lost')
})

t.test('covers', async (t) => {
  t.ok(covers('a/+/c', 'a/b/c'))
  t.ok(covers('a/#', 'a'))
  t.ok(covers('#', 'x/y'))
  t.ok(covers('a/+/#', 'a/+/c/d'))
  t.notOk(covers('a/b/c', 'a/+/c'))
  t.notOk(covers('a/+', 'a/b/c'))
  t.notOk(covers('a/b/#', 'a/#'))
})
