import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { readInventory } from '../inventory/index.js'
import { suggestPolicy } from '../inventory/suggest.js'
import { sinceOf } from './policy-diff.js'

/** `policy suggest --since 7d > suggested.yaml`: least-privilege allow rules from the inventory. */
export function registerPolicySuggest(program: Command): void {
  const policy = program.commands.find((c) => c.name() === 'policy') ?? program.command('policy').description('policy files: lint, test, fleet bundles')
  policy.command('suggest')
    .description('least-privilege allow rules (with ${client_id} placeholders where a pattern fits) from what the inventory observed; review, lint, then enforce')
    .option('--since <when>', 'clientIds seen since: a duration (7d) or a time', '7d')
    .option('--min-share <x>', 'a filter joins its cluster\'s rule when at least this share of the cluster\'s clients used it', '0.5')
    .option('-c, --config <file>', 'config file (finds gateway.dataDir)', process.env.EDGEWARDEN_CONFIG)
    .option('--data-dir <dir>', 'data dir (overrides the config)')
    .action(async (o: { since: string; minShare: string; config?: string; dataDir?: string }) => {
      const dataDir = o.dataDir ?? loadConfig({ file: o.config }).gateway.dataDir
      const s = suggestPolicy(await readInventory(dataDir), { since: sinceOf(o.since), minShare: Number(o.minShare) })
      process.stdout.write(s.yaml)
      process.stderr.write(`${s.rules} rule${s.rules === 1 ? '' : 's'} suggested; ${s.leftOut.length} observed filter${s.leftOut.length === 1 ? '' : 's'} left out (listed as comments)\n`)
    })
}
