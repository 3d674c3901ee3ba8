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
    publishes: new Counter({ name: 'edgewarden_publishes_total', help: 'publish decisions', labelNames: ['effect'] as const, registers: [registry] }),
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
