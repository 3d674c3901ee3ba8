import '../broker/quiet-debug.js'
import { Command, CommanderError } from 'commander'
import { isEwError } from '../errors.js'
import { VERSION } from '../version.js'
import { registerStart } from './start.js'
import { registerToken } from './token.js'
import { registerApprovals } from './approvals.js'
import { registerFleet } from './fleet.js'
import { registerPolicy } from './policy.js'
import { registerCollect } from './collect.js'
import { registerInventory } from './inventory.js'
import { registerPolicyDiff } from './policy-diff.js'
import { registerPolicySuggest } from './policy-suggest.js'
import { registerAudit } from './audit.js'
import { registerKeys } from './keys.js'
import { registerReplay } from './replay.js'

/** Exit codes (SPEC §2): 0 ok, 1 runtime failure, 2 bad usage or invalid config/policy. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('edgewarden')
    .description('MQTT governance gateway for the edge')
    .version(VERSION)
    // options belong to the verb they follow: `policy bundle --version N` is the bundle's version
    .enablePositionalOptions()
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
  registerStart(program)
  registerToken(program)
  registerApprovals(program)
  registerPolicy(program)
  // after the policy verbs: bundle and push join the same `policy` group
  registerFleet(program)
  registerCollect(program)
  registerPolicyDiff(program)
  registerPolicySuggest(program)
  registerInventory(program)
  registerAudit(program)
  registerKeys(program)
  registerReplay(program)
  try {
    await program.parseAsync(argv)
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0
      return 2
    }
    if (isEwError(err)) {
      process.stderr.write(`edgewarden: ${err.message} [${err.code}]\n`)
      return err.exitCode
    }
    process.stderr.write(`edgewarden: ${(err as Error)?.message ?? String(err)}\n`)
    return 1
  }
}

process.exitCode = await main(process.argv)
