import type { Identity } from '../../src/identity/types.js'
import { lintPolicyFiles } from '../../src/policy/load.js'
import { compilePolicy } from '../../src/policy/index.js'
import type { CompileOptions } from '../../src/policy/compile.js'

/** A policy that exercises every rule field; shared by the unit and end-to-end matrices. */
export const MATRIX_POLICY = `
rules:
  - id: sensors-own-telemetry
    effect: allow
    actions: [publish]
    topics: ['site/+/dev/\${client_id}/telemetry']
    who: { groups: [sensors], kinds: [device] }
    qos: [0, 1]
    retain: false
    maxPayloadBytes: 64
    rate: 3/s
  - id: devices-own-status
    effect: allow
    actions: [publish]
    topics: ['site/+/dev/\${sub}/status']
    who: { kinds: [device] }
    retain: true
  - id: devices-own-cmd
    effect: allow
    actions: [subscribe]
    topics: ['site/+/dev/\${client_id}/cmd/#']
    who: { kinds: [device] }
    qos: [0, 1]
  - id: tenant-space
    effect: allow
    actions: [publish, subscribe]
    topics: ['tenant/\${claims.tenant}/#']
  - id: dashboards-read
    effect: allow
    actions: [subscribe]
    topics: ['site/+/dev/+/telemetry']
    who: { groups: [dashboards], kinds: [service] }
    qos: [0]
  - id: ops-site1
    effect: allow
    actions: [publish, subscribe]
    topics: ['site/1/#']
    who: { groups: [ops] }
  - id: ops-cmd
    effect: allow
    actions: [publish]
    topics: ['site/+/dev/+/cmd/#']
    who: { groups: [ops] }
  - id: agent-firmware
    effect: allow
    actions: [publish]
    topics: ['site/+/dev/+/cmd/firmware']
    who: { kinds: [agent] }
    approval: { approvers: { groups: [ops-leads] }, quorum: 2, ttl: 10m }
  - id: auditors-all
    effect: allow
    actions: [subscribe]
    topics: ['#']
    who: { groups: [auditors] }
  - id: ops-status
    effect: allow
    actions: [subscribe]
    topics: ['$warden/status']
    who: { groups: [ops] }
  - id: no-firehose
    effect: deny
    actions: [subscribe]
    exact: true
    topics: ['#', '+/#']
  - id: no-secret-tree
    effect: deny
    actions: [publish, subscribe]
    topics: ['site/+/secret/#']
  - id: banned
    effect: deny
    actions: [connect]
    who: { subs: [banned] }
  - id: block-secrets
    effect: deny
    actions: [publish]
    topics: ['#']
    payload: { detectors: [private_key, secret], matches: ['DROP TABLE', '/rm -rf/i'] }
`

export function matrixPolicy(opts: CompileOptions = {}) {
  const r = lintPolicyFiles([{ name: 'matrix.yaml', path: 'matrix.yaml', text: MATRIX_POLICY }])
  if (!r.doc) throw new Error(r.issues.map((i) => i.message).join('; '))
  return compilePolicy(r.doc, opts)
}

export function identity(sub: string, o: Partial<Identity> = {}): Identity {
  return { sub, clientId: sub, groups: [], kind: 'device', claims: {}, listener: 'mqtt', ...o }
}

export const who = {
  sensor: identity('sensor-1', { groups: ['sensors'] }),
  sensorNoGroup: identity('sensor-9'),
  dash: identity('dash-1', { groups: ['dashboards'], kind: 'service' }),
  dashHuman: identity('dash-2', { groups: ['dashboards'], kind: 'human' }),
  ops: identity('olga', { groups: ['ops'], kind: 'human' }),
  agent: identity('agent-7', { kind: 'agent' }),
  auditor: identity('audrey', { groups: ['auditors'], kind: 'human' }),
  tenantA: identity('ta', { claims: { tenant: 'acme' } }),
  tenantWild: identity('tw', { claims: { tenant: '+' } }),
  tenantHash: identity('th', { claims: { tenant: '#' } }),
  tenantSlash: identity('ts', { claims: { tenant: 'acme/x' } }),
  tenantNum: identity('tn', { claims: { tenant: 42 } }),
  wildClient: identity('wc', { clientId: '+', groups: ['sensors'] }),
  banned: identity('banned'),
}

export type Who = keyof typeof who

/** [identity, action, topic, input, effect, ruleId | null, reason?] */
export type Row = [Who, 'publish' | 'subscribe' | 'connect', string, { qos?: number; retain?: boolean; payload?: string }, 'allow' | 'deny' | 'hold', string | null, string?]

