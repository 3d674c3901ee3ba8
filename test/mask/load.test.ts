import t, { type Test } from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadMaskSpecs, masksOfFile } from '../../src/mask/load.js'

function dir(t: Test, files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'ew-masks-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  for (const [n, text] of Object.entries(files)) writeFileSync(join(d, n), text)
  return d
}

const SPEC_EXAMPLE = `rules:
  - { id: any, effect: allow, actions: [publish, subscribe], topics: ['#'] }
masks:
  - id: telemetry-pii
    topics: ['site/+/dev/+/telemetry']
    format: auto
    fields:
      - { path: owner.email, action: redact }
      - { path: owner.phone, action: last4 }
      - { path: customer_id, action: hash }
      - { path: gps.lat, action: round, digits: 2 }
      - { path: debug, action: drop }
      - { path: 'readings[*].serial', action: redact }
    detectors: [email, phone, credit_card, iban, ipv4, ssn, jwt, secret]
    unmaskedFor: { groups: [auditors] }
`

t.test('the SPEC §5 example loads, with defaults', async (t) => {
  const d = dir(t, { '10-main.yaml': SPEC_EXAMPLE, '20-more.yml': "masks:\n  - { id: b, topics: ['x/#'], fields: [{ path: v, action: replace, value: 0 }] }\n", 'notes.txt': 'ignored', '30-rules-only.yaml': 'rules: []\n' })
  const specs = loadMaskSpecs(d)
  t.same(specs.map((s) => s.id), ['telemetry-pii', 'b'])
  t.equal(specs[0]!.fields.length, 6)
  t.same(specs[0]!.unmaskedFor, { groups: ['auditors'] })
  t.equal(specs[1]!.format, 'auto', 'format defaults to auto')
  t.same(specs[1]!.detectors, [])
  t.match(specs[1]!.file, /20-more\.yml$/)
})

t.test('a missing dir or empty files have no masks', async (t) => {
  t.same(loadMaskSpecs('/nonexistent/edgewarden-policies'), [])
  t.same(masksOfFile('f.yaml', ''), [])
  t.same(masksOfFile('f.yaml', 'masks:\n'), [])
})

t.test('errors name file, line and key', async (t) => {
  const bad: [string, RegExp][] = [
    ["masks:\n  - { id: a, topics: ['x'], fields: [{ path: e, action: scramble }] }\n", /f\.yaml:2: masks\[0\]\.fields\[0\]\.action: must be one of/],
    ["masks:\n  - id: a\n    topics: ['x']\n    detectors: [email, dna]\n", /f\.yaml:4: masks\[0\]\.detectors\[1\]: must be one of/],
    ["masks:\n  - id: a\n    topics: ['x/#/y']\n", /f\.yaml:3: masks\[0\]\.topics\[0\]: '#' must be the last level/],
    ["masks:\n  - id: a\n    topics: ['x']\n    fields:\n      - { path: 'a..b', action: redact }\n", /f\.yaml:5: masks\[0\]\.fields\[0\]\.path: invalid path/],
    ["masks:\n  - id: a\n    topics: ['x']\n    fields:\n      - { path: a, action: replace }\n", /masks\[0\]\.fields\[0\]: action 'replace' needs a value/],
    ["masks:\n  - id: a\n    topics: ['x']\n    fields:\n      - { path: a, action: redact, digits: 2 }\n", /only action 'round' takes digits/],
    ["masks:\n  - id: a\n    topics: ['x']\n    colour: red\n", /f\.yaml:4: masks\[0\]\.colour: unknown key/],
    ["masks:\n  - { topics: ['x'] }\n", /masks\[0\]\.id: is required/],
    ["masks: {}\n", /masks: must be a list/],
    ["masks:\n  - id: a\n    topics: ['site/${client_id}/x']\n", /placeholders are not supported/],
    ["masks:\n  - id: a\n    unmaskedFor: {}\n    topics: ['x']\n", /unmaskedFor/],
    ["masks: [\n", /f\.yaml:\d+: invalid YAML/],
  ]
  for (const [text, re] of bad) t.throws(() => masksOfFile('f.yaml', text), { code: 'EW_POLICY_INVALID', message: re }, String(re))
})

t.test('duplicate ids across files', async (t) => {
  const d = dir(t, { 'a.yaml': "masks:\n  - { id: m, topics: ['x'] }\n", 'b.yaml': "masks:\n  - { id: m, topics: ['y'] }\n" })
  t.throws(() => loadMaskSpecs(d), { code: 'EW_POLICY_INVALID', message: /duplicate mask id 'm'/ })
})
