/**
 * Replication commands (54.4) with typed results, run over a replication connection
 * (`replication: "true"` or `"database"`) with the simple query protocol.
 *
 * Invariants:
 * - Every name that reaches the server is a double-quoted identifier (embedded `"` doubled) and every
 *   literal a single-quoted string (embedded `'` doubled; the replication scanner, like SQL with
 *   standard_conforming_strings, gives backslashes no meaning). A NUL in either is refused with
 *   InvalidRequestError before anything is sent.
 * - Options are written only when the caller set them, so a command works on every server version that
 *   knows the options used (new-style parenthesised options need PostgreSQL 15+; FAILOVER 17+;
 *   ALTER_REPLICATION_SLOT 17+, its TWO_PHASE 18+).
 * - The server's errors are returned as they are (PgServerError); a reply of the wrong shape (missing
 *   column, unparsable LSN) is a ProtocolError.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { ConnectionApi } from "@pgfx/connection/Connection"
import { InvalidRequestError, type PgError, ProtocolError } from "@pgfx/connection/PgError"
import type { QueryResult, Row } from "@pgfx/connection/Query"
import * as Lsn from "./Lsn.ts"

import { quoteIdentifier, quoteLiteral, quoteQualified } from "@pgfx/connection/Quote"

// --- quoting (shared with the connection package) -------------------------------------------------

export { quoteIdentifier, quoteLiteral, quoteQualified }

/** An option value: booleans and numbers as words, strings as literals. */
const optionValue = (v: boolean | number | string): string =>
  typeof v === "string" ? quoteLiteral(v) : typeof v === "boolean" ? (v ? "true" : "false") : String(v)

/** ` (NAME value, …)` for the options that are set, or "" when none are. */
export const optionList = (options: ReadonlyArray<readonly [string, boolean | number | string | undefined]>): string => {
  const parts: Array<string> = []
  for (const [name, value] of options) if (value !== undefined) parts.push(`${name} ${optionValue(value)}`)
  return parts.length === 0 ? "" : ` (${parts.join(", ")})`
}

// --- result helpers -------------------------------------------------------------------------------

const shapeError = (command: string, detail: string): ProtocolError =>
  new ProtocolError({ reason: "InvalidValue", message: `${command}: unexpected reply (${detail})`, messageType: "D" })

/** Builds the command text, turning a quoting failure into the Effect's error. */
const commandText = (build: () => string): Effect.Effect<string, PgError> =>
  Effect.try({ try: build, catch: (e) => e as InvalidRequestError })

/** The first row of the last result set (replication commands answer with one). */
const singleRow = (command: string, results: ReadonlyArray<QueryResult>): Effect.Effect<Row, ProtocolError> => {
  for (let i = results.length - 1; i >= 0; i--) {
    const r = results[i]!
    if (r.fields.length > 0) {
      const row = r.rows[0]
      return row === undefined ? Effect.fail(shapeError(command, "no row")) : Effect.succeed(row)
    }
  }
  return Effect.fail(shapeError(command, "no result set"))
}

const decoder = new TextDecoder()

/** A text column (also accepts bytes: some columns are labelled bytea or carry raw bytes). */
const textOf = (v: unknown): string | undefined =>
  v === null || v === undefined ? undefined : v instanceof Uint8Array ? decoder.decode(v) : String(v)

const required = <A>(command: string, column: string, v: A | undefined): Effect.Effect<A, ProtocolError> =>
  v === undefined ? Effect.fail(shapeError(command, `column ${column} is null or missing`)) : Effect.succeed(v)

const lsnOf = (command: string, column: string, v: unknown): Effect.Effect<Lsn.Lsn | undefined, ProtocolError> => {
  const s = textOf(v)
  if (s === undefined) return Effect.succeed(undefined)
  return Option.match(Lsn.fromString(s), {
    onNone: () => Effect.fail(shapeError(command, `column ${column} is not an LSN: ${JSON.stringify(s)}`)),
    onSome: (lsn) => Effect.succeed<Lsn.Lsn | undefined>(lsn)
  })
}

