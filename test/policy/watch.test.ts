import t from 'tap'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../helpers/gateway.js'
import { MemoryJournal } from '../../src/journal/memory.js'
import { silentLogger } from '../../src/logger.js'
import { compilePolicy } from '../../src/policy/index.js'
import { loadPolicyDir } from '../../src/policy/load.js'
import { watchPolicyDir } from '../../src/policy/watch.js'
import type { CompiledPolicy } from '../../src/policy/compile.js'

const rule = (id: string) => `rules:\n  - { id: ${id}, effect: allow, actions: [publish], topics: ['a/#'] }\n`

t.test('reload: unchanged, rejected (old policy kept), applied, ignored under a fleet bundle, missing dir', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'p.yaml'), rule('v1'))
  let running: { revision: string } = compilePolicy(loadPolicyDir(dir)!.doc)
  const journal = new MemoryJournal()
  const applied: CompiledPolicy[] = []
  const w = watchPolicyDir({ dir, logger: silentLogger, journal, current: () => running.revision, compile: (d) => compilePolicy(d), apply: (p) => { running = p; applied.push(p) }, debounceMs: 5 })
  t.teardown(() => w.close())
  const v1 = running.revision
  t.equal(w.reload(), 'unchanged')

  writeFileSync(join(dir, 'p.yaml'), rule('v2').replace('allow', 'maybe'))
  t.equal(w.reload(), 'rejected')
  t.equal(running.revision, v1, 'the running policy stays')
  t.match(journal.entries.at(-1), { type: 'policy_rejected', policyRev: v1, reason: /p\.yaml:2:\d+: rules\[0\]\.effect: must be one of/ })

  writeFileSync(join(dir, 'p.yaml'), rule('v2'))
  t.equal(w.reload(), 'applied')
  t.not(running.revision, v1)
  t.match(journal.entries.at(-1), { type: 'policy_applied', source: 'dir', policyRev: running.revision, previous: v1, count: 1, files: ['p.yaml'] })

  running = { revision: 'fleet-7' }
  writeFileSync(join(dir, 'p.yaml'), rule('v3'))
  t.equal(w.reload(), 'unchanged', 'a fleet bundle in force is not replaced by local edits')
  t.equal(running.revision, 'fleet-7')
  t.equal(applied.length, 1)

  const w2 = watchPolicyDir({ dir, logger: silentLogger, journal, current: () => running.revision, compile: (d) => compilePolicy(d), apply: (p) => { running = p } })
  t.teardown(() => w2.close())
  rmSync(dir, { recursive: true, force: true })
  t.equal(w2.reload(), 'missing')
  t.equal(running.revision, 'fleet-7')
})
