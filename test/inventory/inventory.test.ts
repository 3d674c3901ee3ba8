import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import { loadConfig } from '../../src/config/load.js'
import type { Identity } from '../../src/identity/types.js'
import { MemoryJournal } from '../../src/journal/memory.js'
import { silentLogger } from '../../src/logger.js'
import { EFFECT_INDEX, Inventory, readInventory } from '../../src/inventory/index.js'
import { suggestPolicy, templateFilter } from '../../src/inventory/suggest.js'
import { tempDir } from '../helpers/gateway.js'

const cfg = { ...loadConfig({ env: {}, overrides: {} }).inventory, flushMs: 1000 }
const id = (sub: string, clientId = sub, kind: Identity['kind'] = 'device'): Identity => ({ sub, clientId, groups: ['g'], kind, claims: {}, listener: 'mqtt' })
const meta = { listener: 'mqtt', remoteAddress: '10.0.0.7' }

t.test('aggregates per session, flushes in batches, survives reopen', async (t) => {
  const dataDir = tempDir(t)
  const clock = new ManualClock(1_000_000)
  const journal = new MemoryJournal()
  const inv = new Inventory({ dataDir, config: cfg, clock, journal, logger: silentLogger })
  const s = inv.connect(id('d1'), meta, 'sess-1')
  for (let i = 0; i < 5; i++) s.publish('site/1/dev/d1/telemetry', Buffer.from('{"t":1}'), EFFECT_INDEX.allow)
  s.publish('site/1/dev/d1/log', Buffer.from('hello'), EFFECT_INDEX.allow)
  inv.subscribed(s, 'site/1/dev/d1/cmd/#', EFFECT_INDEX.allow)
  t.same(await readInventory(dataDir), [], 'nothing written before the flush')
  clock.advance(1000)
  inv.flush()
  await inv.close()
  const entries = await readInventory(dataDir)
  const d1 = entries.find((e) => e.type === 'identity' && e.id === 'd1')!
  t.same([...d1.published].sort(), [['site/1/dev/d1/log', { count: 1, bytes: 5 }], ['site/1/dev/d1/telemetry', { count: 5, bytes: 35 }]])
  t.same([...d1.subscribed.keys()], ['site/1/dev/d1/cmd/#'])
  t.same(d1.formats, { json: 5, msgpack: 0, text: 1, binary: 0 })
  t.equal(d1.decisions.allow, 7)
  t.same(d1.remotes, ['10.0.0.7'])
  t.equal(d1.firstSeen, 1_000_000)
  t.equal(d1.lastSeen, 1_001_000)
  t.ok(entries.find((e) => e.type === 'client' && e.id === 'd1'))

  // reopened: counts continue
  const inv2 = new Inventory({ dataDir, config: cfg, clock, journal, logger: silentLogger })
  const s2 = inv2.connect(id('d1'), meta, 'sess-2')
  s2.publish('site/1/dev/d1/telemetry', Buffer.from('{"t":2}'), EFFECT_INDEX.allow)
  await inv2.close()
  const again = (await readInventory(dataDir)).find((e) => e.type === 'identity' && e.id === 'd1')!
  t.equal(again.published.get('site/1/dev/d1/telemetry')!.count, 6)
  t.equal(again.connects, 2)
  t.equal(again.firstSeen, 1_000_000, 'first seen kept')
  t.equal(journal.entries.filter((e) => e.type === 'flag' && e.flag === 'new_identity').length, 1, 'new_identity raised once')
})