const intOf = (command: string, column: string, v: unknown): Effect.Effect<number | undefined, ProtocolError> => {
  if (v === null || v === undefined) return Effect.succeed(undefined)
  const n = typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : Number(textOf(v))
  return Number.isSafeInteger(n) && n >= 0
    ? Effect.succeed<number | undefined>(n)
    : Effect.fail(shapeError(command, `column ${column} is not a non-negative integer: ${String(v)}`))
}

const run = (conn: ConnectionApi, sql: string) => conn.simple(sql)

// --- IDENTIFY_SYSTEM ------------------------------------------------------------------------------

export interface SystemIdentification {
  /** The cluster's unique system identifier (a 64-bit number, as the server prints it). */
  readonly systemId: string
  readonly timeline: number
  /** The current WAL flush location. */
  readonly xlogPos: Lsn.Lsn
  /** The database connected to (`replication: "database"`), undefined for physical replication. */
  readonly dbName: string | undefined
}

export const identifySystem = (conn: ConnectionApi): Effect.Effect<SystemIdentification, PgError> =>
  Effect.gen(function*() {
    const c = "IDENTIFY_SYSTEM"
    const row = yield* singleRow(c, yield* run(conn, c))
    return {
      systemId: yield* required(c, "systemid", textOf(row["systemid"])),
      timeline: yield* required(c, "timeline", yield* intOf(c, "timeline", row["timeline"])),
      xlogPos: yield* required(c, "xlogpos", yield* lsnOf(c, "xlogpos", row["xlogpos"])),
      dbName: textOf(row["dbname"])
    }
  })

// --- SHOW -----------------------------------------------------------------------------------------

/** The current value of a run-time parameter, as the server prints it ("16MB", "on"…). */
export const show = (conn: ConnectionApi, name: string): Effect.Effect<string, PgError> =>
  Effect.gen(function*() {
    const sql = yield* commandText(() => `SHOW ${quoteQualified(name)}`)
    const results = yield* run(conn, sql)
    const last = results[results.length - 1]
    const row = last?.rows[0]
    const field = last?.fields[0]
    if (row === undefined || field === undefined) return yield* Effect.fail(shapeError("SHOW", "no row"))
    return yield* required("SHOW", field.name, textOf(row[field.name]))
  })

const UNITS: Record<string, number> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }

/** Parses a memory-unit setting as SHOW prints it ("16MB", "8kB", "1GB"); undefined if not one. */
export const parseByteSize = (text: string): number | undefined => {
  const m = /^(\d+)\s*(B|kB|MB|GB|TB)?$/.exec(text.trim())
  if (m === null) return undefined
  return Number(m[1]) * UNITS[m[2] ?? "B"]!
}

/** The cluster's WAL segment size in bytes (SHOW wal_segment_size). */
export const walSegmentSize = (conn: ConnectionApi): Effect.Effect<number, PgError> =>
  Effect.flatMap(show(conn, "wal_segment_size"), (text) => {
    const n = parseByteSize(text)
    return n === undefined ? Effect.fail(shapeError("SHOW wal_segment_size", `not a size: ${text}`)) : Effect.succeed(n)
  })

// --- TIMELINE_HISTORY -----------------------------------------------------------------------------

export interface TimelineHistoryFile {
  /** e.g. `00000002.history`. */
  readonly fileName: string
  /** The history file's content, byte for byte (the server sends it raw). */
  readonly content: string
  readonly entries: ReadonlyArray<TimelineHistoryEntry>
}

/** One line of a history file: `timeline` ended at `switchpoint` (the next timeline starts there). */
export interface TimelineHistoryEntry {
  readonly timeline: number
  readonly switchpoint: Lsn.Lsn
  readonly reason: string
}

/** Parses a timeline history file (blank lines and `#` comments skipped), as the server's readTimeLineHistory does. */
export const parseTimelineHistory = (content: string): ReadonlyArray<TimelineHistoryEntry> => {
  const entries: Array<TimelineHistoryEntry> = []
  for (const raw of content.split("\n")) {
    const line = raw.trim()
    if (line === "" || line.startsWith("#")) continue
    const m = /^(\d+)\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})(?:\s+(.*))?$/.exec(line)
    if (m === null) {
      throw new ProtocolError({ reason: "InvalidValue", message: `invalid timeline history line: ${JSON.stringify(line)}` })
    }
    entries.push({ timeline: Number(m[1]), switchpoint: Lsn.fromStringUnsafe(m[2]!), reason: m[3] ?? "" })
  }
  return entries
}

