import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { entryView, readInventory, type InventoryView } from '../inventory/index.js'

interface Opts { config?: string; dataDir?: string; json?: boolean; type?: string; flagged?: boolean }

/** `edgewarden inventory [--json]`: every identity and clientId the gateway has seen (reads LMDB; works while it runs). */
export function registerInventory(program: Command): void {
  program.command('inventory')
    .description('identities and clientIds seen by the gateway: kind, groups, first/last seen, topics, payload formats, decisions, shadow flags')
    .option('-c, --config <file>', 'config file (finds gateway.dataDir)', process.env.EDGEWARDEN_CONFIG)
    .option('--data-dir <dir>', 'data dir (overrides the config)')
    .option('--type <type>', 'identity | client')
    .option('--flagged', 'only entries with open (unacknowledged) flags')
    .option('--json', 'one JSON document')
    .action(async (o: Opts) => {
      const dataDir = o.dataDir ?? loadConfig({ file: o.config }).gateway.dataDir
      const all = await readInventory(dataDir)
      const views = all
        .filter((e) => (!o.type || e.type === o.type) && (!o.flagged || [...e.flags.values()].some((f) => !f.acked)))
        .sort((a, b) => (a.type === b.type ? a.id.localeCompare(b.id) : a.type === 'identity' ? -1 : 1))
        .map(entryView)
      if (o.json) return void process.stdout.write(JSON.stringify({ entries: views }, null, 2) + '\n')
      if (views.length === 0) return void process.stdout.write(all.length === 0 ? `no inventory in ${dataDir} yet\n` : `no matching entries (of ${all.length})\n`)
      for (const v of views) process.stdout.write(textOf(v))
    })
}

const clean = (s: string): string => s.replace(/[\u0000-\u001f\u007f]/g, '?')

function textOf(v: InventoryView): string {
  const lines = [`${v.type === 'identity' ? 'identity' : 'client  '} ${clean(v.id)}  kind=${v.kind}${v.groups.length ? ` groups=${v.groups.map(clean).join(',')}` : ''}  first=${v.firstSeen}  last=${v.lastSeen}  connects=${v.connects}`]
  lines.push(`  ${v.type === 'identity' ? 'clientIds' : 'identities'}: ${v.related.map(clean).join(', ') || '-'}   from: ${v.remotes.map(clean).join(', ') || '-'} via ${v.listeners.map(clean).join(', ') || '-'}`)
  for (const p of v.published) lines.push(`  pub ${clean(p.filter)}  ${p.count}× ${p.bytes} B`)
  for (const s of v.subscribed) lines.push(`  sub ${clean(s.filter)}  ${s.count}×`)
  const fmts = Object.entries(v.formats).filter(([, n]) => n > 0).map(([f, n]) => `${f} ${n}`).join(', ')
  const dec = Object.entries(v.decisions).filter(([, n]) => n > 0).map(([f, n]) => `${f} ${n}`).join(', ')
  if (fmts || dec) lines.push(`  formats: ${fmts || '-'}   decisions: ${dec || '-'}`)
  for (const f of v.flags) lines.push(`  FLAG ${f.flag}${f.acked ? ` (acknowledged by ${clean(f.acked.by)})` : ''}: ${clean(f.detail)}`)
  return lines.join('\n') + '\n'
}
