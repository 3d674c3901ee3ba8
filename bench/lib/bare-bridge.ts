/**
 * The bridge bench's peer (bench/bridge.ts): a bare Aedes that forwards every client publish
 * on `site/#` to the cloud broker as `up/bare/<topic>` over one MQTT.js connection at QoS 1.
 * No authentication, policy, journal or durable outbox: the local PUBACK does not wait for
 * anything, and a message not yet acknowledged by the cloud is lost if this process dies.
 * It is the floor of what Aedes + MQTT.js (the stack edgewarden is built on) cost per bridged
 * message on this machine, measured in the same run as the gateway. It gets the gateway's
 * quiet debug loggers (src/broker/quiet-debug.ts) so that the two differ only in what the
 * gateway does per message.
 *
 * Child process: argv[2] = the cloud URL; sends {type:'ready', port} over IPC once the
 * forwarding connection is up; exits on {type:'stop'}.
 */
import '../../src/broker/quiet-debug.js'
import { createServer, type AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import mqtt from 'mqtt'

async function main(): Promise<void> {
  const cloudUrl = process.argv[2]!
  // reschedulePings: false as the gateway's link has it (which reschedules at most once a second instead)
  const up = mqtt.connect(cloudUrl, { protocolVersion: 4, clientId: 'bench-bare-bridge', clean: true, reconnectPeriod: 100, reschedulePings: false })
  up.on('error', () => {})
  await new Promise<void>((resolve) => up.once('connect', () => resolve()))
  const aedes = new Aedes()
  await aedes.listen()
  aedes.on('publish', (packet, client) => {
    // client publishes only (Aedes' own $SYS and will messages have no client)
    if (!client || !packet.topic.startsWith('site/')) return
    up.publish(`up/bare/${packet.topic}`, packet.payload as Buffer, { qos: 1 })
  })
  const server = createServer(aedes.handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  process.send!({ type: 'ready', port: (server.address() as AddressInfo).port })
  // the bench died without stopping us: do not linger
  process.on('disconnect', () => process.exit(0))
  process.on('message', (m: { type?: string }) => {
    if (m.type !== 'stop') return
    server.close()
    aedes.close(() => up.end(true, () => process.exit(0)))
  })
}

void main()