export const timelineHistory = (conn: ConnectionApi, timeline: number): Effect.Effect<TimelineHistoryFile, PgError> =>
  Effect.gen(function*() {
    if (!Number.isInteger(timeline) || timeline < 1) {
      return yield* Effect.fail(new InvalidRequestError({ reason: "Other", message: `invalid timeline ${timeline}` }))
    }
    const c = "TIMELINE_HISTORY"
    const row = yield* singleRow(c, yield* run(conn, `${c} ${timeline}`))
    const fileName = yield* required(c, "filename", textOf(row["filename"]))
    const content = yield* required(c, "content", textOf(row["content"]))
    const entries = yield* Effect.try({ try: () => parseTimelineHistory(content), catch: (e) => e as ProtocolError })
    return { fileName, content, entries }
  })

// --- slots ----------------------------------------------------------------------------------------

export interface CreateSlotOptions {
  readonly temporary?: boolean | undefined
  /** Physical slots: reserve WAL now rather than at the first connection. */
  readonly reserveWal?: boolean | undefined
  /** Logical slots: decode two-phase transactions at PREPARE. */
  readonly twoPhase?: boolean | undefined
  /** Logical slots (17+): synchronise the slot to standbys. */
  readonly failover?: boolean | undefined
  /** Logical slots: what to do with the initial snapshot (server default 'export'). */
  readonly snapshot?: "export" | "use" | "nothing" | undefined
}

export interface CreatedSlot {
  readonly slotName: string
  /** Where a logical slot became consistent (streaming may start here); undefined for physical slots (the server sends 0/0). */
  readonly consistentPoint: Lsn.Lsn | undefined
  /** The exported snapshot (SNAPSHOT 'export'), valid until the next command on this connection. */
  readonly snapshotName: string | undefined
  readonly outputPlugin: string | undefined
}

export type SlotKind =
  | { readonly _tag: "Physical" }
  | { readonly _tag: "Logical"; readonly outputPlugin: string }

export const physical: SlotKind = { _tag: "Physical" }
export const logical = (outputPlugin: string): SlotKind => ({ _tag: "Logical", outputPlugin })

/** The command text of CREATE_REPLICATION_SLOT (exported for tests and logging). */
export const createSlotCommand = (slotName: string, kind: SlotKind, options: CreateSlotOptions = {}): string => {
  const head = `CREATE_REPLICATION_SLOT ${quoteIdentifier(slotName)}${options.temporary === true ? " TEMPORARY" : ""}`
  if (kind._tag === "Physical") {
    return `${head} PHYSICAL${optionList([["RESERVE_WAL", options.reserveWal]])}`
  }
  return `${head} LOGICAL ${quoteIdentifier(kind.outputPlugin)}${
    optionList([["SNAPSHOT", options.snapshot], ["TWO_PHASE", options.twoPhase], ["FAILOVER", options.failover]])
  }`
}

export const createReplicationSlot = (
  conn: ConnectionApi,
  slotName: string,
  kind: SlotKind,
  options: CreateSlotOptions = {}
): Effect.Effect<CreatedSlot, PgError> =>
  Effect.gen(function*() {
    const c = "CREATE_REPLICATION_SLOT"
    const sql = yield* commandText(() => createSlotCommand(slotName, kind, options))
    const row = yield* singleRow(c, yield* run(conn, sql))
    const consistentPoint = yield* lsnOf(c, "consistent_point", row["consistent_point"])
    return {
      slotName: yield* required(c, "slot_name", textOf(row["slot_name"])),
      // Physical slots report 0/0 (InvalidXLogRecPtr): no consistent point.
      consistentPoint: consistentPoint !== undefined && Lsn.isValid(consistentPoint) ? consistentPoint : undefined,
      snapshotName: textOf(row["snapshot_name"]),
      outputPlugin: textOf(row["output_plugin"])
    }
  })

export interface AlterSlotOptions {
  readonly failover?: boolean | undefined
  readonly twoPhase?: boolean | undefined
}

