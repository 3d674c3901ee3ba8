// One client's messages on one topic and QoS arrive in the order it sent them ([MQTT-4.6.0-6]),
// retained or not. Aedes routes a retained message only once the retained store has taken it
// (asynchronous), and it handles the packets of one socket read together: the plain messages
// behind a retained one overtook it (QoS 0 with every persistence; QoS 1 with the memory store
// and on a cluster; bare Aedes 1.2 does the same). The gateway routes a retained message, and
// the session's messages behind it, in turn (gateway.ts #routeInTurn).
import t from 'tap'
import mqttPacket from 'mqtt-packet'
import { connect } from '../helpers/mqtt.js'
import { connectBytes, rawClient } from '../helpers/raw.js'
import { gatewayPair } from '../helpers/modes.js'
import { waitFor } from '../helpers/wait.js'

const N = 40


for (const mode of ['memory', 'lmdb', 'cluster']) {
  for (const qos of [0, 1] as const) {
    t.test(`${mode}, QoS ${qos}: ${N} messages in one write, every fourth retained, arrive in order (live, and from a persistent session's queue)`, async (t) => {
      const [a, b] = await gatewayPair(t, mode)
      // a persistent session, offline while the messages are sent (on the cluster: on the other gateway)
      const off = await connect(t, b.url(), { clientId: 'ro-off', clean: false, password: await b.token({ sub: 'ro-off' }) })
      await off.subscribeAsync('o/#', { qos: 1 })
      await off.endAsync()
      const live = await connect(t, b.url(), { clientId: 'ro-live', password: await b.token({ sub: 'ro-live' }) })
      await live.subscribeAsync('o/#', { qos })
      const got: number[] = []
      live.on('message', (_topic, payload) => got.push(Number(payload.toString())))
      const raw = await rawClient(t, a.port())
      raw.send(connectBytes({ clientId: 'ro-pub', password: await a.token({ sub: 'ro-pub' }) }))
      t.equal((await raw.nextPacket()).cmd, 'connack')
      raw.send(Buffer.concat(Array.from({ length: N }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic: 'o/t', payload: Buffer.from(String(i)), qos, messageId: qos ? i + 1 : undefined, retain: i % 4 === 0, dup: false } as never))))
      await waitFor(() => got.length >= N, 5000, 'every message live').catch(() => {})
      t.same(got, Array.from({ length: N }, (_, i) => i), 'live, in order')
      if (qos === 1) {
        const queued: number[] = []
        const back = await connect(t, b.url(), { clientId: 'ro-off', clean: false, password: await b.token({ sub: 'ro-off' }) })
        back.on('message', (_topic, payload) => queued.push(Number(payload.toString())))
        await waitFor(() => queued.length >= N, 5000, 'every message queued').catch(() => {})
        t.same(queued, Array.from({ length: N }, (_, i) => i), "the persistent session's queue, in order")
      }
      // the retained store holds the last retained one
      const late = await connect(t, b.url(), { clientId: 'ro-late', password: await b.token({ sub: 'ro-late' }) })
      const retained: string[] = []
      late.on('message', (_topic, payload, packet) => { if (packet.retain) retained.push(payload.toString()) })
      await late.subscribeAsync('o/t', { qos: 1 })
      await waitFor(() => retained.length >= 1, 3000, 'the retained message').catch(() => {})
      t.same(retained, [String(N - 4)], 'the last retained message is the one kept')
    })
  }
}
