// A mask's redact-all gives every unreadable payload one shared Buffer (mask/apply.ts
// REDACTED_ALL). The LMDB persistence used to recognise a message it had prepared (queued for a
// persistent session before the PUBACK, stored as retained) by its payload object, so messages
// sharing that Buffer were taken for one another (found by review):
// - a retained QoS 0 message consumed a prepared QoS 1 one's "already stored" mark and was never
//   stored (116 of 200 kept);
// - a QoS 1 message never prepared took a prepared one's queue entries at its route, and the
//   prepared one was queued again: a persistent session got acknowledged messages back at resume.
// Prepared messages are now recognised by the number prepare() gives them, and retained
// messages are stored by the gateway (gateway.ts #storeRetained), not by prepare().
import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'

const POLICY = `rules:
  - { id: open, effect: allow, actions: [publish, subscribe], topics: ['#'] }
masks:
  - id: lenient-json
    topics: ['lenient/#']
    format: json
    onParseError: redact-all
    fields: [{ path: pw, action: redact }]
`

async function lmdbGateway(t: Test): Promise<TestGateway> {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'policy.yaml'), POLICY)
  return startGateway(t, { policies: { dir, watch: false }, broker: { persistence: 'lmdb' } })
}

t.test('lmdb: retained QoS 0 redact-all messages sent while QoS 1 retained ones are queued for a persistent session are all retained', async (t) => {
  const g = await lmdbGateway(t)
  // a persistent session on the QoS 1 topics: those are prepared (queued before their PUBACK)
  const keep = await connect(t, g.url(), { clientId: 'rr-keep', clean: false, password: await g.token({ sub: 'rr-keep' }) })
  await keep.subscribeAsync('lenient/a/#', { qos: 1 })
  const a = await connect(t, g.url(), { clientId: 'rr-a', password: await g.token({ sub: 'rr-a' }) })
  const b = await connect(t, g.url(), { clientId: 'rr-b', password: await g.token({ sub: 'rr-b' }) })
  const N = 200
  let stop = false
  const qos1 = (async () => { for (let i = 0; !stop && i < 2000; i++) await a.publishAsync(`lenient/a/${i}`, 'not json', { qos: 1, retain: true }) })()
  for (let i = 0; i < N; i++) {
    b.publish(`lenient/b/${i}`, 'not json', { qos: 0, retain: true })
    await new Promise((r) => setTimeout(r, 2))
  }
  stop = true
  await qos1
  // Aedes reads b's socket on only once a read's QoS 0 retained messages are stored: this one's PUBACK comes after them
  await b.publishAsync('lenient/b/fence', 'f', { qos: 1 })
  const store = (g.gw.core.aedes as unknown as { persistence: { createRetainedStreamCombi(p: string[]): NodeJS.ReadableStream } }).persistence
  const stored: string[] = []
  await new Promise<void>((resolve) => {
    const s = store.createRetainedStreamCombi(['lenient/b/+'])
    s.on('data', (pk: { topic: string }) => { if (pk.topic !== 'lenient/b/fence') stored.push(pk.topic) })
    s.on('end', resolve)
  })
  t.equal(stored.length, N, 'every QoS 0 retained message is in the retained store')
})

t.test('lmdb: a persistent subscriber gets each acknowledged redact-all message once, and none again at its resume', async (t) => {
  const g = await lmdbGateway(t)
  const opts = async (): Promise<object> => ({ clientId: 'rp-s', clean: false, password: await g.token({ sub: 'rp-s' }) })
  const s = await connect(t, g.url(), await opts())
  await s.subscribeAsync('lenient/x/#', { qos: 1 })
  const live: string[] = []
  s.on('message', (topic) => live.push(topic))
  const a = await connect(t, g.url(), { clientId: 'rp-a', password: await g.token({ sub: 'rp-a' }) })
  const b = await connect(t, g.url(), { clientId: 'rp-b', password: await g.token({ sub: 'rp-b' }) })
  const N = 300
  let stop = false
  // b's messages match no persistent session: never prepared, routed by Aedes with the same Buffer
  const other = (async () => { for (let i = 0; !stop && i < 5000; i++) await b.publishAsync(`lenient/y/${i}`, 'not json', { qos: 1 }) })()
  await Promise.all(Array.from({ length: N }, (_, i) => a.publishAsync(`lenient/x/${i}`, 'not json', { qos: 1 })))
  stop = true
  await other
  await waitFor(() => live.length >= N, 5000, 'live').catch(() => {})
  t.equal(live.length, N, 'each message live once')
  const queued = (g.gw.core.aedes as unknown as { persistence: { queuedCount(id: string): number } }).persistence
  await waitFor(() => queued.queuedCount('rp-s') === 0, 5000, 'every acknowledged message leaves the queue').catch(() => {})
  t.equal(queued.queuedCount('rp-s'), 0, 'nothing acknowledged left in the queue')
  await s.endAsync()
  const again: string[] = []
  const s2 = await connect(t, g.url(), await opts())
  s2.on('message', (topic) => again.push(topic))
  // a fence on the same subscription: anything the resume sent came before it
  await a.publishAsync('lenient/x/fence', 'f', { qos: 1 })
  await waitFor(() => again.includes('lenient/x/fence'), 5000, 'the fence')
  t.same(again, ['lenient/x/fence'], 'nothing acknowledged comes back at the resume')
})