export const alterSlotCommand = (slotName: string, options: AlterSlotOptions): string => {
  const list = optionList([["FAILOVER", options.failover], ["TWO_PHASE", options.twoPhase]])
  if (list === "") {
    throw new InvalidRequestError({ reason: "Other", message: "ALTER_REPLICATION_SLOT needs at least one option" })
  }
  return `ALTER_REPLICATION_SLOT ${quoteIdentifier(slotName)}${list}`
}

/** Changes a logical slot's FAILOVER (17+) / TWO_PHASE (18+) settings. */
export const alterReplicationSlot = (
  conn: ConnectionApi,
  slotName: string,
  options: AlterSlotOptions
): Effect.Effect<void, PgError> =>
  Effect.flatMap(commandText(() => alterSlotCommand(slotName, options)), (sql) => Effect.asVoid(run(conn, sql)))

export interface ReplicationSlotInfo {
  readonly slotType: "physical"
  /** undefined when the slot has not reserved WAL yet. */
  readonly restartLsn: Lsn.Lsn | undefined
  readonly restartTimeline: number | undefined
}

/** READ_REPLICATION_SLOT (15+, physical slots): None when the slot does not exist. */
export const readReplicationSlot = (
  conn: ConnectionApi,
  slotName: string
): Effect.Effect<Option.Option<ReplicationSlotInfo>, PgError> =>
  Effect.gen(function*() {
    const c = "READ_REPLICATION_SLOT"
    const sql = yield* commandText(() => `${c} ${quoteIdentifier(slotName)}`)
    const row = yield* singleRow(c, yield* run(conn, sql))
    const slotType = textOf(row["slot_type"])
    if (slotType === undefined) return Option.none()
    if (slotType !== "physical") return yield* Effect.fail(shapeError(c, `slot_type ${slotType}`))
    return Option.some({
      slotType,
      restartLsn: yield* lsnOf(c, "restart_lsn", row["restart_lsn"]),
      restartTimeline: yield* intOf(c, "restart_tli", row["restart_tli"])
    })
  })

export const dropSlotCommand = (slotName: string, options: { readonly wait?: boolean | undefined } = {}): string =>
  `DROP_REPLICATION_SLOT ${quoteIdentifier(slotName)}${options.wait === true ? " WAIT" : ""}`

/** Drops a slot; with `wait`, waits for an active slot to become inactive instead of failing. */
export const dropReplicationSlot = (
  conn: ConnectionApi,
  slotName: string,
  options: { readonly wait?: boolean | undefined } = {}
): Effect.Effect<void, PgError> =>
  Effect.flatMap(commandText(() => dropSlotCommand(slotName, options)), (sql) => Effect.asVoid(run(conn, sql)))

// --- START_REPLICATION command text ----------------------------------------------------------------

/** `START_REPLICATION [SLOT "s"] PHYSICAL X/X [TIMELINE n]`. */
export const startPhysicalCommand = (options: {
  readonly slot?: string | undefined
  readonly startLsn: Lsn.Lsn
  readonly timeline?: number | undefined
}): string => {
  const slot = options.slot === undefined ? "" : `SLOT ${quoteIdentifier(options.slot)} `
  const tli = options.timeline === undefined ? "" : ` TIMELINE ${options.timeline}`
  return `START_REPLICATION ${slot}PHYSICAL ${Lsn.format(options.startLsn)}${tli}`
}

/** `START_REPLICATION SLOT "s" LOGICAL X/X ("name" 'value', …)`: plugin options are quoted name/value pairs. */
export const startLogicalCommand = (options: {
  readonly slot: string
  readonly startLsn: Lsn.Lsn
  readonly pluginOptions?: ReadonlyArray<readonly [string, string | undefined]> | Readonly<Record<string, string | undefined>> | undefined
}): string => {
  const pairs = options.pluginOptions === undefined
    ? []
    : Array.isArray(options.pluginOptions)
    ? options.pluginOptions as ReadonlyArray<readonly [string, string | undefined]>
    : Object.entries(options.pluginOptions)
  const list = pairs.map(([k, v]) => (v === undefined ? quoteIdentifier(k) : `${quoteIdentifier(k)} ${quoteLiteral(v)}`))
  return `START_REPLICATION SLOT ${quoteIdentifier(options.slot)} LOGICAL ${Lsn.format(options.startLsn)}${
    list.length === 0 ? "" : ` (${list.join(", ")})`
  }`
}
