import type { Config } from '../../config/types.js'
import type { Journal } from '../../journal/types.js'
import { LmdbPersistence } from './lmdb.js'

export { LmdbPersistence, type LmdbPersistenceOptions } from './lmdb.js'
export { DropCounter, type DropReason } from './drops.js'

/** What the gateway holds of a persistence: Aedes gets it whole, the gateway destroys it on stop. */
export interface BrokerPersistence {
  setup(broker: never): Promise<void>
  destroy(): Promise<void>
}

/**
 * `broker.persistence: lmdb` → durable state in the data dir's LMDB environment;
 * `memory` → undefined, and Aedes uses its built-in in-memory persistence.
 */
export function createPersistence(config: Config, journal: Journal): LmdbPersistence | undefined {
  if (config.broker.persistence !== 'lmdb') return undefined
  return new LmdbPersistence({
    dataDir: config.gateway.dataDir,
    maxQueuedPerClient: config.broker.maxQueuedPerClient,
    maxRetained: config.broker.maxRetained,
    journal,
  })
}
