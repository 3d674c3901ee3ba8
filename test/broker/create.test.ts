import t from 'tap'
import { createAedes, DENIED_TOPIC } from '../../src/broker/create.js'
import { loadConfig } from '../../src/config/load.js'
import { tempDir } from '../helpers/gateway.js'

t.test("what goes nowhere is not published: no 'publish' event, no subscriber, no persistence lookup; the rest is", async (t) => {
  const dataDir = tempDir(t)
  const aedes = createAedes(loadConfig({ env: {}, cwd: dataDir, overrides: { gateway: { id: 'gw-t', dataDir }, broker: { persistence: 'memory' } } }), {})
  t.teardown(() => new Promise<void>((r) => aedes.close(() => r())))
  await aedes.listen()
  const events: string[] = []
  aedes.on('publish', (p) => { if (!p.topic.startsWith('$SYS')) events.push(p.topic) })
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
