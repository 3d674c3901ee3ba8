import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv, type ErrorObject } from 'ajv'
import YAML, { LineCounter, type Document } from 'yaml'
import { describeSchemaError, formatPath, yamlKeyPosition, yamlPosition } from '../config/yaml-errors.js'
import { ewError } from '../errors.js'
import { policySchema } from './schema.js'
import { semanticChecks } from './lint.js'
import type { PolicyDocument, RuleSource, RuleSpec } from './document.js'

export interface PolicyFile {
  /** file name inside the policy dir (or a bundle's file name) */
  readonly name: string
  /** path shown in messages */
  readonly path: string
  readonly text: string
}

export interface LintIssue {
  readonly severity: 'error' | 'warning'
  readonly file: string
  readonly line?: number
  readonly col?: number
  /** e.g. rules[3].topics[0] */
  readonly key?: string
  readonly message: string
}

export interface LintResult {
  readonly issues: readonly LintIssue[]
  /** present when there is no error */
  readonly doc?: PolicyDocument
}

export type Path = readonly (string | number)[]
export type Locate = (file: string, path: Path) => { line?: number; col?: number }

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true })
const validate = ajv.compile(policySchema)

/** The `*.yaml` / `*.yml` files directly in `dir`, sorted by name; undefined when there is no dir. */
export function readPolicyDir(dir: string): PolicyFile[] | undefined {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return undefined
  return readdirSync(dir)
    .filter((n) => /\.ya?ml$/i.test(n) && statSync(join(dir, n)).isFile())
    .sort()
    .map((name) => ({ name, path: join(dir, name), text: readFileSync(join(dir, name), 'utf8') }))
}

/** Revision of a policy set: a hash of the file names and contents. */
export function policyRevision(files: readonly PolicyFile[]): string {
  const h = createHash('sha256')
  for (const f of [...files].sort((a, b) => (a.name < b.name ? -1 : 1))) h.update(f.name).update('\0').update(f.text).update('\0')
  return h.digest('hex').slice(0, 16)
}

/** `rules[3].topics[0]` */
export const formatKey = formatPath

export function formatIssue(i: LintIssue): string {
  const where = `${i.file}${i.line ? `:${i.line}${i.col ? `:${i.col}` : ''}` : ''}`
  return `${where}: ${i.severity}: ${i.key ? `${i.key}: ` : ''}${i.message}`
}

/** Schema + semantic checks over a set of files; merges them when they are clean. */
export function lintPolicyFiles(files: readonly PolicyFile[]): LintResult {
  const issues: LintIssue[] = []
  const docs = new Map<string, { doc: Document; lines: LineCounter }>()
  const locate: Locate = (file, path) => {
    const d = docs.get(file)
    return d ? yamlPosition(d.doc, d.lines, path) : {}
  }
  const rules: RuleSpec[] = []
  const sources: RuleSource[] = []
  const masks: unknown[] = []
  for (const f of files) {
    const lines = new LineCounter()
    const doc = YAML.parseDocument(f.text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const p = lines.linePos(e.pos[0])
        issues.push({ severity: 'error', file: f.path, line: p.line, col: p.col, message: `invalid YAML: ${e.message.split('\n')[0]}` })
      }
      continue
    }
    docs.set(f.path, { doc, lines })
    const js = doc.toJS({ maxAliasCount: 100 }) as unknown
    if (js === null || js === undefined) continue
    if (typeof js !== 'object' || Array.isArray(js)) {
      issues.push({ severity: 'error', file: f.path, line: 1, col: 1, message: 'a policy file must be a mapping with `rules` and/or `masks`' })
      continue
    }
    if (!validate(js)) {
      for (const e of pickErrors(validate.errors ?? [])) {
        const { path, problem } = describe(e)
        // an unknown key is pointed at where the key is written, anything else at its value
        const at = e.keyword === 'additionalProperties' ? yamlKeyPosition(doc, lines, path) : locate(f.path, path)
        issues.push({ severity: 'error', file: f.path, ...at, key: formatKey(path), message: problem })
      }
      continue
    }
    const obj = js as { rules?: RuleSpec[]; masks?: unknown[] }
    obj.rules?.forEach((r, index) => {
      rules.push(r)
      sources.push({ file: f.path, index })
    })
    if (obj.masks) masks.push(...obj.masks)
  }
  if (issues.some((i) => i.severity === 'error')) return { issues }
  issues.push(...semanticChecks(rules, sources, locate))
  if (issues.some((i) => i.severity === 'error')) return { issues }
  const doc: PolicyDocument = { rules, sources, masks, files: files.map((f) => f.name), revision: policyRevision(files) }
  return { issues, doc }
}

/** Loads and lints a policy dir; throws EW_POLICY_INVALID naming file, line and key. */
export function loadPolicyDir(dir: string): { doc: PolicyDocument; warnings: readonly LintIssue[] } | undefined {
  const files = readPolicyDir(dir)
  if (!files) return undefined
  const r = lintPolicyFiles(files)
  if (!r.doc) throw policyError(r.issues)
  return { doc: r.doc, warnings: r.issues }
}

export function policyError(issues: readonly LintIssue[]): Error {
  const errors = issues.filter((i) => i.severity === 'error')
  const first = errors[0]!
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? 's' : ''})` : ''
  return ewError('EW_POLICY_INVALID', `${formatIssue(first).replace(': error: ', ': ')}${more}`, { file: first.file, line: first.line, key: first.key })
}

function pickErrors(errors: readonly ErrorObject[]): ErrorObject[] {
  // one message per location; an anyOf summary only when nothing more precise was said
  const byPath = new Map<string, ErrorObject>()
  for (const e of errors) {
    const k = e.instancePath + (e.keyword === 'additionalProperties' ? `/${String(e.params.additionalProperty)}` : e.keyword === 'required' ? `/${String(e.params.missingProperty)}` : '')
    const prev = byPath.get(k)
    if (!prev || (prev.keyword !== 'anyOf' && e.keyword === 'anyOf')) byPath.set(k, e)
  }
  return [...byPath.values()]
}

/** The policy schema's own wordings; the common ones come from describeSchemaError. */
function describe(e: ErrorObject): { path: Path; problem: string } {
  return describeSchemaError(e, (err, path) => {
    switch (err.keyword) {
      case 'minProperties':
      case 'minItems':
        return 'must not be empty'
      case 'anyOf':
        return path.includes('maxPayloadBytes') ? 'must be a size (8192, 8KB)' : path.includes('rate') ? 'must be a rate (20/s, 100/min)' : path.includes('ttl') ? 'must be a duration (15m)' : 'has an invalid value'
      case 'pattern':
        return path[path.length - 1] === 'id' ? 'must be letters, digits, . _ : - (max 128)' : undefined
      default:
        return undefined
    }
  })
}


