import t from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { connect, waitClose } from '../helpers/mqtt.js'
import { rawClient } from '../helpers/raw.js'

t.test('stop() with clients connected on every transport: resolves, closes them, frees the ports', async (t) => {
  const g = await startGateway(t)
  const tcp = await connect(t, g.url('mqtt'), { clientId: 'c-tcp', password: await g.token({ sub: 'c-tcp' }) })
  const ws = await connect(t, g.url('ws'), { clientId: 'c-ws', password: await g.token({ sub: 'c-ws' }) })
  const idle = await rawClient(t, g.port('mqtt'))
  const port = g.port('mqtt')
  const stopped = g.gw.stop()
  await Promise.race([stopped, new Promise((_, rej) => setTimeout(() => rej(new Error('stop() did not resolve within 5 s')), 5000))])
  t.pass('stop() resolved')
  await waitClose(tcp)
  await waitClose(ws)
  await idle.closed
  t.pass('every connection closed')
  const again = await import('node:net').then(({ createServer }) => createServer())
  await new Promise<void>((resolve, reject) => { again.once('error', reject); again.listen(port, '127.0.0.1', () => resolve()) })
  again.close()
  t.pass('port released')
})
