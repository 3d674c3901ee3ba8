import type { UpstreamConfig } from '../config/types.js'
import { ewError } from '../errors.js'
import { compileTemplate, type RenderTopic, type TemplateContext } from './template.js'
import { isValidFilter, matchTopic } from './topic.js'

export interface OutMapping {
  /** local filter the bridge subscribes to inside the broker */
  readonly local: string
  readonly remote: RenderTopic
  readonly qos: 0 | 1
  /** undefined: keep the local message's retain flag */
  readonly retain?: boolean
  /** the filter names a $-tree explicitly (otherwise $-topics never leave) */
  readonly dollar: boolean
}

export interface InMapping {
  /** cloud filter the link subscribes to */
  readonly remote: string
  readonly local: RenderTopic
  readonly qos: 0 | 1
}

export interface CompiledMappings {
  readonly out: readonly OutMapping[]
  readonly in: readonly InMapping[]
  /** true when some out mapping takes `topic` */
  bridged(topic: string): boolean
}

/** Compiles `upstream.out` / `upstream.in` once; a bad filter or template is a config error naming its key. */
export function compileMappings(cfg: UpstreamConfig, ctx: TemplateContext): CompiledMappings {
  const out = cfg.out.map((m, i): OutMapping => {
    if (!isValidFilter(m.local)) throw ewError('EW_CONFIG_INVALID', `upstream.out[${i}].local: not a valid MQTT topic filter: ${m.local}`)
    return { local: m.local, remote: compileTemplate(m.remote, ctx, `upstream.out[${i}].remote`), qos: m.qos, retain: m.retain, dollar: m.local.startsWith('$') }
  })
  const inn = cfg.in.map((m, i): InMapping => {
    if (!isValidFilter(m.remote)) throw ewError('EW_CONFIG_INVALID', `upstream.in[${i}].remote: not a valid MQTT topic filter: ${m.remote}`)
    return { remote: m.remote, local: compileTemplate(m.local, ctx, `upstream.in[${i}].local`), qos: m.qos }
  })
  const filters = out.map((m) => m.local)
  return {
    out,
    in: inn,
    bridged: (topic) => {
      for (const f of filters) if (matchTopic(f, topic)) return true
      return false
    },
  }
}
