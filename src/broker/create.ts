import { Aedes, type AedesOptions } from 'aedes'
import type { Config } from '../config/types.js'

/**
 * Builds the Aedes instance from config. Persistence comes from `createPersistence`
 * (src/broker/persistence): the LMDB one for `broker.persistence: lmdb`, or none for
 * `memory`, in which case Aedes uses its built-in in-memory store. Aedes calls the
 * persistence's `setup()` in `listen()`; the gateway destroys it on stop.
 */
export function createAedes(config: Config, hooks: Partial<AedesOptions>): Aedes {
  return new Aedes({
    id: config.gateway.id,
    connectTimeout: Math.round(config.limits.connectTimeoutSec * 1000),
    // MQTT 3.1.1 lets a server accept clientIds longer than 23 characters; UUIDs and subs need it
    maxClientsIdLength: 256,
    heartbeatInterval: 60_000,
    ...hooks,
  })
}
