import t, { type Test } from 'tap'
import type { Aedes } from 'aedes'
import { createAedes, DENIED_TOPIC, gatewayMadeOnly, offlineCount } from '../../src/broker/create.js'
import { loadConfig } from '../../src/config/load.js'
import { LmdbPersistence } from '../../src/broker/persistence/lmdb.js'
import { tempDir } from '../helpers/gateway.js'

/** Aedes as the gateway builds it, on the memory store, listening; `events`: the topics of its 'publish' events ($SYS left out) */
async function memoryBroker(t: Test): Promise<{ aedes: Aedes; events: string[] }> {
  const dataDir = tempDir(t)
  const aedes = createAedes(loadConfig({ env: {}, cwd: dataDir, overrides: { gateway: { id: 'gw-t', dataDir }, broker: { persistence: 'memory' } } }), {})
  t.teardown(() => new Promise<void>((r) => aedes.close(() => r())))
  await aedes.listen()
  const events: string[] = []
  aedes.on('publish', (p) => { if (!p.topic.startsWith('$SYS')) events.push(p.topic) })
  return { aedes, events }
}

t.test("what goes nowhere is not published: no 'publish' event, no subscriber, no persistence lookup; the rest is", async (t) => {
  const { aedes, events } = await memoryBroker(t)
  const delivered: string[] = []
  await new Promise<void>((r) => aedes.subscribe('#', (p: { topic: string }, cb: () => void) => { delivered.push(p.topic); cb() }, () => r()))
  await new Promise<void>((r) => aedes.subscribe('$warden/#', (p: { topic: string }, cb: () => void) => { delivered.push(p.topic); cb() }, () => r()))
  let lookups = 0
  // Aedes' typings leave out the store it made in listen()
  const store = (aedes as unknown as { persistence: { subscriptionsByTopic(topic: string): Promise<unknown> } }).persistence
  const byTopic = store.subscriptionsByTopic.bind(store)
  store.subscriptionsByTopic = (topic: string) => { lookups++; return byTopic(topic) }
  const publish = (topic: string, qos: 0 | 1): Promise<void> => new Promise((r, j) => aedes.publish({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos, retain: false, dup: false } as never, (err?: Error) => (err ? j(err) : r())))
  await publish(DENIED_TOPIC, 1)
  await publish(DENIED_TOPIC, 0)
  t.same(events, [], "no 'publish' event")
  t.same(delivered, [], 'no subscriber, not even one naming the tree')
  t.equal(lookups, 0, 'no offline-queue lookup')
  await publish('site/a', 1)
  t.same(events, ['site/a'])
  t.same(delivered, ['site/a'])
  t.equal(lookups, 1)
})

