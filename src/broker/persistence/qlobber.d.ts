// qlobber ships no types; only what the broker persistence uses.
declare module 'qlobber' {
  interface QlobberOptions { separator?: string; wildcard_one?: string; wildcard_some?: string }
  export class QlobberTrue {
    constructor(options?: QlobberOptions)
    add(topic: string): this
    test(topic: string): boolean
  }
}
declare module 'qlobber/aedes/qlobber-sub.js' {
  export interface TrieSub { clientId: string; topic: string; qos?: number; rh?: number; rap?: boolean; nl?: boolean }
  export default class QlobberSub {
    constructor(options?: { separator?: string; wildcard_one?: string; wildcard_some?: string })
    readonly subscriptionsCount: number
    add(topic: string, val: TrieSub): this
    remove(topic: string, val: { clientId: string; topic: string }): this
    match(topic: string): TrieSub[]
  }
}
