import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startLmdbGateway, tempDir } from '../helpers/gateway.js'
import { connect, nextMessage, waitClose } from '../helpers/mqtt.js'
import { launchChromium } from '../helpers/browser.js'

const ARTIFACTS = join(process.cwd(), '.tap', 'artifacts')

t.test('the console in Chromium: sign in, see a held command as text, approve it, see sessions and the audit tail, kick', async (t) => {
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
  // the LMDB journal (the default), so the console's audit tail has something to read
  const { gw, url, token } = await startLmdbGateway(t, { gateway: { id: 'gw-console' }, policies: { dir, watch: false } })

  const device = await connect(t, url, { clientId: 'dev-7', password: await token({ sub: 'dev-7' }) })
  await device.subscribeAsync('site/1/dev/7/cmd/#', { qos: 1 })
  const agent = await connect(t, url, { clientId: 'agent-1', password: await token({ sub: 'agent-1', kind: 'agent' }) })
  // the preview is attacker-controlled: it must show as text, never run
  await agent.publishAsync('site/1/dev/7/cmd/firmware', '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>v2', { qos: 1 })

  const browser = await launchChromium(t)
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(`http://127.0.0.1:${gw.address('admin')!.port}/console`)
  await page.fill('#token', await token({ sub: 'alice', groups: ['ops-leads', 'admins'], kind: 'human' }))
  await page.click('#login button')
  const row = page.locator('#pending tr[data-id]')
  await row.first().waitFor({ timeout: 30_000 })
  t.equal(await row.count(), 1, 'one pending request listed')
  t.match(await row.first().innerText(), /site\/1\/dev\/7\/cmd\/firmware/)
  t.match(await row.first().locator('code').innerText(), /<img src=x.*<script>/, 'payload preview shown as text')
  t.not(await page.title(), 'pwned', 'no script ran from the payload')
  await page.locator('#sessions tr[data-client-id="dev-7"]').waitFor({ timeout: 30_000 })
  await page.locator('#audit tr[data-type="held"]').first().waitFor({ timeout: 30_000 })
  t.pass('sessions and the audit tail are shown to an admin')
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, 'console.png'), fullPage: true })

  const delivered = nextMessage(device)
  await row.first().locator('button.approve').click()
  const m = await delivered
  t.equal(m.topic, 'site/1/dev/7/cmd/firmware')
  await page.locator('#pending td.empty').waitFor({ timeout: 30_000 })
  await page.locator('#audit tr[data-type="approved"]').first().waitFor({ timeout: 30_000 })
  t.pass('the approval shows up in the live audit tail')

  const closed = waitClose(agent)
  await page.locator('#sessions tr[data-client-id="agent-1"] button.kick').click()
  await closed
  t.pass('kick from the console closed the agent')
  t.same(errors, [], 'no page errors')
})
