/**
 * Initial copy → change stream handoff: the existing rows of some tables, exactly as of the moment a
 * new logical slot became consistent, followed by every change after that moment. No gap, no overlap.
 *
 * Invariants:
 * - The slot is created with `SNAPSHOT 'export'` on a replication connection, and the snapshot is
 *   imported (`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '…'`) on a
 *   second, ordinary connection before the replication connection runs any other command or closes:
 *   the exported snapshot is only valid until then. The import keeps the snapshot alive afterwards.
 * - The rows are read in that transaction, so they are the database exactly at the slot's consistent
 *   point; the slot then streams every transaction that committed after it (`startLsn` = the
 *   consistent point), and none before. A writer running throughout lands in exactly one of the two.
 * - The snapshot transaction ends (COMMIT) after the last row, before streaming starts, so it does
 *   not hold back vacuum longer than the copy.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Connection from "@pgfx/connection/Connection"
import { type PgConfig, type PgConfigInput, resolve as resolveConfig } from "@pgfx/connection/PgConfig"
import type { PgError } from "@pgfx/connection/PgError"
import type { Row } from "@pgfx/connection/Query"
import * as Commands from "./Commands.ts"
import * as Logical from "./Logical.ts"
import type * as Lsn from "./Lsn.ts"

export interface ExportedSnapshot {
  readonly slot: string
  readonly snapshotName: string
  /** Where the slot became consistent: the snapshot shows everything committed before it. */
  readonly consistentPoint: Lsn.Lsn
}

/** A row of the initial copy. */
export interface SnapshotRow {
  readonly _tag: "SnapshotRow"
  /** The table as given in `tables`. */
  readonly table: string
  readonly row: Row
}

/** The initial copy is complete; changes after `consistentPoint` follow. */
export interface SnapshotDone {
  readonly _tag: "SnapshotDone"
  readonly consistentPoint: Lsn.Lsn
  readonly rows: number
}

export type SnapshotEvent = SnapshotRow | SnapshotDone | Logical.LogicalEvent

export interface SnapshotOptions extends Logical.LogicalOptions {
  /** The tables to copy (`"schema.table"` or `"table"`), in this order. */
  readonly copyTables: ReadonlyArray<string>
}

export interface SnapshotReplication {
  readonly snapshot: ExportedSnapshot
  /** The initial copy then the changes; run it once. */
  readonly events: Stream.Stream<SnapshotEvent, Logical.LogicalError>
  /** The logical replication handle (ack, acknowledge, positions) for the change part. */
  readonly replication: Logical.LogicalReplication
}

const plainConfig = (input: Connection.ConnectionInput) => {
  const isResolved = typeof input === "object" && Array.isArray((input as PgConfig).hosts) && "sslMode" in input
  if (isResolved) return Effect.succeed({ ...(input as PgConfig), replication: undefined })
  const raw: PgConfigInput = typeof input === "string" ? { connectionString: input } : input as PgConfigInput
  return Effect.map(resolveConfig(raw), (c) => ({ ...c, replication: undefined }))
}

/** `"schema"."table"` from `schema.table` (or `"table"`). */
export const quoteTable = (table: string): string => Commands.quoteQualified(table)

/**
 * Creates `slot` exporting a snapshot and imports it on `conn` in a new REPEATABLE READ transaction,
 * which the caller must end (COMMIT). The replication connection is closed afterwards.
 */
export const createAndImport = (
  input: Connection.ConnectionInput,
  conn: Connection.ConnectionApi,
  options: { readonly slot: string; readonly plugin?: string | undefined; readonly twoPhase?: boolean | undefined }
): Effect.Effect<ExportedSnapshot, Logical.LogicalError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const config = yield* plainConfig(input)
      const repl = yield* Connection.make({ ...config, replication: "database" })
      const created = yield* Commands.createReplicationSlot(repl, options.slot, Commands.logical(options.plugin ?? "pgoutput"), {
        snapshot: "export",
        twoPhase: options.twoPhase
      })
      if (created.snapshotName === undefined || created.consistentPoint === undefined) {
        return yield* Effect.die(new Error("CREATE_REPLICATION_SLOT … SNAPSHOT 'export' returned no snapshot"))
      }
      const name = created.snapshotName
      yield* conn.simple(
        `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${Commands.quoteLiteral(name)}`
      )
      return { slot: created.slotName, snapshotName: name, consistentPoint: created.consistentPoint }
    })
  )

/**
 * The copy-then-stream handoff in the current Scope: creates the slot, imports its snapshot, and
 * returns the events: every row of `copyTables` as of the snapshot, a `SnapshotDone`, then the
 * slot's changes from the consistent point (logical replication with `options`).
 */
export const make = (
  input: Connection.ConnectionInput,
  options: SnapshotOptions
): Effect.Effect<SnapshotReplication, Logical.LogicalError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* plainConfig(input)
    const conn = yield* Connection.make(config)
    const snapshot = yield* createAndImport(config, conn, {
      slot: options.slot,
      plugin: options.plugin,
      twoPhase: options.twoPhase
    })
    const replication = yield* Logical.make(input, { ...options, createSlot: undefined, startLsn: snapshot.consistentPoint })
    let rows = 0
    const copy: Stream.Stream<SnapshotEvent, PgError> = Stream.fromIterable(options.copyTables).pipe(
      Stream.flatMap((table) =>
        Stream.map(conn.stream(`SELECT * FROM ${quoteTable(table)}`), (row): SnapshotEvent => {
          rows++
          return { _tag: "SnapshotRow", table, row: row as Row }
        })
      ),
      Stream.concat(
        Stream.fromEffect(
          Effect.map(conn.simple("COMMIT"), (): SnapshotEvent => ({
            _tag: "SnapshotDone",
            consistentPoint: snapshot.consistentPoint,
            rows
          }))
        )
      )
    )
    return { snapshot, events: Stream.concat(copy, replication.changes), replication }
  })
