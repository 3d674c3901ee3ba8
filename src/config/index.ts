export { loadConfig, formatPath, type LoadConfigOptions } from './load.js'
export { configSchema } from './schema.js'
export { Secret } from './secret.js'
export type * from './types.js'
