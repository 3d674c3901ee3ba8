import { LmdbJournal } from '../src/journal/lmdb.js'
import { sealRecord, GENESIS } from '../src/journal/codec.js'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
const entry = (i: number) => ({ type: 'publish' as const, session: '5f0c6a1e-0d7b-4a4e-9a53-1c1f3c7e9b10', clientId: 'sensor-0042', sub: 'sensor-0042', kind: 'device', topic: 'site/1/dev/sensor-0042/telemetry', qos: 1, retain: false, bytes: 64, rule: 'sensors-own-telemetry', payload: Buffer.from(`{"t":21.5,"h":40,"i":${i},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxx"}`) })
let t0 = performance.now()
let prev = GENESIS
for (let i = 0; i < 100000; i++) { const r: Record<string, unknown> = { seq: i, ts: Date.now(), gw: 'gw', ...entry(i), prev }; prev = sealRecord(r, prev).hash }
console.log('sealRecord k/s', (100000 / (performance.now() - t0)).toFixed(1))
const dir = mkdtempSync(join(tmpdir(), 'ew-p-'))
const j = new LmdbJournal({ dataDir: dir, gw: 'gw-bench', maxBytes: 2 * 1024 ** 3, retainShippedDays: 7, onFull: 'block', recordPayloads: 'masked', commitDelayMs: 2 })
t0 = performance.now()
for (let i = 0; i < 200000; i++) j.record(entry(i))
console.log('record() sync part k/s', (200000 / (performance.now() - t0)).toFixed(1))
await j.flush()
console.log('incl flush k/s', (200000 / (performance.now() - t0)).toFixed(1))
const { open } = await import('lmdb')
const db = open({ path: join(dir, 'raw.lmdb') })
const d2 = db.openDB({ name: 'x', encoding: 'binary' })
const buf = Buffer.alloc(330, 1)
t0 = performance.now()
let p
for (let i = 0; i < 200000; i++) p = d2.put(i, buf)
console.log('raw put sync part k/s', (200000 / (performance.now() - t0)).toFixed(1))
await p; await db.flushed
console.log('raw put incl commit k/s', (200000 / (performance.now() - t0)).toFixed(1))
await j.close()
