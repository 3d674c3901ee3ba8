/** Human units in config: sizes (256KB), durations (15m), rates (50/s). */

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|KIB|K|MB|MIB|M|GB|GIB|G|TB|TIB)?\s*$/i
const SIZE_FACTORS: Record<string, number> = {
  B: 1, K: 1024, KB: 1024, KIB: 1024, M: 1024 ** 2, MB: 1024 ** 2, MIB: 1024 ** 2,
  G: 1024 ** 3, GB: 1024 ** 3, GIB: 1024 ** 3, TB: 1024 ** 4, TIB: 1024 ** 4,
}
/** Sizes are binary: 1KB = 1024 bytes, as Mosquitto and EMQX read them. */
export function parseSize(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.floor(v) : undefined
  const m = SIZE.exec(v)
  if (!m) return undefined
  return Math.floor(Number(m[1]) * SIZE_FACTORS[(m[2] ?? 'B').toUpperCase()]!)
}

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/
const DURATION_FACTORS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
/** Durations in milliseconds; a bare number means seconds. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v * 1000 : undefined
  const m = DURATION.exec(v)
  if (!m) return undefined
  return Number(m[1]) * DURATION_FACTORS[m[2] ?? 's']!
}

const RATE = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(s|sec|m|min|h|hour)\s*$/
const RATE_DIVISORS: Record<string, number> = { s: 1, sec: 1, m: 60, min: 60, h: 3600, hour: 3600 }
/** Rates as events per second. */
export function parseRate(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined
  const m = RATE.exec(v)
  if (!m) return undefined
  return Number(m[1]) / RATE_DIVISORS[m[2]!]!
}

export const SIZE_PATTERN = SIZE.source
export const DURATION_PATTERN = DURATION.source
export const RATE_PATTERN = RATE.source
