import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { tempDir } from '../helpers/gateway.js'

/** The site policy the simulation runs under, in monitor mode. */
export const SITE_POLICY = `
rules:
  - { id: devices-own-telemetry, effect: allow, actions: [publish], topics: ['site/1/dev/\${client_id}/telemetry'], who: { kinds: [device] } }
  - { id: devices-own-commands, effect: allow, actions: [subscribe], topics: ['site/1/dev/\${client_id}/cmd/#'], who: { kinds: [device] } }
  - { id: services-read-telemetry, effect: allow, actions: [subscribe], topics: ['site/1/dev/+/telemetry'], who: { kinds: [service, agent] } }
  - { id: services-send-commands, effect: allow, actions: [publish], topics: ['site/1/dev/+/cmd/#'], who: { kinds: [service] } }
  - { id: no-raw-secrets, effect: deny, actions: [publish], topics: ['#'], payload: { detectors: [secret] }, mode: monitor }
`

export function sitePolicyDir(t: Test): string {
  const dir = join(tempDir(t), 'policies')
  mkdirSync(dir)
  writeFileSync(join(dir, 'site.yaml'), SITE_POLICY)
  return dir
}

