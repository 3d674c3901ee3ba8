import t from 'tap'
import { lintMaskFile, maskedViewFor } from '../../src/mask/check.js'

t.test('lint issues name the line and key', async (t) => {
  t.same(lintMaskFile('p.yaml', "masks:\n  - { id: a, topics: ['x'] }\n"), [])
  const [i] = lintMaskFile('p.yaml', "masks:\n  - id: a\n    topics: ['x']\n    fields:\n      - { path: e, action: scramble }\n")
  t.equal(i?.file, 'p.yaml')
  t.equal(i?.line, 5)
  t.equal(i?.key, 'masks[0].fields[0].action')
  t.match(i?.message, /^must be one of/)
})

t.test('the masked view of a policy test case', async (t) => {
  const masks = [{ id: 'm', topics: ['site/#'], fields: [{ path: 'email', action: 'redact' }], detectors: ['phone'], unmaskedFor: { groups: ['auditors'] } }]
  const r = maskedViewFor(masks, 'site/1', { email: 'a@b.io', note: 'call 415-555-2671' })
  t.same(r, { ok: true, view: { email: '[REDACTED]', note: 'call [REDACTED:phone]' }, masks: ['m'] })
  t.same(maskedViewFor(masks, 'other', { email: 'a@b.io' }), { ok: true, view: { email: 'a@b.io' }, masks: [] })
  t.same(maskedViewFor(masks, 'site/1', 'text 415-555-2671'), { ok: true, view: 'text [REDACTED:phone]', masks: ['m'] })
  const bad = maskedViewFor([{ id: 'j', topics: ['#'], format: 'json', fields: [{ path: 'a', action: 'redact' }] }], 't', 'not json')
  t.ok(!bad.ok && /unparseable_payload/.test(bad.reason))
})
