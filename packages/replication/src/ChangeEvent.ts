/**
 * The typed events of a logical replication stream (pgoutput, 54.9), as users consume them.
 *
 * Invariants:
 * - Every event is a plain object with a `_tag`; events of one tag always have the same keys
 *   (optional parts are present as `undefined`), so consumers can switch on `_tag` exhaustively.
 * - `lsn` is the WAL position of the XLogData that carried the event (0/0 when decoded without one).
 *   LSNs are `Lsn` (branded bigint); times are `Date` (microseconds floored to milliseconds).
 * - `xid` of a row/message/truncate is the transaction it belongs to: the Begin's xid, the Begin
 *   Prepare's xid, or the streamed transaction's xid between Stream Start and Stream Stop.
 * - An unchanged TOASTed column (the server did not send it) is the `Unchanged` marker, never null:
 *   a consumer that writes it back as NULL would destroy data.
 * - Old values follow the table's REPLICA IDENTITY: `key` holds only the identity key's columns
 *   (DEFAULT / USING INDEX, sent when the key changed on Update and always on Delete), `old` the whole
 *   old row (FULL). At most one of them is set.
 * - A Relation event is emitted whenever the server describes a table (first use, and after every
 *   ALTER): a shape change is something the consumer sees, not a failure; later rows of that table
 *   use the new shape.
 */
import type { Lsn } from "./Lsn.ts"

/** Marks an unchanged TOASTed column value: the server did not send it, the previous value stands. */
export class UnchangedToast {
  readonly _tag = "Unchanged" as const
  toString(): string {
    return "<unchanged toast>"
  }
  toJSON(): string {
    return "<unchanged toast>"
  }
}

/** The one `Unchanged` value (compare with `===` or `isUnchanged`). */
export const Unchanged: UnchangedToast = Object.freeze(new UnchangedToast())

export const isUnchanged = (u: unknown): u is UnchangedToast => u === Unchanged

export type ReplicaIdentity = "default" | "nothing" | "full" | "index"

export interface RelationColumn {
  readonly name: string
  readonly typeOid: number
  readonly typeModifier: number
  /** Part of the replica identity key. */
  readonly isKey: boolean
}

/** A table as the server described it in its latest Relation message. */
export interface Relation {
  readonly oid: number
  /** The schema ("pg_catalog" when the server sent an empty namespace). */
  readonly schema: string
  readonly name: string
  /** `schema.name`, unquoted. */
  readonly qualifiedName: string
  readonly replicaIdentity: ReplicaIdentity
  readonly columns: ReadonlyArray<RelationColumn>
}

/** A row: `{ column: value }` (row mode "object", default) or values in column order ("array"). */
export type Row = Record<string, unknown> | Array<unknown>

interface Base {
  /** The XLogData position that carried this event. */
  readonly lsn: Lsn
}

export interface Begin extends Base {
  readonly _tag: "Begin"
  readonly xid: number
  /** The LSN of the commit record. */
  readonly finalLsn: Lsn
  readonly commitTime: Date
}

export interface Commit extends Base {
  readonly _tag: "Commit"
  readonly xid: number
  readonly commitLsn: Lsn
  /** The end of the commit record: acknowledging it means the transaction is never sent again. */
  readonly endLsn: Lsn
  readonly commitTime: Date
}

export interface Insert<R extends Row = Row> extends Base {
  readonly _tag: "Insert"
  readonly xid: number | undefined
  readonly relation: Relation
  readonly new: R
}

export interface Update<R extends Row = Row> extends Base {
  readonly _tag: "Update"
  readonly xid: number | undefined
  readonly relation: Relation
  /** The old replica identity key (key columns only), when it changed. */
  readonly key: Row | undefined
  /** The whole old row (REPLICA IDENTITY FULL). */
  readonly old: R | undefined
  readonly new: R
}

export interface Delete<R extends Row = Row> extends Base {
  readonly _tag: "Delete"
  readonly xid: number | undefined
  readonly relation: Relation
  readonly key: Row | undefined
  readonly old: R | undefined
}

export interface Truncate extends Base {
  readonly _tag: "Truncate"
  readonly xid: number | undefined
  readonly relations: ReadonlyArray<Relation>
  readonly cascade: boolean
  readonly restartIdentity: boolean
}

/** A `pg_logical_emit_message` message. */
export interface Message extends Base {
  readonly _tag: "Message"
  readonly xid: number | undefined
  readonly transactional: boolean
  readonly messageLsn: Lsn
  readonly prefix: string
  readonly content: Uint8Array
}

