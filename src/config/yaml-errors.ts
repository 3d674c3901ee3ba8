import type { ErrorObject } from 'ajv'
import { isNode, type Document, type LineCounter } from 'yaml'

/**
 * Shared by the config, policy and mask loaders: turning an ajv error into a key path and
 * a problem, and a key path into a line and column of the YAML it came from.
 */
export type Path = readonly (string | number)[]

/** `a.b[2].c` */
export function formatPath(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('')
}

/** The common problems; `special` words the keyword-specific ones of a schema. */
export function describeSchemaError(e: ErrorObject, special?: (e: ErrorObject, path: Path) => string | undefined): { path: Path; problem: string } {
  const path: Path = e.instancePath.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~')))
  const own = special?.(e, path)
  if (own !== undefined) return { path, problem: own }
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: [...path, e.params.additionalProperty as string], problem: 'unknown key' }
    case 'required':
      return { path: [...path, e.params.missingProperty as string], problem: 'is required' }
    case 'enum':
      return { path, problem: `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` }
    case 'pattern':
      return { path, problem: 'has an invalid format' }
    default:
      return { path, problem: e.message ?? 'is invalid' }
  }
}

type Pairs = { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] } | undefined

/** Where the value at `path` is written (or, for a key without a value node, the key). */
export function yamlPosition(doc: Document, lines: LineCounter, path: Path): { line?: number; col?: number } {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true)
    if (isNode(node) && node.range) return lines.linePos(node.range[0])
    if (n > 0) {
      const parent = doc.getIn(path.slice(0, n - 1), true) as Pairs
      const pair = parent?.items?.find((it) => it.key?.value === path[n - 1])
      if (pair?.key?.range) return lines.linePos(pair.key.range[0])
    }
  }
  return {}
}

/** Where the key at the end of `path` is written (an unknown key is pointed at itself). */
export function yamlKeyPosition(doc: Document, lines: LineCounter, path: Path): { line?: number; col?: number } {
  const parent = doc.getIn(path.slice(0, -1), true) as Pairs
  const pair = (path.length === 1 ? (doc.contents as Pairs) : parent)?.items?.find((it) => it.key?.value === path[path.length - 1])
  return pair?.key?.range ? lines.linePos(pair.key.range[0]) : yamlPosition(doc, lines, path)
}
