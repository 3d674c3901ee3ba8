/**
 * `npx tsx bench/heap-diff.ts BEFORE.heapsnapshot AFTER.heapsnapshot [--per N] [--top K]`:
 * what the heap gained between two snapshots, by constructor / object kind (count and self
 * bytes), e.g. per idle connection with --per 2000. Self sizes only: the point is which
 * objects each connection adds, not who retains them.
 */
import { readFileSync } from 'node:fs'

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
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
    const type = types[s.nodes[i + iType]!]!
    // strings, code and arrays by kind; objects by constructor name
    const key = type === 'object' || type === 'closure' ? `${type === 'closure' ? 'closure ' : ''}${s.strings[s.nodes[i + iName]!]}` : `(${type})`
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
const a = tally(before)
const b = tally(after)
const rows = [...new Set([...a.keys(), ...b.keys()])].map((k) => {
  const x = a.get(k) ?? { count: 0, bytes: 0 }
  const y = b.get(k) ?? { count: 0, bytes: 0 }
  return { k, count: (y.count - x.count) / per, bytes: (y.bytes - x.bytes) / per }
}).sort((p, q) => q.bytes - p.bytes)
const total = rows.reduce((t, r) => t + r.bytes, 0)
process.stdout.on('error', () => process.exit(0))
console.log(`heap self size gained: ${total.toFixed(0)} bytes${per > 1 ? ` per unit (÷ ${per})` : ''}\n     bytes    count  what`)
for (const r of rows.slice(0, top)) console.log(`${r.bytes.toFixed(0).padStart(10)} ${r.count.toFixed(2).padStart(8)}  ${r.k}`)
