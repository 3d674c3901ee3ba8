import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startGateway, tempDir } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'
import { launchChromium } from '../helpers/browser.js'

t.test('an approver signs in to the console in Chromium and approves a held command', async (t) => {
  const dir = join(tempDir(t), 'policies')
  mkdirSync(dir)
  writeFileSync(join(dir, 'p.yaml'), `
rules:
  - id: devices-read-commands
    effect: allow
    actions: [subscribe]
    topics: ['site/+/dev/+/cmd/#']
  - id: firmware-needs-approval
    effect: allow
    actions: [publish]
    topics: ['site/+/dev/+/cmd/firmware']
    who: { kinds: [agent] }
    approval: { approvers: { groups: [ops-leads] }, quorum: 1, ttl: 5m }
`)
  const g = await startGateway(t, { policies: { dir, watch: false } })
  const device = await connect(t, g.url(), { clientId: 'dev-7', password: await g.token({ sub: 'dev-7' }) })
  await device.subscribeAsync('site/1/dev/7/cmd/#', { qos: 1 })
  const agent = await connect(t, g.url(), { clientId: 'agent-1', password: await g.token({ sub: 'agent-1', kind: 'agent' }) })
  // the preview is attacker-controlled: it must show as text, never run
  await agent.publishAsync('site/1/dev/7/cmd/firmware', '<img src=x onerror="document.title=\'pwned\'">v2', { qos: 1 })

  const browser = await launchChromium(t)
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(`http://127.0.0.1:${g.port('admin')}/console`)
  await page.fill('#token', await g.token({ sub: 'alice', groups: ['ops-leads'], kind: 'human' }))
  await page.click('#login button')
  const row = page.locator('#pending tr[data-id]')
  await row.first().waitFor({ timeout: 10_000 })
  t.equal(await row.count(), 1, 'one pending request listed')
  t.match(await row.first().innerText(), /site\/1\/dev\/7\/cmd\/firmware/)
  t.match(await row.first().locator('code').innerText(), /<img src=x/, 'payload preview shown as text')
  t.not(await page.title(), 'pwned', 'no script ran from the payload')

  const delivered = nextMessage(device)
  await row.first().locator('button.approve').click()
  const m = await delivered
  t.equal(m.topic, 'site/1/dev/7/cmd/firmware')
  await page.locator('#pending td.empty').waitFor({ timeout: 10_000 })
  t.match(await page.locator('#status').innerText(), /approved/)
  t.match(g.journal.entries.find((e) => e.type === 'approved'), { approvers: ['alice'] })
  t.same(errors, [], 'no page errors')
})
