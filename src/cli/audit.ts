import { createWriteStream } from 'node:fs'
import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { parseDuration } from '../config/units.js'
import { ewError } from '../errors.js'
import { openJournalReader, type JournalReader } from '../journal/reader.js'
import { matchesQuery, recordToJson, type RecordQuery } from '../journal/query.js'
import { verifyJournal } from '../journal/verify.js'
import { readGatewayPublicKey } from '../journal/signing.js'
import type { RecordType } from '../journal/types.js'
import { queryStoreCommand } from './collect-query.js'

interface Common { config?: string; dataDir?: string }

function open(o: Common): { reader: JournalReader; gw: string } {
  const config = loadConfig({ file: o.config })
  return { reader: openJournalReader(o.dataDir ?? config.gateway.dataDir), gw: config.gateway.id }
}

const write = (line: string): boolean => process.stdout.write(line + '\n')

/** `--since 1h` (ago) or an ISO / epoch-ms time. */
function parseTime(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined
  const ago = parseDuration(v)
  if (ago !== undefined) return Date.now() - ago
  const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v)
  if (Number.isNaN(t)) throw ewError('EW_USAGE', `${flag}: not a time or duration: ${v}`)
  return t
}

function common(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'config file (finds gateway.dataDir)', process.env.EDGEWARDEN_CONFIG)
    .option('--data-dir <dir>', 'data dir holding the journal (overrides the config)')
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('read and check the local audit journal (SPEC §7)')

  common(audit.command('tail'))
    .description('print the newest records as JSON lines; --follow keeps printing new ones')
    .option('-n, --lines <n>', 'how many records', '20')
    .option('-f, --follow', 'wait for new records')
    .action(async (o: Common & { lines: string; follow?: boolean }) => {
      const n = Number(o.lines)
      if (!Number.isInteger(n) || n < 0) throw ewError('EW_USAGE', `--lines: not a count: ${o.lines}`)
      const { reader } = open(o)
      let next = 0
      for (const r of reader.tail(n)) { write(recordToJson(r)); next = r.seq + 1 }
      if (!o.follow) return reader.close()
      next = Math.max(next, (reader.last() ?? 0) + 1)
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          for (const r of reader.records(next)) { write(recordToJson(r)); next = r.seq + 1 }
        }, 250)
        const stop = (): void => { clearInterval(timer); resolve() }
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
        process.stdout.once('error', stop)
      })
      await reader.close()
    })

  common(audit.command('query'))
    .description('print records matching every given filter, as JSON lines')
    .option('--since <time>', 'ISO time, epoch ms, or a duration ago (1h, 7d)')
    .option('--until <time>', 'ISO time, epoch ms, or a duration ago')
    .option('--type <types>', 'comma-separated record types (publish,publish_denied,…)')
    .option('--client-id <id>', 'MQTT clientId')
    .option('--sub <id>', 'identity (token sub)')
    .option('--session <id>', 'session id')
    .option('--topic <filter>', 'MQTT topic filter (+ and # allowed)')
    .option('--rule <id>', 'deciding rule id')
    .option('--limit <n>', 'stop after n records')
    .option('--store <url>', 'query the fleet audit store (postgres://…, filled by `edgewarden collect`) instead of the local journal')
    .option('--gateway <ids>', 'with --store: comma-separated gateway ids')
    .action(async (o: Common & { since?: string; until?: string; type?: string; clientId?: string; sub?: string; session?: string; topic?: string; rule?: string; limit?: string; store?: string; gateway?: string }) => {
      const limit = o.limit === undefined ? Infinity : Number(o.limit)
      if (!(limit >= 0)) throw ewError('EW_USAGE', `--limit: not a count: ${o.limit}`)
      const q: RecordQuery = {
        since: parseTime(o.since, '--since'), until: parseTime(o.until, '--until'),
        types: o.type?.split(',').map((s) => s.trim()).filter(Boolean) as RecordType[] | undefined,
        clientId: o.clientId, sub: o.sub, session: o.session, topic: o.topic, rule: o.rule,
      }
      if (o.store) return queryStoreCommand(o.store, q, o.gateway, limit, write)
      const { reader } = open(o)
      let n = 0
      for (const r of reader.records()) {
        if (n >= limit) break
        if (matchesQuery(r, q)) { write(recordToJson(r)); n++ }
      }
      await reader.close()
    })

  common(audit.command('verify'))
    .description('check the whole hash chain and every checkpoint signature; exit 1 naming the first broken sequence')
    .action(async (o: Common) => {
      const { reader, gw } = open(o)
      try {
        const key = readGatewayPublicKey(reader.dataDir)
        const v = await verifyJournal(reader.dbs, key, gw)
        if (!v.ok) {
          process.stderr.write(`edgewarden: journal BROKEN at seq ${v.brokenAt}: ${v.problem}\n`)
          process.exitCode = 1
          return
        }
        const range = v.firstSeq === undefined ? 'empty' : `seq ${v.firstSeq}..${v.lastSeq}`
        write(`journal ok: ${v.records} records (${range}), ${v.checkpoints} signed checkpoints verified, shipped up to ${reader.shipped()}`)
      } finally {
        await reader.close()
      }
    })

  common(audit.command('export'))
    .description('write records as JSON lines (stdout or --out)')
    .requiredOption('--format <format>', 'jsonl')
    .option('--out <file>', 'file to write (default stdout)')
    .option('--from <seq>', 'first sequence number', '0')
    .action(async (o: Common & { format: string; out?: string; from: string }) => {
      if (o.format !== 'jsonl') throw ewError('EW_USAGE', `--format: only jsonl is supported, not ${o.format}`)
      const from = Number(o.from)
      if (!Number.isInteger(from) || from < 0) throw ewError('EW_USAGE', `--from: not a sequence number: ${o.from}`)
      const { reader } = open(o)
      const out: NodeJS.WritableStream = o.out ? createWriteStream(o.out) : process.stdout
      let n = 0
      for (const r of reader.records(from)) {
        if (!out.write(recordToJson(r) + '\n')) await new Promise<void>((res) => out.once('drain', () => res()))
        n++
      }
      if (o.out) {
        await new Promise<void>((res, rej) => { out.once('error', rej); out.end(() => res()) })
        process.stderr.write(`exported ${n} records to ${o.out}\n`)
      }
      await reader.close()
    })
}
