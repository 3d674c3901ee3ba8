import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { lintPolicyFiles, loadPolicyDir, policyRevision, formatIssue, type PolicyFile } from '../../src/policy/load.js'
import { tempDir } from '../helpers/gateway.js'
import { isEwError } from '../../src/errors.js'

const file = (name: string, text: string): PolicyFile => ({ name, path: `/p/${name}`, text })
const lint = (...files: PolicyFile[]) => lintPolicyFiles(files)
const errors = (...files: PolicyFile[]) => lint(...files).issues.filter((i) => i.severity === 'error').map(formatIssue)

const rule = (extra: string) => `rules:\n  - id: r1\n    effect: allow\n    actions: [publish]\n    topics: ['a/b']\n${extra}`

t.test('clean files merge in name order; masks pass through', async (t) => {
  const r = lint(file('b.yaml', "rules:\n  - { id: two, effect: deny, actions: [subscribe], topics: ['x/#'] }\nmasks:\n  - { id: m1, anything: [1, 2] }\n"),
    file('a.yaml', "rules:\n  - { id: one, effect: allow, actions: [publish], topics: ['x/y'] }\n"))
  t.same(r.issues, [])
  t.same(r.doc!.rules.map((x) => x.id), ['two', 'one'], 'order as given (readPolicyDir sorts by name)')
  t.same(r.doc!.masks, [{ id: 'm1', anything: [1, 2] }])
  t.match(r.doc!.revision, /^[0-9a-f]{16}$/)
})

t.test('empty and comment-only files are fine', async (t) => {
  t.same(lint(file('e.yaml', ''), file('c.yaml', '# nothing yet\n')).issues, [])
})

t.test('errors name file, line, column and key', async (t) => {
  t.same(errors(file('y.yaml', 'rules:\n  - id: a\n    effect: [\n')).length, 1)
  t.match(errors(file('y.yaml', 'rules:\n  - id: a\n    effect: [\n'))[0], /^\/p\/y\.yaml:\d+:\d+: error: invalid YAML/)
  t.same(errors(file('k.yaml', rule('    colour: red\n'))), ['/p/k.yaml:6:5: error: rules[0].colour: unknown key'])
  t.same(errors(file('k.yaml', rule("    effect2: allow\n"))), ['/p/k.yaml:6:5: error: rules[0].effect2: unknown key'])
  t.same(errors(file('e.yaml', "rules:\n  - id: r1\n    effect: permit\n    actions: [publish]\n    topics: [a]\n")), ['/p/e.yaml:3:13: error: rules[0].effect: must be one of "allow", "deny"'])
  t.same(errors(file('m.yaml', 'rules:\n  - id: r1\n    actions: [publish]\n    topics: [a]\n')), ['/p/m.yaml:2:5: error: rules[0].effect: is required'])
  t.same(errors(file('w.yaml', rule('    who: {}\n'))), ['/p/w.yaml:6:10: error: rules[0].who: must not be empty'])
  t.same(errors(file('w.yaml', rule('    who: { groups: [] }\n'))), ['/p/w.yaml:6:20: error: rules[0].who.groups: must not be empty'])
  t.same(errors(file('q.yaml', rule('    qos: [3]\n'))), ['/p/q.yaml:6:11: error: rules[0].qos[0]: must be one of 0, 1, 2'])
  t.same(errors(file('r.yaml', rule('    rate: fast\n'))), ['/p/r.yaml:6:11: error: rules[0].rate: must be a rate (20/s, 100/min)'])
  t.same(errors(file('s.yaml', rule('    maxPayloadBytes: lots\n'))), ['/p/s.yaml:6:22: error: rules[0].maxPayloadBytes: must be a size (8192, 8KB)'])
  t.same(errors(file('t.yaml', '- just a list\n')), ['/p/t.yaml:1:1: error: a policy file must be a mapping with `rules` and/or `masks`'])
  t.same(errors(file('u.yaml', 'masks: {}\n')), ['/p/u.yaml:1:8: error: masks: must be array'])
  t.same(errors(file('v.yaml', 'rulez: []\n')), ['/p/v.yaml:1:1: error: rulez: unknown key'])
})

