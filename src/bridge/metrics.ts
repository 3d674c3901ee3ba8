import { Counter, Gauge, type Registry } from 'prom-client'
import type { Outbox } from './outbox.js'
import type { UpstreamLink } from './link.js'
import type { Clock } from '../clock.js'

/** Bridge metrics on the gateway's registry; gauges read the live state when scraped. */
export function createBridgeMetrics(registry: Registry, b: { readonly link: UpstreamLink; readonly outbox: Outbox; readonly inflight: number }, clock: Clock) {
  const registers = [registry]
  new Gauge({ name: 'edgewarden_upstream_up', help: '1 while the cloud link is connected', registers, collect() { this.set(b.link.connected ? 1 : 0) } })
  new Gauge({ name: 'edgewarden_outbox_messages', help: 'messages waiting in the upstream outbox (queued or unacknowledged)', registers, collect() { this.set(b.outbox.depth) } })
  new Gauge({ name: 'edgewarden_outbox_bytes', help: 'topic and payload bytes waiting in the upstream outbox', registers, collect() { this.set(b.outbox.bytes) } })
  new Gauge({
    name: 'edgewarden_outbox_oldest_age_seconds', help: 'age of the oldest message waiting in the upstream outbox', registers,
    collect() {
      const ts = b.outbox.oldestTs
      this.set(ts === undefined ? 0 : Math.max(0, (clock.now() - ts) / 1000))
    },
  })
  let written = 0
  new Counter({
    name: 'edgewarden_outbox_written_total', help: 'bridged messages written to the outbox (link down, or the cloud slow to acknowledge: upstream.buffer.storeAfterMs); the rest went to the cloud with nothing written', registers,
    collect() {
      const now = b.outbox.written
      this.inc(now - written)
      written = now
    },
  })
  new Gauge({ name: 'edgewarden_upstream_inflight', help: 'bridged messages sent and waiting for the cloud PUBACK', registers, collect() { this.set(b.inflight) } })
  return {
    sent: new Counter({ name: 'edgewarden_upstream_sent_total', help: 'bridged messages the cloud acknowledged', registers }),
    resent: new Counter({ name: 'edgewarden_upstream_resent_total', help: 'bridged messages sent again after the link dropped before their PUBACK (QoS 1 duplicates)', registers }),
    dropped: new Counter({ name: 'edgewarden_outbox_dropped_total', help: 'messages not bridged: drop-oldest, too large, refused while full (block), rejected', labelNames: ['reason'] as const, registers }),
    received: new Counter({ name: 'edgewarden_upstream_received_total', help: 'cloud messages on in mappings, delivered or denied by policy', labelNames: ['result'] as const, registers }),
  }
}

export type BridgeMetrics = ReturnType<typeof createBridgeMetrics>
