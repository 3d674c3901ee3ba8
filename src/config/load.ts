import { existsSync, readFileSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { Ajv } from 'ajv'
import YAML, { LineCounter, type Document } from 'yaml'
import { configSchema } from './schema.js'
import { applyEnv, type EnvOverride } from './env.js'
import { parseDuration, parseRate, parseSize } from './units.js'
import { Secret } from './secret.js'
import type { Config } from './types.js'
import { ewError } from '../errors.js'
import { describeSchemaError, formatPath, yamlPosition, type Path } from './yaml-errors.js'

export { formatPath } from './yaml-errors.js'

export interface LoadConfigOptions {
  /** config file; when absent, ./edgewarden.yaml in cwd if present, else embedded defaults */
  readonly file?: string
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  /** programmatic values merged over the file (tests, embedding); arrays replace */
  readonly overrides?: Record<string, unknown>
}

type AnySchema = Record<string, unknown> & { properties?: Record<string, AnySchema>; items?: AnySchema; oneOf?: AnySchema[] }

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: true, strictRequired: false, allowUnionTypes: true })
ajv.addKeyword({ keyword: 'x-unit' })
ajv.addKeyword({ keyword: 'x-secret' })
const validate = ajv.compile(configSchema)

/** Paths are resolved against the config file's folder (or cwd without a file). */
const PATH_KEYS: Path[] = [
  ['gateway', 'dataDir'], ['policies', 'dir'], ['auth', 'jwt', 'jwksFile'], ['masking', 'sealTo'],
  ['upstream', 'cert'], ['upstream', 'key'], ['upstream', 'ca'], ['fleet', 'publicKey'],
]

