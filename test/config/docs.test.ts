import t from 'tap'
import { readFileSync } from 'node:fs'
import { configSchema } from '../../src/config/schema.js'

type S = { properties?: Record<string, S>; items?: S; type?: unknown }

/** Leaf keys of the schema as docs/config.md writes them: `a.b`, `listeners[].port`. */
function leaves(s: S, path: string, out: string[]): string[] {
  const props = s.properties ?? (s.type === 'array' ? s.items?.properties : undefined)
  const base = s.properties ? path : `${path}[]`
  if (!props) { out.push(path); return out }
  for (const [k, v] of Object.entries(props)) leaves(v, base ? `${base}.${k}` : k, out)
  return out
}

t.test('docs/config.md names every config key', async (t) => {
  const doc = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8')
  // a row may group siblings: `a.b`, `.c` or `a.{b,c}`
  const documented = (key: string): boolean => {
    if (doc.includes('`' + key + '`')) return true
    const i = key.lastIndexOf('.')
    const parent = key.slice(0, i)
    const leaf = key.slice(i + 1)
    return doc.includes('`.' + leaf + '`') && doc.includes('`' + parent + '.') || new RegExp('`' + parent.replace(/[.[\]]/g, '\\$&') + '\\.\\{[^}]*\\b' + leaf + '\\b').test(doc)
  }
  const missing = leaves(configSchema as S, '', []).filter((k) => !documented(k))
  t.same(missing, [], 'every key has a row (add missing ones to docs/config.md)')
})
