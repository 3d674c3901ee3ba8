// The resume hold (src/broker/delivery-limits.ts: a resuming persistent session's live messages
// wait until its queue has been sent) is bounded like any delivery: by limits.maxQueuedMessages
// and maxQueuedBytes, with every message refused beyond them counted and journaled once. A
// session that comes back with a queue larger than its socket buffers and reads nothing keeps
// Aedes sending that queue (clientReady, and the release, wait); live messages meanwhile go to
// the hold. Found by a review: the first version counted a whole tick's refusals as one, and
// held 100 KiB messages past a 1 MB bound (~60 MiB).
import t, { type Test } from 'tap'
import mqttPacket from 'mqtt-packet'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { connectBytes, rawClient, type RawClient } from '../helpers/raw.js'
import { waitFor } from '../helpers/wait.js'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { MemoryJournal } from '../../src/journal/memory.js'
import type { JournalEntry } from '../../src/journal/types.js'

/** the in-memory journal keeps payloads whatever recordPayloads says: these tests measure memory */
class NoPayloadJournal extends MemoryJournal {
  override append(e: JournalEntry): Promise<number> { return super.append({ ...e, payload: undefined } as JournalEntry) }
  override record(e: JournalEntry): void { super.record({ ...e, payload: undefined } as JournalEntry) }
}

// a real collection, so memory is compared in live objects, not in garbage
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function rawSession(t: Test, g: TestGateway, id: string, clean: boolean): Promise<RawClient> {
  const c = await rawClient(t, g.port())
  c.send(connectBytes({ clientId: id, password: await g.token({ sub: id }), clean, keepalive: 0 }))
  return c
}

/** rs: persistent, h/# at QoS 1 and live/# at QoS 0; goes away with a big queue; comes back and reads nothing */
async function stalledResume(t: Test, g: TestGateway): Promise<RawClient> {
  const first = await rawSession(t, g, 'rs', false)
  t.equal((await first.nextPacket()).cmd, 'connack')
  first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'h/#', qos: 1 }, { topic: 'live/#', qos: 0 }] })
  t.equal((await first.nextPacket()).cmd, 'suback')
  first.send({ cmd: 'disconnect' })
  await first.closed
  const pub = await connect(t, g.url(), { clientId: 'qpub', password: await g.token({ sub: 'qpub' }) })
  const big = Buffer.alloc(64 * 1024, 0x62)
  for (let i = 0; i < 200; i += 20) await Promise.all(Array.from({ length: 20 }, () => pub.publishAsync('h/q', big, { qos: 1 })))
  await pub.endAsync()
  // back, reading nothing: Aedes' emptyQueue fills the socket and waits for drain (release() not called)
  const back = await rawSession(t, g, 'rs', false)
  back.socket.pause()
  await sleep(500)
  t.ok(g.gw.core.deliveryBacklog('rs'), 'rs is registered (resuming, its queue being sent)')
  return back
}

async function rawPublisher(t: Test, g: TestGateway): Promise<RawClient> {
  const p = await rawSession(t, g, 'lpub', true)
  t.equal((await p.nextPacket()).cmd, 'connack')
  return p
}

const limits = (maxQueuedMessages: number, maxQueuedBytes: string) => ({ journal: { recordPayloads: 'none' }, limits: { maxQueuedMessages, maxQueuedBytes, slowConsumerTimeoutSec: 0 } })

t.test('messages refused while held are each counted (dropped metric, backlog, journal)', async (t) => {
  const g = await startGateway(t, limits(50, '16MB'))
  const rs = await stalledResume(t, g)
  const p = await rawPublisher(t, g)
  // 100 QoS 0 live messages in one TCP write: 50 are held, 50 refused over the bound
  p.send(Buffer.concat(Array.from({ length: 100 }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic: 'live/x', payload: Buffer.from(String(i)), qos: 0, retain: false, dup: false }))))
  await sleep(300)
  g.gw.core.flushDeliveryDrops()
  const dropped = g.gw.core.deliveryBacklog('rs')!.dropped
  const journaled = g.journal.entries.filter((e) => e.type === 'buffer_dropped' && e.clientId === 'rs').reduce((a, e) => a + ((e.count as number | undefined) ?? 0), 0)
  // now let it read: queue, then the held live messages
  rs.socket.resume()
  await waitFor(() => rs.packets.filter((x) => x.cmd === 'publish' && x.topic.startsWith('live/')).length >= 50, 20_000, 'held live messages').catch(() => {})
  await sleep(500)
  const live = rs.packets.filter((x) => x.cmd === 'publish' && x.topic.startsWith('live/'))
  const lost = 100 - live.length
  t.equal(live.length, 50, 'the 50 held live messages arrive after the queue')
  t.equal(dropped, lost, `dropped counter (${dropped}) = live messages lost (${lost})`)
  t.equal(journaled, lost, `journaled buffer_dropped counts (${journaled}) = live messages lost (${lost})`)
})

t.test('what is held while resuming stays within limits.maxQueuedBytes', async (t) => {
  const g = await startGateway(t, { ...limits(1000, '1MB'), limits: { maxQueuedMessages: 1000, maxQueuedBytes: '1MB', slowConsumerTimeoutSec: 0, maxPacketBytes: '256KB' } }, { journal: new NoPayloadJournal() })
  await stalledResume(t, g)
  const p = await rawPublisher(t, g)
  gc(); gc()
  const before = process.memoryUsage().arrayBuffers
  // 600 QoS 0 live messages of 100 KiB (60 MB), well past the 1 MB bound
  const payload = Buffer.alloc(100 * 1024, 0x6c)
  for (let i = 0; i < 600; i++) {
    if (!p.socket.write(mqttPacket.generate({ cmd: 'publish', topic: 'live/m', payload, qos: 0, retain: false, dup: false }))) await new Promise((r) => p.socket.once('drain', r))
  }
  await sleep(1000)
  gc(); gc()
  const grown = process.memoryUsage().arrayBuffers - before
  t.comment(`arrayBuffers grew by ${(grown / 1048576).toFixed(1)} MiB while rs was resuming`)
  t.ok(grown < 8 * 1048576, `held live messages bounded by maxQueuedBytes (1 MB): grew ${(grown / 1048576).toFixed(1)} MiB`)
})