export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const env = opts.env ?? process.env
  const cwd = opts.cwd ?? process.cwd()
  let file = opts.file ? resolve(cwd, opts.file) : undefined
  if (!file && existsSync(resolve(cwd, 'edgewarden.yaml'))) file = resolve(cwd, 'edgewarden.yaml')
  const where = file ?? 'defaults'

  let raw: Record<string, unknown> = {}
  let doc: Document | undefined
  const lines = new LineCounter()
  if (file) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw ewError('EW_CONFIG_NOT_FOUND', `${file}: cannot read config file (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { file })
    }
    doc = YAML.parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!
      const line = e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line
      throw ewError('EW_CONFIG_INVALID', `${file}:${line}: invalid YAML: ${e.message.split('\n')[0]}`, { file, line })
    }
    const js = doc.toJS() as unknown
    if (js !== null && js !== undefined) {
      if (typeof js !== 'object' || Array.isArray(js)) throw ewError('EW_CONFIG_INVALID', `${file}:1: the config must be a mapping of sections`, { file, line: 1 })
      raw = js as Record<string, unknown>
    }
  }
  if (opts.overrides) raw = deepMerge(raw, opts.overrides)
  const fromEnv = applyEnv(configSchema as never, raw, env)

  const located = (path: Path, problem: string): never => {
    const variable = fromEnv.find((o) => startsWith(path, o.path) || startsWith(o.path, path))?.variable
    const key = formatPath(path)
    if (variable) throw ewError('EW_CONFIG_INVALID', `${variable}: ${key}: ${problem}`, { file: where, key, variable })
    const line = doc ? yamlPosition(doc, lines, path).line : undefined
    const prefix = file ? `${file}${line ? `:${line}` : ''}` : 'config'
    throw ewError('EW_CONFIG_INVALID', `${prefix}: ${key || '(root)'}: ${problem}`, { file: where, line, key })
  }

  resolveEnvRefs(raw, [], env, located)
  if (!validate(raw)) {
    const { path, problem } = describeSchemaError(validate.errors![0]!)
    located(path, problem)
  }
  const baseDir = file ? dirname(file) : cwd
  const cfg = normalize(configSchema as unknown as AnySchema, raw, []) as Record<string, unknown>
  for (const p of PATH_KEYS) resolvePathKey(cfg, p, baseDir)
  for (const l of (cfg.listeners as Record<string, unknown>[])) for (const k of ['cert', 'key', 'ca']) if (typeof l[k] === 'string') l[k] = resolve(baseDir, l[k] as string)
  const jwt = (cfg.auth as { jwt: Record<string, unknown> }).jwt
  if (typeof jwt.publicKey === 'string' && !/^\s*[{-]/.test(jwt.publicKey)) jwt.publicKey = resolve(baseDir, jwt.publicKey)
  semanticChecks(cfg, located)
  cfg.source = where
  return deepFreeze(cfg) as unknown as Config
}

function semanticChecks(cfg: Record<string, unknown>, located: (p: Path, m: string) => never): void {
  const jwt = (cfg.auth as { jwt: { algorithms: string[]; secret?: unknown } }).jwt
  const hs = jwt.algorithms.findIndex((a) => a.startsWith('HS'))
  if (hs >= 0 && !jwt.secret) located(['auth', 'jwt', 'algorithms', hs], `${jwt.algorithms[hs]} needs auth.jwt.secret`)
  const ka = (cfg.limits as { keepaliveSec: { min: number; max: number } }).keepaliveSec
  if (ka.min > ka.max) located(['limits', 'keepaliveSec', 'min'], `must not exceed limits.keepaliveSec.max (${ka.max})`)
  const seen = new Map<string, number>()
  ;(cfg.listeners as { host: string; port: number }[]).forEach((l, i) => {
    if (l.port === 0) return
    const k = `${l.host}:${l.port}`
    if (seen.has(k)) located(['listeners', i, 'port'], `port ${l.port} is already used by listeners[${seen.get(k)}]`)
    seen.set(k, i)
  })
}


function resolveEnvRefs(node: unknown, path: (string | number)[], env: NodeJS.ProcessEnv, located: (p: Path, m: string) => never): void {
  if (Array.isArray(node)) {
    node.forEach((v, i) => {
      if (typeof v === 'string' && v.startsWith('env:')) node[i] = envValue(v, [...path, i], env, located)
      else resolveEnvRefs(v, [...path, i], env, located)
    })
  } else if (node && typeof node === 'object') {
    const obj = node as Record<string, unknown>
    for (const k of Object.keys(obj)) {
      const v = obj[k]
      if (typeof v === 'string' && v.startsWith('env:')) obj[k] = envValue(v, [...path, k], env, located)
      else resolveEnvRefs(v, [...path, k], env, located)
    }
  }
}

function envValue(ref: string, path: Path, env: NodeJS.ProcessEnv, located: (p: Path, m: string) => never): string {
  const name = ref.slice(4)
  const value = env[name]
  if (value === undefined || value === '') located(path, `environment variable ${name} is not set`)
  return value as string
}

/** Applies x-unit conversions and wraps x-secret values, following the schema beside the value. */
function normalize(schema: AnySchema | undefined, value: unknown, path: Path): unknown {
  if (!schema) return value
  const unit = schema['x-unit']
  if (unit && (typeof value === 'string' || typeof value === 'number')) {
    const n = unit === 'bytes' ? parseSize(value) : unit === 'ms' ? parseDuration(value) : parseRate(value)
    return n
  }
  if (schema['x-secret'] && typeof value === 'string') return new Secret(value, formatPath(path))
  if (Array.isArray(value)) return value.map((v, i) => normalize(schema.items, v, [...path, i]))
  if (value && typeof value === 'object') {
    const props = schema.properties ?? schema.oneOf?.find((s) => s.properties)?.properties
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = normalize(props?.[k], v, [...path, k])
    return out
  }
  return value
}

function resolvePathKey(cfg: Record<string, unknown>, path: Path, baseDir: string): void {
  let cur: unknown = cfg
  for (let i = 0; i < path.length - 1; i++) cur = (cur as Record<string | number, unknown> | undefined)?.[path[i]!]
  const obj = cur as Record<string | number, unknown> | undefined
  const last = path[path.length - 1]!
  if (obj && typeof obj[last] === 'string' && !isAbsolute(obj[last] as string)) obj[last] = resolve(baseDir, obj[last] as string)
}



function startsWith(a: Path, prefix: Path): boolean {
  return prefix.length <= a.length && prefix.every((p, i) => a[i] === p)
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const b = out[k]
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Secret) && b && typeof b === 'object' && !Array.isArray(b)
      ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>)
      : v
  }
  return out
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof Secret) && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}
