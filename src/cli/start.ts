import type { Command } from 'commander'
import { createGateway } from '../index.js'
import { loadConfig } from '../config/load.js'
import { installFatalHandlers } from './fatal.js'

const SHUTDOWN_DEADLINE_MS = 15_000

export function registerStart(program: Command): void {
  program.command('start')
    .description('run the gateway (config: --config FILE, else ./edgewarden.yaml, else embedded defaults)')
    .option('-c, --config <file>', 'config file (YAML)', process.env.EDGEWARDEN_CONFIG)
    .action(async (opts: { config?: string }) => {
      const config = loadConfig({ file: opts.config })
      const gw = await createGateway(config)
      // an error outside any client's packet: log, journal, exit 1 for the supervisor to restart
      installFatalHandlers({ logger: gw.logger, journal: gw.journal })
      await gw.start()
      printBanner(gw, opts.config)
      await waitForSignal(gw.logger)
      // a stuck close (a peer that never lets go) must not keep the process alive forever
      const deadline = setTimeout(() => {
        gw.logger.error({ event: 'shutdown_timeout', afterMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time: exiting')
        process.exit(1)
      }, SHUTDOWN_DEADLINE_MS)
      deadline.unref()
      await gw.stop()
      clearTimeout(deadline)
    })
}

function printBanner(gw: Awaited<ReturnType<typeof createGateway>>, file?: string): void {
  const mqtt = gw.address('mqtt')
  const ws = gw.address('ws')
  const admin = gw.address('admin')
  const lines = [
    `edgewarden ${gw.config.gateway.id} is running (${gw.config.source === 'defaults' ? 'embedded defaults' : gw.config.source})`,
    mqtt && `  MQTT      mqtt://${mqtt.host}:${mqtt.port}`,
    ws && `  WebSocket ws://${ws.host}:${ws.port}${gw.config.listeners.find((l) => l.type === 'ws')?.path}`,
    admin && `  admin     http://${admin.host}:${admin.port}/healthz`,
  ]
  if (gw.devKey) {
    const cfg = file ? ` --config ${file}` : ''
    lines.push(
      '',
      'Tokens are verified with the development key in ' + gw.devKey.path + '. Try:',
      // the shipped policies/site.yaml: dashboards read telemetry, a sensor publishes only its own
      `  TOKEN=$(npx edgewarden token --sub dashboard-1 --groups dashboards --kind service --ttl 1h${cfg})`,
      `  mosquitto_sub -h 127.0.0.1 -p ${mqtt?.port ?? 1883} -i dashboard-1 -u dashboard-1 -P "$TOKEN" -t 'site/+/dev/+/telemetry' -v &`,
      `  mosquitto_pub -h 127.0.0.1 -p ${mqtt?.port ?? 1883} -i sensor-1 -u sensor-1 -P "$(npx edgewarden token --sub sensor-1 --groups sensors --ttl 1h${cfg})" -t site/1/dev/sensor-1/telemetry -m '{"t":21.5}'`,
    )
  }
  process.stdout.write(lines.filter(Boolean).join('\n') + '\n')
}

function waitForSignal(logger: { info(o: object, m: string): void }): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ event: 'signal', signal }, 'shutting down')
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
      // a second signal during shutdown forces the exit
      const force = () => process.exit(1)
      process.once('SIGTERM', force)
      process.once('SIGINT', force)
      resolve()
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  })
}
