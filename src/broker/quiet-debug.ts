/**
 * Silent `debug` loggers that cost nothing to call.
 *
 * mqtt-packet calls its `debug` loggers a dozen times for every packet it parses or writes,
 * and a disabled logger from the `debug` package still gathers its arguments into an array and
 * runs a getter before returning: about 4 % of the event loop's time in QoS 0 fan-in (CPU
 * profile, bench/README.md). This module must be evaluated before aedes, mqtt-packet, mqtt or
 * ioredis load `debug` (import it first in each module that imports them). It replaces the
 * package's factory in Node's CommonJS cache: a namespace that `DEBUG` enables at start gets
 * the real logger; any other gets an almost empty function. Enabling a namespace later, with
 * `debug.enable()`, no longer reaches loggers created while it was off: set `DEBUG` before
 * starting the gateway (`logger.enabled = true` on one logger and the module's `log`,
 * `formatters` and `names` still work as in debug).
 */
import { createRequire } from 'node:module'

interface DebugLogger {
  (...args: unknown[]): void
  namespace: string
  enabled: boolean
  log?: unknown
  extend(namespace: string, delimiter?: string): DebugLogger
  destroy(): void
}
type DebugFactory = ((namespace: string) => DebugLogger) & Record<string, unknown>

const QUIET = Symbol.for('edgewarden.quietDebug')

function quiet(real: DebugFactory): DebugFactory {
  const factory = ((namespace: string): DebugLogger => {
    const logger = real(namespace)
    if (logger.enabled) return logger
    // the real logger, only once `enabled = true` turns this one on (as debug allows);
    // a fixed arity: forwarding `...args` would allocate the array this module avoids
    let live: DebugLogger | undefined
    const off = function (a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown) {
      if (live !== undefined) live(a, b, c, d, e, f)
    } as unknown as DebugLogger
    off.namespace = namespace
    Object.defineProperty(off, 'enabled', {
      enumerable: true,
      get: () => live !== undefined,
      set: (v: boolean) => {
        logger.enabled = v
        live = v ? logger : undefined
      },
    })
    Object.defineProperty(off, 'log', { enumerable: true, get: () => logger.log, set: (fn: unknown) => { logger.log = fn } })
    off.extend = (sub: string, delimiter = ':') => factory(namespace + delimiter + sub)
    off.destroy = () => {}
    return off
  }) as DebugFactory
  // the module's settings (`require('debug').log = fn`, formatters, names) read and write the
  // real factory's: its loggers look them up there
  for (const key of Object.keys(real)) {
    Object.defineProperty(factory, key, { enumerable: true, configurable: true, get: () => real[key], set: (v: unknown) => { real[key] = v } })
  }
  // Code that reaches the factory through these (`require('debug').default`) gets ours too.
  Object.defineProperty(factory, 'default', { value: factory, enumerable: true })
  Object.defineProperty(factory, 'debug', { value: factory, enumerable: true })
  Object.defineProperty(factory, QUIET, { value: true })
  return factory
}

/** Installs the quiet factory for every copy of `debug` that these packages resolve. */
export function quietDebug(packages: readonly string[] = ['mqtt-packet', 'mqtt', 'ioredis']): number {
  const require = createRequire(import.meta.url)
  let installed = 0
  for (const pkg of packages) {
    let path: string
    try {
      path = createRequire(require.resolve(pkg)).resolve('debug')
    } catch {
      continue // the package, or its debug, is not installed
    }
    const real = require(path) as DebugFactory
    if ((real as unknown as Record<symbol, unknown>)[QUIET]) continue
    const cached = require.cache[path]
    if (!cached) continue
    cached.exports = quiet(real)
    installed++
  }
  return installed
}

quietDebug()
