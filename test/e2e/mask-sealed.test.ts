import t from 'tap'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { compactDecrypt, exportJWK, generateKeyPair } from 'jose'
import { createGateway } from '../../src/index.js'
import { silentLogger } from '../../src/logger.js'
import { mintToken } from '../../src/identity/mint.js'
import { openJournalReader } from '../../src/journal/reader.js'
import { tempDir } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'

const POLICY = `rules:
  - { id: open, effect: allow, actions: [publish, subscribe], topics: ['#'] }
masks:
  - id: pii
    topics: ['site/#']
    fields: [{ path: email, action: redact }, { path: card, action: last4 }]
    detectors: [secret]
`

t.test('journal.recordPayloads: sealed — subscribers get the masked view, the journal only a JWE of the raw payload the auditor can open', async (t) => {
  const dataDir = tempDir(t)
  const policies = tempDir(t, 'ew-pol-')
  writeFileSync(join(policies, 'p.yaml'), POLICY)
  const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true })
  const pubFile = join(tempDir(t, 'ew-keys-'), 'auditor.pub.jwk')
  writeFileSync(pubFile, JSON.stringify(await exportJWK(publicKey)))
  const gw = await createGateway({
    env: {}, cwd: dataDir,
    overrides: {
      gateway: { id: 'gw-s', fleet: 'acme', dataDir },
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }],
      admin: { enabled: false },
      broker: { persistence: 'memory' },
      log: { level: 'silent' },
      limits: { connectRatePerAddress: '100000/s' },
      policies: { dir: policies, watch: false },
      masking: { sealTo: pubFile },
      journal: { recordPayloads: 'sealed' },
    },
  }, { logger: silentLogger })
  await gw.start()
  t.teardown(() => gw.stop())
  const url = `mqtt://127.0.0.1:${gw.address('mqtt')!.port}`
  const token = (sub: string) => mintToken(gw.devKey!.privateJwk, { sub, ttlSec: 600 })
  const sub = await connect(t, url, { clientId: 'app', password: await token('app') })
  await sub.subscribeAsync('site/#', { qos: 1 })
  const dev = await connect(t, url, { clientId: 'dev', password: await token('dev') })
  const raw = JSON.stringify({ email: 'carol@example.org', card: '4111111111111111', note: 'token ghp_abcdefghijklmnopqrstuvwxyz0123456789' })
  const got = nextMessage(sub)
  await dev.publishAsync('site/1/x', raw, { qos: 1 })
  t.same(JSON.parse((await got).payload.toString()), { email: '[REDACTED]', card: '****1111', note: 'token [REDACTED:secret]' })
  await gw.stop()

  const reader = openJournalReader(dataDir)
  t.teardown(() => reader.close())
  const rec = [...reader.records()].find((r) => r.type === 'publish' && r.topic === 'site/1/x')!
  t.ok(rec, 'publish journaled')
  t.same(rec.masks, ['pii'])
  t.equal(rec.payload, undefined, 'no plaintext payload')
  t.type(rec.sealed, 'string')
  const { plaintext, protectedHeader } = await compactDecrypt(rec.sealed as string, privateKey)
  t.equal(protectedHeader.alg, 'ECDH-ES+A256KW')
  t.equal(protectedHeader.enc, 'A256GCM')
  t.equal(Buffer.from(plaintext).toString(), raw, 'the auditor opens the raw payload')
  const bytes = Buffer.concat(readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => readFileSync(join(d.parentPath, d.name))))
  for (const v of ['carol@example.org', '4111111111111111', 'ghp_abcdefghij']) t.notOk(bytes.includes(Buffer.from(v)), `no ${v} in the data dir`)
})
