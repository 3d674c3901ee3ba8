/**
 * `npx tsx bench/policy-decide.ts` — in-process policy decisions per second with 10,000 rules
 * and 100,000 distinct topics (issue 4's target: ≥ 1,000,000/s). One core, no sockets.
 */
import { compilePolicy } from '../src/policy/index.js'
import type { RuleSpec } from '../src/policy/document.js'
import type { Identity } from '../src/identity/types.js'

const RULES = 10_000
const TOPICS = 100_000
const rules: RuleSpec[] = []
for (let i = 0; i < RULES; i++) {
  const site = i % 100
  switch (i % 5) {
    case 0: rules.push({ id: `r${i}`, effect: 'allow', actions: ['publish'], topics: [`site/${site}/dev/d${i}/telemetry`], who: { groups: ['sensors'] }, qos: [0, 1], maxPayloadBytes: 8192 }); break
    case 1: rules.push({ id: `r${i}`, effect: 'allow', actions: ['publish', 'subscribe'], topics: [`site/${site}/area${i}/+/status`] }); break
    case 2: rules.push({ id: `r${i}`, effect: 'deny', actions: ['publish'], topics: [`site/${site}/dev/d${i}/secret/#`] }); break
    case 3: rules.push({ id: `r${i}`, effect: 'allow', actions: ['publish'], topics: [`tenant/t${i}/\${client_id}/#`], who: { kinds: ['device'] } }); break
    default: rules.push({ id: `r${i}`, effect: 'allow', actions: ['subscribe'], topics: [`site/${site}/dev/+/cmd/c${i}`], qos: [0] })
  }
}
rules.push({ id: 'own', effect: 'allow', actions: ['publish'], topics: ['site/+/dev/${client_id}/telemetry'], rate: '1000000/s' })
const policy = compilePolicy({ rules, sources: [], masks: [], files: [], revision: 'bench' })

const topics: string[] = []
for (let i = 0; i < TOPICS; i++) {
  const j = (i * 7919) % RULES
  switch (i % 4) {
    case 0: topics.push(`site/${j % 100}/dev/d${j}/telemetry`); break
    case 1: topics.push(`site/${j % 100}/area${j}/x${i}/status`); break
    case 2: topics.push(`tenant/t${j}/dev-${i % 1000}/m/${i}`); break
    default: topics.push(`site/${j % 100}/dev/dev-${i % 1000}/telemetry`)
  }
}
const ids: Identity[] = []
for (let i = 0; i < 1000; i++) ids.push({ sub: `dev-${i}`, clientId: `dev-${i}`, groups: ['sensors'], kind: 'device', claims: {}, listener: 'bench' })
const payload = Buffer.alloc(200)
const input = { qos: 1, retain: false, payload }

function run(n: number): { perSec: number; allowed: number } {
  let allowed = 0
  const t0 = process.hrtime.bigint()
  for (let k = 0; k < n; k++) {
    const i = k % TOPICS
    if (policy.decide(ids[i % 1000]!, 'publish', topics[i]!, input).effect === 'allow') allowed++
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  return { perSec: Math.round(n / s), allowed }
}

run(300_000) // warm up
const r = run(3_000_000)
console.log(JSON.stringify({ rules: RULES, topics: TOPICS, decisionsPerSec: r.perSec, allowedShare: +(r.allowed / 3_000_000).toFixed(2), node: process.version }))
