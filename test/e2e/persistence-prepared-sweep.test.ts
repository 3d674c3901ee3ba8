// LMDB forgets prepared messages whose publisher closed (lmdb.ts #sweepPrepared, here at 256
// waiting): Aedes' own route of them never comes. The gateway routes the messages it prepares
// itself, publisher gone or not (gateway.ts #routeAfterCommit), so it passes a publisher of its
// own that closes when that route is over. With the client as publisher (found by review), a
// sweep between the client's close and the route dropped the entry, the route queued the message
// again, and the persistent session got 256 of 258 messages twice.
import t from 'tap'
import mqttPacket from 'mqtt-packet'
import { startGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { connectBytes, rawClient, persistentSession, subscribedSession, cut, publishedNumbers } from '../helpers/raw.js'
import { waitFor } from '../helpers/wait.js'
import { MemoryJournal } from '../../src/journal/memory.js'
import type { JournalEntry } from '../../src/journal/types.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

class SlowJournal extends MemoryJournal {
  override append(entry: JournalEntry): Promise<number> {
    const p = (entry as { payload?: Buffer }).payload
    if (p && Buffer.isBuffer(p) && p.toString() === '9999') return new Promise((r) => setTimeout(() => r(super.append(entry)), 1500))
    return super.append(entry)
  }
}

interface Store { preparedCount: number; queuedCount(id: string): number }

t.test('lmdb: messages the gateway still routes are not swept; each is queued once', async (t) => {
  const g = await startGateway(t, { broker: { persistence: 'lmdb' } }, { journal: new SlowJournal() })
  const store = (g.gw.core.aedes as unknown as { persistence: Store }).persistence
  const stok = await g.token({ sub: 'dup-s' })
  const s = await subscribedSession(t, g.port(), 'dup-s', stok, 'd/#')
  cut(s)
  await sleep(100)

  const raw = await rawClient(t, g.port())
  raw.send(connectBytes({ clientId: 'dup-a', password: await g.token({ sub: 'dup-a' }) }))
  t.equal((await raw.nextPacket()).cmd, 'connack')
  // one chunk: a slow-journal message first (the session's routeTail), then 256 more
  const bufs = [mqttPacket.generate({ cmd: 'publish', topic: 'd/1', payload: Buffer.from('9999'), qos: 1, messageId: 1, retain: false, dup: false } as never)]
  for (let i = 0; i < 256; i++) bufs.push(mqttPacket.generate({ cmd: 'publish', topic: 'd/1', payload: Buffer.from(String(i)), qos: 1, messageId: i + 2, retain: false, dup: false } as never))
  raw.send(Buffer.concat(bufs))
  await waitFor(() => store.preparedCount >= 256, 5000, '256 prepared')
  raw.socket.destroy()
  await sleep(100)
  // another client's QoS 1 message: prepare() sweeps at 256 waiting
  const b = await connect(t, g.url(), { clientId: 'dup-b', password: await g.token({ sub: 'dup-b' }) })
  await b.publishAsync('d/2', '5000', { qos: 1 })
  t.comment(`prepared waiting after the sweep: ${store.preparedCount}`)
  await waitFor(() => store.queuedCount('dup-s') >= 258 && store.preparedCount === 0, 10_000, 'every message routed').catch(() => {})
  await sleep(200)
  t.equal(store.queuedCount('dup-s'), 258, 'the session\'s queue holds each message once (1 slow + 256 + 1)')
  const s2 = persistentSession(t, g.port(), 'dup-s', stok)
  await waitFor(() => publishedNumbers(s2).length >= 258, 10_000, 'the queue').catch(() => {})
  await sleep(300)
  const ns = publishedNumbers(s2)
  const dups = ns.filter((n, i) => ns.indexOf(n) !== i)
  t.equal(ns.length, 258, `received ${ns.length} publishes`)
  t.same(dups.length, 0, `no message delivered twice (${dups.length} duplicates)`)
})
