import t from 'tap'
import { journalUsername } from '../../src/identity/username.js'

t.test('journalUsername keeps ordinary usernames and hides tokens', async (t) => {
  const tok = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl'
  t.equal(journalUsername(undefined, undefined), undefined)
  t.equal(journalUsername('', Buffer.from('x')), '')
  t.equal(journalUsername('sensor-1', Buffer.from(tok)), 'sensor-1')
  t.equal(journalUsername(tok, Buffer.from(tok)), '[password]')
  t.equal(journalUsername('hunter2', Buffer.from('hunter2')), '[password]', 'any password echoed as username')
  t.equal(journalUsername(tok, Buffer.from('other')), '[token]')
  t.equal(journalUsername(`Bearer ${tok}`, undefined), '[token]')
  t.equal(journalUsername('x'.repeat(300), undefined), 'x'.repeat(256) + '…')
})
