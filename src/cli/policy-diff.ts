import { resolve } from 'node:path'
import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { parseDuration } from '../config/units.js'
import { ewError } from '../errors.js'
import { decodeRecord } from '../journal/codec.js'
import { openJournalReader } from '../journal/reader.js'
import { compilePolicy, emptyPolicyDocument, loadPolicyDir } from '../policy/index.js'
import { policyDiff, type PolicyDiff } from '../inventory/diff.js'
import { policyGroup } from './policy-group.js'

/** `--since 24h` (ago) or an ISO / epoch-ms time. */
export function sinceOf(v: string): number {
  const ago = parseDuration(v)
  if (ago !== undefined) return Date.now() - ago
  const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v)
  if (Number.isNaN(t)) throw ewError('EW_USAGE', `--since: not a time or duration: ${v}`)
  return t
}

/** `policy diff`: what enforcing would have blocked (would_* journal records), by identity and topic filter. */
export function registerPolicyDiff(program: Command): void {
  const policy = policyGroup(program)
  policy.command('diff')
    .description('what enforcing would have blocked in monitor mode (would_deny / would_hold / would_mask journal records), grouped by identity and topic filter, re-checked against the current policy')
    .option('--since <when>', 'a duration (24h, 7d) or a time', '24h')
    .option('--dir <dir>', 'policy dir to re-check against (default: policies.dir)')
    .option('-c, --config <file>', 'config file (finds gateway.dataDir and policies.dir)', process.env.EDGEWARDEN_CONFIG)
    .option('--data-dir <dir>', 'data dir holding the journal (overrides the config)')
    .option('--json', 'one JSON document')
    .action(async (o: { since: string; dir?: string; config?: string; dataDir?: string; json?: boolean }) => {
      const config = loadConfig({ file: o.config })
      const dir = o.dir ? resolve(o.dir) : config.policies.dir
      const loaded = loadPolicyDir(dir)
      const current = compilePolicy(loaded?.doc ?? emptyPolicyDocument())
      const since = sinceOf(o.since)
      const reader = openJournalReader(o.dataDir ?? config.gateway.dataDir)
      let diff: PolicyDiff
      try {
        diff = policyDiff((function* () { for (const { value } of reader.dbs.records.getRange({ reverse: true })) yield decodeRecord(value) })(), current, since)
      } finally {
        await reader.close()
      }
      if (o.json) return void process.stdout.write(JSON.stringify({ ...diff, since: new Date(diff.since).toISOString(), policyDir: dir }, null, 2) + '\n')
      process.stdout.write(diffText(diff, dir))
    })
}

const clean = (s: string): string => s.replace(/[\u0000-\u001f\u007f]/g, '?')

export function diffText(d: PolicyDiff, dir: string): string {
  const out = [`since ${new Date(d.since).toISOString()}: ${d.total} would-be refusal${d.total === 1 ? '' : 's'} by ${d.groups.length} identit${d.groups.length === 1 ? 'y' : 'ies'}; the current policy (${clean(dir)}, revision ${d.revision}) still refuses ${d.stillBlocked}`]
  for (const g of d.groups) {
    out.push('', `${clean(g.sub)} (${g.kind}) via ${g.clientIds.map(clean).join(', ') || '-'}`)
    for (const i of g.items) {
      const now = i.stillBlocked === i.count ? '' : i.stillBlocked === 0 ? '  [now allowed]' : `  [${i.count - i.stillBlocked} now allowed]`
      out.push(`  ${i.type.padEnd(10)} ${i.action.padEnd(9)} ${clean(i.filter || '-').padEnd(40)} ${String(i.count).padStart(5)}×  ${[...i.rules, ...i.reasons].map(clean).join(' · ')}${now}`)
    }
  }
  return out.join('\n') + '\n'
}
