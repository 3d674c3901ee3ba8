import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket, { type IConnectPacket, type IPublishPacket, type Packet } from 'mqtt-packet'
import type { Test } from 'tap'
import { waitFor } from './wait.js'

/** A raw TCP socket to a listener, destroyed at teardown; collects parsed packets and watches close. */
export interface RawClient {
  readonly socket: Socket
  readonly packets: Packet[]
  /** resolves when the socket closes (with the time it took from open) */
  readonly closed: Promise<number>
  send(p: Packet | Buffer): void
  nextPacket(timeoutMs?: number): Promise<Packet>
}

export function rawClient(t: Test, port: number, host = '127.0.0.1'): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, host)
    const opened = Date.now()
    const packets: Packet[] = []
    const waiters: ((p: Packet) => void)[] = []
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (p: Packet) => {
      const w = waiters.shift()
      if (w) w(p)
      else packets.push(p)
    })
    parser.on('error', () => {})
    socket.on('data', (d) => parser.parse(d))
    socket.on('error', () => {})
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - opened)))
    t.teardown(() => { socket.destroy() })
    socket.once('connect', () => resolve({
      socket, packets, closed,
      send: (p) => socket.write(Buffer.isBuffer(p) ? p : mqttPacket.generate(p)),
      nextPacket: (timeoutMs = 5000) => {
        const queued = packets.shift()
        if (queued) return Promise.resolve(queued)
        return new Promise((res, rej) => {
          const timer = setTimeout(() => rej(new Error('no packet within ' + timeoutMs + ' ms')), timeoutMs)
          waiters.push((p) => { clearTimeout(timer); res(p) })
          void closed.then(() => { clearTimeout(timer); rej(new Error('socket closed before a packet')) })
        })
      },
    }))
    socket.once('error', reject)
  })
}

/** CONNECT fields, with the password as a string or bytes. */
export type RawConnect = Omit<Partial<IConnectPacket>, 'password'> & { password?: string | Buffer }

export function connectPacket(o: RawConnect): IConnectPacket {
  return {
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'raw', keepalive: 30,
    ...o,
    password: typeof o.password === 'string' ? Buffer.from(o.password) : o.password,
    username: o.username ?? (o.password !== undefined ? 'raw-user' : undefined),
  }
}

/** CONNECT bytes; also the empty clientId with clean=0 that mqtt-packet refuses to generate. */
export function connectBytes(o: RawConnect): Buffer {
  const p = connectPacket(o)
  if (p.clientId !== '' || p.clean !== false) return mqttPacket.generate(p)
  const buf = mqttPacket.generate({ ...p, clean: true })
  let i = 1
  while (buf[i]! & 0x80) i++
  // fixed header, remaining length, protocol name (2 + 4 bytes), level: then the connect flags
  buf[i + 1 + 6 + 1]! &= ~0x02
  return buf
}

/** Sends one CONNECT and returns the CONNACK return code (or 'closed'). */
export async function rawConnack(t: Test, port: number, o: RawConnect): Promise<number | 'closed'> {
  const c = await rawClient(t, port)
  c.send(connectBytes(o))
  try {
    const p = await c.nextPacket()
    return p.cmd === 'connack' ? (p.returnCode ?? -1) : -2
  } catch {
    return 'closed'
  } finally {
    c.socket.destroy()
  }
}

/** A raw persistent session (see persistentSession): every packet it got, and whether the gateway closed it. */
export interface RawSession {
  readonly socket: Socket
  readonly packets: Packet[]
  /** the socket closed, and not by the test (cut, teardown) */
  serverClosed: boolean
  mine: boolean
}

/** A raw persistent session (clean: false) that PUBACKs each PUBLISH as soon as it is parsed; destroyed at teardown. */
export function persistentSession(t: Test, port: number, clientId: string, token: string): RawSession {
  const socket = netConnect(port, '127.0.0.1')
  const conn: RawSession = { socket, packets: [], mine: false, serverClosed: false }
  socket.on('close', () => { if (!conn.mine) conn.serverClosed = true })
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  parser.on('packet', (p: Packet) => {
    conn.packets.push(p)
    if (p.cmd === 'publish' && p.qos === 1) socket.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId! }))
  })
  socket.on('data', (d) => parser.parse(d))
  socket.on('error', () => {})
  t.teardown(() => { conn.mine = true; socket.destroy() })
  socket.write(connectBytes({ clientId, password: token, clean: false }))
  return conn
}

/** A persistent session connected and subscribed to `topic` at QoS 1 (its SUBACK received). */
export async function subscribedSession(t: Test, port: number, clientId: string, token: string, topic: string): Promise<RawSession> {
  const s = persistentSession(t, port, clientId, token)
  await waitFor(() => s.packets.some((p) => p.cmd === 'connack'), 5000, 'CONNACK')
  s.socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }))
  await waitFor(() => s.packets.some((p) => p.cmd === 'suback'), 5000, 'SUBACK')
  return s
}

/** The test ends a session's connection itself (not counted as closed by the gateway). */
export function cut(c: RawSession): void { c.mine = true; c.socket.destroy() }

/** The payloads (decimal numbers) of the PUBLISH packets a session got, in order. */
export const publishedNumbers = (c: { packets: Packet[] }): number[] => c.packets.filter((p): p is IPublishPacket => p.cmd === 'publish').map((p) => Number(p.payload.toString()))