export interface Origin extends Base {
  readonly _tag: "Origin"
  readonly originLsn: Lsn
  readonly name: string
}

export interface RelationEvent extends Base {
  readonly _tag: "Relation"
  readonly xid: number | undefined
  readonly relation: Relation
  /** The shape this table had before, when the decoder had seen it. */
  readonly previous: Relation | undefined
}

export interface TypeEvent extends Base {
  readonly _tag: "Type"
  readonly xid: number | undefined
  readonly typeOid: number
  readonly schema: string
  readonly name: string
}

export interface StreamStart extends Base {
  readonly _tag: "StreamStart"
  readonly xid: number
  readonly firstSegment: boolean
}

export interface StreamStop extends Base {
  readonly _tag: "StreamStop"
  readonly xid: number
}

export interface StreamCommit extends Base {
  readonly _tag: "StreamCommit"
  readonly xid: number
  readonly commitLsn: Lsn
  readonly endLsn: Lsn
  readonly commitTime: Date
}

export interface StreamAbort extends Base {
  readonly _tag: "StreamAbort"
  readonly xid: number
  /** Equal to `xid` when the whole transaction aborted, else the aborted subtransaction. */
  readonly subXid: number
  readonly abortLsn: Lsn | undefined
  readonly abortTime: Date | undefined
}

interface PreparedFields extends Base {
  readonly xid: number
  readonly gid: string
  readonly prepareLsn: Lsn
  readonly endLsn: Lsn
  readonly prepareTime: Date
}

export interface BeginPrepare extends PreparedFields {
  readonly _tag: "BeginPrepare"
}

export interface Prepare extends PreparedFields {
  readonly _tag: "Prepare"
}

export interface StreamPrepare extends PreparedFields {
  readonly _tag: "StreamPrepare"
}

export interface CommitPrepared extends Base {
  readonly _tag: "CommitPrepared"
  readonly xid: number
  readonly gid: string
  readonly commitLsn: Lsn
  readonly endLsn: Lsn
  readonly commitTime: Date
}

export interface RollbackPrepared extends Base {
  readonly _tag: "RollbackPrepared"
  readonly xid: number
  readonly gid: string
  readonly prepareEndLsn: Lsn
  readonly rollbackEndLsn: Lsn
  readonly prepareTime: Date
  readonly rollbackTime: Date
}

export type RowChange<R extends Row = Row> = Insert<R> | Update<R> | Delete<R>

export type ChangeEvent =
  | Begin
  | Commit
  | Insert
  | Update
  | Delete
  | Truncate
  | Message
  | Origin
  | RelationEvent
  | TypeEvent
  | StreamStart
  | StreamStop
  | StreamCommit
  | StreamAbort
  | BeginPrepare
  | Prepare
  | StreamPrepare
  | CommitPrepared
  | RollbackPrepared

/** What the transactions of "transaction" mode contain. */
export type TransactionChange = Insert | Update | Delete | Truncate | Message | RelationEvent | TypeEvent | Origin

/**
 * A whole transaction (mode "transaction"): committed (`Commit`/`StreamCommit`), prepared (`Prepare`/
 * `StreamPrepare`, two-phase), or the second phase of a prepared one (`CommitPrepared`/
 * `RollbackPrepared`, with no changes). Streamed transactions are assembled from their blocks; the
 * changes of aborted subtransactions are dropped, aborted transactions never appear.
 */
export interface Transaction {
  readonly _tag: "Transaction"
  readonly xid: number
  readonly kind: "commit" | "prepare" | "commitPrepared" | "rollbackPrepared"
  readonly gid: string | undefined
  /** The commit (or prepare) record's LSN. */
  readonly commitLsn: Lsn
  /** The end of the commit (or prepare) record: the position to acknowledge. */
  readonly endLsn: Lsn
  readonly commitTime: Date
  readonly changes: ReadonlyArray<TransactionChange>
  /** Whether the server streamed it in blocks before it committed. */
  readonly streamed: boolean
}

/**
 * The position that acknowledging this event confirms (the end of a commit, prepare, commit prepared
 * or rollback prepared record), or undefined for events that end no transaction.
 */
export const ackPosition = (event: ChangeEvent | Transaction): Lsn | undefined => {
  switch (event._tag) {
    case "Commit":
    case "StreamCommit":
    case "Prepare":
    case "StreamPrepare":
    case "CommitPrepared":
    case "Transaction":
      return event.endLsn
    case "RollbackPrepared":
      return event.rollbackEndLsn
    default:
      return undefined
  }
}
