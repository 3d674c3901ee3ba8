import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/gateway.js'
import { openJournal } from './helpers.js'
import { CheckpointSigner, ensureGatewayKey } from '../../src/journal/signing.js'

const BIN = fileURLToPath(new URL('../../bin/edgewarden.js', import.meta.url))

function cli(cwd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', EDGEWARDEN_FROM_SOURCE: '1' }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

t.test('audit query / export / verify and keys show on a real data dir', async (t) => {
  const dir = tempDir(t)
  const j = openJournal(t, dir, { gw: 'gw-01' })
  j.record({ type: 'connect', clientId: 'dev-1', sub: 'dev-1', session: 's1' })
  for (let i = 0; i < 5; i++) j.record({ type: 'publish', clientId: 'dev-1', session: 's1', topic: `site/1/dev/dev-1/t${i}`, rule: 'telemetry', payload: Buffer.from(`p${i}`) })
  j.record({ type: 'publish_denied', clientId: 'dev-2', topic: 'site/1/cmd', rule: 'no-cmd', reason: 'policy' })
  await j.flush()
  const key = await ensureGatewayKey(dir)
  j.dbs.checkpoints.putSync(7, await new CheckpointSigner(key).sign({ gw: 'gw-01', seq: 7, hash: j.lastHash }))
  // the CLI reads the journal while this process keeps it open, like a running gateway
  const dd = ['--data-dir', dir]

  const out = join(dir, 'export.jsonl')
  // read-only commands, run side by side (each is a process start)
  const [q, denied, badTime, tail, ex, v, shown] = await Promise.all([
    cli(dir, 'audit', 'query', ...dd, '--type', 'publish', '--topic', 'site/+/dev/dev-1/#', '--limit', '3'),
    cli(dir, 'audit', 'query', ...dd, '--rule', 'no-cmd'),
    cli(dir, 'audit', 'query', ...dd, '--since', 'yesterday'),
    cli(dir, 'audit', 'tail', ...dd, '-n', '2'),
    cli(dir, 'audit', 'export', ...dd, '--format', 'jsonl', '--out', out),
    cli(dir, 'audit', 'verify', ...dd),
    cli(dir, 'keys', 'show', ...dd),
  ])
  t.equal(q.code, 0, q.stderr)
  const lines = q.stdout.trim().split('\n').map((l) => JSON.parse(l))
  t.equal(lines.length, 3)
  t.same(lines.map((r) => r.seq), [2, 3, 4])
  t.equal(Buffer.from(lines[0].payload, 'base64').toString(), 'p0', 'payload as base64')
  t.equal(JSON.parse(denied.stdout).reason, 'policy')
  t.equal(badTime.code, 2, 'bad time: usage error')
  t.same(tail.stdout.trim().split('\n').map((l) => JSON.parse(l).seq), [6, 7])
  t.equal(ex.code, 0, ex.stderr)
  t.equal(readFileSync(out, 'utf8').trim().split('\n').length, 7)
  t.equal(v.code, 0, v.stderr)
  t.match(v.stdout, /journal ok: 7 records .*1 signed checkpoints verified/)
  t.same(JSON.parse(shown.stdout), key.publicJwk, 'keys show prints the public JWK')
  t.notOk('d' in JSON.parse(shown.stdout), 'never the private part')

  // edit a record in the LMDB file: verify fails naming the seq
  const bytes = Buffer.from(j.dbs.records.getBinary(4)!)
  bytes[bytes.indexOf('dev-1')] = 'X'.charCodeAt(0)
  j.dbs.records.putSync(4, bytes)
  const bad = await cli(dir, 'audit', 'verify', ...dd)
  t.equal(bad.code, 1)
  t.match(bad.stderr, /BROKEN at seq 4/)
})

t.test('keys generate writes a fleet signing pair', async (t) => {
  const dir = tempDir(t)
  const algs = ['EdDSA', 'ES256']
  const runs = await Promise.all(algs.map((alg) => cli(dir, 'keys', 'generate', '--alg', alg, '--out', join(dir, `fleet-${alg}.jwk`))))
  for (const [i, r] of runs.entries()) {
    const alg = algs[i]!
    t.equal(r.code, 0, r.stderr)
    const pub = JSON.parse(r.stdout)
    t.equal(pub.alg, alg)
    t.notOk('d' in pub)
    const priv = JSON.parse(readFileSync(join(dir, `fleet-${alg}.jwk`), 'utf8'))
    t.ok(priv.d, 'private JWK written')
    t.same(JSON.parse(readFileSync(join(dir, `fleet-${alg}.pub.jwk`), 'utf8')), pub)
  }
  const [again, rsa, none] = await Promise.all([
    cli(dir, 'keys', 'generate', '--out', join(dir, 'fleet-EdDSA.jwk')),
    cli(dir, 'keys', 'generate', '--alg', 'RS256', '--out', join(dir, 'x.jwk')),
    cli(dir, 'audit', 'verify', '--data-dir', join(dir, 'none')),
  ])
  t.equal(again.code, 2, 'no silent overwrite')
  t.equal(rsa.code, 2)
  t.equal(none.code, 2, 'audit on a data dir without a journal is a usage error')
  t.match(none.stderr, /no journal/)
})

t.test('audit tail --follow prints records appended after it started', async (t) => {
  const dir = tempDir(t)
  const j = openJournal(t, dir)
  j.record({ type: 'connect', clientId: 'before' })
  await j.flush()
  const { spawn } = await import('node:child_process')
  const child = spawn(process.execPath, [BIN, 'audit', 'tail', '-f', '-n', '1', '--data-dir', dir], { cwd: dir, env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', EDGEWARDEN_FROM_SOURCE: '1' } })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d })
  const until = async (re: RegExp): Promise<void> => {
    for (let i = 0; i < 300 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50))
  }
  await until(/"before"/)
  t.match(out, /"clientId":"before"/, 'the newest record first')
  j.record({ type: 'connect', clientId: 'after' })
  await j.flush()
  await until(/"after"/)
  t.match(out, /"clientId":"after"/, 'a new record shows up while following')
  child.kill('SIGINT')
  const code = await new Promise((r) => child.once('exit', (c) => r(c)))
  t.equal(code, 0, 'SIGINT ends it cleanly')
})
