import type { Test } from 'tap'
import type { Grant, HeldMessage, HoldStore } from '../../src/hold/types.js'

/** The suite every HoldStore passes (Aedes' abstract-suite habit). `make` gives a fresh store; `reopen` the same one after a restart, when durable. */
export function holdStoreSuite(t: Test, make: (t: Test) => Promise<{ store: HoldStore; reopen?: () => Promise<HoldStore> }>): void {
  const hold = (id: string, createdAt: number): HeldMessage => ({
    id, createdAt, expiresAt: createdAt + 60_000, topic: 'site/1/dev/7/cmd/firmware', payload: Buffer.from([0, 1, 2, 255]),
    qos: 1, retain: false, requester: { sub: 'agent-1', clientId: 'agent-1', kind: 'agent', groups: ['bots'] },
    ruleId: 'fw', approval: { approvers: { groups: ['ops'] }, quorum: 2, ttlMs: 60_000, selfApproval: false }, approvals: [], state: 'pending',
  })
  const grant = (id: string, createdAt: number): Grant => ({ id, sub: 'svc', actions: ['publish'], topics: ['a/#'], createdAt, expiresAt: createdAt + 1000, grantedBy: 'op' })

  t.test('holds: put, get, list in creation order, delete', async (t) => {
    const { store } = await make(t)
    await store.putHold(hold('b', 2))
    await store.putHold(hold('a', 1))
    t.same(store.listHolds().map((h) => h.id), ['a', 'b'])
    const got = store.getHold('a')!
    t.ok(Buffer.isBuffer(got.payload), 'payload comes back as a Buffer')
    t.same([...got.payload], [0, 1, 2, 255])
    t.same(got.requester.groups, ['bots'])
    await store.putHold({ ...got, approvals: [{ sub: 'op1', at: 5 }] })
    t.equal(store.getHold('a')!.approvals.length, 1, 'update replaces')
    await store.deleteHold('a')
    t.equal(store.getHold('a'), undefined)
    t.equal(store.listHolds().length, 1)
    await store.close()
  })

  t.test('grants: put, list, delete', async (t) => {
    const { store } = await make(t)
    await store.putGrant(grant('g2', 2))
    await store.putGrant(grant('g1', 1))
    t.same(store.listGrants().map((g) => g.id), ['g1', 'g2'])
    await store.deleteGrant('g1')
    t.same(store.listGrants().map((g) => g.id), ['g2'])
    await store.close()
  })

  t.test('survives a restart when durable', async (t) => {
    const { store, reopen } = await make(t)
    if (!reopen) return t.pass('memory store: not durable by design')
    await store.putHold(hold('x', 1))
    await store.putGrant(grant('g', 1))
    await store.close()
    const again = await reopen()
    t.equal(again.getHold('x')?.topic, 'site/1/dev/7/cmd/firmware')
    t.equal(again.listGrants().length, 1)
    await again.close()
  })
}
