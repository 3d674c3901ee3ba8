import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { policySchema } from '../../src/policy/schema.js'
import { compilePolicy } from '../../src/policy/index.js'
import { loadPolicyDir, readPolicyDir } from '../../src/policy/load.js'
import { runPolicyTests } from '../../src/policy/runner.js'

const dir = fileURLToPath(new URL('../../policies', import.meta.url))

t.test('the published JSON Schema is the one the loader uses', async (t) => {
  t.same(JSON.parse(readFileSync(join(dir, 'policy.schema.json'), 'utf8')), JSON.parse(JSON.stringify(policySchema)), 'regenerate with: npx edgewarden policy schema > policies/policy.schema.json')
})

t.test('the shipped site policy lints clean and passes its own tests', async (t) => {
  const loaded = loadPolicyDir(dir)!
  t.same(loaded.warnings, [])
  t.ok(loaded.doc.masks.length > 0, 'masks travel with the policy')
  const run = runPolicyTests(compilePolicy(loaded.doc), readPolicyDir(join(dir, 'tests'))!)
  t.same(run.issues, [])
  t.ok(run.results.length >= 20)
  t.same(run.results.filter((r) => !r.ok), [], `${run.passed} passed`)
})
