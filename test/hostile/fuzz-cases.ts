import mqttPacket, { type Packet } from 'mqtt-packet'

/** mulberry32: a small seeded PRNG, so a failing case is reproducible from its seed */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export interface FuzzCase {
  readonly kind: string
  /** chunks written one after another */
  readonly chunks: readonly Buffer[]
  /** the gateway must close this connection by itself (the input is invalid for sure) */
  readonly mustClose: boolean
}

const gen = (p: Packet): Buffer => mqttPacket.generate(p)

/** Hand-built PUBLISH: mqtt-packet refuses to generate some of what we need (bad UTF-8, QoS 3). */
function rawPublish(topic: Buffer, payload: Buffer, flags = 0): Buffer {
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, payload])
  return Buffer.concat([Buffer.from([0x30 | flags]), remainingLength(body.length), body])
}

function remainingLength(n: number): Buffer {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return Buffer.from(out)
}

export function connectBytes(token: string, clientId: string, protocolVersion = 4, protocolId = 'MQTT'): Buffer {
  const buf = gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30, username: clientId, password: Buffer.from(token) })
  // patched in place: mqtt-packet will not generate a wrong level or name
  let i = 1
  while (buf[i]! & 0x80) i++
  const name = i + 1 + 2
  buf.write(protocolId.slice(0, 4).padEnd(4, '?'), name, 'latin1')
  buf[name + 4] = protocolVersion
  return buf
}

/**
 * One fuzz case: truncated, bit-flipped and random bytes, absurd remaining lengths, packets
 * before CONNECT, a second CONNECT, wrong protocol levels and names, invalid UTF-8, NUL and
 * wildcards in PUBLISH topics, QoS 3, reserved packet types.
 */
export function makeCase(r: () => number, token: string, clientId: string): FuzzCase {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)))
  const connect = connectBytes(token, clientId)
  const session = (): Buffer => Buffer.concat([
    gen({ cmd: 'subscribe', messageId: 1 + Math.floor(r() * 1000), subscriptions: [{ topic: 'fz/' + Math.floor(r() * 10) + '/#', qos: pick([0, 1] as const) }] }),
    gen({ cmd: 'publish', topic: 'fz/' + Math.floor(r() * 10), payload: bytes(Math.floor(r() * 64)), qos: pick([0, 1] as const), messageId: 7, retain: false, dup: false } as Packet),
    gen({ cmd: 'pingreq' }),
  ])
  switch (pick(['random', 'bitflip', 'truncated', 'huge_length', 'bad_length', 'before_connect', 'second_connect', 'protocol_level', 'protocol_name', 'bad_utf8', 'nul_topic', 'wildcard', 'qos3', 'reserved_type'])) {
    case 'random':
      return { kind: 'random', chunks: [bytes(1 + Math.floor(r() * 300))], mustClose: false }
    case 'bitflip': {
      const all = Buffer.concat([connect, session()])
      const flips = 1 + Math.floor(r() * 4)
      for (let i = 0; i < flips; i++) all[Math.floor(r() * all.length)]! ^= 1 << Math.floor(r() * 8)
      return { kind: 'bitflip', chunks: [all], mustClose: false }
    }
    case 'truncated': {
      const s = session()
      return { kind: 'truncated', chunks: [connect, s.subarray(0, Math.floor(r() * s.length))], mustClose: false }
    }
    case 'huge_length':
      // declares 256 MiB: the size guard closes it before anything is buffered
      return { kind: 'huge_length', chunks: [Buffer.from([pick([0x10, 0x30, 0x82]), 0xff, 0xff, 0xff, 0x7f]), bytes(32)], mustClose: true }
    case 'bad_length':
      // a fifth length byte: malformed
      return { kind: 'bad_length', chunks: [Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01])], mustClose: true }
    case 'before_connect':
      return { kind: 'before_connect', chunks: [pick([gen({ cmd: 'publish', topic: 'fz/1', payload: Buffer.from('x'), qos: 0, retain: false, dup: false } as Packet), gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] }), gen({ cmd: 'pingreq' })])], mustClose: true }
    case 'second_connect':
      return { kind: 'second_connect', chunks: [connect, connect], mustClose: true }
    case 'protocol_level':
      return { kind: 'protocol_level', chunks: [connectBytes(token, clientId, pick([0, 1, 2, 6, 7, 255]))], mustClose: true }
    case 'protocol_name':
      return { kind: 'protocol_name', chunks: [connectBytes(token, clientId, 4, pick(['MQTX', 'HTTP', 'mqtt']))], mustClose: true }
    case 'bad_utf8':
      return { kind: 'bad_utf8', chunks: [connect, rawPublish(Buffer.from([0x66, 0x7a, 0x2f, pick([0xc3, 0xff, 0xed, 0x80]), 0x28]), Buffer.from('x'))], mustClose: true }
    case 'nul_topic':
      return { kind: 'nul_topic', chunks: [connect, rawPublish(Buffer.from('fz/\u0000/x'), Buffer.from('x'))], mustClose: true }
    case 'wildcard':
      return { kind: 'wildcard', chunks: [connect, rawPublish(Buffer.from(pick(['fz/+', 'fz/#', '#', 'fz/+/x'])), Buffer.from('x'))], mustClose: true }
    case 'qos3':
      return { kind: 'qos3', chunks: [connect, rawPublish(Buffer.from('fz/1'), Buffer.from([0, 1, 0x78]), 0x06)], mustClose: true }
    default:
      return { kind: 'reserved_type', chunks: [connect, Buffer.from([pick([0x00, 0xf0]), 0x00])], mustClose: true }
  }
}
