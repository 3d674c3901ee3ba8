import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/gateway.js'

const bin = fileURLToPath(new URL('../../bin/edgewarden.js', import.meta.url))

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, EDGEWARDEN_FROM_SOURCE: '1' }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

// each run starts node + tsx: keep them few (the clean cases run in-process in shipped.test.ts)
t.test('policy lint: exit 2 naming file, line, column and key', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'a.yaml'), "rules:\n  - id: r1\n    effect: allow\n    actions: [publish]\n    topics: ['site/#/x']\n")
  writeFileSync(join(dir, 'b.yaml'), "rules:\n  - { id: r1, effect: deny, actions: [subscribe], topics: ['${nope}/x'] }\n")
  const bad = await cli('policy', 'lint', dir)
  t.equal(bad.code, 2)
  t.match(bad.stderr, `${join(dir, 'a.yaml')}:5:14: error: rules[0].topics[0]: '#' must be the last level`)
  t.match(bad.stderr, `${join(dir, 'b.yaml')}:2:`)
  t.match(bad.stderr, 'unknown placeholder ${nope}')
  t.match(bad.stderr, "duplicate rule id 'r1'")
  t.match(bad.stderr, /\[EW_POLICY_INVALID\]/)
})

t.test('policy test: N passed, N failed; a failing case exits non-zero', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'p.yaml'), "rules:\n  - { id: own, effect: allow, actions: [publish], topics: ['d/${sub}/#'] }\n")
  mkdirSync(join(dir, 'tests'))
  writeFileSync(join(dir, 'tests', 'cases.yaml'), [
    '- { identity: { sub: a }, action: publish, topic: d/a/x, expect: allow, rule: own }',
    '- { identity: { sub: a }, action: publish, topic: d/b/x, expect: deny }',
    '- { name: wrong on purpose, identity: { sub: a }, action: publish, topic: d/b/x, expect: allow }',
    '',
  ].join('\n'))
  const failing = await cli('policy', 'test', dir)
  t.equal(failing.code, 1)
  t.match(failing.stdout, `FAIL  ${join(dir, 'tests', 'cases.yaml')}:3: wrong on purpose: expected allow, got deny (no_matching_rule)`)
  t.match(failing.stdout, '2 passed, 1 failed')
  writeFileSync(join(dir, 'tests', 'cases.yaml'), 'cases:\n  - { identity: { sub: a }, action: publish, topic: x, expect: maybe }\n')
  const invalid = await cli('policy', 'test', dir)
  t.equal(invalid.code, 2)
  t.match(invalid.stderr, /cases\.yaml:2:\d+: error: cases\[0\]\.expect: must be equal to one of the allowed values/)
})
