import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { readInventory } from '../inventory/index.js'
import { writeFileSync } from 'node:fs'
import { suggestPolicy } from '../inventory/suggest.js'
import { suggestTests } from '../inventory/suggest-tests.js'
import { compilePolicy, lintPolicyFiles } from '../policy/index.js'
import { ewError } from '../errors.js'
import { sinceOf } from './policy-diff.js'
import { policyGroup } from './policy-group.js'

/** `policy suggest --since 7d > suggested.yaml`: least-privilege allow rules from the inventory. */
export function registerPolicySuggest(program: Command): void {
  const policy = policyGroup(program)
  policy.command('suggest')
    .description('least-privilege allow rules (with ${client_id} placeholders where a pattern fits) from what the inventory observed; review, lint, then enforce')
    .option('--since <when>', 'clientIds seen since: a duration (7d) or a time', '7d')
    .option('--min-share <x>', 'a filter joins its cluster\'s rule when at least this share of the cluster\'s clients used it', '0.5')
    .option('--tests <file>', 'also write policy test cases (observed traffic, expecting what the suggestion decides) to FILE, e.g. DIR/tests/suggested.yaml')
    .option('-c, --config <file>', 'config file (finds gateway.dataDir)', process.env.EDGEWARDEN_CONFIG)
    .option('--data-dir <dir>', 'data dir (overrides the config)')
    .action(async (o: { since: string; minShare: string; tests?: string; config?: string; dataDir?: string }) => {
      const dataDir = o.dataDir ?? loadConfig({ file: o.config }).gateway.dataDir
      const minShare = Number(o.minShare)
      if (!(minShare > 0 && minShare <= 1)) throw ewError('EW_USAGE', `--min-share: a number in (0, 1]: ${o.minShare}`)
      const since = sinceOf(o.since)
      const entries = await readInventory(dataDir)
      const s = suggestPolicy(entries, { since, minShare })
      process.stdout.write(s.yaml)
      if (o.tests) {
        const lint = lintPolicyFiles([{ name: 'suggested.yaml', path: 'suggested.yaml', text: s.yaml }])
        if (!lint.doc) throw ewError('EW_POLICY_INVALID', 'the suggested policy does not lint: no tests written')
        const tests = suggestTests(entries, compilePolicy(lint.doc), since)
        writeFileSync(o.tests, tests.yaml)
        process.stderr.write(`${tests.cases} test case${tests.cases === 1 ? '' : 's'} written to ${o.tests}\n`)
      }
      process.stderr.write(`${s.rules} rule${s.rules === 1 ? '' : 's'} suggested; ${s.leftOut.length} observed filter${s.leftOut.length === 1 ? '' : 's'} left out (listed as comments)\n`)
    })
}
