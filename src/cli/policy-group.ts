import type { Command } from 'commander'

/** The `policy` verb group: lint/test/schema, bundle/push, diff/suggest all join it, whichever registers first. */
export function policyGroup(program: Command): Command {
  return program.commands.find((c) => c.name() === 'policy') ?? program.command('policy').description('policy files: lint, test, fleet bundles')
}
