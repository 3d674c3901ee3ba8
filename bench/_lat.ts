import { LmdbJournal } from '../src/journal/lmdb.js'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
const inflight = Number(process.argv[2] ?? 1000)
const delay = Number(process.argv[3] ?? 2)
const dir = mkdtempSync(join(tmpdir(), 'ew-lat-'))
const j = new LmdbJournal({ dataDir: dir, gw: 'gw-bench', maxBytes: 2 * 1024 ** 3, retainShippedDays: 7, onFull: 'block', recordPayloads: 'masked', commitDelayMs: delay })
const entry = { type: 'publish' as const, session: '5f0c6a1e-0d7b-4a4e-9a53-1c1f3c7e9b10', clientId: 'sensor-0042', sub: 'sensor-0042', kind: 'device', topic: 'site/1/dev/sensor-0042/telemetry', qos: 1, retain: false, bytes: 64, rule: 'sensors-own-telemetry', payload: Buffer.from(`{"t":21.5,"h":40,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxx"}`) }
let done = 0, lat = 0, running = true
let groups = 0
const mp = j.dbs.meta.put.bind(j.dbs.meta); (j.dbs.meta as any).put = (k: string, v: unknown) => { if (k === 'size') groups++; return mp(k, v) }
const one = (): void => { const t0 = performance.now(); j.append(entry).then(() => { done++; lat += performance.now() - t0; if (running) one() }) }
for (let i = 0; i < inflight; i++) one()
await new Promise((r) => setTimeout(r, 1000))
done = 0; lat = 0; groups = 0
const t0 = performance.now()
await new Promise((r) => setTimeout(r, 3000))
running = false
console.log(`inflight ${inflight} delay ${delay}: ${(done / ((performance.now() - t0) / 1000) / 1000).toFixed(1)} k/s, mean latency ${(lat / done).toFixed(1)} ms, groups/s ${(groups / 3).toFixed(0)}, per group ${(done / groups).toFixed(0)}`)
await j.close()
