/**
 * `npx tsx bench/profile.ts FILE.cpuprofile [--top N]`: where a broker's CPU went. Self time
 * per function and per area (edgewarden stage, aedes, mqtt-packet, node internals, GC, idle),
 * so "what does a CONNECT cost" can be answered with numbers rather than a flame graph.
 */
import { readFileSync } from 'node:fs'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const file = process.argv[2]
if (!file) { console.error('usage: bench/profile.ts FILE.cpuprofile [--top N] [--per OPS] [--wall] [--compare BASE.cpuprofile [--base-per OPS]]'); process.exit(2) }
const arg = (name: string): number => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : 0)
const topN = arg('--top') || 25
/** with --per N (e.g. the number of CONNECTs profiled), times are also given in µs per operation */
const per = arg('--per')
process.stdout.on('error', () => process.exit(0)) // piped into head
const compare = process.argv.includes('--compare') ? process.argv[process.argv.indexOf('--compare') + 1] : undefined
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile

const byId = new Map(prof.nodes.map((n) => [n.id, n]))
const self = new Map<number, number>()
// Weights: by default each sample counts one sampling interval (the median time delta), not
// its own time delta. On a busy machine a descheduled thread takes one late sample whose delta
// holds all the time it did not run; counting samples approximates CPU time, summing deltas
// gives wall time (--wall).
const wall = process.argv.includes('--wall')
const deltas = [...prof.timeDeltas].sort((a, b) => a - b)
const interval = deltas[Math.floor(deltas.length / 2)] ?? 1
for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i]!, (self.get(prof.samples[i]!) ?? 0) + (wall ? (prof.timeDeltas[i] ?? 0) : interval))
const total = [...self.values()].reduce((a, b) => a + b, 0)

function area(n: Node): string {
  const { functionName: f, url } = n.callFrame
  if (f === '(idle)') return '(idle)'
  if (f === '(garbage collector)') return '(gc)'
  if (f === '(program)') return '(program: native, not attributed)'
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m) return m[1]!
  const src = /\/src\/([^/]+)(?:\/([^/]+))?/.exec(url)
  if (src) return `edgewarden src/${src[2] ? src[1] : src[1]!.replace(/\.ts$/, '')}`
  if (url.startsWith('node:')) return url.replace(/^node:internal\//, 'node:').split('/').slice(0, 2).join('/')
  if (!url) return `(native) ${f || 'anonymous'}`
  return url
}

const areas = new Map<string, number>()
const fns = new Map<string, number>()
for (const [id, t] of self) {
  const n = byId.get(id)!
  const a = area(n)
  areas.set(a, (areas.get(a) ?? 0) + t)
  const key = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${n.callFrame.lineNumber + 1}`
  fns.set(key, (fns.get(key) ?? 0) + t)
}
const idle = areas.get('(idle)') ?? 0
const pct = (t: number): string => `${((t / total) * 100).toFixed(1).padStart(5)} %${per ? `  ${(t / per).toFixed(1).padStart(7)} µs/op` : ''}`
console.log(`${file}: ${(total / 1e6).toFixed(2)} s ${wall ? 'wall' : 'of samples'}, ${((total - idle) / 1e6).toFixed(2)} s busy${per ? ` = ${((total - idle) / per).toFixed(1)} µs of CPU per op over ${per} ops` : ''}\n\nself time by area:`)
for (const [a, t] of [...areas].sort((x, y) => y[1] - x[1]).slice(0, topN)) console.log(`  ${pct(t)}  ${a}`)
console.log('\nself time by function:')
for (const [f, t] of [...fns].sort((x, y) => y[1] - x[1]).slice(0, topN)) console.log(`  ${pct(t)}  ${f}`)

// inclusive time: every function on the sampled stack (counted once per sample)
const parent = new Map<number, number>()
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const incl = new Map<string, number>()
for (const [id, t] of self) {
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur)!
    const { functionName: f, url, lineNumber } = n.callFrame
    if (!/\/src\/|node_modules\/(aedes|mqtt-packet|lmdb|msgpackr|prom-client|pino)\//.test(url) && !/^(run|SignJob|verify|writev|close)$/.test(f)) continue
    const key = `${f || '(anonymous)'} ${url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${lineNumber + 1}`
    if (seen.has(key)) continue
    seen.add(key)
    incl.set(key, (incl.get(key) ?? 0) + t)
  }
}
console.log('\ninclusive time (edgewarden, aedes, mqtt-packet, lmdb, msgpackr, prom-client, crypto, socket natives):')
for (const [f, t] of [...incl].sort((x, y) => y[1] - x[1]).slice(0, topN * 2)) console.log(`  ${pct(t)}  ${f}`)

// --compare BASE.cpuprofile: per-area difference (this profile minus BASE), µs per op with --per
if (compare) {
  const base = JSON.parse(readFileSync(compare, 'utf8')) as Profile
  const baseById = new Map(base.nodes.map((n) => [n.id, n]))
  const bd = [...base.timeDeltas].sort((a, b) => a - b)
  const bInterval = bd[Math.floor(bd.length / 2)] ?? 1
  const bAreas = new Map<string, number>()
  for (let i = 0; i < base.samples.length; i++) {
    const a = area(baseById.get(base.samples[i]!)!)
    bAreas.set(a, (bAreas.get(a) ?? 0) + (wall ? (base.timeDeltas[i] ?? 0) : bInterval))
  }
  const bTotal = [...bAreas.values()].reduce((a, b) => a + b, 0)
  const bBusy = bTotal - (bAreas.get('(idle)') ?? 0)
  // --base-per: the base profile's own operation count (defaults to --per)
  const div = per || 1
  const bDiv = arg('--base-per') || div
  const unit = per ? 'µs/op' : 'µs'
  console.log(`\ncompared with ${compare}: busy ${((total - idle) / div).toFixed(1)} vs ${(bBusy / bDiv).toFixed(1)} ${unit}, +${((total - idle) / div - bBusy / bDiv).toFixed(1)}`)
  const keys = new Set([...areas.keys(), ...bAreas.keys()])
  keys.delete('(idle)')
  const rows = [...keys].map((k) => [k, (areas.get(k) ?? 0) / div, (bAreas.get(k) ?? 0) / bDiv] as const).sort((x, y) => (y[1] - y[2]) - (x[1] - x[2]))
  console.log(`  ${'this'.padStart(9)} ${'base'.padStart(9)} ${'diff'.padStart(9)}  area (${unit})`)
  for (const [k, a, b] of rows.slice(0, topN)) console.log(`  ${a.toFixed(1).padStart(9)} ${b.toFixed(1).padStart(9)} ${(a - b).toFixed(1).padStart(9)}  ${k}`)
}
