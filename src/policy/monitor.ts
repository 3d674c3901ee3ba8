import type { Decision } from './types.js'

/**
 * Monitor mode (`policies.mode: monitor`, or `mode: monitor` on a rule): a refusal or hold
 * is reported as a would_* journal record and the packet proceeds. In enforce mode with no
 * monitor rules the gateway's only extra work is the `effect !== 'allow'` test it makes anyway.
 */
export type WouldType = 'would_deny' | 'would_hold'

/** Is this decision reported instead of enforced? */
export function isMonitored(d: Decision, globalMonitor: boolean): boolean {
  return d.effect !== 'allow' && (globalMonitor || d.monitor === true)
}

export function wouldType(d: Decision): WouldType {
  return d.effect === 'hold' ? 'would_hold' : 'would_deny'
}

/** What the gateway proceeds with after reporting a monitored decision. */
export const MONITOR_ALLOW: Decision = Object.freeze({ effect: 'allow', reason: 'monitor' })
