import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { createGateway, type Gateway } from '../../src/index.js'
import { MemoryJournal } from '../../src/journal/memory.js'
import { mintToken, type MintOptions } from '../../src/identity/mint.js'
import { silentLogger, type Logger } from '../../src/logger.js'
import type { Clock } from '../../src/clock.js'

/** Tests not about policy run with an allow-all fixture (reserved trees stay closed). */
export const OPEN_POLICY_DIR = fileURLToPath(new URL('../fixtures/policies', import.meta.url))

export interface TestGateway {
  readonly gw: Gateway
  readonly journal: MemoryJournal
  readonly dataDir: string
  /** mqtt://127.0.0.1:PORT (or mqtts/ws/wss with path) */
  url(type?: 'mqtt' | 'mqtts' | 'ws' | 'wss'): string
  port(type?: 'mqtt' | 'mqtts' | 'ws' | 'wss' | 'admin'): number
  /** a token signed by the gateway's dev key; clientId defaults to sub under strict binding */
  token(o: Partial<MintOptions> & { sub: string }): Promise<string>
}

export function tempDir(t: Test, prefix = 'ew-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Starts a gateway on ephemeral 127.0.0.1 ports with a temp data dir and an in-memory
 * journal; stopped and removed at test teardown. `overrides` is config (deep-merged).
 */
export async function startGateway(t: Test, overrides: Record<string, unknown> = {}, opts: { clock?: Clock; journal?: MemoryJournal; logger?: Logger } = {}): Promise<TestGateway> {
  const dataDir = tempDir(t)
  const journal = opts.journal ?? new MemoryJournal()
  const gw = await createGateway({
    env: {},
    cwd: dataDir,
    overrides: {
      gateway: { id: 'gw-test', dataDir },
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }, { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' }],
      admin: { host: '127.0.0.1', port: 0 },
      broker: { persistence: 'memory' },
      log: { level: 'silent' },
      policies: { dir: OPEN_POLICY_DIR, watch: false },
      ...overrides,
      // a test that sets other limits keeps the test-friendly connect rate unless it sets one
      limits: { connectRatePerAddress: '100000/s', ...(overrides.limits as Record<string, unknown> | undefined) },
    },
  }, { logger: opts.logger ?? silentLogger, journal, clock: opts.clock })
  await gw.start()
  t.teardown(() => gw.stop())
  const port = (type: 'mqtt' | 'mqtts' | 'ws' | 'wss' | 'admin' = 'mqtt'): number => {
    const a = gw.address(type)
    if (!a) throw new Error(`no ${type} listener`)
    return a.port
  }
  return {
    gw, journal, dataDir, port,
    url(type = 'mqtt') {
      const path = type === 'ws' || type === 'wss' ? gw.config.listeners.find((l) => l.type === type)!.path : ''
      return `${type}://127.0.0.1:${port(type)}${path}`
    },
    async token(o) {
      if (!gw.devKey) throw new Error('gateway has no dev key (a key source is configured)')
      return mintToken(gw.devKey.privateJwk, { ttlSec: 3600, ...o })
    },
  }
}

/**
 * A gateway with the default LMDB journal in a temp data dir (for tests that read the
 * journal through the audit API, the CLI or the console), on 127.0.0.1 ports, stopped at teardown.
 */
export async function startLmdbGateway(t: Test, overrides: Record<string, unknown> = {}): Promise<{ gw: Gateway; dataDir: string; url: string; token(o: Partial<MintOptions> & { sub: string }): Promise<string> }> {
  const dataDir = tempDir(t)
  const gw = await createGateway({
    env: {}, cwd: dataDir,
    overrides: {
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }],
      admin: { host: '127.0.0.1', port: 0 },
      broker: { persistence: 'memory' },
      ...overrides,
      // the data dir is always the temp one; other gateway keys may be overridden
      gateway: { id: 'gw-test', ...(overrides.gateway as object | undefined), dataDir },
    },
  }, { logger: silentLogger })
  await gw.start()
  t.teardown(() => gw.stop())
  return {
    gw, dataDir,
    url: `mqtt://127.0.0.1:${gw.address('mqtt')!.port}`,
    token: (o) => mintToken(gw.devKey!.privateJwk, { ttlSec: 600, ...o }),
  }
}
