/**
 * `npx tsx bench/heap-diff.ts BEFORE.heapsnapshot AFTER.heapsnapshot [--per N] [--top K] [--owners]`:
 * what the heap gained between two snapshots, by constructor / object kind (count and self
 * bytes), e.g. per idle connection with --per 2000. Self sizes only: the point is which
 * objects each connection adds, not who retains them. `--owners`: the objects only AFTER
 * holds (snapshot ids are stable within one process), grouped by who holds them — the
 * first retainer's kind and the property, e.g. `Object.published → Map` — to tell whose
 * arrays, Maps and closures they are.
 */
import { readFileSync } from 'node:fs'

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } }
  nodes: number[]
  edges: number[]
  strings: string[]
}

const kindOf = (s: Snapshot, types: string[], i: number, iType: number, iName: number): string => {
  const type = types[s.nodes[i + iType]!]!
  return type === 'object' || type === 'closure' ? `${type === 'closure' ? 'closure ' : ''}${s.strings[s.nodes[i + iName]!]}` : `(${type})`
}

/** node ids of a snapshot */
function ids(file: string): Set<number> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const f = s.snapshot.meta.node_fields
  const out = new Set<number>()
  for (let i = 0; i < s.nodes.length; i += f.length) out.add(s.nodes[i + f.indexOf('id')]!)
  return out
}

/** objects of AFTER not in BEFORE, by first retainer kind + edge name + own kind */
function owners(before: string, after: string): Map<string, { count: number; bytes: number }> {
  const old = ids(before)
  const s = JSON.parse(readFileSync(after, 'utf8')) as Snapshot
  const m = s.snapshot.meta
  const w = m.node_fields.length
  const [iType, iName, iSize, iId, iEdges] = ['type', 'name', 'self_size', 'id', 'edge_count'].map((k) => m.node_fields.indexOf(k)) as [number, number, number, number, number]
  const ew = m.edge_fields.length
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((k) => m.edge_fields.indexOf(k)) as [number, number, number]
  const types = m.node_types[0]
  const etypes = m.edge_types[0]
  // first retainer of every node, skipping weak edges and the synthetic roots
  const owner = new Int32Array(s.nodes.length / w).fill(-1)
  const via: string[] = []
  let e = 0
  for (let i = 0; i < s.nodes.length; i += w) {
    const skip = types[s.nodes[i + iType]!] === 'synthetic'
    for (let k = 0; k < s.nodes[i + iEdges]!; k++, e += ew) {
      const et = etypes[s.edges[e + eType]!]
      if (skip || et === 'weak' || et === 'shortcut') continue
      const to = s.edges[e + eTo]! / w
      if (owner[to] !== -1) continue
      owner[to] = i
      const n = s.edges[e + eName]!
      via[to] = et === 'element' || et === 'hidden' ? `[${et}]` : String(s.strings[n])
    }
  }
  const out = new Map<string, { count: number; bytes: number }>()
  for (let i = 0; i < s.nodes.length; i += w) {
    if (old.has(s.nodes[i + iId]!)) continue
    const o = owner[i / w]!
    const key = `${o >= 0 ? kindOf(s, types, o, iType, iName) : '(root)'}.${via[i / w] ?? ''} → ${kindOf(s, types, i, iType, iName)}`
    const r = out.get(key) ?? { count: 0, bytes: 0 }
    r.count++
    r.bytes += s.nodes[i + iSize]!
    out.set(key, r)
  }
  return out
}

function tally(file: string): Map<string, { count: number; bytes: number }> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const f = s.snapshot.meta.node_fields
  const width = f.length
  const iType = f.indexOf('type')
  const iName = f.indexOf('name')
  const iSize = f.indexOf('self_size')
  const types = s.snapshot.meta.node_types[0]
  const out = new Map<string, { count: number; bytes: number }>()
  for (let i = 0; i < s.nodes.length; i += width) {
    // strings, code and arrays by kind; objects by constructor name
    const key = kindOf(s, types, i, iType, iName)
    const e = out.get(key) ?? { count: 0, bytes: 0 }
    e.count++
    e.bytes += s.nodes[i + iSize]!
    out.set(key, e)
  }
  return out
}

const [before, after] = process.argv.slice(2)
if (!before || !after) { console.error('usage: bench/heap-diff.ts BEFORE AFTER [--per N] [--top K]'); process.exit(2) }
const num = (flag: string, d: number): number => (process.argv.includes(flag) ? Number(process.argv[process.argv.indexOf(flag) + 1]) : d)
const per = num('--per', 1)
const top = num('--top', 30)
process.stdout.on('error', () => process.exit(0))
if (process.argv.includes('--owners')) {
  const rows = [...owners(before, after)].sort((p, q) => q[1].bytes - p[1].bytes)
  const total = rows.reduce((t, [, r]) => t + r.bytes, 0)
  console.log(`new objects: ${(total / per).toFixed(0)} bytes${per > 1 ? ` per unit (÷ ${per})` : ''}, by first retainer\n     bytes    count  holder.property → what`)
  for (const [k, r] of rows.slice(0, top)) console.log(`${(r.bytes / per).toFixed(0).padStart(10)} ${(r.count / per).toFixed(2).padStart(8)}  ${k}`)
  process.exit(0)
}
const a = tally(before)
const b = tally(after)
const rows = [...new Set([...a.keys(), ...b.keys()])].map((k) => {
  const x = a.get(k) ?? { count: 0, bytes: 0 }
  const y = b.get(k) ?? { count: 0, bytes: 0 }
  return { k, count: (y.count - x.count) / per, bytes: (y.bytes - x.bytes) / per }
}).sort((p, q) => q.bytes - p.bytes)
const total = rows.reduce((t, r) => t + r.bytes, 0)
console.log(`heap self size gained: ${total.toFixed(0)} bytes${per > 1 ? ` per unit (÷ ${per})` : ''}\n     bytes    count  what`)
for (const r of rows.slice(0, top)) console.log(`${r.bytes.toFixed(0).padStart(10)} ${r.count.toFixed(2).padStart(8)}  ${r.k}`)
