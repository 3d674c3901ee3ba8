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
