// A persistent QoS 1 session that resumes while its topic is live. Aedes restores the
// session's subscriptions before its CONNACK and before it sends the queue kept while the
// session was away, and every QoS 1 message for a persistent session is queued, online or not.
// Without the gateway's hold (src/broker/delivery-limits.ts release()), live messages went out
// before the CONNACK [MQTT-3.2.0-1] (MQTT.js then never saw its CONNACK), ahead of older queued
// ones [MQTT-4.6.0-6], and a second time from the queue; on a cluster the second acknowledgement
// released the message in Redis for every session, and another offline session lost it.
import t, { type Test } from 'tap'
import mqtt, { type MqttClient } from 'mqtt'
import type { TestGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { cut, persistentSession, publishedNumbers, subscribedSession, type RawSession } from '../helpers/raw.js'
import { gatewayPair } from '../helpers/modes.js'
import { waitFor } from '../helpers/wait.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))


const ROUNDS = 12

for (const mode of ['memory', 'lmdb', 'cluster']) {
  t.test(`${mode}: a session resuming ${ROUNDS} times while a publisher streams gets CONNACK first, then each message once and in order; an offline session loses nothing`, async (t) => {
    const [a, b] = await gatewayPair(t, mode)
    // T: a second persistent session on the topic, offline throughout
    const tc = await connect(t, a.url(), { clientId: 'off-t', clean: false, password: await a.token({ sub: 'off-t' }) })
    await tc.subscribeAsync('s/#', { qos: 1 })
    await tc.endAsync()
    const tokens = [await a.token({ sub: 'rc-s' }), await b.token({ sub: 'rc-s' })]
    const first = await subscribedSession(t, b.port(), 'rc-s', tokens[1]!, 's/#')
    const pub = await connect(t, a.url(), { clientId: 'rc-pub', password: await a.token({ sub: 'rc-pub' }) })
    let acked = 0
    let stop = false
    const publishing = (async () => { for (let i = 0; !stop; i++) { await pub.publishAsync('s/1', String(i), { qos: 1 }); acked = i + 1 } })()
    const conns: RawSession[] = [first]
    // cut at random points, resumed on the other gateway (a cluster) or the same one
    for (let k = 0; k < ROUNDS; k++) {
      await sleep(60 + Math.floor(Math.random() * 60))
      conns.at(-1)!.socket.destroy()
      await sleep(Math.floor(Math.random() * 20))
      conns.push(persistentSession(t, [a, b][k % 2]!.port(), 'rc-s', tokens[k % 2]!))
    }
    await sleep(200)
    stop = true
    await publishing
    const n = acked
    t.ok(n > 100, `${n} messages published and acknowledged`)
    // a last resume collects what is still queued
    await sleep(300)
    conns.at(-1)!.socket.destroy()
    const last = persistentSession(t, a.port(), 'rc-s', tokens[0]!)
    conns.push(last)
    await waitFor(() => new Set(conns.flatMap(publishedNumbers)).size >= n, 20_000, 'every message at S').catch(() => {})

    const connackFirst = conns.filter((c) => c.packets.length > 0).every((c) => c.packets[0]!.cmd === 'connack')
    t.ok(connackFirst, 'CONNACK is the first packet on every connection [MQTT-3.2.0-1]')
    for (const [i, c] of conns.entries()) {
      const ns = publishedNumbers(c)
      const inOrder = ns.every((x, j) => j === 0 || x > ns[j - 1]!)
      if (!inOrder) t.fail(`connection ${i}: each message once, in publish order [MQTT-4.6.0-6]: ${ns.slice(0, 40).join(',')}`)
    }
    const atS = new Set(conns.flatMap(publishedNumbers))
    t.same(Array.from({ length: n }, (_, i) => i).filter((i) => !atS.has(i)), [], 'S lost nothing acknowledged')

    const tBack = persistentSession(t, b.port(), 'off-t', await b.token({ sub: 'off-t' }))
    await waitFor(() => new Set(publishedNumbers(tBack)).size >= n, 20_000, 'every message at T').catch(() => {})
    const atT = publishedNumbers(tBack)
    t.same(Array.from({ length: n }, (_, i) => i).filter((i) => !atT.includes(i)), [], 'T, offline throughout, lost nothing')
    t.ok(atT.every((x, j) => j === 0 || x > atT[j - 1]!), "T's queue: each once, in order")
  })
}

t.test('cluster: an MQTT.js persistent subscriber reconnecting across gateways while its topic is busy always gets its CONNACK', async (t) => {
  const [a, b] = await gatewayPair(t, 'cluster')
  const open = async (g: TestGateway): Promise<MqttClient> => {
    const c = mqtt.connect(g.url(), { clientId: 'rc-m', clean: false, username: 'rc-m', password: await g.token({ sub: 'rc-m' }), reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 4000 })
    t.teardown(() => new Promise<void>((r) => c.end(true, {}, () => r())))
    c.on('message', () => {})
    await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); c.once('error', reject) })
    return c
  }
  let c = await open(b)
  await c.subscribeAsync('m/#', { qos: 1 })
  const pub = await connect(t, a.url(), { clientId: 'rc-mpub', password: await a.token({ sub: 'rc-mpub' }) })
  let stop = false
  const publishing = (async () => { for (let i = 0; !stop; i++) await pub.publishAsync('m/1', String(i), { qos: 1 }) })()
  let connected = 0
  for (let k = 0; k < 30; k++) {
    await sleep(40 + Math.floor(Math.random() * 60))
    await c.endAsync(true)
    try {
      c = await open(k % 2 ? b : a)
      connected++
    } catch (err) {
      t.fail(`reconnect ${k}: ${(err as Error).message}`)
      break
    }
  }
  stop = true
  await publishing
  t.equal(connected, 30, 'every reconnect got its CONNACK')
})
