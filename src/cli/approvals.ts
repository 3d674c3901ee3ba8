import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { ewError } from '../errors.js'

interface Opts { admin?: string; token?: string; config?: string; reason?: string; json?: boolean }

/** `edgewarden approvals list | approve ID | reject ID` — a thin client of the admin API. */
export function registerApprovals(program: Command): void {
  const cmd = program.command('approvals').description('the approval queue, through the admin API')
  const common = (c: Command) => c
    .option('--admin <url>', 'admin API base URL (default: from config admin.host/port)')
    .option('--token <jwt>', 'approver token (default: $EDGEWARDEN_TOKEN)')
    .option('-c, --config <file>', 'config file', process.env.EDGEWARDEN_CONFIG)
  common(cmd.command('list').description('pending approvals you may see').option('--json', 'print JSON'))
    .action(async (o: Opts) => {
      const body = await call(o, 'GET', '/api/approvals') as { approvals: { id: string; topic: string; requester: { sub: string }; approvals: string[]; quorum: number; expiresAt: string; preview: string }[] }
      if (o.json) return void process.stdout.write(JSON.stringify(body.approvals, null, 2) + '\n')
      if (body.approvals.length === 0) return void process.stdout.write('no pending approvals\n')
      for (const a of body.approvals) process.stdout.write(`${a.id}  ${a.topic}  by ${a.requester.sub}  ${a.approvals.length}/${a.quorum}  expires ${a.expiresAt}\n    ${a.preview.slice(0, 120)}\n`)
    })
  common(cmd.command('approve <id>').description('approve a held publish'))
    .action(async (id: string, o: Opts) => report(await call(o, 'POST', `/api/approvals/${encodeURIComponent(id)}/approve`, {})))
  common(cmd.command('reject <id>').description('reject a held publish').option('--reason <text>', 'why'))
    .action(async (id: string, o: Opts) => report(await call(o, 'POST', `/api/approvals/${encodeURIComponent(id)}/reject`, { reason: o.reason })))
}

function report(body: unknown): void {
  const b = body as { id: string; state: string; delivered?: boolean; approvals: string[]; quorum: number }
  process.stdout.write(`${b.id}: ${b.delivered ? 'approved and delivered' : b.state === 'pending' ? `approved (${b.approvals.length}/${b.quorum})` : b.state}\n`)
}

async function call(o: Opts, method: string, path: string, body?: object): Promise<unknown> {
  const token = o.token ?? process.env.EDGEWARDEN_TOKEN
  if (!token) throw ewError('EW_USAGE', 'an approver token is needed: --token or EDGEWARDEN_TOKEN')
  let base = o.admin
  if (!base) {
    const cfg = loadConfig({ file: o.config })
    const host = cfg.admin.host === '0.0.0.0' ? '127.0.0.1' : cfg.admin.host
    base = `http://${host.includes(':') ? `[${host}]` : host}:${cfg.admin.port}`
  }
  let res: Response
  try {
    res = await fetch(new URL(path, base), { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(10_000) })
  } catch (err) {
    throw new Error(`cannot reach the admin API at ${base}: ${(err as Error).message}`)
  }
  const json = await res.json().catch(() => ({})) as { error?: string }
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.error ?? ''}`.trim())
  return json
}
