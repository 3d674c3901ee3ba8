import t from 'tap'
import { readFileSync } from 'node:fs'
import { ERROR_CODES, ewError, isEwError } from '../src/errors.js'

t.test('docs/errors.md lists every ERROR_CODES entry with its exit code', async (t) => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
  const rows = new Map([...doc.matchAll(/^\| `(EW_[A-Z_]+)` \| (\d) \|/gm)].map((m) => [m[1]!, Number(m[2])]))
  for (const [code, { exit }] of Object.entries(ERROR_CODES)) t.equal(rows.get(code), exit, `${code} documented with exit ${exit}`)
  for (const code of rows.keys()) t.ok(code in ERROR_CODES, `${code} in docs exists in src/errors.ts`)
})

t.test('ewError carries code, exit code and frozen details', async (t) => {
  const e = ewError('EW_CONFIG_INVALID', 'x.yaml:3: a.b: unknown key', { file: 'x.yaml', line: 3 })
  t.ok(isEwError(e))
  t.ok(e instanceof Error)
  t.equal(e.exitCode, 2)
  t.equal(e.code, 'EW_CONFIG_INVALID')
  t.ok(Object.isFrozen(e.details))
  t.equal(ewError('EW_INTERNAL', 'x').exitCode, 1)
  t.notOk(isEwError(new Error('plain')))
})
