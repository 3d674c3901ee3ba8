import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { Test } from 'tap'

/** Connects an MQTT.js client (no reconnect) and ends it at teardown. Rejects with the CONNACK error. */
export function connect(t: Test, url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    // MQTT 3.1.1 needs a username whenever a password is sent; it plays no part in auth
    const username = opts.password !== undefined && opts.username === undefined ? (opts.clientId || 'edgewarden-test') : opts.username
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts, username })
    t.teardown(() => new Promise<void>((r) => c.end(true, {}, () => r())))
    c.once('connect', () => resolve(c))
    c.once('error', (err) => { c.end(true); reject(err) })
    c.once('close', () => reject(new Error('closed before CONNACK')))
  })
}

/** Resolves with the CONNACK return code (0 on success), never throws. */
export async function connackCode(t: Test, url: string, opts: IClientOptions = {}): Promise<number | string> {
  try {
    const c = await connect(t, url, opts)
    c.end(true)
    return 0
  } catch (err) {
    const code = (err as { code?: number }).code
    return typeof code === 'number' ? code : (err as Error).message
  }
}

export function nextMessage(c: MqttClient, timeoutMs = 5000): Promise<{ topic: string; payload: Buffer }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message within ' + timeoutMs + ' ms')), timeoutMs)
    c.once('message', (topic, payload) => { clearTimeout(timer); resolve({ topic, payload }) })
  })
}

export function waitClose(c: MqttClient, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    // `disconnected` only turns true after end(): a close the server made shows as !connected
    if (!c.connected) return resolve()
    const timer = setTimeout(() => reject(new Error('still connected after ' + timeoutMs + ' ms')), timeoutMs)
    c.once('close', () => { clearTimeout(timer); resolve() })
  })
}
