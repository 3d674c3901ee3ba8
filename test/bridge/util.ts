import mqtt, { type MqttClient } from 'mqtt'
import type { Test } from 'tap'

/** An upstream config for tests that build the link or the mappings themselves (no schema defaults applied). */
export function upstreamConfig(url: string, reconnect = { minMs: 20, maxMs: 100 }) {
  return { url, rejectUnauthorized: true, keepaliveSec: 30, reconnect, out: [], in: [], buffer: { maxMessages: 1, maxBytes: 1, onFull: 'block' as const, storeAfterMs: 100 }, audit: { batchRecords: 1, batchMs: 10 } }
}

/** Polls `cond` until true; fails after `ms` with `what` (no timing assertion: only a deadline). */
export async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export interface Received { readonly topic: string; readonly payload: Buffer; readonly qos: number; readonly retain: boolean; readonly dup: boolean }

/** Every message the client receives from now on, in arrival order. */
export function collect(c: MqttClient): Received[] {
  const got: Received[] = []
  c.on('message', (topic, payload, packet) => got.push({ topic, payload, qos: packet.qos, retain: packet.retain, dup: packet.dup }))
  return got
}

/** publishes 0..n-1 as payloads, QoS 1, with up to `window` unacknowledged */
export async function publishSeq(c: MqttClient, topic: (i: number) => string, n: number, window = 500): Promise<void> {
  let next = 0
  await new Promise<void>((resolve, reject) => {
    let inflight = 0
    let done = 0
    const pump = (): void => {
      while (inflight < window && next < n) {
        const i = next++
        inflight++
        c.publish(topic(i), String(i), { qos: 1 }, (err) => {
          if (err) return reject(err)
          inflight--
          if (++done === n) resolve()
          else pump()
        })
      }
    }
    pump()
  })
}


/**
 * A persistent-session (clean: false) QoS 1 subscriber on the cloud broker that keeps
 * reconnecting through outages: with mosquitto persistence, nothing published while it is
 * away is lost. Ended at teardown.
 */
export async function cloudSubscriber(t: Test, url: string, filter: string, clientId = 'cloud-sub'): Promise<Received[]> {
  const c = mqtt.connect(url, { clientId, clean: false, reconnectPeriod: 100, protocolVersion: 4, connectTimeout: 5000 })
  t.teardown(() => new Promise<void>((r) => c.end(true, {}, () => r())))
  c.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve())
    setTimeout(() => reject(new Error('cloud subscriber did not connect')), 5000).unref()
  })
  await c.subscribeAsync(filter, { qos: 1 })
  return collect(c)
}
