import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { ewError } from '../errors.js'
import { compilePolicy } from '../policy/index.js'
import { formatIssue, lintPolicyFiles, readPolicyDir } from '../policy/load.js'
import { runPolicyTests } from '../policy/runner.js'
import { policySchema } from '../policy/schema.js'
import type { PolicyDocument } from '../policy/document.js'
import { policyGroup } from './policy-group.js'

/** DIR, else the configured policies.dir (--config, ./edgewarden.yaml or defaults). */
function policyDir(dir: string | undefined, config: string | undefined): string {
  if (dir) return resolve(dir)
  return loadConfig({ file: config }).policies.dir
}

/** Lints a dir: issues to stderr; throws EW_POLICY_INVALID (exit 2) on any error. */
function lintDir(dir: string): PolicyDocument {
  const files = readPolicyDir(dir)
  if (!files) throw ewError('EW_POLICY_INVALID', `${dir}: no such policy directory`, { file: dir })
  const r = lintPolicyFiles(files)
  for (const i of r.issues) process.stderr.write(formatIssue(i) + '\n')
  const errors = r.issues.filter((i) => i.severity === 'error').length
  if (!r.doc) throw ewError('EW_POLICY_INVALID', `${dir}: ${errors} error${errors === 1 ? '' : 's'} in policy files`, { file: dir })
  return r.doc
}

export function registerPolicy(program: Command): void {
  // `policy bundle` / `policy push` (fleet) join this group
  const policy = policyGroup(program)
  policy.command('lint [dir]')
    .description('validate policy files: JSON Schema + semantic checks (duplicate ids, invalid filters, unknown placeholders, shadowed rules); exit 2 on errors')
    .option('-c, --config <file>', 'config file naming policies.dir (when DIR is not given)')
    .action((dir: string | undefined, opts: { config?: string }) => {
      const d = policyDir(dir, opts.config)
      const doc = lintDir(d)
      process.stdout.write(`${d}: ${doc.files.length} file${doc.files.length === 1 ? '' : 's'}, ${doc.rules.length} rule${doc.rules.length === 1 ? '' : 's'}, revision ${doc.revision}: ok\n`)
    })
  policy.command('test [dir]')
    .description('run the cases in DIR/tests/*.yaml against the policy in DIR; exit 1 when a case fails')
    .option('-c, --config <file>', 'config file naming policies.dir (when DIR is not given)')
    .option('-v, --verbose', 'print passing cases too')
    .action((dir: string | undefined, opts: { config?: string; verbose?: boolean }) => {
      const d = policyDir(dir, opts.config)
      const compiled = compilePolicy(lintDir(d))
      const tests = readPolicyDir(join(d, 'tests')) ?? []
      const run = runPolicyTests(compiled, tests)
      for (const i of run.issues) process.stderr.write(formatIssue(i) + '\n')
      if (run.issues.length > 0) throw ewError('EW_POLICY_INVALID', `${join(d, 'tests')}: invalid test file`, { file: run.issues[0]!.file })
      for (const r of run.results) {
        if (r.ok && !opts.verbose) continue
        const where = `${r.file}${r.line ? `:${r.line}` : ''}`
        process.stdout.write(r.ok ? `ok    ${r.name}\n` : `FAIL  ${where}: ${r.name}: expected ${r.expected}, got ${r.got}\n`)
      }
      const masked = run.results.filter((r) => r.maskedSkipped).length
      process.stdout.write(`${run.passed} passed, ${run.failed} failed${masked ? ` (${masked} masked view${masked === 1 ? '' : 's'} not checked here)` : ''}\n`)
      if (run.failed > 0) process.exitCode = 1
    })
  policy.command('schema')
    .description('print the JSON Schema of policy files (for editors)')
    .action(() => { process.stdout.write(JSON.stringify(policySchema, null, 2) + '\n') })
}