t.test('a publish no live subscriber and no stored session would get stops before Aedes; one that somebody may get does not', async (t) => {
  const { aedes, events } = await memoryBroker(t)
  type Store = {
    subscriptionsByTopic(topic: string): Promise<unknown>
    addSubscriptions(client: { id: string }, subs: object[]): Promise<void>
    removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>
    cleanSubscriptions(client: { id: string }): Promise<void>
    outgoingStream(client: { id: string }): AsyncIterable<{ topic: string }>
    createRetainedStream(pattern: string): AsyncIterable<{ topic: string }>
  }
  const store = (aedes as unknown as { persistence: Store }).persistence
  let lookups = 0
  const byTopic = store.subscriptionsByTopic.bind(store)
  store.subscriptionsByTopic = (topic: string) => { lookups++; return byTopic(topic) }
  const publish = (topic: string, qos: 0 | 1, retain = false): Promise<void> => new Promise((r, j) => aedes.publish({ cmd: 'publish', topic, payload: Buffer.from('x'), qos, retain, dup: false } as never, (err?: Error) => (err ? j(err) : r())))
  // the store's count is taken after setup: wait until it is known
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20))
  const queued = async (clientId: string): Promise<string[]> => {
    const out: string[] = []
    for await (const p of store.outgoingStream({ id: clientId })) out.push(p.topic)
    return out
  }
  await settle()

  await publish('site/a', 1)
  await publish('site/a', 0)
  t.same(events, [], "nobody: no 'publish' event")
  t.equal(lookups, 0, 'nobody: no offline-queue lookup')

  await publish('site/r', 1, true)
  t.same(events, ['site/r'], 'a retained message is published (and stored) with nobody subscribed')
  t.equal(lookups, 1, 'its offline-queue lookup too')
  const retained: string[] = []
  for await (const p of store.createRetainedStream('site/r')) retained.push(p.topic)
  t.same(retained, ['site/r'])

  const delivered: string[] = []
  const live = (p: { topic: string }, cb: () => void): void => { delivered.push(p.topic); cb() }
  await publish('site/b', 0)
  await new Promise<void>((r) => aedes.subscribe('site/+', live, () => r()))
  await publish('site/b', 0)
  t.same(delivered, ['site/b'], 'a live subscription matches a topic that went nowhere before: published')
  await new Promise<void>((r) => aedes.unsubscribe('site/+', live, () => r()))
  await publish('site/b', 0)
  await publish('site/c', 0)
  t.same(delivered, ['site/b'], 'unsubscribed: nobody again')

  // a persistent session's QoS 1 subscription, its client offline: QoS 1 messages go the whole way and queue
  const beforeAdd = lookups
  const add = store.addSubscriptions({ id: 'offline-1' }, [{ topic: 'site/#', qos: 1 }])
  await publish('site/d', 1)
  await add
  await publish('site/e', 1)
  await publish('site/f', 0)
  t.equal(lookups - beforeAdd, 2, 'a stored subscription exists: every QoS 1 publish looks up the offline queues, from the moment its add starts')
  t.same(await queued('offline-1'), ['site/d', 'site/e'], 'queued for the offline session')
  await settle()
  await publish('site/g', 1)
  t.same(await queued('offline-1'), ['site/d', 'site/e', 'site/g'], 'still queued once the count is known')

  await store.removeSubscriptions({ id: 'offline-1' }, ['site/#'])
  await settle()
  const before = lookups
  await publish('site/h', 1)
  t.equal(lookups, before, 'the stored subscription removed: nobody again')

  await store.addSubscriptions({ id: 'offline-2' }, [{ topic: 'site/#', qos: 1 }])
  await settle()
  await publish('site/i', 1)
  t.same(await queued('offline-2'), ['site/i'])
  await store.cleanSubscriptions({ id: 'offline-2' })
  await settle()
  const afterClean = lookups
  await publish('site/j', 1)
  t.equal(lookups, afterClean, 'a cleaned session: nobody again')
})

t.test("a client's publish that only a gateway-made-only handler matches goes nowhere; the gateway's own reaches it", async (t) => {
  const { aedes, events } = await memoryBroker(t)
  const taken: string[] = []
  const own = gatewayMadeOnly((p: { topic: string }, cb: () => void): void => { taken.push(p.topic); cb() })
  await new Promise<void>((r) => aedes.subscribe('site/#', own, () => r()))
  const client = { id: 'c1' }
  const publish = (topic: string, from?: object): Promise<void> => new Promise((r, j) => {
    const packet = { cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, retain: false, dup: false } as never
    const done = (err?: Error): void => (err ? j(err) : r())
    if (from) (aedes.publish as unknown as (p: unknown, c: unknown, d: unknown) => void)(packet, from, done)
    else aedes.publish(packet, done)
  })
  await publish('site/a', client)
  t.same(events, [], "a client's publish: not published")
  t.same(taken, [])
  await publish('site/b')
  t.same(events, ['site/b'], "the gateway's own: published")
  t.same(taken, ['site/b'], 'and the handler has it')
  const plain: string[] = []
  const other = (p: { topic: string }, cb: () => void): void => { plain.push(p.topic); cb() }
  await new Promise<void>((r) => aedes.subscribe('site/c', other, () => r()))
  await publish('site/c', client)
  t.same(plain, ['site/c'], 'another subscription matches too: the client publish goes the whole way')
  t.same(taken, ['site/b', 'site/c'], 'to every matching handler (this one drops client publishes itself: bridge.ts)')
})

