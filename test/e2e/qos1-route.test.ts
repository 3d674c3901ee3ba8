import t, { type Test } from 'tap'
import type { MqttClient } from 'mqtt'
import { MemoryJournal } from '../../src/journal/memory.js'
import type { JournalEntry } from '../../src/journal/types.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { connect, nextMessage, waitClose } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'

/**
 * A journal whose commits the test lets through: append() resolves (or fails) only on
 * release(). It stands in for a slow disk, so the order of delivery, PUBACK and commit is
 * the test's to see, not a race.
 */
class GatedJournal extends MemoryJournal {
  readonly #waiting: { resolve(n: number): void; reject(err: Error): void; n: number }[] = []
  override append(entry: JournalEntry): Promise<number> {
    this.entries.push(entry)
    const n = this.entries.length
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject, n }))
  }
  get pending(): number { return this.#waiting.length }
  release(err?: Error): void {
    for (const w of this.#waiting.splice(0)) err ? w.reject(err) : w.resolve(w.n)
  }
}

function publishes(j: MemoryJournal, topic: string): JournalEntry[] {
  return j.entries.filter((e) => e.type === 'publish' && e.topic === topic)
}

async function setup(t: Test, deliverAfterCommit?: boolean, overrides: Record<string, unknown> = {}): Promise<{ g: TestGateway; journal: GatedJournal; pub: MqttClient; sub: MqttClient; got: { topic: string; payload: string }[] }> {
  const journal = new GatedJournal()
  const g = await startGateway(t, { ...overrides, ...(deliverAfterCommit === undefined ? {} : { journal: { deliverAfterCommit } }) }, { journal })
  const sub = await connect(t, g.url(), { clientId: 'sub-1', password: await g.token({ sub: 'sub-1' }) })
  await sub.subscribeAsync('#', { qos: 1 })
  const got: { topic: string; payload: string }[] = []
  // everything: a '#' subscription gets no $ topic (not the retained $warden/status, never $warden/denied)
  sub.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }))
  const pub = await connect(t, g.url(), { clientId: 'pub-1', password: await g.token({ sub: 'pub-1' }) })
  return { g, journal, pub, sub, got }
}

t.test('default: a QoS 1 message reaches subscribers at once; its PUBACK waits for the commit', async (t) => {
  const { g, journal, pub, got } = await setup(t)
  // the router itself: the acknowledged copy must not even reach it (in a site cluster, Redis)
  let nowhere = 0
  ;(g.gw.core.aedes as unknown as { mq: { on(topic: string, fn: (p: unknown, cb: () => void) => void): void } }).mq.on('$warden/denied', (_p, cb) => { nowhere++; cb() })
  let acked = false
  const sent = pub.publishAsync('site/a', 'one', { qos: 1 }).then(() => { acked = true })
  await waitFor(() => got.length > 0, 5000, 'the delivery')
  t.same(got, [{ topic: 'site/a', payload: 'one' }], 'delivered before the record is committed')
  await waitFor(() => journal.pending > 0, 5000, 'the append')
  t.equal(acked, false, 'no PUBACK while the record is not committed')
  journal.release()
  await sent
  t.equal(acked, true, 'PUBACK once committed')
  // a fence: anything the acknowledgement released would arrive before it
  await pub.publishAsync('site/fence', 'f', { qos: 0 })
  await waitFor(() => got.some((x) => x.topic === 'site/fence'), 5000, 'the fence')
  t.same(got, [{ topic: 'site/a', payload: 'one' }, { topic: 'site/fence', payload: 'f' }], 'delivered once; the acknowledged copy goes nowhere')
  t.equal(publishes(journal, 'site/a').length, 1, 'journaled once')
  t.equal(nowhere, 0, 'nothing was routed to $warden/denied')
})

t.test('default: a retained QoS 1 message is retained as sent, not as the acknowledged empty copy', async (t) => {
  const { g, journal, pub } = await setup(t)
  const sent = pub.publishAsync('site/ret', 'kept', { qos: 1, retain: true })
  await waitFor(() => journal.pending > 0, 5000, 'the append')
  journal.release()
  await sent
  const late = await connect(t, g.url(), { clientId: 'late-1', password: await g.token({ sub: 'late-1' }) })
  const next = nextMessage(late)
  await late.subscribeAsync('site/ret', { qos: 1 })
  const m = await next
  t.same([m.topic, m.payload.toString()], ['site/ret', 'kept'])
})

t.test('default: when the commit fails the publisher gets no PUBACK and is disconnected', async (t) => {
  const { journal, pub, got } = await setup(t)
  let acked = false
  pub.publish('site/b', 'two', { qos: 1 }, (err) => { if (!err) acked = true })
  await waitFor(() => got.length > 0, 5000, 'the delivery')
  await waitFor(() => journal.pending > 0, 5000, 'the append')
  journal.release(new Error('disk gone'))
  await waitClose(pub)
  t.equal(acked, false, 'never acknowledged')
})

