/** SPEC §7 record types. */
export type RecordType =
  | 'connect' | 'connect_denied' | 'disconnect' | 'session_expired'
  | 'subscribe' | 'subscribe_denied' | 'publish' | 'publish_denied'
  | 'held' | 'approved' | 'rejected' | 'hold_expired' | 'grant'
  | 'policy_applied' | 'policy_rejected' | 'upstream_up' | 'upstream_down' | 'buffer_dropped'
  | 'cluster_up' | 'cluster_down'
  | 'connection_refused' | 'protocol_error'
  | 'would_deny' | 'would_hold' | 'would_mask' | 'flag' | 'fatal'

/** What a stage hands the journal; seq, ts, gw, prev and hash are added on append. */
export interface JournalEntry {
  readonly type: RecordType
  readonly session?: string
  readonly clientId?: string
  readonly sub?: string
  readonly kind?: string
  readonly listener?: string
  readonly remote?: string
  readonly username?: string
  readonly topic?: string
  readonly qos?: number
  readonly retain?: boolean
  readonly bytes?: number
  readonly rule?: string
  readonly policyRev?: string
  readonly masks?: readonly string[]
  readonly reason?: string
  readonly count?: number
  readonly payload?: Uint8Array
  readonly sealed?: string
  readonly [extra: string]: unknown
}

export interface JournalRecord extends JournalEntry {
  readonly seq: number
  readonly ts: number
  readonly gw: string
  readonly prev: string
  readonly hash: string
}

export interface Journal {
  /** Resolves with the record's sequence number once it is durably committed (group commit). */
  append(entry: JournalEntry): Promise<number>
  /**
   * Resolves once the record is durably committed (its value is not the seq, and not to be
   * used): `append` for the publish path, which needs no seq. The promise may be shared by
   * every record of one commit group (no promise per record).
   */
  commit(entry: JournalEntry): Promise<unknown>
  /** Append without waiting: for records that gate no acknowledgement. */
  record(entry: JournalEntry): void
  /** false while the journal refuses new records (full with onFull: block) */
  readonly writable: boolean
  flush(): Promise<void>
  close(): Promise<void>
}