t.test('offlineCount: unknown until set up and counted; a count begun before an add ended says nothing', async (t) => {
  // a store whose counts and adds finish when the test says: each count reports what it read when it began
  let subs = 0
  const counts: (() => void)[] = []
  const adds: (() => void)[] = []
  const store = {
    async setup(): Promise<void> {},
    addSubscriptions: (_c: unknown, list: unknown[]) => new Promise<void>((r) => adds.push(() => { subs += list.length; r() })),
    removeSubscriptions: async (_c: unknown, _topics: string[]) => { subs = 0 },
    cleanSubscriptions: async () => {},
    countOffline: () => { const read = subs; return new Promise<{ subsCount: number }>((r) => counts.push(() => r({ subsCount: read }))) },
  }
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r))
  const offline = offlineCount(store)
  t.equal(counts.length, 0, 'no count before setup: the store may restore subscriptions there')
  t.notOk(offline.none(), 'unknown: some may queue')
  await store.setup()
  await tick()
  t.equal(counts.length, 1)
  counts.shift()!()
  await tick()
  t.ok(offline.none(), 'set up and counted: none')

  await store.removeSubscriptions({}, ['a'])
  await tick()
  t.equal(counts.length, 1, 'a remove counts again')
  const stale = counts.shift()!
  const add = store.addSubscriptions({}, [{ topic: 'a', qos: 1 }])
  t.notOk(offline.none(), 'an add in flight: some may')
  adds.shift()!()
  await add
  await tick()
  stale()
  await tick()
  t.notOk(offline.none(), 'the count begun before the add reads none, and says nothing')
  t.equal(counts.length, 1, 'the add counted again once it ended')
  counts.shift()!()
  await tick()
  t.notOk(offline.none(), 'counted after the add: one')
})

t.test('a numbered (prepared) message and any publish after close go the whole way', async (t) => {
  const { aedes, events } = await memoryBroker(t)
  await new Promise((r) => setTimeout(r, 20))
  const publish = (packet: object): Promise<void> => new Promise((r, j) => aedes.publish({ cmd: 'publish', payload: Buffer.from('x'), qos: 1, retain: false, dup: false, ...packet } as never, (err?: Error) => (err ? j(err) : r())))
  await publish({ topic: 'site/a' })
  await publish({ topic: 'site/b', brokerId: aedes.id, brokerCounter: 7 })
  t.same(events, ['site/b'], 'numbered by the store: Aedes routes it, and the store hears of it')
  await new Promise<void>((r) => aedes.close(() => r()))
  await t.rejects(publish({ topic: 'site/a' }), 'closed: Aedes answers with its error')
})

t.test('LMDB store: a persistent subscription restored at setup still gets its QoS 1 messages queued', async (t) => {
  const dataDir = tempDir(t)
  {
    const p = new LmdbPersistence({ dataDir })
    await p.setup({ id: 'gw-t', counter: 0, clients: {} } as never)
    await p.addSubscriptions({ id: 'off-1' } as never, [{ topic: 'site/#', qos: 1 }] as never)
    await p.destroy()
  }
  const p = new LmdbPersistence({ dataDir })
  const aedes = createAedes(loadConfig({ env: {}, cwd: dataDir, overrides: { gateway: { id: 'gw-t', dataDir }, broker: { persistence: 'lmdb' } } }), { persistence: p as never })
  t.teardown(async () => {
    await new Promise<void>((r) => aedes.close(() => r()))
    await p.destroy()
  })
  await aedes.listen()
  const publish = (topic: string): Promise<void> => new Promise((r, j) => aedes.publish({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, retain: false, dup: false } as never, (e?: Error) => (e ? j(e) : r())))
  await publish('site/now')
  await new Promise((r) => setTimeout(r, 30))
  await publish('site/later')
  t.equal(p.queuedCount('off-1'), 2, 'right after listen() and once the count is known')
  await p.removeSubscriptions({ id: 'off-1' } as never, ['site/#'])
  await new Promise((r) => setTimeout(r, 30))
  await publish('site/gone')
  t.equal(p.queuedCount('off-1'), 2, 'the subscription removed: nothing more queued')
})
