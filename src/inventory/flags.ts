import type { InventoryEntry } from './types.js'

/** Shadow-flag rules (SPEC §9): pure checks over entries; inventory.ts raises what they find. */

const CMD_LEVEL = /^(?:cmd|cmds|command|commands)$/i

/**
 * A device subscribing to other devices' command topics: a filter with a command level whose
 * device part is a wildcard or another id (not its own clientId or sub), or a firehose.
 */
export function foreignCommands(kind: string, sub: string, clientId: string, filter: string): string | undefined {
  if (kind !== 'device') return undefined
  if (filter === '#' || filter === '+/#') return `subscribed to ${filter} (every device's commands)`
  const levels = filter.split('/')
  const cmd = levels.findIndex((l) => CMD_LEVEL.test(l))
  const hashAt = levels.indexOf('#')
  if (cmd < 0) {
    // `site/1/dev/#`-like filters reach command trees under them unless they name the device
    if (hashAt > 0 && levels.some((l) => /^(?:dev|devs|device|devices)$/i.test(l)) && !levels.includes(clientId) && !levels.includes(sub)) return `subscribed to ${filter} (covers other devices' commands)`
    return undefined
  }
  const own = levels.slice(0, cmd).some((l) => l === clientId || l === sub)
  if (own) return undefined
  return `subscribed to ${filter} (command topics of other devices)`
}

/** Publish rate far above the entry's usual (after a warm-up of `minWindows` flush windows). */
export function rateSpike(e: InventoryEntry, rate: number, factor: number, minWindows = 10, floor = 5): string | undefined {
  if (e.kind !== 'device' || e.rateWindows < minWindows || rate < floor) return undefined
  const usual = Math.max(e.rateAvg, 1)
  return rate > factor * usual ? `publishing ${rate.toFixed(1)}/s, usually ${e.rateAvg.toFixed(1)}/s` : undefined
}

/** Slow moving average of the rate over active windows. */
export function updateRate(e: InventoryEntry, rate: number): void {
  e.rateWindows++
  const a = e.rateWindows < 20 ? 1 / e.rateWindows : 0.05
  e.rateAvg += a * (rate - e.rateAvg)
}