t.test('journal.deliverAfterCommit: true: a QoS 1 message reaches subscribers only once committed', async (t) => {
  const { journal, pub, got } = await setup(t, true)
  let acked = false
  const sent = pub.publishAsync('site/c', 'three', { qos: 1 }).then(() => { acked = true })
  await waitFor(() => journal.pending > 0, 5000, 'the append')
  // QoS 0 is routed at once; sent after the QoS 1 message was journaled, so an early route would be ahead of it
  await pub.publishAsync('site/fence', 'f', { qos: 0 })
  await waitFor(() => got.some((x) => x.topic === 'site/fence'), 5000, 'the fence')
  t.same(got.map((x) => x.topic), ['site/fence'], 'not delivered before the commit')
  t.equal(acked, false)
  journal.release()
  await sent
  await waitFor(() => got.length > 1, 5000, 'the delivery')
  t.same(got, [{ topic: 'site/fence', payload: 'f' }, { topic: 'site/c', payload: 'three' }], 'delivered after the commit')
})

t.test('LMDB persistence: a message queued for the disk first is not overtaken by the ones after it [MQTT-4.6.0-6]', async (t) => {
  const { g, journal, pub, got } = await setup(t, undefined, { broker: { persistence: 'lmdb' } })
  // a persistent session's subscription: each message is queued for it durably before its
  // PUBACK (lmdb.ts prepare), so routed after the commit; retained and plain ones on one topic
  const keep = await connect(t, g.url(), { clientId: 'keep-x', clean: false, password: await g.token({ sub: 'keep-x' }) })
  await keep.subscribeAsync('site/x', { qos: 1 })
  const sent = [
    pub.publishAsync('site/x', 'A', { qos: 1, retain: true }),
    pub.publishAsync('site/x', 'B', { qos: 1 }),
    pub.publishAsync('site/x', 'C', { qos: 1, retain: true }),
    pub.publishAsync('site/x', 'D', { qos: 1 }),
  ]
  await waitFor(() => journal.pending >= 4, 5000, 'the appends')
  // a QoS 0 fence from another client (Aedes reads no more of a client whose publishes are
  // pending): anything routed at once would be ahead of it
  const other = await connect(t, g.url(), { clientId: 'other-1', password: await g.token({ sub: 'other-1' }) })
  await other.publishAsync('site/fence', 'f', { qos: 0 })
  await waitFor(() => got.some((x) => x.topic === 'site/fence'), 5000, 'the fence')
  t.same(got.filter((x) => x.topic === 'site/x'), [], 'nothing of site/x before the first one is committed')
  journal.release()
  await Promise.all(sent)
  await waitFor(() => got.filter((x) => x.topic === 'site/x').length >= 4, 5000, 'the four messages')
  t.same(got.filter((x) => x.topic === 'site/x').map((x) => x.payload), ['A', 'B', 'C', 'D'], 'in the order sent')
  const late = await connect(t, g.url(), { clientId: 'late-x', password: await g.token({ sub: 'late-x' }) })
  const retained = nextMessage(late)
  await late.subscribeAsync('site/x', { qos: 1 })
  t.equal((await retained).payload.toString(), 'C', 'the retained store keeps the last retained one')
})

t.test('LMDB persistence: an online persistent session is not left with the acknowledged empty copies', async (t) => {
  const journal = new GatedJournal()
  const g = await startGateway(t, { broker: { persistence: 'lmdb' } }, { journal })
  const sub = await connect(t, g.url(), { clientId: 'keep-1', clean: false, password: await g.token({ sub: 'keep-1' }) })
  // '+/+' matches '$warden/denied' in the persistence's trie, not these three-level topics:
  // they are routed at once, and each leaves an empty copy behind
  await sub.subscribeAsync('+/+', { qos: 1 })
  let fenced = false
  sub.on('message', (topic) => { if (topic === 'site/fence') fenced = true })
  const pub = await connect(t, g.url(), { clientId: 'pub-2', password: await g.token({ sub: 'pub-2' }) })
  const sent = Array.from({ length: 20 }, (_, i) => pub.publishAsync('site/y/z', String(i), { qos: 1 }))
  await waitFor(() => journal.pending >= 20, 5000, 'the appends')
  journal.release()
  await Promise.all(sent)
  const fence = pub.publishAsync('site/fence', 'f', { qos: 1 })
  await waitFor(() => journal.pending >= 1, 5000, 'the fence append')
  journal.release()
  await fence
  await waitFor(() => fenced, 5000, 'the fence')
  const persistence = (g.gw.core.aedes as unknown as { persistence: { queuedCount(id: string): number } }).persistence
  // the fence leaves once the subscriber acknowledges it; anything else queued stays
  await waitFor(() => persistence.queuedCount('keep-1') === 0, 2000, 'an empty queue').catch(() => {})
  t.equal(persistence.queuedCount('keep-1'), 0, 'nothing queued for the session ($warden/denied copies were, one per message)')
})