export const ROWS: Row[] = [
  // own telemetry: placeholder, who, qos, retain, size
  ['sensor', 'publish', 'site/1/dev/sensor-1/telemetry', { qos: 1, payload: '{"t":21}' }, 'allow', 'sensors-own-telemetry'],
  ['sensor', 'publish', 'site/2/dev/sensor-1/telemetry', { qos: 0, payload: '1' }, 'allow', 'sensors-own-telemetry'],
  ['sensor', 'publish', 'site/1/dev/sensor-2/telemetry', { qos: 0, payload: '1' }, 'deny', null, 'no_matching_rule'],
  ['sensor', 'publish', 'site/1/dev/sensor-1/telemetry', { qos: 2, payload: '1' }, 'deny', 'sensors-own-telemetry', 'qos_not_allowed'],
  ['sensor', 'publish', 'site/1/dev/sensor-1/telemetry', { qos: 0, retain: true, payload: '1' }, 'deny', 'sensors-own-telemetry', 'retain_not_allowed'],
  ['sensor', 'publish', 'site/1/dev/sensor-1/telemetry', { qos: 0, payload: 'x'.repeat(65) }, 'deny', 'sensors-own-telemetry', 'payload_too_large'],
  ['sensor', 'publish', 'site/1/dev/sensor-1/telemetry', { qos: 0, payload: 'x'.repeat(64) }, 'allow', 'sensors-own-telemetry'],
  ['sensorNoGroup', 'publish', 'site/1/dev/sensor-9/telemetry', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  ['dash', 'publish', 'site/1/dev/dash-1/telemetry', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  ['sensor', 'publish', 'site/1/dev/sensor-1/telemetry/extra', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  ['sensor', 'publish', 'site/1/dev/sensor-1', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  // a placeholder value with + # / never widens
  ['wildClient', 'publish', 'site/1/dev/+/telemetry', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  ['wildClient', 'publish', 'site/1/dev/x/telemetry', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  // status: ${sub}, retain allowed
  ['sensor', 'publish', 'site/9/dev/sensor-1/status', { qos: 2, retain: true, payload: 'up' }, 'allow', 'devices-own-status'],
  ['sensorNoGroup', 'publish', 'site/9/dev/sensor-9/status', { payload: 'up' }, 'allow', 'devices-own-status'],
  ['dash', 'publish', 'site/9/dev/dash-1/status', { payload: 'up' }, 'deny', null, 'no_matching_rule'],
  // own commands: subscribe with a wildcard below an allowed prefix, QoS capped
  ['sensor', 'subscribe', 'site/1/dev/sensor-1/cmd/#', { qos: 2 }, 'allow', 'devices-own-cmd'],
  ['sensor', 'subscribe', 'site/+/dev/sensor-1/cmd/+', { qos: 1 }, 'allow', 'devices-own-cmd'],
  ['sensor', 'subscribe', 'site/1/dev/sensor-1/cmd', { qos: 0 }, 'allow', 'devices-own-cmd'],
  ['sensor', 'subscribe', 'site/1/dev/+/cmd/#', { qos: 0 }, 'deny', null, 'no_matching_rule'],
  ['sensor', 'subscribe', 'site/1/dev/sensor-2/cmd/#', { qos: 0 }, 'deny', null, 'no_matching_rule'],
  ['sensor', 'subscribe', 'site/1/dev/sensor-1/#', { qos: 0 }, 'deny', null, 'no_matching_rule'],
  // claims placeholder
  ['tenantA', 'publish', 'tenant/acme/a/b', { payload: '1' }, 'allow', 'tenant-space'],
  ['tenantA', 'subscribe', 'tenant/acme/#', {}, 'allow', 'tenant-space'],
  ['tenantA', 'subscribe', 'tenant/+/#', {}, 'deny', null, 'no_matching_rule'],
  ['tenantA', 'publish', 'tenant/other/a', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  ['tenantWild', 'subscribe', 'tenant/+/#', {}, 'deny', null, 'no_matching_rule'],
  ['tenantWild', 'publish', 'tenant/x/a', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  ['tenantHash', 'subscribe', 'tenant/#', {}, 'deny', null, 'no_matching_rule'],
  ['tenantSlash', 'publish', 'tenant/acme/x/y', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  ['tenantNum', 'publish', 'tenant/42/y', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  ['sensor', 'publish', 'tenant//y', { payload: '1' }, 'deny', null, 'no_matching_rule'],
  // dashboards read telemetry at QoS 0 only; kinds must match too
  ['dash', 'subscribe', 'site/+/dev/+/telemetry', { qos: 1 }, 'allow', 'dashboards-read'],
  ['dash', 'subscribe', 'site/3/dev/+/telemetry', { qos: 1 }, 'allow', 'dashboards-read'],
  ['dash', 'subscribe', 'site/+/dev/+/+', { qos: 0 }, 'deny', null, 'no_matching_rule'],
  ['dash', 'subscribe', 'site/#', { qos: 0 }, 'deny', 'no-secret-tree', 'rule_deny'],
  ['dashHuman', 'subscribe', 'site/+/dev/+/telemetry', { qos: 0 }, 'deny', null, 'no_matching_rule'],
  // ops: site 1 only; a wider wildcard is not covered
  ['ops', 'subscribe', 'site/1/dev/#', {}, 'allow', 'ops-site1'],
  ['ops', 'subscribe', 'site/+/dev/#', {}, 'deny', null, 'no_matching_rule'],
  ['ops', 'subscribe', 'site/2/dev/#', {}, 'deny', null, 'no_matching_rule'],
  ['ops', 'publish', 'site/1/anything/here', { qos: 2, retain: true, payload: 'x' }, 'allow', 'ops-site1'],
  ['ops', 'publish', 'site/2/dev/d/cmd/reboot', { qos: 1, payload: '{}' }, 'allow', 'ops-cmd'],
  ['ops', 'publish', 'site/2/dev/d/cmd/firmware', { qos: 1, payload: '{}' }, 'allow', 'ops-cmd'],
  // agents: firmware commands are held for approval, other commands denied
  ['agent', 'publish', 'site/2/dev/d/cmd/firmware', { qos: 1, payload: '{"v":2}' }, 'hold', 'agent-firmware', 'approval_required'],
  ['agent', 'publish', 'site/2/dev/d/cmd/reboot', { qos: 1, payload: '{}' }, 'deny', null, 'no_matching_rule'],
  // deny overrides allow: the secret tree, even for ops on site 1
  ['ops', 'publish', 'site/1/secret/key', { payload: 'x' }, 'deny', 'no-secret-tree', 'rule_deny'],
  ['ops', 'subscribe', 'site/1/secret/#', {}, 'deny', 'no-secret-tree', 'rule_deny'],
  // a wildcard that could receive a denied topic is refused as a whole
  ['ops', 'subscribe', 'site/1/#', {}, 'deny', 'no-secret-tree', 'rule_deny'],
  ['ops', 'subscribe', 'site/1/+/key', {}, 'deny', 'no-secret-tree', 'rule_deny'],
  ['auditor', 'subscribe', 'site/+/secret/x', {}, 'deny', 'no-secret-tree', 'rule_deny'],
  // firehose: `#` itself refused (exact), narrower wildcards fine for auditors; `$` trees need a named rule
  ['auditor', 'subscribe', '#', {}, 'deny', 'no-firehose', 'rule_deny'],
  ['auditor', 'subscribe', '+/#', {}, 'deny', 'no-firehose', 'rule_deny'],
  ['auditor', 'subscribe', 'tenant/#', {}, 'allow', 'auditors-all'],
  ['auditor', 'subscribe', '$SYS/#', {}, 'deny', null, 'reserved_topic'],
  ['auditor', 'subscribe', '$warden/status', {}, 'deny', null, 'reserved_topic'],
  ['ops', 'subscribe', '$warden/status', {}, 'allow', 'ops-status'],
  ['ops', 'subscribe', '$warden/#', {}, 'deny', null, 'reserved_topic'],
  ['ops', 'publish', '$warden/status', { payload: 'x' }, 'deny', null, 'reserved_topic'],
  ['sensor', 'subscribe', '$share/g/site/1/dev/sensor-1/cmd/#', {}, 'deny', null, 'no_matching_rule'],
  ['auditor', 'subscribe', '$share/g/#', {}, 'deny', null, 'no_matching_rule'],
  // content deny: matches (string and /re/flags) and detectors, only where a payload rule matches the topic
  ['ops', 'publish', 'site/1/db', { payload: 'x; DROP TABLE users' }, 'deny', 'block-secrets', 'payload_match'],
  ['ops', 'publish', 'site/1/sh', { payload: 'RM -RF /' }, 'deny', 'block-secrets', 'payload_match'],
  ['ops', 'publish', 'site/1/k', { payload: '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----' }, 'deny', 'block-secrets', 'payload_detector:private_key'],
  ['ops', 'publish', 'site/1/k', { payload: 'drop table is fine in lower case' }, 'allow', 'ops-site1'],
  ['ops', 'publish', '$warden/x', { payload: 'DROP TABLE' }, 'deny', null, 'reserved_topic'],
  // connect: open unless a connect deny matches
  ['sensor', 'connect', '', {}, 'allow', null, 'connect_default'],
  ['banned', 'connect', '', {}, 'deny', 'banned', 'rule_deny'],
]
