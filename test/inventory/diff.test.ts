import t from 'tap'
import { diffText } from '../../src/cli/policy-diff.js'
import { policyDiff } from '../../src/inventory/diff.js'
import type { JournalRecord } from '../../src/journal/types.js'
import { compilePolicy, lintPolicyFiles } from '../../src/policy/index.js'

const policy = (yaml: string) => compilePolicy(lintPolicyFiles([{ name: 'p.yaml', path: 'p.yaml', text: yaml }]).doc!)
let seq = 0
const rec = (ts: number, r: Partial<JournalRecord>): JournalRecord => ({ seq: ++seq, ts, gw: 'gw', prev: '', hash: '', type: 'would_deny', ...r }) as JournalRecord

t.test('policy diff groups by identity and filter, stops at since, re-checks against the current policy', async (t) => {
  const now = 1_000_000
  // newest first, as the CLI reads them
  const records = [
    rec(now, { type: 'publish', sub: 'd1', clientId: 'd1', topic: 'x' }),
    rec(now - 1, { sub: 'd1', clientId: 'script', kind: 'device', groups: ['sensors'], action: 'publish', topic: 'site/1/dev/d2/cmd/reboot', reason: 'no_matching_rule' }),
    rec(now - 2, { sub: 'd1', clientId: 'script', kind: 'device', groups: ['sensors'], action: 'publish', topic: 'site/1/dev/d2/cmd/reboot', reason: 'no_matching_rule' }),
    rec(now - 3, { sub: 'd1', clientId: 'script', kind: 'device', groups: ['sensors'], action: 'subscribe', topic: 'site/1/dev/+/cmd/#', reason: 'no_matching_rule' }),
    rec(now - 4, { sub: 'svc', clientId: 'svc', kind: 'service', groups: [], action: 'publish', topic: 'site/1/report', reason: 'no_matching_rule' }),
    rec(now - 5, { type: 'would_hold', sub: 'svc', clientId: 'svc', kind: 'service', action: 'publish', topic: 'site/1/fw', rule: 'fw', reason: 'approval_required' }),
    rec(now - 5000, { sub: 'old', clientId: 'old', action: 'publish', topic: 'a' }),
  ]
  // since the journal was written, a rule now allows services to report
  const current = policy("rules:\n  - { id: reports, effect: allow, actions: [publish], topics: ['site/+/report'], who: { kinds: [service] } }\n")
  const d = policyDiff(records, current, now - 1000)
  t.equal(d.total, 5, 'older records and non-would records are not counted')
  t.equal(d.stillBlocked, 4)
  t.same(d.groups.map((g) => [g.sub, g.clientIds]), [['d1', ['script']], ['svc', ['svc']]])
  t.same(d.groups[0]!.items.map((i) => [i.action, i.filter, i.count]), [['publish', 'site/1/dev/d2/cmd/reboot', 2], ['subscribe', 'site/1/dev/+/cmd/#', 1]])
  const report = d.groups[1]!.items.find((i) => i.filter === 'site/1/report')!
  t.equal(report.stillBlocked, 0, 'allowed by the current policy')
  const text = diffText(d, '/p')
  t.match(text, /5 would-be refusals by 2 identities; the current policy \(\/p, revision \w+\) still refuses 4/)
  t.match(text, /would_deny publish\s+site\/1\/report\s+1×\s+no_matching_rule\s+\[now allowed\]/)
  t.match(text, /would_hold publish\s+site\/1\/fw\s+1×\s+fw · approval_required\n/)
})

t.test('past 32 topics per group, topics compact to + filters', async (t) => {
  const records = Array.from({ length: 100 }, (_, i) => rec(10, { sub: 's', clientId: 's', action: 'publish', topic: `site/1/dev/d${i}/cmd/x`, reason: 'no_matching_rule' }))
  const d = policyDiff(records, policy('rules: []\n'), 0)
  t.same(d.groups[0]!.items.map((i) => [i.filter, i.count]), [['site/1/dev/+/cmd/x', 100]])
})
