// A subscriber over its delivery bound (limits.maxQueuedMessages) whose subscriptions overlap
// (`load/#` and `load/+`): Aedes delivers a message once per matching subscription, so each
// message reached the bound's accounting twice. Counted twice, the journal and the metrics said
// more messages were dropped (or stored) than were published, and a QoS 0 copy of a message a
// persistent session's store kept was counted as dropped. Each message now counts once: as
// stored when any copy is a persistent session's QoS 1, else as dropped.
import t, { type Test } from 'tap'
import type { MqttClient } from 'mqtt'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { connectBytes, rawClient, type RawClient } from '../helpers/raw.js'
import { waitFor } from '../helpers/wait.js'

const PUBLISHERS = 3
const EACH = 1000
const TOTAL = PUBLISHERS * EACH

async function pausedSubscriber(t: Test, g: TestGateway, id: string, clean: boolean, subs: Array<{ topic: string; qos: 0 | 1 }>): Promise<RawClient> {
  const c = await rawClient(t, g.port())
  c.send(connectBytes({ clientId: id, password: await g.token({ sub: id }), clean }))
  const ack = await c.nextPacket()
  t.equal(ack.cmd === 'connack' && ack.returnCode, 0, `${id} connected`)
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: subs })
  t.equal((await c.nextPacket()).cmd, 'suback', `${id} subscribed`)
  // reads nothing more: its socket buffers fill, then the gateway's delivery bound applies
  c.socket.pause()
  return c
}

/** 4 KiB payloads numbered 0…TOTAL-1, in batches (MQTT.js resolves QoS 0 publishes once written) */
async function publishAll(t: Test, g: TestGateway, qos: 0 | 1): Promise<void> {
  const clients: MqttClient[] = await Promise.all(Array.from({ length: PUBLISHERS }, async (_, i) => connect(t, g.url(), { clientId: `pub-${i}`, password: await g.token({ sub: `pub-${i}` }) })))
  for (let n = 0; n < EACH; n += 20) {
    await Promise.all(clients.map((c, i) => Promise.all(Array.from({ length: 20 }, (_, k) => {
      const payload = Buffer.alloc(4096, 0x61)
      payload.writeUInt32BE(i * EACH + n + k)
      return c.publishAsync(`load/${i}`, payload, { qos })
    }))))
  }
}

function numbers(c: RawClient): number[] {
  return c.packets.filter((p) => p.cmd === 'publish').map((p) => ((p as { payload: Buffer }).payload).readUInt32BE(0))
}

const journaledDrops = (g: TestGateway, id: string): number => g.journal.entries.filter((e) => e.type === 'buffer_dropped' && e.clientId === id).reduce((a, e) => a + ((e.count as number | undefined) ?? 0), 0)
const limits = (slowSec: number) => ({ journal: { recordPayloads: 'none' as const }, limits: { maxQueuedMessages: 200, maxQueuedBytes: '64MB', slowConsumerTimeoutSec: slowSec } })

t.test('clean session, two QoS 0 subscriptions: what is counted and journaled as dropped is what was lost', async (t) => {
  const g = await startGateway(t, limits(120))
  const slow = await pausedSubscriber(t, g, 'ov-clean', true, [{ topic: 'load/#', qos: 0 }, { topic: 'load/+', qos: 0 }])
  await publishAll(t, g, 0)
  slow.socket.resume()
  // settled: nothing arrives for 500 ms
  for (let n = -1; n !== slow.packets.length;) { n = slow.packets.length; await new Promise((r) => setTimeout(r, 500)) }
  g.gw.core.flushDeliveryDrops()
  const got = numbers(slow)
  const lost = TOTAL - new Set(got).size
  t.equal(got.length, new Set(got).size, 'each message delivered once')
  t.ok(lost > 0, `the bound dropped messages (${lost})`)
  t.equal(g.gw.core.deliveryBacklog('ov-clean')!.dropped, lost, 'dropped counter = messages lost')
  t.equal(journaledDrops(g, 'ov-clean'), lost, 'journaled buffer_dropped counts = messages lost')
})

for (const [name, second] of [['both QoS 1', 1], ['the second at QoS 0', 0]] as const) {
  t.test(`persistent session, load/# at QoS 1 and load/+ ${name}: nothing counted dropped, stored at most what was not written, everything arrives`, async (t) => {
    const id = `ov-pers-${second}`
    const g = await startGateway(t, limits(1))
    const slow = await pausedSubscriber(t, g, id, false, [{ topic: 'load/#', qos: 1 }, { topic: 'load/+', qos: second }])
    await publishAll(t, g, 1)
    const rec = await waitFor(() => g.journal.entries.find((e) => e.type === 'disconnect' && e.clientId === id), 10_000, 'slow_consumer disconnect')
    slow.socket.resume()
    await new Promise((r) => setTimeout(r, 500))
    const written = new Set(numbers(slow))
    slow.socket.destroy()
    g.gw.core.flushDeliveryDrops()
    t.equal(rec.dropped, 0, 'nothing counted dropped')
    t.equal(journaledDrops(g, id), 0, 'no buffer_dropped record')
    t.ok((rec.stored as number) > 0 && (rec.stored as number) <= TOTAL - written.size, `stored ${rec.stored as number}: at most the ${TOTAL - written.size} not written`)
    const seen = new Set(written)
    const c = await connect(t, g.url(), { clientId: id, clean: false, password: await g.token({ sub: id }) })
    c.on('message', (_topic, payload) => seen.add(payload.readUInt32BE(0)))
    await waitFor(() => seen.size === TOTAL, 30_000, `all ${TOTAL}`).catch(() => {})
    t.equal(seen.size, TOTAL, 'every message reached the session')
  })
}
