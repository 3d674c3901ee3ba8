import t from 'tap'
import { startMosquitto } from '../helpers/mosquitto.js'
import { connect, connackCode, nextMessage } from '../helpers/mqtt.js'

t.test('mosquitto helper: users, round trip, stop/start on the same port', async (t) => {
  const m = await startMosquitto(t, { users: { cloud: 'pw-1' } })
  t.equal(await connackCode(t, m.url, { username: 'cloud', password: 'wrong' }), 5, 'wrong password refused')
  const c = await connect(t, m.url, { username: 'cloud', password: 'pw-1' })
  await c.subscribeAsync('a/#', { qos: 1 })
  const got = nextMessage(c)
  await c.publishAsync('a/b', 'hi', { qos: 1 })
  t.equal((await got).payload.toString(), 'hi')
  c.end(true)
  await m.stop()
  t.equal(m.running, false)
  t.not(await connackCode(t, m.url, { username: 'cloud', password: 'pw-1' }), 0, 'down while stopped')
  await m.start()
  t.equal(await connackCode(t, m.url, { username: 'cloud', password: 'pw-1' }), 0, 'back on the same port')
})