t.test('flags: shared clientId, many clientIds, rate spike after a warm-up', async (t) => {
  const dataDir = tempDir(t)
  const clock = new ManualClock(5_000_000)
  const journal = new MemoryJournal()
  const flags: string[] = []
  const inv = new Inventory({ dataDir, config: { ...cfg, rateFactor: 10 }, clock, journal, logger: silentLogger, onFlag: (f) => flags.push(f) })
  t.teardown(() => inv.close())
  inv.connect(id('a', 'shared'), meta, 's1')
  inv.connect(id('b', 'shared'), meta, 's2')
  t.ok(journal.entries.some((e) => e.type === 'flag' && e.flag === 'client_id_shared' && e.clientId === 'shared'))
  inv.connect(id('a', 'other'), meta, 's3')
  t.ok(flags.includes('many_client_ids'))
  const s = inv.connect(id('pump'), meta, 's4')
  for (let w = 0; w < 15; w++) {
    for (let i = 0; i < 2; i++) s.publish('p/t', Buffer.from('1'), EFFECT_INDEX.allow)
    clock.advance(1000)
    inv.flush()
  }
  t.notOk(flags.includes('rate_spike'), 'steady 2/s is usual')
  for (let i = 0; i < 200; i++) s.publish('p/t', Buffer.from('1'), EFFECT_INDEX.allow)
  clock.advance(1000)
  inv.flush()
  t.ok(flags.includes('rate_spike'), '200/s against a usual 2/s')
  t.equal(flags.filter((f) => f === 'rate_spike').length, 1, 'raised once')
  t.ok(inv.acknowledge('identity', 'pump', 'rate_spike', 'ops'))
  t.notOk(inv.acknowledge('identity', 'pump', 'rate_spike', 'ops'), 'already acknowledged')
  t.same([...inv.openFlags().keys()].sort(), ['client_id_shared', 'many_client_ids', 'new_identity'].sort())
  clock.advance(cfg.newIdentityHours * 3_600_000)
  t.same([...inv.openFlags().keys()].sort(), ['client_id_shared', 'many_client_ids'], 'new_identity is open for newIdentityHours')
})

t.test('policy suggest: templates, clusters, leaves out the minority', async (t) => {
  t.equal(templateFilter('site/1/dev/d1/telemetry', 'd1', 'x'), 'site/1/dev/${client_id}/telemetry')
  t.equal(templateFilter('u/alice/inbox', 'c-9', 'alice'), 'u/${sub}/inbox')
  const dataDir = tempDir(t)
  const clock = new ManualClock(9_000_000)
  const inv = new Inventory({ dataDir, config: cfg, clock, journal: new MemoryJournal(), logger: silentLogger })
  for (const d of ['d1', 'd2', 'd3']) inv.connect(id(d), meta, d).publish(`s/${d}/t`, Buffer.from('1'), EFFECT_INDEX.allow)
  inv.connect(id('d1', 'script'), meta, 'x').publish('s/d2/cmd', Buffer.from('1'), EFFECT_INDEX.allow)
  inv.connect(id('svc', 'svc', 'service'), meta, 'y').publish('s/d1/cmd', Buffer.from('1'), EFFECT_INDEX.allow)
  await inv.close()
  const s = suggestPolicy(await readInventory(dataDir), { since: 0 })
  t.match(s.yaml, /topics:\n\s+- s\/\$\{client_id\}\/t\n\s+who:\n\s+kinds:\n\s+- device/)
  t.match(s.yaml, /- s\/d1\/cmd/)
  t.same(s.leftOut.map((l) => `${l.clientId} ${l.filter}`), ['script s/d2/cmd'])
  t.equal(s.rules, 2)
})

t.test('bounded: past the entry limit new clientIds count into (overflow)', async (t) => {
  const dataDir = tempDir(t)
  const inv = new Inventory({ dataDir, config: cfg, clock: new ManualClock(1), journal: new MemoryJournal(), logger: silentLogger }, 4)
  for (let i = 0; i < 50; i++) inv.connect(id('script', `made-up-${i}`), meta, `s${i}`).publish('x/y', Buffer.from('1'), EFFECT_INDEX.allow)
  await inv.close()
  const entries = await readInventory(dataDir)
  t.ok(entries.length <= 6, `${entries.length} entries`)
  const overflow = entries.find((e) => e.type === 'client' && e.id === '(overflow)')!
  t.ok(overflow.connects >= 45, 'counted in the overflow entry')
  t.equal(entries.find((e) => e.type === 'identity' && e.id === 'script')!.connects, 50)
})

