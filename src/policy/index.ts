import type { Config } from '../config/types.js'
import type { Logger } from '../logger.js'
import { isReservedTopic } from './reserved.js'
import type { PolicyEngine } from './types.js'

export type * from './types.js'
export { isReservedTopic } from './reserved.js'

/**
 * Placeholder until the policy engine (issue 4) lands: any authenticated identity may
 * publish and subscribe outside the reserved `$SYS/` and `$warden/` trees.
 */
export async function loadPolicyEngine(_config: Config, _logger: Logger): Promise<PolicyEngine & { close(): Promise<void> }> {
  return {
    revision: 'open-0',
    decide: (_identity, action, topic) =>
      action !== 'connect' && isReservedTopic(topic) ? { effect: 'deny', reason: 'reserved topic' } : { effect: 'allow', ruleId: 'open' },
    close: async () => {},
  }
}
