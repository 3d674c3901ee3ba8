import t from 'tap'
import mqttPacket from 'mqtt-packet'
import { startGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { rawClient, connectBytes } from '../helpers/raw.js'

/**
 * Retained publishes reach live subscribers even when a later message overtakes them. Aedes
 * routes a retained message only after its retained store has taken it (asynchronously), so a
 * message received after it is routed first; Aedes' duplicate guard (a per-client counter) then
 * dropped the retained one for every live subscriber. Bare Aedes 1.2 does the same: the five
 * publishes below, in one write to bare Aedes, reached its subscriber as r/2, r/3 and r/4 only.
 * MQTT 3.1.1 [MQTT-3.3.1-10]: a retained message, empty or not, is delivered to the current
 * subscribers as any message is; [MQTT-4.6.0-6]: in order per topic.
 */
for (const persistence of ['memory', 'lmdb'] as const) {
  t.test(`${persistence}: retained publishes overtaken in one read are still delivered, in order per topic`, async (t) => {
    const g = await startGateway(t, { broker: { persistence } })
    const sub = await connect(t, g.url(), { clientId: 'live', username: 'x', password: Buffer.from(await g.token({ sub: 'live' })) })
    await sub.subscribeAsync('r/#', { qos: 1 })
    const got = new Map<string, number[]>()
    let count = 0
    sub.on('message', (topic, payload) => {
      count++
      got.set(topic, [...(got.get(topic) ?? []), payload.length])
    })
    const pub = await rawClient(t, g.port())
    pub.send(connectBytes({ clientId: 'dev', password: await g.token({ sub: 'dev' }) }))
    t.equal((await pub.nextPacket()).cmd, 'connack')
    const p = (topic: string, payload: string, qos: 0 | 1, retain: boolean, messageId?: number): Buffer =>
      mqttPacket.generate({ cmd: 'publish', topic, payload, qos, retain, dup: false, messageId })
    // one write: Aedes handles the packets of one read together
    pub.socket.write(Buffer.concat([
      p('r/1', 'hello', 0, true), p('r/1', '', 0, true), p('r/2', 'after', 0, false),
      p('r/3', 'q1', 1, true, 1), p('r/3', '', 1, true, 2), p('r/4', 'after', 1, false, 3),
    ]))
    const t0 = Date.now()
    while (count < 6 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20))
    t.same(Object.fromEntries(got), { 'r/1': [5, 0], 'r/2': [5], 'r/3': [2, 0], 'r/4': [5] }, 'every message, in order per topic')
    // the empty ones cleared what was retained
    const late = await connect(t, g.url(), { clientId: 'late', username: 'x', password: Buffer.from(await g.token({ sub: 'late' })) })
    const retained: string[] = []
    late.on('message', (topic) => retained.push(topic))
    await late.subscribeAsync('r/#', { qos: 1 })
    await new Promise((r) => setTimeout(r, 200))
    t.same(retained, [], 'nothing retained is left on r/1 or r/3')
  })
}

t.test("overlapping subscriptions still get each message once (Aedes' duplicate guard, kept)", async (t) => {
  const g = await startGateway(t)
  const sub = await connect(t, g.url(), { clientId: 'both', username: 'x', password: Buffer.from(await g.token({ sub: 'both' })) })
  await sub.subscribeAsync(['o/#', 'o/+', 'o/1'], { qos: 1 })
  const got: string[] = []
  sub.on('message', (topic, payload) => got.push(`${topic}:${payload.toString()}`))
  const pub = await connect(t, g.url(), { clientId: 'dev2', username: 'x', password: Buffer.from(await g.token({ sub: 'dev2' })) })
  await pub.publishAsync('o/1', 'a', { qos: 1, retain: true })
  await pub.publishAsync('o/1', 'b', { qos: 0 })
  await pub.publishAsync('o/2', 'c', { qos: 1 })
  await new Promise((r) => setTimeout(r, 300))
  t.same(got.sort(), ['o/1:a', 'o/1:b', 'o/2:c'])
})
