import t from 'tap'
import { readFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { startGateway, tempDir } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'
import { makePki } from '../helpers/certs.js'

const run = promisify(execFile)

t.test('publish and subscribe over mqtt, mqtts, ws and wss', async (t) => {
  const pki = makePki(tempDir(t))
  const g = await startGateway(t, {
    listeners: [
      { type: 'mqtt', host: '127.0.0.1', port: 0 },
      { type: 'mqtts', host: '127.0.0.1', port: 0, cert: pki.serverCert, key: pki.serverKey },
      { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
      { type: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', cert: pki.serverCert, key: pki.serverKey },
    ],
  })
  const ca = readFileSync(pki.ca)
  for (const type of ['mqtt', 'mqtts', 'ws', 'wss'] as const) {
    const sub = await connect(t, g.url(type), { clientId: `sub-${type}`, password: await g.token({ sub: `sub-${type}` }), ca })
    await sub.subscribeAsync(`site/${type}/#`, { qos: 1 })
    const pub = await connect(t, g.url(type), { clientId: `pub-${type}`, password: await g.token({ sub: `pub-${type}` }), ca })
    const got = nextMessage(sub)
    await pub.publishAsync(`site/${type}/temp`, `hello over ${type}`, { qos: 1 })
    const m = await got
    t.equal(m.topic, `site/${type}/temp`, `${type}: topic`)
    t.equal(m.payload.toString(), `hello over ${type}`, `${type}: payload`)
  }
})

t.test('mosquitto_pub and mosquitto_sub over TCP', async (t) => {
  const g = await startGateway(t)
  const port = String(g.port('mqtt'))
  const subToken = await g.token({ sub: 'cli-sub' })
  const pubToken = await g.token({ sub: 'cli-pub' })
  const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-i', 'cli-sub', '-u', 'cli-sub', '-P', subToken, '-t', 'site/cli/#', '-C', '1', '-W', '10', '-v'])
  // give the subscription time to land, then publish until the subscriber has its message
  await new Promise((r) => setTimeout(r, 500))
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-i', 'cli-pub', '-u', 'cli-pub', '-P', pubToken, '-t', 'site/cli/x', '-m', 'from mosquitto_pub', '-q', '1'])
  const { stdout } = await sub
  t.equal(stdout.trim(), 'site/cli/x from mosquitto_pub')
  const bad = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-i', 'cli-pub', '-u', 'cli-pub', '-P', 'not-a-token', '-t', 'site/cli/x', '-m', 'x']).then(() => 0, (e: { code: number; stderr: string }) => e)
  t.not(bad, 0, 'bad token refused')
  t.match((bad as { stderr: string }).stderr, /bad user name or password/i)
})
