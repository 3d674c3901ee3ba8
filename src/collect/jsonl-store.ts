import { appendFileSync, existsSync, mkdirSync, openSync, readSync, closeSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { recordToJson } from '../journal/query.js'
import type { AuditSink, StoreResult, TamperReport } from './sink.js'
import type { VerifiedBatch } from './verify.js'

interface Head { seq: number; hash: string }

/**
 * The laptop store: `<dir>/<gateway>.jsonl` (one JSON line per record, `audit query`'s
 * format), `<dir>/gaps.jsonl` and `<dir>/tamper.jsonl`. Meant for one collector: records at or
 * below a gateway's head are redeliveries and skipped (a late batch that would fill a gap is
 * skipped too; PostgreSQL fills gaps). The head is recovered from each file's last line.
 */
export class JsonlStore implements AuditSink {
  readonly #heads = new Map<string, Head>()
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true })
  }

  #head(gw: string): Head {
    let h = this.#heads.get(gw)
    if (!h) {
      h = lastLine(join(this.dir, `${gw}.jsonl`)) ?? { seq: 0, hash: '' }
      this.#heads.set(gw, h)
    }
    return h
  }

  async store(v: VerifiedBatch): Promise<StoreResult> {
    const head = this.#head(v.gw)
    const fresh = v.records.filter((r) => r.record.seq > head.seq)
    if (fresh.length === 0) return { inserted: 0, duplicates: v.records.length }
    const first = fresh[0]!.record
    let gap: StoreResult['gap']
    if (first.seq > head.seq + 1) gap = { from: head.seq + 1, to: first.seq - 1 }
    else if (head.seq > 0 && first.prev !== head.hash) return { inserted: 0, duplicates: 0, problem: `record ${first.seq}: prev does not link to the stored record ${head.seq}`, seq: first.seq }
    if (gap) appendFileSync(join(this.dir, 'gaps.jsonl'), JSON.stringify({ gateway: v.gw, from: gap.from, to: gap.to, detectedAt: new Date().toISOString() }) + '\n')
    appendFileSync(join(this.dir, `${v.gw}.jsonl`), fresh.map((r) => recordToJson(r.record)).join('\n') + '\n')
    const last = fresh[fresh.length - 1]!.record
    this.#heads.set(v.gw, { seq: last.seq, hash: last.hash })
    return { inserted: fresh.length, duplicates: v.records.length - fresh.length, ...(gap ? { gap } : {}) }
  }

  async tamper(t: TamperReport): Promise<void> {
    const { payload: _p, ...rest } = t
    appendFileSync(join(this.dir, 'tamper.jsonl'), JSON.stringify({ ...rest, detectedAt: new Date().toISOString() }) + '\n')
  }

  async close(): Promise<void> {}
}

/** seq and hash of the last JSON line of a file (reads only its tail). */
function lastLine(file: string): Head | undefined {
  if (!existsSync(file)) return undefined
  const size = statSync(file).size
  if (size === 0) return undefined
  const fd = openSync(file, 'r')
  try {
    for (let len = Math.min(size, 64 * 1024); ; len = Math.min(size, len * 4)) {
      const buf = Buffer.alloc(len)
      readSync(fd, buf, 0, len, size - len)
      const lines = buf.toString('utf8').trimEnd().split('\n')
      if (lines.length > 1 || len === size) {
        const r = JSON.parse(lines[lines.length - 1]!) as { seq: number; hash: string }
        return { seq: r.seq, hash: r.hash }
      }
    }
  } finally {
    closeSync(fd)
  }
}
