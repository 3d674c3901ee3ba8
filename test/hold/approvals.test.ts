import t from 'tap'
import { Approvals, type HoldRequest } from '../../src/hold/approvals.js'
import { Grants } from '../../src/hold/grants.js'
import { MemoryHoldStore } from '../../src/hold/memory-store.js'
import { MemoryJournal } from '../../src/journal/memory.js'
import { ManualClock } from '../../src/clock.js'
import { silentLogger } from '../../src/logger.js'
import type { HeldMessage, Principal } from '../../src/hold/types.js'

const agent: Principal = { sub: 'agent-1', clientId: 'agent-1', kind: 'agent', groups: ['ops-leads'] }
const lead1: Principal = { sub: 'alice', kind: 'human', groups: ['ops-leads'] }
const lead2: Principal = { sub: 'bob', kind: 'human', groups: ['ops-leads'] }
const outsider: Principal = { sub: 'mallory', kind: 'human', groups: ['visitors'] }

function setup(quorum = 2, selfApproval = false) {
  const clock = new ManualClock(1_000_000)
  const journal = new MemoryJournal()
  const store = new MemoryHoldStore()
  const delivered: HeldMessage[] = []
  const approvals = new Approvals({ store, journal, clock, logger: silentLogger, deliver: async (h) => { delivered.push(h) } })
  const req: HoldRequest = { topic: 'site/1/dev/7/cmd/firmware', payload: Buffer.from('v2'), qos: 1, retain: false, requester: agent, ruleId: 'fw', approval: { approvers: { groups: ['ops-leads'] }, quorum, ttlMs: 60_000, selfApproval } }
  return { clock, journal, store, delivered, approvals, req }
}

t.test('quorum of distinct approvers delivers once', async (t) => {
  const s = setup(2)
  const h = await s.approvals.hold(s.req)
  t.equal(s.journal.entries.at(-1)?.type, 'held')
  t.same(await s.approvals.approve(h.id, lead1).then((r) => r.ok && r.delivered), false, 'one approval is not a quorum')
  t.same(await s.approvals.approve(h.id, lead1), { ok: false, error: 'already_approved' }, 'the same approver twice does not count')
  const r = await s.approvals.approve(h.id, lead2)
  t.ok(r.ok && r.delivered, 'second distinct approver reaches quorum')
  t.equal(s.delivered.length, 1)
  t.equal(s.delivered[0]!.topic, s.req.topic)
  t.equal(s.store.getHold(h.id), undefined, 'gone from the queue')
  t.same(s.journal.entries.at(-1), { ...s.journal.entries.at(-1), type: 'approved', approvers: ['alice', 'bob'] })
})

t.test('the requester cannot approve its own request unless selfApproval', async (t) => {
  const s = setup(1)
  const h = await s.approvals.hold(s.req)
  t.same(await s.approvals.approve(h.id, agent), { ok: false, error: 'self_approval' })
  const s2 = setup(1, true)
  const h2 = await s2.approvals.hold(s2.req)
  t.ok((await s2.approvals.approve(h2.id, agent)).ok)
})

t.test('outsiders can neither approve nor reject', async (t) => {
  const s = setup(1)
  const h = await s.approvals.hold(s.req)
  t.same(await s.approvals.approve(h.id, outsider), { ok: false, error: 'not_approver' })
  t.same(await s.approvals.reject(h.id, outsider), { ok: false, error: 'not_approver' })
  t.same(await s.approvals.approve('nope', lead1), { ok: false, error: 'not_found' })
})

t.test('rejection drops and journals', async (t) => {
  const s = setup(1)
  const h = await s.approvals.hold(s.req)
  t.ok((await s.approvals.reject(h.id, lead1, 'not during shift')).ok)
  t.equal(s.delivered.length, 0)
  t.equal(s.store.getHold(h.id), undefined)
  t.match(s.journal.entries.at(-1), { type: 'rejected', approver: 'alice', reason: 'not during shift' })
})

t.test('expiry drops and journals; late approvals fail', async (t) => {
  const s = setup(1)
  const h = await s.approvals.hold(s.req)
  s.clock.advance(60_001)
  t.same(await s.approvals.approve(h.id, lead1), { ok: false, error: 'not_pending' })
  t.equal(s.delivered.length, 0)
  t.match(s.journal.entries.at(-1), { type: 'hold_expired' })
  const h2 = await s.approvals.hold(s.req)
  s.clock.advance(60_001)
  await s.approvals.sweep()
  t.equal(s.store.getHold(h2.id), undefined, 'the sweep expires too')
})

t.test('an approved hold whose delivery was interrupted is delivered at start', async (t) => {
  const s = setup(1)
  const h = await s.approvals.hold(s.req)
  await s.store.putHold({ ...h, state: 'approved', approvals: [{ sub: 'alice', at: 1 }] })
  await s.approvals.start()
  s.approvals.stop()
  t.equal(s.delivered.length, 1)
})

t.test('grants: time-bound, topic-scoped, revocable, expire with a callback', async (t) => {
  const clock = new ManualClock(0)
  const journal = new MemoryJournal()
  const expired: string[] = []
  const grants = new Grants(new MemoryHoldStore(), journal, clock, (g) => expired.push(g.id))
  const g = await grants.grant({ sub: 'svc-9', actions: ['subscribe'], topics: ['site/1/dev/+/status'], ttlMs: 10_000, reason: 'debugging' }, lead1)
  t.ok(grants.allows('svc-9', 'subscribe', 'site/1/dev/7/status'))
  t.notOk(grants.allows('svc-9', 'publish', 'site/1/dev/7/status'), 'only the granted action')
  t.notOk(grants.allows('svc-9', 'subscribe', 'site/2/dev/7/status'), 'only the granted topics')
  t.notOk(grants.allows('other', 'subscribe', 'site/1/dev/7/status'), 'only the granted identity')
  t.notOk(grants.allows('svc-9', 'subscribe', 'site/1/dev/#'), 'a wider subscription is not covered')
  t.match(journal.entries.at(-1), { type: 'grant', sub: 'svc-9', grantedBy: 'alice' })
  clock.advance(10_001)
  t.notOk(grants.allows('svc-9', 'subscribe', 'site/1/dev/7/status'), 'expired grants stop allowing at once')
  await grants.sweep()
  t.same(expired, [g.id])
  t.equal(grants.list().length, 0)
  const g2 = await grants.grant({ sub: 'svc-9', actions: ['publish'], topics: ['x/#'], ttlMs: 10_000 }, lead1)
  t.ok(await grants.revoke(g2.id, lead2))
  t.notOk(grants.allows('svc-9', 'publish', 'x/y'))
  t.match(journal.entries.at(-1), { type: 'grant', reason: 'revoked', revokedBy: 'bob' })
})

t.test("grants: '#' and '+' as MQTT filters; '#' does not cover $ topics ([MQTT-4.7.2-1])", async (t) => {
  const grants = new Grants(new MemoryHoldStore(), new MemoryJournal(), new ManualClock(0))
  await grants.grant({ sub: 'svc-8', actions: ['publish'], topics: ['#', 'cmd/+'], ttlMs: 10_000 }, lead1)
  t.ok(grants.allows('svc-8', 'publish', 'cmd/7'))
  t.ok(grants.allows('svc-8', 'publish', 'a/b/c'))
  t.notOk(grants.allows('svc-8', 'publish', '$warden/status'))
  t.notOk(grants.allows('svc-8', 'publish', '$SYS/x'))
})
