import t from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'

/**
 * A persistent session with overlapping QoS 1 subscriptions gets each message once, stays
 * connected, and finds each message once in its queue after being offline. Aedes queued such a
 * message once per matching subscription and answered the second copy by clearing the
 * message's id from the session's store under the first copy's write ("no such packet"): the
 * client was disconnected (LMDB here; the reviewer saw it with memory persistence under load).
 */
for (const persistence of ['memory', 'lmdb'] as const) {
  t.test(`${persistence}: overlapping QoS 1 subscriptions of a persistent session`, async (t) => {
    const g = await startGateway(t, { broker: { persistence } })
    const opts = async (id: string, clean: boolean) => ({ clientId: id, clean, username: 'x', password: Buffer.from(await g.token({ sub: id })), reconnectPeriod: 0 })
    const sub = await connect(t, g.url(), await opts('ov', false))
    let closed = false
    sub.on('close', () => { closed = true })
    await sub.subscribeAsync({ 'o/#': { qos: 1 }, 'o/1': { qos: 1 }, 'o/+': { qos: 0 } })
    const got: string[] = []
    sub.on('message', (topic, payload) => got.push(`${topic}:${payload.toString()}`))
    const pub = await connect(t, g.url(), await opts('ovp', true))
    for (let i = 0; i < 50; i++) await pub.publishAsync('o/1', String(i), { qos: 1 })
    const t0 = Date.now()
    while (got.length < 50 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, 100))
    t.same(got, Array.from({ length: 50 }, (_, i) => `o/1:${i}`), 'each once, in order')
    t.notOk(closed, 'still connected')
    await sub.endAsync()
    for (let i = 50; i < 60; i++) await pub.publishAsync('o/1', String(i), { qos: 1 })
    const back = await connect(t, g.url(), await opts('ov', false))
    const queued: string[] = []
    back.on('message', (topic, payload) => queued.push(`${topic}:${payload.toString()}`))
    const t1 = Date.now()
    while (queued.length < 10 && Date.now() - t1 < 3000) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, 200))
    t.same(queued, Array.from({ length: 10 }, (_, i) => `o/1:${50 + i}`), 'the offline queue: each once, in order, nothing already delivered')
  })
}

/**
 * [MQTT-3.3.5-1]: the message reaches the client at the highest QoS of its matching
 * subscriptions. When the QoS 0 subscription's copy came first, Aedes' duplicate guard dropped
 * the QoS 1 copy: the session got the message at QoS 0 only, and again (at QoS 1) from its
 * store at the next resume. The QoS 1 copy now follows the QoS 0 one (a further copy per
 * matching subscription is allowed), and nothing is left in the store.
 */
for (const persistence of ['memory', 'lmdb'] as const) {
  t.test(`${persistence}: a QoS 0 and a QoS 1 subscription, the QoS 0 one's copy first: each message at QoS 1, none again after a resume`, async (t) => {
    const g = await startGateway(t, { broker: { persistence } })
    const opts = async (id: string, clean: boolean) => ({ clientId: id, clean, password: await g.token({ sub: id }), reconnectPeriod: 0 })
    const sub = await connect(t, g.url(), await opts('mx', false))
    // Aedes' matcher yields the `#` subscription's copy before the `+` one's
    await sub.subscribeAsync('q/+', { qos: 1 })
    await sub.subscribeAsync('q/#', { qos: 0 })
    const got: string[] = []
    sub.on('message', (_topic, payload, packet) => got.push(`${payload.toString()}@${packet.qos}`))
    const pub = await connect(t, g.url(), await opts('mxp', true))
    for (let i = 0; i < 20; i++) await pub.publishAsync('q/1', String(i), { qos: 1 })
    const t0 = Date.now()
    while (got.filter((x) => x.endsWith('@1')).length < 20 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, 100))
    t.same(got.filter((x) => x.endsWith('@1')), Array.from({ length: 20 }, (_, i) => `${i}@1`), 'each message at QoS 1, once, in order')
    t.ok(got.filter((x) => x.endsWith('@0')).length <= 20, 'at most one further QoS 0 copy each')
    await sub.endAsync()
    const back = await connect(t, g.url(), await opts('mx', false))
    const again: string[] = []
    back.on('message', (_topic, payload) => again.push(payload.toString()))
    await new Promise((r) => setTimeout(r, 500))
    t.same(again, [], 'nothing redelivered from the store')
  })
}
