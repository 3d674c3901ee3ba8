import '../broker/quiet-debug.js'
import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import type { JWK } from 'jose'
import mqtt from 'mqtt'
import { loadConfig } from '../config/load.js'
import { ewError } from '../errors.js'
import { openJournalReader } from '../journal/reader.js'
import { replayItems, sessionPublishes } from '../journal/replay.js'

export function registerReplay(program: Command): void {
  program.command('replay')
    .description("re-publish a recorded session's publishes with their original spacing (--to), or print them")
    .requiredOption('--session <id>', 'session id (from `audit query`)')
    .option('--to <url>', 'broker to publish to (mqtt://, mqtts://, ws://, wss://); without it the publishes are printed')
    .option('--speed <x>', 'time factor: 2 = twice as fast, 0 = no waiting (default 1 with --to; printing waits only when given)')
    .option('--client-id <id>', 'clientId for --to', 'edgewarden-replay')
    .option('--username <name>', 'username for --to')
    .option('--password <secret>', 'password for --to (e.g. a token); prefer EDGEWARDEN_REPLAY_PASSWORD', process.env.EDGEWARDEN_REPLAY_PASSWORD)
    .option('--key <file>', "auditors' private JWK, to open payloads recorded as sealed")
    .option('-c, --config <file>', 'config file (finds gateway.dataDir)', process.env.EDGEWARDEN_CONFIG)
    .option('--data-dir <dir>', 'data dir holding the journal (overrides the config)')
    .action(async (o: { session: string; to?: string; speed?: string; clientId: string; username?: string; password?: string; key?: string; config?: string; dataDir?: string }) => {
      const speed = Number(o.speed ?? (o.to ? 1 : 0))
      if (!(speed >= 0)) throw ewError('EW_USAGE', `--speed: not a number >= 0: ${o.speed}`)
      let key: JWK | undefined
      if (o.key) {
        try {
          key = JSON.parse(readFileSync(o.key, 'utf8')) as JWK
        } catch {
          throw ewError('EW_USAGE', `--key: cannot read a JWK from ${o.key}`)
        }
      }
      const reader = openJournalReader(o.dataDir ?? loadConfig({ file: o.config }).gateway.dataDir)
      let items
      try {
        items = await sessionPublishes(reader, o.session, key)
      } finally {
        await reader.close()
      }
      if (items.length === 0) throw ewError('EW_USAGE', `no recorded publishes for session ${o.session}`)
      const missing = items.filter((i) => !i.payload).length
      if (missing) process.stderr.write(`${missing} of ${items.length} publishes have no recorded payload (journal.recordPayloads none, or sealed without --key): sent empty\n`)
      if (!o.to) {
        const t0 = items[0]!.ts
        await replayItems(items, speed, async (i) => {
          process.stdout.write(JSON.stringify({ seq: i.seq, at: +((i.ts - t0) / 1000).toFixed(3), topic: i.topic, qos: i.qos, retain: i.retain, payload: i.payload?.toString('base64') }) + '\n')
        })
        return
      }
      const client = await mqtt.connectAsync(o.to, { clientId: o.clientId, username: o.username ?? (o.password ? o.clientId : undefined), password: o.password, reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 10_000 })
      try {
        await replayItems(items, speed, (i) => client.publishAsync(i.topic, i.payload ?? Buffer.alloc(0), { qos: i.qos, retain: i.retain }).then(() => {}))
      } finally {
        await client.endAsync()
      }
      process.stderr.write(`replayed ${items.length} publishes of session ${o.session} to ${o.to.replace(/\/\/[^@/]*@/, '//')}\n`)
    })
}
