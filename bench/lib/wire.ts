import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'

/**
 * Minimal MQTT 3.1.1 client side for load generation. Outgoing packets are built once with
 * mqtt-packet; incoming bytes are only framed (fixed header + remaining length), never
 * fully parsed: a full parser per received message would make the generator, not the
 * broker, the bottleneck at 100k+ msgs/s.
 */

export const PUBLISH = 3
export const CONNACK = 2
export const PUBACK = 4
export const SUBACK = 9

export type PacketHandler = (type: number, flags: number, buf: Buffer, bodyStart: number, end: number) => void

/** Frames a byte stream into MQTT packets; hands each to `onPacket` without copying. */
export class Framer {
  #rest: Buffer | null = null
  constructor(public onPacket: PacketHandler) {}

  push(chunk: Buffer): void {
    let buf = chunk
    if (this.#rest) {
      buf = Buffer.concat([this.#rest, chunk])
      this.#rest = null
    }
    let pos = 0
    const len = buf.length
    while (pos < len) {
      if (len - pos < 2) break
      let rl = 0
      let mul = 1
      let i = pos + 1
      let complete = false
      for (let n = 0; n < 4 && i < len; n++, i++) {
        const b = buf[i]!
        rl += (b & 0x7f) * mul
        mul *= 128
        if ((b & 0x80) === 0) { complete = true; i++; break }
      }
      if (!complete) break
      const end = i + rl
      if (end > len) break
      const b0 = buf[pos]!
      this.onPacket(b0 >> 4, b0 & 0x0f, buf, i, end)
      pos = end
    }
    if (pos < len) this.#rest = buf.subarray(pos)
  }
}

export interface ConnectOptions {
  readonly clientId: string
  readonly password?: string
  readonly keepalive?: number
}

export function connectPacket(o: ConnectOptions): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: o.clientId,
    keepalive: o.keepalive ?? 600,
    ...(o.password !== undefined ? { username: 'bench', password: Buffer.from(o.password) } : {}),
  })
}

export const DISCONNECT = Buffer.from([0xe0, 0x00])

export function subscribePacket(topic: string, qos: 0 | 1, messageId = 1): Buffer {
  return mqttPacket.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] })
}

export function publishPacket(topic: string, payload: Buffer, qos: 0 | 1, messageId = 1): Buffer {
  return mqttPacket.generate({ cmd: 'publish', topic, payload, qos, messageId: qos ? messageId : undefined, retain: false, dup: false })
}

/** Offset of the 2-byte packet id inside a QoS 1 PUBLISH built by `publishPacket`. */
export function publishIdOffset(pkt: Buffer): number {
  let i = 1
  while (pkt[i]! & 0x80) i++
  i++
  const tlen = (pkt[i]! << 8) | pkt[i + 1]!
  return i + 2 + tlen
}

/** Packet id of an incoming QoS>0 PUBLISH framed by `Framer`. */
export function incomingPublishId(buf: Buffer, bodyStart: number): number {
  const tlen = (buf[bodyStart]! << 8) | buf[bodyStart + 1]!
  const at = bodyStart + 2 + tlen
  return (buf[at]! << 8) | buf[at + 1]!
}

/** Payload slice of an incoming PUBLISH. */
export function incomingPayload(buf: Buffer, bodyStart: number, end: number, qos: number): Buffer {
  const tlen = (buf[bodyStart]! << 8) | buf[bodyStart + 1]!
  return buf.subarray(bodyStart + 2 + tlen + (qos > 0 ? 2 : 0), end)
}

export function pubackPacket(id: number): Buffer {
  return Buffer.from([0x40, 0x02, id >> 8, id & 0xff])
}

/** A connected client: socket + framer, resolved after CONNACK return code 0. */
export interface WireClient {
  readonly socket: Socket
  readonly framer: Framer
}

export function openClient(port: number, o: ConnectOptions, host = '127.0.0.1', timeoutMs = 15_000): Promise<WireClient> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host, noDelay: true })
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`CONNACK timeout for ${o.clientId}`)) }, timeoutMs)
    const framer = new Framer((type, _f, buf, body) => {
      if (type !== CONNACK) return
      clearTimeout(timer)
      const rc = buf[body + 1]
      if (rc !== 0) { socket.destroy(); reject(new Error(`CONNACK ${rc} for ${o.clientId}`)); return }
      framer.onPacket = () => {}
      resolve({ socket, framer })
    })
    socket.on('data', (c: Buffer) => framer.push(c))
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.once('connect', () => socket.write(connectPacket(o)))
  })
}

/** Subscribes and resolves on SUBACK (rejects when the broker refuses the filter). */
export function subscribe(c: WireClient, topic: string, qos: 0 | 1): Promise<void> {
  return new Promise((resolve, reject) => {
    const prev = c.framer.onPacket
    c.framer.onPacket = (type, _f, buf, body) => {
      if (type !== SUBACK) return
      c.framer.onPacket = prev
      const granted = buf[body + 2]
      if (granted === 0x80) reject(new Error(`SUBSCRIBE ${topic} refused`))
      else resolve()
    }
    c.socket.write(subscribePacket(topic, qos))
  })
}

/** Sends DISCONNECT and waits for the socket to close. */
export function closeClient(c: WireClient): Promise<void> {
  return new Promise((resolve) => {
    if (c.socket.destroyed) return resolve()
    c.socket.once('close', () => resolve())
    c.socket.end(DISCONNECT)
    setTimeout(() => c.socket.destroy(), 2000).unref()
  })
}
