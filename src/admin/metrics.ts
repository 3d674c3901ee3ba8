import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** One registry per gateway (tests run several gateways in one process). */
export function createMetrics() {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'edgewarden_process_' })
  const m = {
    registry,
    connections: new Gauge({ name: 'edgewarden_connections', help: 'open MQTT connections', registers: [registry] }),
    connects: new Counter({ name: 'edgewarden_connects_total', help: 'CONNECT outcomes', labelNames: ['result'] as const, registers: [registry] }),
    authFailures: new Counter({ name: 'edgewarden_auth_failures_total', help: 'refused CONNECTs by reason', labelNames: ['reason'] as const, registers: [registry] }),
    refused: new Counter({ name: 'edgewarden_connections_refused_total', help: 'sockets refused before CONNECT', labelNames: ['reason'] as const, registers: [registry] }),
    publishes: tallied(registry, 'edgewarden_publishes_total', 'publish decisions', 'effect', ['allow', 'deny', 'hold'] as const),
    subscribes: new Counter({ name: 'edgewarden_subscribes_total', help: 'subscribe decisions', labelNames: ['effect'] as const, registers: [registry] }),
    expired: new Counter({ name: 'edgewarden_sessions_expired_total', help: 'connections closed at token expiry', registers: [registry] }),
    protocolErrors: new Counter({ name: 'edgewarden_protocol_errors_total', help: 'connections closed for malformed or oversized packets', labelNames: ['reason'] as const, registers: [registry] }),
    approvalSeconds: new Histogram({ name: 'edgewarden_approval_latency_seconds', help: 'held → delivered', buckets: [1, 5, 15, 60, 300, 900, 3600], registers: [registry] }),
    masksApplied: new Counter({ name: 'edgewarden_masks_applied_total', help: 'publishes masked before storage and delivery, by mask id', labelNames: ['mask'] as const, registers: [registry] }),
    holdsPending: new Gauge({ name: 'edgewarden_holds_pending', help: 'publishes waiting for approval', registers: [registry] }),
    authSeconds: new Histogram({ name: 'edgewarden_auth_seconds', help: 'token verification time', buckets: [0.0001, 0.0005, 0.001, 0.005, 0.02, 0.1, 1], registers: [registry] }),
  }
  return m
}

export type Metrics = ReturnType<typeof createMetrics>

/**
 * A counter with one label for the per-message path: an increment is one addition to a plain
 * number, folded into the prom-client counter whenever it is read (a scrape, get()). prom-client
 * hashes the label object on every inc(), ~2 % of the event loop in a QoS 0 fan-in.
 */
export function tallied<V extends string>(registry: Registry, name: string, help: string, label: string, values: readonly V[]): { inc(value: V): void } {
  const counts = new Float64Array(values.length)
  const index = new Map<string, number>(values.map((v, i) => [v, i]))
  new Counter({
    name, help, labelNames: [label], registers: [registry],
    collect() {
      for (let i = 0; i < counts.length; i++) {
        if (counts[i] === 0) continue
        this.inc({ [label]: values[i]! }, counts[i])
        counts[i] = 0
      }
    },
  })
  return { inc: (value) => { counts[index.get(value)!]!++ } }
}
