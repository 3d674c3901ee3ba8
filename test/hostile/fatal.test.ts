import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { tempDir } from '../helpers/gateway.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Runs a script in a child process with the fatal handlers installed; the journal writes a file on flush. */
function run(t: Test, body: string): Promise<{ code: number | null; stderr: string; journal: string }> {
  const dir = tempDir(t)
  const out = join(dir, 'journal.jsonl')
  const script = join(dir, 'fatal.mjs')
  writeFileSync(script, `
    const { register } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'node_modules/tsx/dist/esm/api/index.mjs')).href)})
    register()
    const { installFatalHandlers } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/cli/fatal.ts')).href)})
    const { createLogger } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/logger.ts')).href)})
    const { appendFileSync } = await import('node:fs')
    const held = []
    const journal = { record: (e) => held.push(e), flush: async () => { await new Promise((r) => setTimeout(r, 50)); for (const e of held) appendFileSync(${JSON.stringify(out)}, JSON.stringify(e) + '\\n') } }
    installFatalHandlers({ logger: createLogger('info', process.stderr), journal })
    setInterval(() => {}, 1000)
    ${body}
  `)
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [script], { timeout: 20_000 }, (_err, _stdout, stderr) => {
      let journal = ''
      try { journal = readFileSync(out, 'utf8') } catch { /* none */ }
      resolve({ code: child.exitCode, stderr, journal })
    })
  })
}

t.test('an uncaught exception outside any client: logged, journaled, flushed, exit 1', async (t) => {
  const r = await run(t, `setTimeout(() => { throw new TypeError('token eyJhbGciOi.secret.part') }, 20)`)
  t.equal(r.code, 1, 'exit code 1: the supervisor restarts it')
  t.match(r.journal, /"type":"fatal"/, 'journaled before the exit (the flush completed)')
  t.match(r.journal, /"error":"TypeError"/)
  t.match(r.stderr, /"event":"fatal"/, 'logged')
  t.notOk((r.stderr + r.journal).includes('secret.part'), 'the error message stays out of log and journal')
})

t.test('an unhandled rejection is fatal too', async (t) => {
  const r = await run(t, `setTimeout(() => { Promise.reject(new RangeError('x')) }, 20)`)
  t.equal(r.code, 1)
  t.match(r.journal, /"reason":"unhandledRejection"/)
})
