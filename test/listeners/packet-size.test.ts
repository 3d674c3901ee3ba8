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

t.test('scanHeaders over a range, and stopping at the first packet boundary', async (t) => {
  const { scanStoppedAt } = await import('../../src/listeners/packet-size.js')
  const a = publish(10)
  const b = publish(20)
  const stream = Buffer.concat([a, b, a])
  // the range: state after a's first 5 bytes, then the rest
  const s5 = scanHeaders(0, stream, 1024, 0, 5)
  t.equal(scanStoppedAt(), 5)
  t.equal(s5, a.length - 5, 'inside a body: the bytes left of it')
  t.equal(scanHeaders(s5, stream, 1024, 5), 0, 'the rest ends at a boundary')
  // to a boundary: from inside a's body to b's first byte
  t.equal(scanHeaders(s5, stream, 1024, 5, stream.length, true), 0)
  t.equal(scanStoppedAt(), a.length, 'stopped where b starts')
  t.equal(scanHeaders(0, stream, 1024, a.length, stream.length, true), 0, 'at a boundary already')
  t.equal(scanStoppedAt(), a.length, 'stops where it starts')
  // no boundary in range: runs to its end with the state inside the packet
  const s = scanHeaders(-1, stream, 1024, a.length + 1, a.length + 3, true)
  t.equal(scanStoppedAt(), a.length + 3)
  t.ok(s !== 0, 'not at a boundary')
  t.equal(scanHeaders(0, publish(2000), 1024, 0, 10, true), 0, 'a boundary at `from` comes before any header is read')
  t.equal(scanHeaders(-1, publish(2000).subarray(1), 1024, 0, 10, true), REFUSED, 'a too-large length met on the way is refused')
})

t.test('ParserGuard: a chunk past BATCH_BYTES is parsed to the first boundary after it, the rest goes back to the stream', async (t) => {
  const { ParserGuard, BATCH_BYTES } = await import('../../src/listeners/packet-size.js')
  const { PassThrough } = await import('node:stream')
  const guard = new ParserGuard(256 * 1024, () => t.fail('nothing here is too large'))
  const one = mqttPacket.generate({ cmd: 'publish', topic: 'site/x', payload: Buffer.alloc(90, 7), qos: 1, messageId: 1, retain: false, dup: false })
  const n = Math.ceil((3 * BATCH_BYTES) / one.length)
  const burst = Buffer.concat(Array.from({ length: n }, () => one))
  const parser = Object.assign(mqttPacket.parser(), { client: { conn: new PassThrough() } })
  guard.install(parser)
  let parsed = 0
  parser.on('packet', () => { parsed++ })
  parser.parse(burst)
  const first = Math.ceil(BATCH_BYTES / one.length)
  t.equal(parsed, first, 'the packets up to the first boundary at or past BATCH_BYTES')
  const rest = parser.client.conn.read() as Buffer
  t.equal(rest.length, burst.length - first * one.length, 'the rest is back in the stream, whole')
  parser.parse(rest)
  t.equal(parsed, 2 * first, 'the next batch, the same way')
  parser.parse(parser.client.conn.read() as Buffer)
  t.equal(parsed, n, 'then the rest')
  t.equal(parser.client.conn.read(), null, 'nothing left over')

  // one packet larger than the batch, arriving whole with a small one behind it: no boundary
  // past the limit but the packet's end, so the small one goes back
  const big = mqttPacket.generate({ cmd: 'publish', topic: 'site/big', payload: Buffer.alloc(3 * BATCH_BYTES, 1), qos: 0, retain: false, dup: false })
  const small = publish(5)
  const p2 = Object.assign(mqttPacket.parser(), { client: { conn: new PassThrough() } })
  guard.install(p2)
  const cmds: string[] = []
  p2.on('packet', (p) => { cmds.push('topic' in p ? String(p.topic) : p.cmd) })
  p2.parse(Buffer.concat([big, small]))
  t.same(cmds, ['site/big'], 'the large packet parsed')
  p2.parse(p2.client.conn.read() as Buffer)
  t.same(cmds, ['site/big', 't'], 'the small one after it')

  // split mid-packet by the socket: the state carries, nothing goes back without a boundary
  const p3 = Object.assign(mqttPacket.parser(), { client: { conn: new PassThrough() } })
  guard.install(p3)
  let got = 0
  p3.on('packet', () => { got++ })
  p3.parse(big.subarray(0, BATCH_BYTES + 100))
  t.equal(p3.client.conn.read(), null, 'no boundary in the chunk: parsed whole')
  p3.parse(big.subarray(BATCH_BYTES + 100))
  t.equal(got, 1, 'the packet completes')

  // a parser without a stream (used on its own) parses everything
  const p4 = mqttPacket.parser()
  guard.install(p4)
  let all = 0
  p4.on('packet', () => { all++ })
  p4.parse(burst)
  t.equal(all, n)
})

t.test('ParserGuard: the rest goes back after the parse (a packet completed within it reads the stream at once), never to a stream that cannot take it', async (t) => {
  const { ParserGuard, BATCH_BYTES } = await import('../../src/listeners/packet-size.js')
  const { PassThrough } = await import('node:stream')
  const guard = new ParserGuard(256 * 1024, () => t.fail('nothing here is too large'))
  const one = mqttPacket.generate({ cmd: 'publish', topic: 'site/x', payload: Buffer.alloc(90, 7), qos: 0, retain: false, dup: false })
  const n = Math.ceil((2 * BATCH_BYTES) / one.length)
  const burst = Buffer.concat(Array.from({ length: n }, () => one))
  const first = Math.ceil(BATCH_BYTES / one.length)

  // as Aedes does when a packet completes synchronously: read the stream inside 'packet'
  const conn = new PassThrough()
  const parser = Object.assign(mqttPacket.parser(), { client: { conn } })
  guard.install(parser)
  let depth = 0
  let deepest = 0
  const inner = parser.parse
  parser.parse = function (this: typeof parser, b: Buffer): number {
    depth++
    deepest = Math.max(deepest, depth)
    try { return inner.call(this, b) } finally { depth-- }
  }
  let parsed = 0
  let readInside: unknown = 'not read'
  parser.on('packet', () => {
    parsed++
    if (parsed === 1) {
      const b = conn.read() as Buffer | null
      readInside = b
      if (b) parser.parse(b)
    }
  })
  parser.parse(burst)
  t.equal(readInside, null, 'a read inside the parse finds nothing: the rest is not back yet')
  t.equal(deepest, 1, 'the parse is never re-entered')
  t.equal(parsed, first, 'one batch')
  parser.parse(conn.read() as Buffer)
  t.equal(parsed, n, 'the rest, in its turn')

  // a stream that cannot take the rest: the chunk is parsed whole
  for (const [what, make] of [
    ['destroyed', () => { const s = new PassThrough(); s.destroy(); return s }],
    ['past its end', () => { const s = new PassThrough(); s.end(); s.resume(); return s }],
  ] as const) {
    const s = make()
    if (what === 'past its end') await new Promise((r) => s.once('end', r))
    const errors: Error[] = []
    s.on('error', (e: Error) => errors.push(e))
    const p = Object.assign(mqttPacket.parser(), { client: { conn: s } })
    guard.install(p)
    let count = 0
    p.on('packet', () => { count++ })
    p.parse(burst)
    t.equal(count, n, `${what}: parsed whole`)
    await new Promise((r) => setImmediate(r))
    t.same(errors, [], `${what}: no unshift error`)
    t.equal(s.readableLength, 0, `${what}: nothing put back`)
  }
})
