import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/gateway.js'
import { openJournal } from './helpers.js'
import { decodeRecord } from '../../src/journal/codec.js'
import { verifyJournal } from '../../src/journal/verify.js'

const fixture = fileURLToPath(new URL('./fixtures/appender.ts', import.meta.url))

t.test('kill -9 while appending loses no acknowledged record and leaves a verifiable chain', async (t) => {
  const dir = tempDir(t)
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const acked: number[] = []
  let buf = ''
  await new Promise<void>((resolve, reject) => {
    child.on('exit', () => reject(new Error('child exited early')))
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString()
      const lines = buf.split('\n')
      buf = lines.pop()!
      for (const l of lines) if (/^\d+$/.test(l)) acked.push(Number(l))
      if (acked.length >= 6000) {
        child.kill('SIGKILL')
        resolve()
      }
    })
  })
  await new Promise((r) => child.once('exit', r))
  // lines that arrived between kill and exit count as acknowledged too
  for (const l of buf.split('\n')) if (/^\d+$/.test(l)) acked.push(Number(l))
  t.ok(acked.length >= 6000)

  const j = openJournal(t, dir)
  let missing = 0
  for (const seq of acked) {
    const b = j.dbs.records.getBinary(seq)
    if (!b || decodeRecord(b).topic !== `t/${seq - 1}`) missing++
  }
  t.equal(missing, 0, `all ${acked.length} acknowledged records are there (journal holds ${j.lastSeq})`)
  t.ok(j.lastSeq >= Math.max(...acked))
  const v = await verifyJournal(j.dbs)
  t.ok(v.ok, v.problem ?? "verifies")
  // the chain continues after the crash
  const next = await j.append({ type: 'connect', clientId: 'after' })
  t.equal(next, j.lastSeq)
  t.ok((await verifyJournal(j.dbs)).ok)
})
