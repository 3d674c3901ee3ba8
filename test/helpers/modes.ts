import type { Test } from 'tap'
import { startGateway, tempDir, type TestGateway } from './gateway.js'
import { startRedis } from './redis.js'

/**
 * Two gateways to test a persistence mode with: `memory` or `lmdb` — the same gateway twice;
 * `cluster` — gw-a and gw-b on one throwaway Redis (broker.cluster.redis), memory persistence.
 * `overrides`: more config (not `gateway` or `broker`).
 */
export async function gatewayPair(t: Test, mode: string, overrides: Record<string, unknown> = {}): Promise<[TestGateway, TestGateway]> {
  if (mode !== 'cluster') {
    const g = await startGateway(t, { ...overrides, broker: { persistence: mode } })
    return [g, g]
  }
  const redis = await startRedis(t)
  const gw = (id: string): Promise<TestGateway> => startGateway(t, { ...overrides, gateway: { id, dataDir: tempDir(t) }, broker: { persistence: 'memory', cluster: { redis: redis.url } } })
  return [await gw('gw-a'), await gw('gw-b')]
}
