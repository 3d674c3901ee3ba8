import t from 'tap'
import mqttPacket from 'mqtt-packet'
import { startGateway } from '../helpers/gateway.js'
import { rawClient, connectBytes, type RawClient } from '../helpers/raw.js'

/**
 * Sustained fan-in through the gateway's batched writes (src/broker/write-batch.ts): a turn's
 * deliveries to one subscriber leave together, and none is lost, reordered or counted against
 * the delivery bound once the subscriber has read it. (That a batch never makes write() report
 * back-pressure by itself — what dropped messages to a reader that kept up, in the bench — is
 * tested in test/broker/write-batch.test.ts: here the reader shares the event loop and never
 * falls behind enough to show it.)
 */
t.test("sustained QoS 0 fan-in, 20 publishers → 1 subscriber: every message, in each publisher's order, none dropped", async (t) => {
  const total = 40_000
  const perBatch = 25
  const window = 1_000
  // a bound just over the window: no more than the window is ever unreceived
  const g = await startGateway(t, { limits: { maxQueuedMessages: 1500 } })
  const open = async (id: string): Promise<RawClient> => {
    const c = await rawClient(t, g.port())
    c.send(connectBytes({ clientId: id, password: await g.token({ sub: id }) }))
    const ack = await c.nextPacket()
    t.equal(ack.cmd === 'connack' && ack.returnCode, 0, `${id} connected`)
    return c
  }
  const sub = await open('burst-sub')
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'burst/#', qos: 0 }] })
  t.equal((await sub.nextPacket()).cmd, 'suback')
  const publishers = await Promise.all(Array.from({ length: 20 }, (_, i) => open(`burst-pub-${i}`)))

  // parsed here rather than by the helper, which would keep every packet
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const last = new Map<string, number>()
  let received = 0
  let outOfOrder = 0
  parser.on('packet', (p) => {
    if (p.cmd !== 'publish') return
    received++
    const n = Number((p.payload as Buffer).toString().trim())
    if (n !== (last.get(p.topic) ?? -1) + 1) outOfOrder++
    last.set(p.topic, n)
  })
  let sent = 0
  const next = new Array<number>(publishers.length).fill(0)
  const pump = (): void => {
    while (sent < total && sent - received < window - perBatch * publishers.length) {
      publishers.forEach((p, i) => {
        const batch: Buffer[] = []
        // 64-byte payloads, as in bench/: a turn's batch then passes net's 16 KiB highWaterMark
        for (let k = 0; k < perBatch; k++) batch.push(mqttPacket.generate({ cmd: 'publish', topic: `burst/${i}`, payload: String(next[i]!++).padEnd(64, ' '), qos: 0, dup: false, retain: false }))
        p.socket.write(Buffer.concat(batch))
      })
      sent += perBatch * publishers.length
    }
  }
  sub.socket.removeAllListeners('data')
  sub.socket.on('data', (d) => { parser.parse(d); pump() })
  pump()
  const t0 = Date.now()
  while (received < total && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 20))
  t.equal(received, total, 'every message arrived')
  t.equal(outOfOrder, 0, "each publisher's messages in the order sent")
  t.same(g.journal.entries.filter((e) => e.type === 'buffer_dropped'), [], 'no delivery drop journaled')
})