t.test('semantic checks', async (t) => {
  t.same(errors(file('a.yaml', rule('')), file('b.yaml', rule(''))), ["/p/b.yaml:2:9: error: rules[0].id: duplicate rule id 'r1' (first defined in /p/a.yaml)"])
  const filter = (f: string) => errors(file('f.yaml', `rules:\n  - id: r1\n    effect: allow\n    actions: [publish]\n    topics: ['ok', '${f}']\n`))
  t.same(filter('a/#/b'), ["/p/f.yaml:5:20: error: rules[0].topics[1]: '#' must be the last level (in 'a/#/b')"])
  t.same(filter('a/b#'), ["/p/f.yaml:5:20: error: rules[0].topics[1]: a wildcard must fill a whole level (level 'b#' in 'a/b#')"])
  t.same(filter('a/+x'), ["/p/f.yaml:5:20: error: rules[0].topics[1]: a wildcard must fill a whole level (level '+x' in 'a/+x')"])
  t.same(filter('a/${user}'), ['/p/f.yaml:5:20: error: rules[0].topics[1]: unknown placeholder ${user} (use ${sub}, ${client_id} or ${claims.NAME})'])
  t.same(filter('a/${claims.}'), ['/p/f.yaml:5:20: error: rules[0].topics[1]: unknown placeholder ${claims.} (use ${sub}, ${client_id} or ${claims.NAME})'])
  t.same(filter('a/${sub'), ["/p/f.yaml:5:20: error: rules[0].topics[1]: unterminated placeholder in level '${sub'"])
  t.same(filter('a/${sub}-${claims.site}/x'), [], 'several placeholders in a level are fine')
  t.same(errors(file('n.yaml', 'rules:\n  - { id: r1, effect: allow, actions: [publish] }\n')), ['/p/n.yaml:2:39: error: rules[0].actions: publish and subscribe rules need `topics`'])
  t.same(errors(file('d.yaml', "rules:\n  - { id: r1, effect: deny, actions: [publish], topics: [a], qos: [0] }\n")), ['/p/d.yaml:2:67: error: rules[0].qos: only allow rules carry `qos` (a deny rule refuses outright)'])
  t.same(errors(file('p.yaml', "rules:\n  - { id: r1, effect: allow, actions: [publish], topics: [a], payload: { matches: x } }\n")), ['/p/p.yaml:2:72: error: rules[0].payload: content rules (`payload`) must be deny rules'])
  t.same(errors(file('p.yaml', "rules:\n  - { id: r1, effect: deny, actions: [subscribe], topics: [a], payload: { matches: x } }\n")), ['/p/p.yaml:2:73: error: rules[0].payload: content rules apply to publish only'])
  t.same(errors(file('x.yaml', "rules:\n  - { id: r1, effect: deny, actions: [publish], topics: [a], payload: { matches: 'a(' } }\n")), [
    '/p/x.yaml:2:82: error: rules[0].payload.matches: invalid regular expression: Invalid regular expression: /a(/: Unterminated group'])
  t.same(errors(file('x.yaml', "rules:\n  - { id: r1, effect: deny, actions: [publish], topics: [a], payload: { detectors: [dna] } }\n")).length, 1)
  t.same(errors(file('h.yaml', "rules:\n  - { id: r1, effect: allow, actions: [subscribe], topics: [a], approval: { approvers: { groups: [x] } } }\n")), ['/p/h.yaml:2:75: error: rules[0].approval: approval applies to publish only'])
})

t.test('shadowed rules', async (t) => {
  const text = `rules:
  - { id: no-debug, effect: deny, actions: [publish, subscribe], topics: ['debug/#'] }
  - { id: sensors-debug, effect: allow, actions: [publish], topics: ['debug/+/x', 'debug/y'], who: { groups: [sensors] } }
  - { id: ops-debug, effect: deny, actions: [subscribe], topics: ['ops/#'], who: { groups: [ops] } }
  - { id: ops-or-dev, effect: allow, actions: [subscribe], topics: ['ops/a'], who: { groups: [ops, dev] } }
  - { id: partly, effect: allow, actions: [publish], topics: ['debug/1', 'other'] }
`
  t.same(errors(file('s.yaml', text)), ["/p/s.yaml:3:69: error: rules[1].topics: never takes effect for publish: rule 'no-debug' denies all of its topics"])
})

t.test('warnings do not block', async (t) => {
  const r = lint(file('c.yaml', "rules:\n  - { id: c, effect: deny, actions: [connect], topics: [x], who: { subs: [bad] } }\n"))
  t.ok(r.doc)
  t.same(r.issues.map(formatIssue), ['/p/c.yaml:2:56: warning: rules[0].topics: connect rules have no topics; they are ignored'])
})

t.test('policy dirs: only *.yaml/*.yml at the top level, sorted; revision follows content', async (t) => {
  const dir = tempDir(t)
  t.equal(loadPolicyDir(join(dir, 'nope')), undefined)
  writeFileSync(join(dir, 'b.yml'), "rules:\n  - { id: b, effect: allow, actions: [publish], topics: [b] }\n")
  writeFileSync(join(dir, 'a.yaml'), "rules:\n  - { id: a, effect: allow, actions: [publish], topics: [a] }\n")
  writeFileSync(join(dir, 'README.md'), '# not a policy')
  mkdirSync(join(dir, 'tests'))
  writeFileSync(join(dir, 'tests', 'cases.yaml'), 'cases: []\n')
  const one = loadPolicyDir(dir)!
  t.same(one.doc.rules.map((r) => r.id), ['a', 'b'])
  t.same(one.doc.files, ['a.yaml', 'b.yml'])
  t.equal(loadPolicyDir(dir)!.doc.revision, one.doc.revision, 'same files, same revision')
  writeFileSync(join(dir, 'b.yml'), "rules:\n  - { id: b, effect: allow, actions: [publish], topics: [b2] }\n")
  t.not(loadPolicyDir(dir)!.doc.revision, one.doc.revision)
  t.not(policyRevision([file('a', 'x')]), policyRevision([file('b', 'x')]), 'names count')
  writeFileSync(join(dir, 'c.yaml'), "rules:\n  - { id: a, effect: deny, actions: [publish], topics: [a] }\n  - { id: z, effect: nope, actions: [publish], topics: [a] }\n")
  try {
    loadPolicyDir(dir)
    t.fail('should throw')
  } catch (err) {
    t.ok(isEwError(err))
    t.equal((err as { code: string }).code, 'EW_POLICY_INVALID')
    t.match((err as Error).message, /c\.yaml:3:\d+: rules\[1\]\.effect: must be one of/)
  }
})
