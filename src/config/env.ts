import YAML from 'yaml'

type Schema = { type?: string | readonly string[]; properties?: Record<string, Schema>; items?: Schema; enum?: readonly unknown[]; oneOf?: readonly Schema[]; default?: unknown }

export const ENV_PREFIX = 'EDGEWARDEN_'

/** Env vars that configure the CLI itself rather than a config key. */
const NOT_CONFIG = new Set(['EDGEWARDEN_CONFIG', 'EDGEWARDEN_FROM_SOURCE', 'EDGEWARDEN_MASK_KEY'])

export interface EnvOverride { readonly variable: string; readonly path: readonly (string | number)[] }

/**
 * Applies `EDGEWARDEN_<PATH>` variables onto a raw config object. Path segments match
 * schema keys case-insensitively with underscores optional inside a key, so
 * `EDGEWARDEN_AUTH_JWT_JWKS_URL` and `EDGEWARDEN_AUTH_JWT_JWKSURL` both set auth.jwt.jwksUrl;
 * numbers index arrays (`EDGEWARDEN_LISTENERS_0_PORT`); objects and arrays take YAML/JSON
 * (`EDGEWARDEN_LISTENERS='[{type: mqtt, port: 1883}]'`). Returns what was applied, so
 * validation errors can name the variable instead of a file line.
 */
export function applyEnv(schema: Schema, raw: Record<string, unknown>, env: NodeJS.ProcessEnv): EnvOverride[] {
  const applied: EnvOverride[] = []
  const names = Object.keys(env).filter((k) => k.startsWith(ENV_PREFIX) && !NOT_CONFIG.has(k)).sort()
  for (const variable of names) {
    const value = env[variable]
    if (value === undefined) continue
    const parts = variable.slice(ENV_PREFIX.length).toLowerCase().split('_').filter(Boolean)
    const resolved = resolvePath(schema, parts)
    if (!resolved) continue // not a config key (e.g. a secret referenced by env:NAME)
    setPath(raw, resolved.path, resolved.along, typed(resolved.schema, value))
    applied.push({ variable, path: resolved.path })
  }
  return applied
}

interface Resolved { path: (string | number)[]; schema: Schema; along: Schema[] }

function resolvePath(schema: Schema, parts: string[]): Resolved | undefined {
  if (parts.length === 0) return { path: [], schema, along: [] }
  if (schema.items && /^\d+$/.test(parts[0]!)) {
    const rest = resolvePath(schema.items, parts.slice(1))
    return rest && { path: [Number(parts[0]), ...rest.path], schema: rest.schema, along: [schema.items, ...rest.along] }
  }
  const props = schema.properties ?? (schema.oneOf?.find((s) => s.properties)?.properties)
  if (!props) return undefined
  for (let take = parts.length; take >= 1; take--) {
    const candidate = parts.slice(0, take).join('')
    const key = Object.keys(props).find((k) => k.toLowerCase() === candidate)
    if (key) {
      const rest = resolvePath(props[key]!, parts.slice(take))
      if (rest) return { path: [key, ...rest.path], schema: rest.schema, along: [props[key]!, ...rest.along] }
    }
  }
  return undefined
}

function typed(schema: Schema, value: string): unknown {
  const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type]
  if (types.includes('string') && !types.includes('array') && !types.includes('object')) {
    // a size like "16" stays usable as either: numbers win when the schema allows them
    if ((types.includes('integer') || types.includes('number')) && /^\d+(\.\d+)?$/.test(value)) return Number(value)
    return value
  }
  if (schema.enum && !types.length) {
    const asNumber = Number(value)
    return schema.enum.includes(asNumber) ? asNumber : value
  }
  if (types.includes('integer') || types.includes('number')) {
    const n = Number(value)
    return value.trim() !== '' && Number.isFinite(n) ? n : value
  }
  if (types.includes('boolean')) {
    if (/^(true|1|yes|on)$/i.test(value)) return true
    if (/^(false|0|no|off)$/i.test(value)) return false
    return value
  }
  try {
    return YAML.parse(value)
  } catch {
    return value
  }
}

/** Missing containers start from their schema default, so EDGEWARDEN_LISTENERS_0_PORT edits the default listener. */
function setPath(obj: Record<string, unknown>, path: readonly (string | number)[], along: readonly Schema[], value: unknown): void {
  let cur: Record<string | number, unknown> = obj
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!
    const next = cur[k]
    if (next === null || typeof next !== 'object') {
      const def = along[i]?.default
      cur[k] = def !== undefined && typeof def === 'object' ? structuredClone(def) : typeof path[i + 1] === 'number' ? [] : {}
    }
    cur = cur[k] as Record<string | number, unknown>
  }
  cur[path[path.length - 1]!] = value
}
