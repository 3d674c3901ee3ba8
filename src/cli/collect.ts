import type { Command } from 'commander'
import pg from 'pg'
import { ewError } from '../errors.js'
import { createLogger } from '../logger.js'
import { Collector } from '../collect/collector.js'
import { JsonlStore } from '../collect/jsonl-store.js'
import { KeyRing } from '../collect/keys.js'
import { loadMigrations, migrate, schemaVersion } from '../collect/migrate.js'
import { PgStore, type InsertStrategy } from '../collect/pg-store.js'
import type { AuditSink } from '../collect/sink.js'

interface CollectOptions {
  upstream?: string; out?: string; store?: string; migrate?: boolean; group: string; keys?: string
  topic: string; clientId?: string; connections: string; strategy: string; username?: string; logLevel: string
}

/** Applies pending migrations (with --migrate) or checks the store is at the latest version. */
async function prepareStore(url: string, apply: boolean): Promise<number[]> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    if (apply) return await migrate(c)
    const have = await schemaVersion(c)
    const want = Math.max(0, ...loadMigrations().map((m) => m.version))
    if (have < want) throw ewError('EW_USAGE', `the store is at schema version ${have}, this collector needs ${want}: run with --migrate`)
    return []
  } finally {
    await c.end()
  }
}

export function registerCollect(program: Command): void {
  program.command('collect')
    .description('cloud side: receive shipped audit batches (shared subscription), verify signatures and chains, store them in PostgreSQL or JSONL files')
    .option('--upstream <url>', 'cloud broker (mqtt://, mqtts://); the password comes from EDGEWARDEN_COLLECT_PASSWORD')
    .option('--store <url>', 'PostgreSQL store: postgres://user@host:5432/db')
    .option('--out <dir>', 'JSONL store for a laptop: <dir>/<gateway>.jsonl, gaps.jsonl, tamper.jsonl')
    .option('--migrate', 'apply pending migrations to --store (then collect when --upstream is given)')
    .option('--group <name>', 'shared subscription group: collectors of one group split the load', 'edgewarden-collect')
    .option('--keys <dir>', 'gateway public keys: <gateway id>.pub.jwk files (from `edgewarden keys show`)')
    .option('--topic <filter>', 'where gateways ship audit batches', 'fleet/+/+/audit')
    .option('--client-id <id>', 'MQTT clientId prefix (persistent sessions: keep it stable across restarts)')
    .option('--connections <n>', 'MQTT connections of this process in the group (batches in parallel)', '2')
    .option('--strategy <s>', 'PostgreSQL insert strategy: unnest (INSERT … ON CONFLICT DO NOTHING) or copy (COPY to staging, then merge)', 'unnest')
    .option('--username <name>', 'cloud broker username')
    .option('--log-level <level>', 'pino level', 'info')
    .action(async (o: CollectOptions) => {
      if (o.store && o.out) throw ewError('EW_USAGE', 'give --store or --out, not both')
      if (o.migrate && !o.store) throw ewError('EW_USAGE', '--migrate needs --store postgres://…')
      if (o.store && !/^postgres(ql)?:\/\//.test(o.store)) throw ewError('EW_USAGE', '--store: a postgres://… URL')
      if (o.strategy !== 'unnest' && o.strategy !== 'copy') throw ewError('EW_USAGE', `--strategy: unnest or copy, not ${o.strategy}`)
      const connections = Number(o.connections)
      if (!Number.isInteger(connections) || connections < 1 || connections > 64) throw ewError('EW_USAGE', `--connections: 1..64, not ${o.connections}`)
      const logger = createLogger(o.logLevel as 'info')
      if (o.store) {
        const applied = await prepareStore(o.store, Boolean(o.migrate))
        if (o.migrate) logger.info({ event: 'migrated', applied }, applied.length ? `applied migrations ${applied.join(', ')}` : 'store schema is up to date')
      }
      if (!o.upstream) {
        if (o.migrate) return
        throw ewError('EW_USAGE', 'collect needs --upstream URL (and --store or --out)')
      }
      if (!o.store && !o.out) throw ewError('EW_USAGE', 'collect needs --store postgres://… or --out DIR')
      if (!o.keys) logger.warn({ event: 'collect_no_key_dir' }, 'no --keys DIR: only gateways whose keys are pinned in the store verify')
      const pgStore = o.store ? new PgStore({ url: o.store, strategy: o.strategy as InsertStrategy, poolSize: connections + 1 }) : undefined
      const sink: AuditSink = pgStore ?? new JsonlStore(o.out!)
      const keys = new KeyRing(o.keys, pgStore ? (gw) => pgStore.pinnedKey(gw) : undefined)
      const password = process.env.EDGEWARDEN_COLLECT_PASSWORD
      const collector = new Collector({
        upstream: o.upstream, sink, keys, logger, group: o.group, topic: o.topic, clientId: o.clientId, connections,
        mqtt: { ...(o.username ? { username: o.username } : {}), ...(password ? { password } : {}) },
      })
      await collector.start()
      logger.info({ event: 'collect_started', filter: collector.filter, store: o.store ? 'postgres' : 'jsonl', connections }, 'collecting audit batches')
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      await collector.stop()
      await sink.close()
      logger.info({ event: 'collect_stopped', ...collector.stats }, 'collector stopped')
    })
}