t.test('cacheEntries: flushed entries past the bound leave memory and are read back from LMDB', async (t) => {
  const dataDir = tempDir(t)
  const clock = new ManualClock(1_000_000)
  const inv = new Inventory({ dataDir, config: { ...cfg, cacheEntries: 16 }, clock, journal: new MemoryJournal(), logger: silentLogger })
  t.teardown(() => inv.close())
  const sessions = Array.from({ length: 40 }, (_, i) => inv.connect(id(`d${i}`), meta, `s${i}`))
  sessions[0]!.publish('s/d0/t', Buffer.from('{"a":1}'), EFFECT_INDEX.allow)
  t.equal(inv.cached, 80, 'nothing evicted before its write')
  clock.advance(1000)
  inv.flush()
  t.equal(inv.cached, 80, 'nor while the write is in flight')
  await inv.written()
  t.equal(inv.cached, 16, 'trimmed to the bound once committed')
  // d0 was used last by the flush's merge: kept; d1 was evicted and comes back from LMDB
  clock.advance(1000)
  inv.disconnect(sessions[1]!)
  sessions[0]!.publish('s/d0/t', Buffer.from('{"a":2}'), EFFECT_INDEX.allow)
  const again = inv.connect(id('d1'), meta, 's1b')
  again.publish('s/d1/t', Buffer.from('x'), EFFECT_INDEX.allow)
  clock.advance(1000)
  inv.flush()
  await inv.written()
  t.ok(inv.cached <= 16)
  const all = inv.entries()
  const d0 = all.find((e) => e.type === 'identity' && e.id === 'd0')!
  const d1 = all.find((e) => e.type === 'identity' && e.id === 'd1')!
  t.equal(d0.published.get('s/d0/t')!.count, 2, 'counts of an entry kept in memory')
  t.equal(d1.connects, 2, 'connects continue from the stored entry')
  t.equal(d1.published.get('s/d1/t')!.count, 1)
  t.equal(d1.lastSeen, 1_003_000, 'an evicted entry gets its last seen at the next flush')
  t.equal(all.filter((e) => e.type === 'identity').length, 40, 'nothing lost')
  t.equal(inv.hasOpenFlags(d1), true, 'flags survive eviction')
})

t.test('an idle session allocates no counters', async (t) => {
  const inv = new Inventory({ dataDir: tempDir(t), config: cfg, clock: new ManualClock(1), journal: new MemoryJournal(), logger: silentLogger })
  t.teardown(() => inv.close())
  const s = inv.connect(id('idle'), meta, 's')
  t.equal(s.counts, undefined)
  s.publish('a/b', Buffer.from('1'), EFFECT_INDEX.allow)
  t.equal(s.counts?.published, 1)
})

t.test('entries without topics or flags share one empty Map; a write takes its own', async (t) => {
  const clock = new ManualClock(1)
  const inv = new Inventory({ dataDir: tempDir(t), config: { ...cfg, newIdentityHours: 0 }, clock, journal: new MemoryJournal(), logger: silentLogger })
  t.teardown(() => inv.close())
  const a = inv.connect(id('a'), meta, 'sa')
  inv.connect(id('b'), meta, 'sb')
  const before = inv.entries()
  const ea = before.find((e) => e.type === 'identity' && e.id === 'a')!
  const eb = before.find((e) => e.type === 'identity' && e.id === 'b')!
  t.equal(ea.published, eb.published, 'one shared empty Map')
  t.throws(() => ea.flags.set('rate_spike', { at: 1, detail: 'x' }), 'the shared one refuses writes')
  a.publish('s/a/t', Buffer.from('1'), EFFECT_INDEX.allow)
  clock.advance(1000)
  inv.flush()
  await inv.written()
  const after = inv.entries()
  t.equal(after.find((e) => e.type === 'identity' && e.id === 'a')!.published.get('s/a/t')?.count, 1)
  t.equal(after.find((e) => e.type === 'identity' && e.id === 'b')!.published.size, 0, 'the other entry unchanged')
})
