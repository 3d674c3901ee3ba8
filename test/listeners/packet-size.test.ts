import t from 'tap'
import mqttPacket from 'mqtt-packet'
import { REFUSED, scanHeaders } from '../../src/listeners/packet-size.js'

/** scanHeaders with its state carried across chunks, as a parser's field carries it */
class PacketSizeGuard {
  #state = 0
  constructor(readonly maxBytes: number) {}
  /** false: a packet is too large or its length field is malformed */
  feed(buf: Uint8Array): boolean {
    this.#state = scanHeaders(this.#state, buf, this.maxBytes)
    return this.#state !== REFUSED
  }
}

const publish = (payloadBytes: number): Buffer => mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(payloadBytes, 1), qos: 0, retain: false, dup: false })

function feedAll(g: PacketSizeGuard, buf: Buffer, chunk: number): boolean {
  for (let i = 0; i < buf.length; i += chunk) if (!g.feed(buf.subarray(i, i + chunk))) return false
  return true
}

t.test('packets at and over the limit, whole and in every chunking', async (t) => {
  const at = publish(1000)
  const limit = at.length
  const over = publish(1001)
  t.equal(over.length, limit + 1)
  for (const chunk of [1, 2, 3, 7, 64, 100_000]) {
    t.equal(feedAll(new PacketSizeGuard(limit), at, chunk), true, `at the limit, chunks of ${chunk}`)
    t.equal(feedAll(new PacketSizeGuard(limit), over, chunk), false, `one byte over, chunks of ${chunk}`)
    const stream = Buffer.concat([at, publish(10), mqttPacket.generate({ cmd: 'pingreq' }), at, publish(0)])
    t.equal(feedAll(new PacketSizeGuard(limit), stream, chunk), true, `a stream of packets under the limit, chunks of ${chunk}`)
    const bad = Buffer.concat([at, publish(3), over])
    t.equal(feedAll(new PacketSizeGuard(limit), bad, chunk), false, `an oversized packet after good ones, chunks of ${chunk}`)
  }
})

t.test('length field: 1 to 4 bytes, continuation on the 4th byte is malformed', async (t) => {
  const big = new PacketSizeGuard(300 * 1024 * 1024)
  t.equal(big.feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f])), true, '4-byte length of 268435455 under a larger limit')
  t.equal(new PacketSizeGuard(300 * 1024 * 1024).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), false, '5-byte length')
  t.equal(new PacketSizeGuard(1024).feed(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x01])), false, 'a CONNECT declaring 2 MiB')
  // the decision comes as soon as the declared length is known to be too large
  const g = new PacketSizeGuard(1024)
  t.equal(g.feed(Buffer.from([0x30])), true, 'first byte alone')
  t.equal(g.feed(Buffer.from([0x80])), true, 'length so far 0')
  t.equal(g.feed(Buffer.from([0x08])), false, 'length 1024 + header > 1024')
  // 2-byte length exactly at the limit: 1 + 2 + 1021 = 1024
  const exact = new PacketSizeGuard(1024)
  t.equal(exact.feed(Buffer.from([0x30, 0xfd, 0x07])), true)
  t.equal(exact.feed(Buffer.alloc(1021)), true, 'body skipped')
  t.equal(exact.feed(Buffer.from([0xc0, 0x00])), true, 'next packet (PINGREQ) parsed from a fresh header')
})

t.test('zero-length packets and bodies split anywhere', async (t) => {
  const g = new PacketSizeGuard(16)
  const pings = Buffer.concat(Array.from({ length: 50 }, () => mqttPacket.generate({ cmd: 'pingreq' })))
  t.equal(feedAll(g, pings, 3), true)
  t.equal(g.feed(Buffer.from([0x30, 0x0d])), true)
  t.equal(g.feed(Buffer.alloc(13, 0x30)), true, 'a body of header-looking bytes is skipped, not parsed')
  t.equal(g.feed(Buffer.from([0x30, 0x0e])), true, '16 bytes total')
  t.equal(g.feed(Buffer.alloc(14)), true)
  t.equal(g.feed(Buffer.from([0x30, 0x0f])), false, '17 bytes total')
})

t.test('ParserGuard: one shared parse function, the state a number on each parser', async (t) => {
  const { ParserGuard } = await import('../../src/listeners/packet-size.js')
  const refused: unknown[] = []
  const guard = new ParserGuard(64, (p) => refused.push(p))
  const a = mqttPacket.parser()
  const b = mqttPacket.parser()
  guard.install(a)
  guard.install(b)
  guard.install(a)
  t.equal(a.parse, b.parse, 'the same function on every parser')
  t.equal(Object.getOwnPropertySymbols(a).length, Object.getOwnPropertySymbols(mqttPacket.parser()).length + 1, 'one state field')
  const packets: string[] = []
  a.on('packet', (p: { cmd: string }) => packets.push(p.cmd))
  const ok = publish(10)
  // split across calls: the state carries over
  a.parse(ok.subarray(0, 3))
  a.parse(ok.subarray(3))
  t.same(packets, ['publish'], 'a packet under the limit is parsed, installed twice or not')
  t.same(refused, [])
  b.on('packet', (p: { cmd: string }) => packets.push(p.cmd))
  t.equal(b.parse(publish(100)), 0, 'an oversized chunk is not parsed')
  t.same(refused, [b], 'the parser whose stream sent it is reported')
  t.equal(packets.length, 1)
  a.parse(ok)
  t.same(packets, ['publish', 'publish'], 'the other parser is not affected')
})
