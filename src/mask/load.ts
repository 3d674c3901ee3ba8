import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import YAML, { LineCounter } from 'yaml'
import { describeSchemaError, formatPath, yamlPosition } from '../config/yaml-errors.js'
import { ewError } from '../errors.js'
import { parsePath } from './path.js'
import { maskSchema } from './schema.js'
import { validateFilter } from './trie.js'
import type { MaskSpec } from './types.js'

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: true, strictRequired: false, allowUnionTypes: true })
const validate = ajv.compile(maskSchema)

type Path = readonly (string | number)[]

/**
 * Reads the `masks:` sections of every policy file (`*.yaml`, `*.yml` directly in `dir`,
 * in name order; the policy stage reads `rules:` from the same files). A missing dir has
 * no masks. Errors name the file, the line and the key (EW_POLICY_INVALID).
 */
export function loadMaskSpecs(dir: string): MaskSpec[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return []
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/i.test(f) && statSync(join(dir, f)).isFile()).sort()
  const out: MaskSpec[] = []
  const seen = new Map<string, string>()
  for (const name of files) {
    const file = join(dir, name)
    for (const spec of masksOfFile(file, readFileSync(file, 'utf8'))) {
      const prev = seen.get(spec.id)
      if (prev) throw ewError('EW_POLICY_INVALID', `${file}: masks: duplicate mask id '${spec.id}' (also in ${prev})`, { file, key: 'masks' })
      seen.set(spec.id, file)
      out.push(spec)
    }
  }
  return out
}

/** The validated `masks:` entries of one policy file's text. */
export function masksOfFile(file: string, text: string): MaskSpec[] {
  const lines = new LineCounter()
  const doc = YAML.parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const line = e.linePos?.[0]?.line ?? lines.linePos(e.pos[0]).line
    throw ewError('EW_POLICY_INVALID', `${file}:${line}: invalid YAML: ${e.message.split('\n')[0]}`, { file, line })
  }
  const js = doc.toJS() as unknown
  if (js === null || js === undefined) return []
  if (typeof js !== 'object' || Array.isArray(js)) return [] // the policy stage reports a file that is not a mapping
  const masks = (js as { masks?: unknown }).masks
  if (masks === undefined || masks === null) return []
  const fail = (path: Path, problem: string): never => {
    const line = yamlPosition(doc, lines, path).line
    const key = formatPath(path)
    throw ewError('EW_POLICY_INVALID', `${file}${line ? `:${line}` : ''}: ${key}: ${problem}`, { file, line, key })
  }
  if (!Array.isArray(masks)) fail(['masks'], 'must be a list')
  return validateEntries(masks as unknown[], file, fail)
}

/**
 * Validates `masks:` entries already parsed (a fleet bundle's merged policy document);
 * errors name the source and the entry's key, without a line.
 */
export function masksOfEntries(entries: readonly unknown[], source: string): MaskSpec[] {
  const fail = (path: Path, problem: string): never => {
    const key = formatPath(path)
    throw ewError('EW_POLICY_INVALID', `${source}: ${key}: ${problem}`, { file: source, key })
  }
  const specs = validateEntries(entries.map((e) => structuredClone(e)), source, fail)
  const seen = new Set<string>()
  for (const s of specs) {
    if (seen.has(s.id)) fail(['masks'], `duplicate mask id '${s.id}'`)
    seen.add(s.id)
  }
  return specs
}

function validateEntries(masks: unknown[], file: string, fail: (path: Path, problem: string) => never): MaskSpec[] {
  return masks.map((m, i) => {
    if (!validate(m)) {
      const { path, problem } = describeSchemaError(validate.errors![0]!)
      fail(['masks', i, ...path], problem)
    }
    const spec = m as MaskSpec
    spec.topics.forEach((t, j) => {
      try { validateFilter(t) } catch (err) { fail(['masks', i, 'topics', j], (err as Error).message) }
    })
    spec.fields.forEach((f, j) => {
      try { parsePath(f.path) } catch (err) { fail(['masks', i, 'fields', j, 'path'], `invalid path '${f.path}': ${(err as Error).message}`) }
      if (f.action === 'replace' && !('value' in f)) fail(['masks', i, 'fields', j], "action 'replace' needs a value")
      if (f.digits !== undefined && f.action !== 'round') fail(['masks', i, 'fields', j, 'digits'], "only action 'round' takes digits")
    })
    return Object.freeze({ ...spec, file })
  })
}



