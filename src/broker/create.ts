import { Aedes, type AedesOptions } from 'aedes'
import type { Config } from '../config/types.js'

/**
 * Builds the Aedes instance from config. Persistence: `memory` is Aedes' built-in store;
 * `lmdb` is wired in by the durable-state work (issue 11) and falls back to memory until then.
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
