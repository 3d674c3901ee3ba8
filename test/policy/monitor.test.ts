import t from 'tap'
import type { Identity } from '../../src/identity/types.js'
import { lintPolicyFiles } from '../../src/policy/load.js'
import { compilePolicy } from '../../src/policy/index.js'
import { isMonitored, MONITOR_ALLOW, wouldType } from '../../src/policy/monitor.js'

const policy = (yaml: string) => {
  const r = lintPolicyFiles([{ name: 'p.yaml', path: 'p.yaml', text: yaml }])
  if (!r.doc) throw new Error(JSON.stringify(r.issues))
  return { p: compilePolicy(r.doc), issues: r.issues }
}
const dev: Identity = { sub: 'd1', clientId: 'd1', groups: ['sensors'], kind: 'device', claims: {}, listener: 'mqtt' }

t.test('per-rule mode: monitor — refusals and holds are marked, enforced rules still decide', async (t) => {
  const { p } = policy(`
rules:
  - { id: all, effect: allow, actions: [publish, subscribe], topics: ['site/#'] }
  - { id: no-secrets, effect: deny, actions: [publish], topics: ['#'], payload: { matches: 'password' }, mode: monitor }
  - { id: no-cmd, effect: deny, actions: [publish, subscribe], topics: ['site/+/cmd/#'], mode: monitor }
  - { id: no-admin, effect: deny, actions: [publish], topics: ['site/admin/#'] }
  - { id: small, effect: allow, actions: [publish], topics: ['lim/#'], maxPayloadBytes: 2, mode: monitor }
  - { id: fw, effect: allow, actions: [publish], topics: ['fw/#'], approval: { approvers: { groups: [ops] } }, mode: monitor }
  - { id: no-guests, effect: deny, actions: [connect], who: { groups: [guests] }, mode: monitor }
`)
  const pub = (topic: string, payload = 'x') => p.decide(dev, 'publish', topic, { qos: 0, payload: Buffer.from(payload) })
  t.same(pub('site/1/t'), { effect: 'allow', ruleId: 'all', reason: 'rule_allow' }, 'untouched by monitor rules')
  t.same(pub('site/1/t', 'password=1'), { effect: 'deny', ruleId: 'no-secrets', reason: 'payload_match', monitor: true })
  t.same(pub('site/1/cmd/x'), { effect: 'deny', ruleId: 'no-cmd', reason: 'rule_deny', monitor: true })
  t.same(p.decide(dev, 'subscribe', 'site/+/cmd/#', { qos: 0 }), { effect: 'deny', ruleId: 'no-cmd', reason: 'rule_deny', monitor: true })
  t.equal(pub('site/admin/x').monitor, undefined, 'an enforced deny is not marked')
  t.equal(pub('site/admin/x').ruleId, 'no-admin')
  t.same(pub('nothing/here'), { effect: 'deny', reason: 'no_matching_rule' }, 'default deny stays enforced under per-rule monitor')
  t.same(pub('lim/1', 'xyz'), { effect: 'deny', ruleId: 'small', reason: 'payload_too_large', monitor: true })
  const h = pub('fw/1')
  t.equal(h.effect, 'hold')
  t.equal(h.monitor, true)
  t.equal(wouldType(h), 'would_hold')
  const guest = { ...dev, groups: ['guests'] }
  t.same(p.decide(guest, 'connect', '', {}), { effect: 'deny', ruleId: 'no-guests', reason: 'rule_deny', monitor: true })
  t.same(p.decide(dev, 'connect', '', {}), { effect: 'allow', reason: 'connect_default' })
  t.ok(Object.isFrozen(pub('site/1/cmd/x')), 'monitor decisions are precompiled frozen objects')
  t.equal(pub('site/1/cmd/x'), pub('site/1/cmd/x'), 'the same object each time')
})

t.test('a monitor deny never hides an enforced refusal', async (t) => {
  const { p } = policy(`
rules:
  - { id: cmd-monitor, effect: deny, actions: [publish], topics: ['a/cmd/#'], mode: monitor }
  - { id: cmd-enforced, effect: deny, actions: [publish], topics: ['a/cmd/reboot'] }
  - { id: open, effect: allow, actions: [publish], topics: ['a/#'] }
`)
  t.equal(p.decide(dev, 'publish', 'a/cmd/reboot', { qos: 0 }).ruleId, 'cmd-enforced')
  t.equal(p.decide(dev, 'publish', 'a/cmd/x', { qos: 0 }).ruleId, 'cmd-monitor')
  t.same(p.decide(dev, 'publish', 'b/x', { qos: 0 }), { effect: 'deny', reason: 'no_matching_rule' }, 'no allow: enforced default deny wins')
})

t.test('isMonitored: global mode covers every refusal; enforce mode only marked ones', async (t) => {
  const enforced = { effect: 'deny', reason: 'rule_deny' } as const
  const marked = { effect: 'deny', reason: 'rule_deny', monitor: true } as const
  t.equal(isMonitored(enforced, false), false)
  t.equal(isMonitored(marked, false), true)
  t.equal(isMonitored(enforced, true), true)
  t.equal(isMonitored({ effect: 'allow' }, true), false)
  t.equal(MONITOR_ALLOW.effect, 'allow')
})

t.test('lint: a monitor deny does not shadow an allow; mode is schema-checked', async (t) => {
  const { issues } = policy(`
rules:
  - { id: watch, effect: deny, actions: [publish], topics: ['a/#'], mode: monitor }
  - { id: open, effect: allow, actions: [publish], topics: ['a/b'] }
`)
  t.same(issues.filter((i) => i.severity === 'error'), [])
  const bad = lintPolicyFiles([{ name: 'p.yaml', path: 'p.yaml', text: "rules:\n  - { id: x, effect: deny, actions: [publish], topics: ['a'], mode: audit }\n" }])
  t.notOk(bad.doc)
  t.ok(bad.issues.some((i) => /mode/.test(i.key ?? '') || /mode/.test(i.message)), 'names the mode key')
})
