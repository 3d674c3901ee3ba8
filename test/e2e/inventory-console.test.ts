import t from 'tap'
import { launchChromium } from '../helpers/browser.js'
import { startGateway } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'

t.test('the console lists the inventory as text and acknowledges a flag', async (t) => {
  const g = await startGateway(t, { inventory: { flushMs: 50 } })
  // an identity whose name is markup: it must show as text
  const evil = '<img src=x onerror="document.title=1">'
  const dev = await connect(t, g.url(), { clientId: evil, password: await g.token({ sub: evil, kind: 'device' }) })
  await dev.publishAsync('site/1/dev/x/telemetry', '{"t":1}', { qos: 1 })
  await dev.subscribeAsync('#', { qos: 0 })

  const browser = await launchChromium(t)
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(`http://127.0.0.1:${g.port('admin')}/console`)
  await page.fill('#token', await g.token({ sub: 'root', groups: ['admins'], kind: 'human' }))
  await page.click('#login button')
  const row = page.locator('#inventory tr[data-id]')
  await row.first().waitFor({ timeout: 30_000 })
  const text = await row.first().innerText()
  t.match(text, evil, 'the identity shown as text')
  t.match(text, /site\/1\/dev\/x\/telemetry ×1/)
  t.not(await page.title(), '1', 'no script ran')
  const flag = page.locator('#inventory div.flag[data-flag="foreign_commands"] button')
  await flag.waitFor({ timeout: 30_000 })
  await flag.click()
  await page.locator('#inventory div.flag[data-flag="foreign_commands"]', { hasText: 'ack root' }).waitFor({ timeout: 30_000 })
  t.ok(g.journal.entries.some((e) => e.type === 'flag' && e.acknowledged === true && e.flag === 'foreign_commands'), 'acknowledged from the console, journaled')
  t.same(errors, [], 'no page errors')
})
