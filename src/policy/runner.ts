import { Ajv } from 'ajv'
import YAML, { LineCounter } from 'yaml'
import type { Identity, IdentityKind } from '../identity/types.js'
import type { CompiledPolicy } from './compile.js'
import type { LintIssue, PolicyFile } from './load.js'
import { formatKey } from './load.js'

/** One policy test case (SPEC §5 `policies/tests/*.yaml`). */
export interface PolicyCase {
  readonly name?: string
  readonly identity: { readonly sub: string; readonly client_id?: string; readonly groups?: readonly string[]; readonly kind?: IdentityKind; readonly claims?: Record<string, unknown> }
  readonly action: 'publish' | 'subscribe' | 'connect'
  readonly topic?: string
  readonly payload?: unknown
  readonly qos?: 0 | 1 | 2
  readonly retain?: boolean
  readonly expect: 'allow' | 'deny' | 'hold'
  /** the deciding rule id, when the case pins it */
  readonly rule?: string
  /** the masked view a subscriber gets: checked by the masking stage, not here */
  readonly masked?: unknown
}

export interface CaseResult {
  readonly file: string
  readonly line?: number
  readonly name: string
  readonly ok: boolean
  readonly expected: string
  readonly got: string
  readonly maskedSkipped: boolean
}

export interface TestRun {
  readonly results: readonly CaseResult[]
  readonly passed: number
  readonly failed: number
  /** malformed test files */
  readonly issues: readonly LintIssue[]
}

const caseSchema = {
  type: 'object', additionalProperties: false, required: ['identity', 'action', 'expect'],
  properties: {
    name: { type: 'string' },
    identity: {
      type: 'object', additionalProperties: false, required: ['sub'],
      properties: {
        sub: { type: 'string', minLength: 1 },
        client_id: { type: 'string', minLength: 1 },
        groups: { type: 'array', items: { type: 'string' } },
        kind: { enum: ['device', 'service', 'agent', 'human'] },
        claims: { type: 'object' },
      },
    },
    action: { enum: ['publish', 'subscribe', 'connect'] },
    topic: { type: 'string' },
    payload: {},
    qos: { enum: [0, 1, 2] },
    retain: { type: 'boolean' },
    expect: { enum: ['allow', 'deny', 'hold'] },
    rule: { type: 'string' },
    masked: {},
  },
} as const
const ajv = new Ajv({ allErrors: false, strict: true })
const validateFile = ajv.compile({
  anyOf: [
    { type: 'array', items: caseSchema },
    { type: 'object', additionalProperties: false, required: ['cases'], properties: { cases: { type: 'array', items: caseSchema } } },
  ],
})
const validateCase = ajv.compile(caseSchema)

/** Runs test cases against a compiled policy; rate state is released after every case. */
export function runPolicyTests(policy: CompiledPolicy, files: readonly PolicyFile[]): TestRun {
  const results: CaseResult[] = []
  const issues: LintIssue[] = []
  for (const f of files) {
    const lines = new LineCounter()
    const doc = YAML.parseDocument(f.text, { lineCounter: lines, prettyErrors: false })
    if (doc.errors.length > 0) {
      const p = lines.linePos(doc.errors[0]!.pos[0])
      issues.push({ severity: 'error', file: f.path, line: p.line, col: p.col, message: `invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}` })
      continue
    }
    const js = doc.toJS() as unknown
    if (js === null || js === undefined) continue
    const listed = Array.isArray(js)
    const cases = (listed ? js : (js as { cases?: unknown }).cases) as unknown[] | undefined
    if (!validateFile(js) || !cases) {
      // point at the first bad case when there is one
      const bad = Array.isArray(cases) ? cases.findIndex((c) => !validateCase(c)) : -1
      const path = bad >= 0 ? [...(listed ? [] : ['cases']), bad] : []
      const e = bad >= 0 ? validateCase.errors?.[0] : undefined
      const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined
      const p = node?.range ? lines.linePos(node.range[0]) : { line: 1, col: 1 }
      const where = e ? `${e.instancePath}${e.keyword === 'additionalProperties' ? `/${String(e.params.additionalProperty)}` : e.keyword === 'required' ? `/${String(e.params.missingProperty)}` : ''}` : ''
      issues.push({ severity: 'error', file: f.path, ...p, key: path.length ? formatKey(path) + where.replace(/\//g, '.') : undefined, message: e ? (e.keyword === 'additionalProperties' ? 'unknown key' : e.message ?? 'invalid') : 'a test file is a list of cases or a mapping with `cases`' })
      continue
    }
    cases.forEach((raw, i) => {
      const c = raw as PolicyCase
      const node = doc.getIn(listed ? [i] : ['cases', i], true) as { range?: [number, number, number] } | undefined
      const line = node?.range ? lines.linePos(node.range[0]).line : undefined
      const identity: Identity = {
        sub: c.identity.sub,
        clientId: c.identity.client_id ?? c.identity.sub,
        groups: c.identity.groups ?? [],
        kind: c.identity.kind ?? 'device',
        claims: { ...c.identity.claims, sub: c.identity.sub },
        listener: 'policy-test',
      }
      const payload = c.payload === undefined ? undefined : Buffer.from(typeof c.payload === 'string' ? c.payload : JSON.stringify(c.payload))
      const d = policy.decide(identity, c.action, c.topic ?? '', { qos: c.qos ?? 0, retain: c.retain ?? false, payload })
      policy.release(identity.clientId)
      const okEffect = d.effect === c.expect
      const okRule = c.rule === undefined || c.rule === d.ruleId
      results.push({
        file: f.path, line,
        name: c.name ?? `${c.identity.sub} ${c.action} ${c.topic ?? ''}`.trim(),
        ok: okEffect && okRule,
        expected: `${c.expect}${c.rule ? ` by ${c.rule}` : ''}`,
        got: `${d.effect}${d.ruleId ? ` by ${d.ruleId}` : ''} (${d.reason ?? ''})`,
        maskedSkipped: c.masked !== undefined,
      })
    })
  }
  const passed = results.filter((r) => r.ok).length
  return { results, passed, failed: results.length - passed, issues }
}
