import type { MqttClient } from 'mqtt'

/** Polls `cond` until true; fails after `ms` with `what` (no timing assertion: only a deadline). */
export async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export interface Received { readonly topic: string; readonly payload: Buffer; readonly qos: number; readonly retain: boolean }

/** Every message the client receives from now on, in arrival order. */
export function collect(c: MqttClient): Received[] {
  const got: Received[] = []
  c.on('message', (topic, payload, packet) => got.push({ topic, payload, qos: packet.qos, retain: packet.retain }))
  return got
}
