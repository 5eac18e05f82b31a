/**
 * Logical streaming replication from a slot, as a Stream of typed events that never loses a change.
 *
 * Invariants:
 * - At-least-once: the flush position reported to the server moves past a transaction only after the
 *   consumer acknowledged it: `ack(event | transaction | lsn)`, the `acknowledge` stream step (acks each
 *   element once it has gone through everything before it, e.g. after `Stream.mapEffect(handler)`), or
 *   `autoAck: "onPull"` (an element is acknowledged when the consumer pulls the next chunk, i.e. after
 *   a sequential consumer finished with it). Acknowledging a transaction confirms the end of its commit
 *   (or prepare) record, so the server never sends it again; nothing is ever confirmed ahead of it.
 * - Idle databases do not pile up WAL: when everything received has been acknowledged and the stream
 *   is between transactions, the server's keepalive positions are confirmed (ReplicationStream.ts).
 * - Resume: a broken connection or a restarting server (ConnectionError, and the server's transient
 *   errors: admin/crash shutdown, starting up, slot still active) reconnects with exponential backoff
 *   (reset once an event arrives) and restarts at the highest acknowledged position (the server starts
 *   at the larger of it and the slot's confirmed_flush_lsn). Acknowledged transactions are never
 *   delivered again; unacknowledged ones may be (whole, never partially in "transaction" mode). A new
 *   session starts with an empty relation cache: the server describes every relation again.
 * - "transaction" mode emits whole transactions: Begin…Commit, Begin Prepare…Prepare, and streamed
 *   in-progress transactions assembled from their blocks (several may interleave with
 *   `streaming: "parallel"`); an aborted subtransaction's changes (everything from its first change,
 *   as the server's own apply worker does) and aborted streamed transactions are dropped. Events
 *   outside any transaction (non-transactional messages) pass through as they are.
 * - Other output plugins: raw passthrough (`{ _tag: "Raw", lsn, walEnd, data }`, data copied) or, for
 *   test_decoding, parsed records (`format: "typed"`).
 * - Schema-typed tables: `tables: { "schema.table": schema }` decodes `new` and `old` rows of those
 *   tables with the schema (once per row); other tables stay on the hand-written path. A column that
 *   can be TOASTed may hold the `Unchanged` marker in an Update's `new` row: its schema must accept it.
 *   A row the schema refuses fails the stream with TableDecodeError (never skipped silently).
 * - `ready` completes once the first session replicates: the slot created (when `createSlot` asks) and
 *   START_REPLICATION accepted. A slot is listed in pg_replication_slots, and even active, while its
 *   creation still waits for running transactions; only commits after its consistent point are decoded,
 *   so a writer that must be captured waits for `ready`. If `changes` ends before that, `ready` fails
 *   with the same cause (or InvalidRequestError when it ended without one): it never hangs.
 * - Read batching is on by default over TCP (`readBatching`, 10 ms): only a busy stream is paused, so a
 *   change arriving after a quiet millisecond is read at once; under load a change waits at most one pause.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Cause from "effect/Cause"
import type { PgoutputProtocolVersion } from "@pgfx/codec/Pgoutput"
import { decodeUtf8 } from "@pgfx/codec/internal/utf8"
import { isProtocolError, type ProtocolError } from "@pgfx/codec/ProtocolError"
import { parseTestDecodingLine, type TestDecodingRecord } from "@pgfx/codec/TestDecoding"
import type { TypeRegistry } from "@pgfx/codec/TypeRegistry"
import * as Connection from "@pgfx/connection/Connection"
import { type PgConfig, type PgConfigError, type PgConfigInput, resolve as resolveConfig } from "@pgfx/connection/PgConfig"
import { InvalidRequestError, type PgError } from "@pgfx/connection/PgError"
import type * as Event from "./ChangeEvent.ts"
import { ackPosition } from "./ChangeEvent.ts"
import * as Commands from "./Commands.ts"
import { LogicalDecoder } from "./LogicalDecoder.ts"
import * as Lsn from "./Lsn.ts"
import { type ReplicationMessage, type ReplicationPositions, startReplication, type XLogData } from "./ReplicationStream.ts"

/** Logical streams batch reads on a busy TCP connection by default (see `LogicalOptions.readBatching`). */
export const DEFAULT_READ_BATCHING: Duration.Input = "10 millis"

// --- public types ---------------------------------------------------------------------------------

/** One XLogData of a plugin decoded as raw bytes. */
export interface RawMessage {
  readonly _tag: "Raw"
  readonly lsn: Lsn.Lsn
  readonly walEnd: Lsn.Lsn
  readonly data: Uint8Array
}

/** One test_decoding line, parsed. */
export interface TestDecodingEvent {
  readonly _tag: "TestDecoding"
  readonly lsn: Lsn.Lsn
  readonly record: TestDecodingRecord
}

export type LogicalEvent = Event.ChangeEvent | Event.Transaction | RawMessage | TestDecodingEvent

/** A row of a Schema-typed table failed its schema. */
export class TableDecodeError extends Schema.TaggedError<TableDecodeError>()("TableDecodeError", {
  table: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {}

export type LogicalError = PgError | PgConfigError | TableDecodeError

export interface ReconnectOptions {
  /** Consecutive failed attempts before the stream fails. Default 30. */
  readonly maxAttempts?: number | undefined
  /** First delay; doubles per attempt. Default 100 ms. */
  readonly initialDelay?: Duration.Input | undefined
  /** Upper bound of the delay. Default 5 s. */
  readonly maxDelay?: Duration.Input | undefined
}

export interface LogicalOptions {
  readonly slot: string
  /** The output plugin. Default "pgoutput". */
  readonly plugin?: string | undefined
  /** pgoutput: the publications to stream (required for pgoutput). */
  readonly publications?: ReadonlyArray<string> | undefined
  /** pgoutput protocol version; default 4 on PostgreSQL 16+, 3 on 15, 2 on 14, 1 before. */
  readonly protocolVersion?: PgoutputProtocolVersion | undefined
  /** Stream large in-progress transactions (v2+; "parallel" v4+). Default "off". */
  readonly streaming?: "off" | "on" | "parallel" | undefined
  /** Decode two-phase transactions at PREPARE (v3+; the slot must be created with two-phase). */
  readonly twoPhase?: boolean | undefined
  /** Ask for values in binary (pgoutput `binary`). */
  readonly binary?: boolean | undefined
  /** Include `pg_logical_emit_message` messages. */
  readonly messages?: boolean | undefined
  /** pgoutput `origin` (16+): "none" skips changes that came from another origin. */
  readonly origin?: "any" | "none" | undefined
  /** Where to start on the first connection (default 0/0: the slot's confirmed position). */
  readonly startLsn?: Lsn.Lsn | undefined
  /** Create the slot on the first connection (fails if it exists, unless `ifNotExists`). */
  readonly createSlot?:
    | {
      readonly temporary?: boolean | undefined
      readonly snapshot?: "export" | "use" | "nothing" | undefined
      readonly ifNotExists?: boolean | undefined
    }
    | undefined
  /** "message" (default): every event; "transaction": whole transactions. */
  readonly mode?: "message" | "transaction" | undefined
  /** Plugins other than pgoutput: "raw" (default) bytes, or "typed" parsed test_decoding lines. */
  readonly format?: "raw" | "typed" | undefined
  /** Extra plugin options, passed as they are (test_decoding's `include-xids`…). */
  readonly pluginOptions?: Readonly<Record<string, string>> | undefined
  /** Schema per table (`"schema.table"`): rows of that table are decoded with it. */
  readonly tables?: Readonly<Record<string, Schema.Top>> | undefined
  /** Value codecs (default: the replication connection's registry). */
  readonly registry?: TypeRegistry | undefined
  readonly rowMode?: "object" | "array" | undefined
  /** Periodic status updates (default 10 s). */
  readonly statusInterval?: Duration.Input | undefined
  /** Socket chunks buffered ahead of the consumer (default 4). */
  readonly bufferChunks?: number | undefined
  /**
   * Read batching on a busy stream (plain TCP only; default "10 millis", `false` turns it off): after a
   * small read that follows the previous one within 1 ms, the socket stops reading for this long (at
   * most 100 ms; a timer, the event loop runs on), so the walsender's per-change sends queue up, leave the
   * server as a few large TCP segments and arrive many per read. B6: 1.3–1.4× the changes per second at a
   * third of the client CPU per change. A change that arrives during a pause waits for its end; a stream
   * that is not busy (a read after a quiet millisecond) is never paused.
   */
  readonly readBatching?: Duration.Input | false | undefined
  /** Reconnect on transient failures (default on); false fails the stream at the first one. */
  readonly reconnect?: ReconnectOptions | false | undefined
  /** "off" (default for `make`): only explicit acks; "onPull" (default for `streamLogical`). */
  readonly autoAck?: "off" | "onPull" | undefined
}

export interface LogicalPositions extends ReplicationPositions {
  /** Sessions opened after the first (reconnects). */
  readonly reconnects: number
}

/** What `ready` reports once the first session replicates. */
export interface LogicalReady {
  /** The slot this stream created (`createSlot`), with its consistent point; undefined for an existing slot. */
  readonly createdSlot: Commands.CreatedSlot | undefined
  /** The position START_REPLICATION asked for (0/0: the slot's confirmed position). */
  readonly startLsn: Lsn.Lsn
}

export interface LogicalReplication {
  /** The events (reconnecting as configured). Run it once. */
  readonly changes: Stream.Stream<LogicalEvent, LogicalError>
  /**
   * Completes once `changes` replicates (slot created if asked, START_REPLICATION accepted): every
   * commit after this point is delivered. Fails with the stream's cause if it ends before that.
   */
  readonly ready: Effect.Effect<LogicalReady, LogicalError>
  /** Acknowledges an event/transaction (its commit or prepare end), or an LSN. Never moves backwards. */
  readonly ack: (target: LogicalEvent | Lsn.Lsn) => Effect.Effect<void>
  /** A stream step that acknowledges each element after it got here (place it after the processing). */
  readonly acknowledge: <A extends LogicalEvent, E, R>(self: Stream.Stream<A, E, R>) => Stream.Stream<A, E, R>
  /** Sends a status update now (e.g. right after an ack, instead of waiting for the interval). */
  readonly flush: Effect.Effect<void>
  readonly positions: () => LogicalPositions
}

// --- helpers --------------------------------------------------------------------------------------

const COMMIT_TYPES = new Set([0x43, 0x63, 0x50, 0x70, 0x4b, 0x72]) // C c P p K r

/** The position acknowledging `event` confirms, if it ends a transaction. */
export const ackPositionOf = (event: LogicalEvent): Lsn.Lsn | undefined => {
  switch (event._tag) {
    case "Raw":
      return event.lsn
    case "TestDecoding":
      switch (event.record._tag) {
        case "TestDecodingCommit":
        case "TestDecodingStreamCommit":
        case "TestDecodingPrepare":
        case "TestDecodingCommitPrepared":
        case "TestDecodingRollbackPrepared":
          return event.lsn
        default:
          return undefined
      }
    default:
      return ackPosition(event)
  }
}

const TRANSIENT_CODES = new Set(["57P01", "57P02", "57P03", "55006", "53300", "53400"])

/** Whether a session failure is worth a reconnect. */
export const isTransient = (e: LogicalError): boolean => {
  switch (e._tag) {
    case "ConnectionError":
      return e.reason !== "TlsRequired" && e.reason !== "ProtocolVersion"
    case "TimeoutError":
      return e.reason === "Connect" || e.reason === "Startup" || e.reason === "Tls"
    case "PgServerError":
      return TRANSIENT_CODES.has(e.code) || e.code.startsWith("08")
    default:
      return false
  }
}

const majorVersion = (serverVersion: string): number => {
  const n = Number.parseInt(serverVersion, 10)
  return Number.isFinite(n) ? n : 0
}

/** The newest pgoutput protocol version a server major version speaks. */
export const defaultProtocolVersion = (major: number): PgoutputProtocolVersion =>
  major >= 16 ? 4 : major >= 15 ? 3 : major >= 14 ? 2 : 1

/** The START_REPLICATION plugin options for pgoutput. */
export const pgoutputOptions = (
  options: LogicalOptions,
  version: PgoutputProtocolVersion,
  major: number
): Array<readonly [string, string]> => {
  const publications = options.publications ?? []
  if (publications.length === 0) {
    throw new InvalidRequestError({ reason: "Other", message: "pgoutput needs at least one publication" })
  }
  const out: Array<readonly [string, string]> = [
    ["proto_version", String(version)],
    ["publication_names", publications.map(Commands.quoteIdentifier).join(",")]
  ]
  if (options.binary === true) out.push(["binary", "true"])
  if (options.messages === true) out.push(["messages", "true"])
  const streaming = options.streaming ?? "off"
  if (streaming !== "off") {
    if (version < 2) throw new InvalidRequestError({ reason: "Other", message: "streaming needs protocol version 2" })
    if (streaming === "parallel" && version < 4) {
      throw new InvalidRequestError({ reason: "Other", message: "streaming = parallel needs protocol version 4" })
    }
    out.push(["streaming", major >= 16 ? streaming : "on"])
  }
  if (options.twoPhase === true) {
    if (version < 3) throw new InvalidRequestError({ reason: "Other", message: "two-phase needs protocol version 3" })
    out.push(["two_phase", "on"])
  }
  if (options.origin !== undefined) out.push(["origin", options.origin])
  for (const [k, v] of Object.entries(options.pluginOptions ?? {})) out.push([k, v])
  return out
}

const toConfig = (input: Connection.ConnectionInput): Effect.Effect<PgConfig, PgConfigError> => {
  const isResolved = typeof input === "object" && Array.isArray((input as PgConfig).hosts) && "sslMode" in input
  if (isResolved) return Effect.succeed({ ...(input as PgConfig), replication: "database" })
  const raw: PgConfigInput = typeof input === "string" ? { connectionString: input } : input as PgConfigInput
  return Effect.map(resolveConfig(raw), (c) => ({ ...c, replication: "database" as const }))
}

// --- transaction assembly -------------------------------------------------------------------------

interface OpenTransaction {
  readonly changes: Array<Event.TransactionChange>
  /** Index of each subtransaction's first change (streamed transactions). */
  readonly firstChangeOf: Map<number, number>
}

/** Batches events into transactions (mode "transaction"). Per session: reset on reconnect. */
class TransactionAssembler {
  private current: OpenTransaction | undefined = undefined
  private readonly streamed = new Map<number, OpenTransaction>()
  private streamXid: number | undefined = undefined

  private open(): OpenTransaction {
    return { changes: [], firstChangeOf: new Map() }
  }

  push(e: Event.ChangeEvent, out: Array<LogicalEvent>): void {
    switch (e._tag) {
      case "Begin":
      case "BeginPrepare":
        this.current = this.open()
        return
      case "Commit":
      case "Prepare": {
        const t = this.current
        this.current = undefined
        out.push({
          _tag: "Transaction",
          xid: e.xid,
          kind: e._tag === "Commit" ? "commit" : "prepare",
          gid: e._tag === "Commit" ? undefined : e.gid,
          commitLsn: e._tag === "Commit" ? e.commitLsn : e.prepareLsn,
          endLsn: e.endLsn,
          commitTime: e._tag === "Commit" ? e.commitTime : e.prepareTime,
          changes: t?.changes ?? [],
          streamed: false
        })
        return
      }
      case "StreamStart": {
        this.streamXid = e.xid
        if (!this.streamed.has(e.xid)) this.streamed.set(e.xid, this.open())
        return
      }
      case "StreamStop":
        this.streamXid = undefined
        return
      case "StreamAbort": {
        const t = this.streamed.get(e.xid)
        if (t === undefined) return
        if (e.subXid === e.xid) {
          this.streamed.delete(e.xid)
        } else {
          const from = t.firstChangeOf.get(e.subXid)
          if (from !== undefined) {
            t.changes.length = from
            for (const [sub, at] of t.firstChangeOf) if (at >= from) t.firstChangeOf.delete(sub)
          }
        }
        return
      }
      case "StreamCommit":
      case "StreamPrepare": {
        const t = this.streamed.get(e.xid)
        this.streamed.delete(e.xid)
        out.push({
          _tag: "Transaction",
          xid: e.xid,
          kind: e._tag === "StreamCommit" ? "commit" : "prepare",
          gid: e._tag === "StreamCommit" ? undefined : e.gid,
          commitLsn: e._tag === "StreamCommit" ? e.commitLsn : e.prepareLsn,
          endLsn: e.endLsn,
          commitTime: e._tag === "StreamCommit" ? e.commitTime : e.prepareTime,
          changes: t?.changes ?? [],
          streamed: true
        })
        return
      }
      case "CommitPrepared":
        out.push({
          _tag: "Transaction",
          xid: e.xid,
          kind: "commitPrepared",
          gid: e.gid,
          commitLsn: e.commitLsn,
          endLsn: e.endLsn,
          commitTime: e.commitTime,
          changes: [],
          streamed: false
        })
        return
      case "RollbackPrepared":
        out.push({
          _tag: "Transaction",
          xid: e.xid,
          kind: "rollbackPrepared",
          gid: e.gid,
          commitLsn: e.rollbackEndLsn,
          endLsn: e.rollbackEndLsn,
          commitTime: e.rollbackTime,
          changes: [],
          streamed: false
        })
        return
      default: {
        // A change (row, truncate, message, relation, type, origin).
        if (this.streamXid !== undefined) {
          const t = this.streamed.get(this.streamXid)!
          const sub = "xid" in e && e.xid !== undefined ? e.xid : this.streamXid
          if (!t.firstChangeOf.has(sub)) t.firstChangeOf.set(sub, t.changes.length)
          t.changes.push(e)
        } else if (this.current !== undefined) {
          this.current.changes.push(e)
        } else {
          out.push(e)
        }
      }
    }
  }
}

// --- the stream -----------------------------------------------------------------------------------

/**
 * Opens logical replication in the current Scope. The returned `changes` stream connects when run
 * (with `replication=database`), reconnects as configured, and stops streaming cleanly when its
 * consumer stops.
 */
export const make = (
  input: Connection.ConnectionInput,
  options: LogicalOptions
): Effect.Effect<LogicalReplication, LogicalError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* toConfig(input)
    const plugin = options.plugin ?? "pgoutput"
    const isPgoutput = plugin === "pgoutput"
    const typed = options.format === "typed"
    if (!isPgoutput && typed && plugin !== "test_decoding") {
      return yield* Effect.fail(
        new InvalidRequestError({ reason: "Other", message: `format "typed" is for pgoutput and test_decoding, not ${plugin}` })
      )
    }
    const transactionMode = options.mode === "transaction"
    const autoAck = options.autoAck === "onPull"
    const reconnect = options.reconnect === false ? undefined : options.reconnect ?? {}
    const maxAttempts = reconnect?.maxAttempts ?? 30
    const initialDelay = Duration.toMillis(Duration.fromInputUnsafe(reconnect?.initialDelay ?? 100))
    const maxDelay = Duration.toMillis(Duration.fromInputUnsafe(reconnect?.maxDelay ?? 5000))
    const tableDecoders = new Map<string, (u: unknown) => unknown>()
    for (const [name, schema] of Object.entries(options.tables ?? {})) {
      tableDecoders.set(name, Schema.decodeUnknownSync(schema as Schema.Codec<unknown, unknown>))
    }

    let acked: Lsn.Lsn = options.startLsn ?? Lsn.zero
    let current: { readonly ack: (lsn: Lsn.Lsn) => Effect.Effect<void>; readonly sendStatus: Effect.Effect<void>; readonly positions: () => ReplicationPositions } | undefined
    let sessions = 0
    let slotCreated = false
    const ready = Deferred.makeUnsafe<LogicalReady, LogicalError>()

    const ack = (lsn: Lsn.Lsn): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (lsn > acked) acked = lsn
        return current === undefined ? Effect.void : current.ack(lsn)
      })

    const ackTarget = (target: LogicalEvent | Lsn.Lsn): Effect.Effect<void> => {
      if (typeof target === "bigint") return ack(target)
      const at = ackPositionOf(target)
      return at === undefined ? Effect.void : ack(at)
    }

    let createdSlot: Commands.CreatedSlot | undefined
    /** One connection: START_REPLICATION, then its messages as events. */
    const session: Stream.Stream<LogicalEvent, LogicalError> = Stream.unwrap(
      Effect.gen(function*() {
        const conn = yield* Connection.make(config)
        const first = sessions === 0
        sessions++
        if (options.createSlot !== undefined && !slotCreated) {
          if (!first && options.createSlot.temporary === true) {
            return yield* Effect.fail(
              new InvalidRequestError({ reason: "Other", message: `temporary slot ${options.slot} was lost with its connection` })
            )
          }
          const create = Commands.createReplicationSlot(conn, options.slot, Commands.logical(plugin), {
            temporary: options.createSlot.temporary,
            snapshot: options.createSlot.snapshot,
            twoPhase: options.twoPhase === true && isPgoutput ? true : undefined
          })
          if (options.createSlot.ifNotExists === true) {
            createdSlot = yield* Effect.catchIf(create, (e) => e._tag === "PgServerError" && e.code === "42710", () => Effect.undefined)
          } else {
            createdSlot = yield* create
          }
          slotCreated = options.createSlot.temporary !== true
        }
        const major = majorVersion(conn.info.serverVersion)
        const version = options.protocolVersion ?? defaultProtocolVersion(major)
        const pluginOptions = isPgoutput
          ? yield* Effect.try({ try: () => pgoutputOptions(options, version, major), catch: (e) => e as InvalidRequestError })
          : Object.entries(options.pluginOptions ?? {})
        const command = yield* Effect.try({
          try: () => Commands.startLogicalCommand({ slot: options.slot, startLsn: acked, pluginOptions }),
          catch: (e) => e as InvalidRequestError
        })
        const startLsn = acked
        const rs = yield* startReplication(conn, command, {
          mode: "logical",
          initialAck: acked,
          statusInterval: options.statusInterval,
          bufferChunks: options.bufferChunks,
          readBatching: options.readBatching === false ? undefined : (options.readBatching ?? DEFAULT_READ_BATCHING),
          idleAfter: isPgoutput
            ? (m: XLogData) => m.data.length > 0 && COMMIT_TYPES.has(m.data[0]!)
            : plugin === "test_decoding"
            ? (m: XLogData) => m.data.length >= 6 && m.data[0] === 0x43 && m.data[1] === 0x4f // "CO"MMIT
            : undefined
        })
        current = { ack: rs.ack, sendStatus: rs.sendStatus(), positions: rs.positions }
        Deferred.doneUnsafe(ready, Exit.succeed({ createdSlot, startLsn }))
        if (acked > Lsn.zero) yield* rs.ack(acked)

        const decoder = isPgoutput
          ? new LogicalDecoder({
            protocolVersion: version,
            registry: options.registry ?? conn.registry,
            rowMode: options.rowMode
          })
          : undefined
        const assembler = transactionMode ? new TransactionAssembler() : undefined
        // The queue itself (a take per socket chunk), not a Stream converted back into a pull: one layer less per chunk.
        const upstream = rs.pull
        let pendingAck: Lsn.Lsn | undefined

        const process = (chunk: ReadonlyArray<ReplicationMessage>, out: Array<LogicalEvent>): void => {
          for (let i = 0; i < chunk.length; i++) {
            const m = chunk[i]!
            if (m._tag !== "XLogData") continue
            const lsn = m.walStart as Lsn.Lsn
            if (decoder !== undefined) {
              let e = decoder.decode(m.data, 0, m.data.length, lsn)
              if (tableDecoders.size > 0) e = decodeTable(e)
              if (assembler !== undefined) assembler.push(e, out)
              else out.push(e)
            } else if (typed) {
              const line = decodeUtf8(m.data, 0, m.data.length)
              out.push({ _tag: "TestDecoding", lsn, record: parseTestDecodingLine(line) })
            } else {
              out.push({ _tag: "Raw", lsn, walEnd: m.walEnd as Lsn.Lsn, data: m.data.slice() })
            }
          }
        }

        const decodeTable = (e: Event.ChangeEvent): Event.ChangeEvent => {
          if (e._tag !== "Insert" && e._tag !== "Update" && e._tag !== "Delete") return e
          const decode = tableDecoders.get(e.relation.qualifiedName)
          if (decode === undefined) return e
          const run = (row: Event.Row | undefined): Event.Row | undefined => {
            if (row === undefined) return undefined
            try {
              return decode(row) as Event.Row
            } catch (cause) {
              throw new TableDecodeError({ table: e.relation.qualifiedName, message: String(cause), cause })
            }
          }
          switch (e._tag) {
            case "Insert":
              return { ...e, new: run(e.new)! }
            case "Update":
              return { ...e, old: run(e.old), new: run(e.new)! }
            case "Delete":
              return { ...e, old: run(e.old) }
          }
        }

        // One step per socket chunk, without a generator: this runs for every chunk of the stream.
        const decodeChunk = (
          chunk: ReadonlyArray<ReplicationMessage>
        ): Effect.Effect<ReadonlyArray<LogicalEvent>, LogicalError | Cause.Done> => {
          const out: Array<LogicalEvent> = []
          try {
            process(chunk, out)
          } catch (e) {
            if (isProtocolError(e) || e instanceof TableDecodeError) return Effect.fail(e as ProtocolError | TableDecodeError)
            throw e
          }
          // Nothing to deliver (keepalives only): take the next chunk.
          if (out.length === 0) return next
          sessionHadEvents = true
          if (autoAck) {
            for (let i = 0; i < out.length; i++) {
              const at = ackPositionOf(out[i]!)
              if (at !== undefined && (pendingAck === undefined || at > pendingAck)) pendingAck = at
            }
          }
          return Effect.succeed(out)
        }
        const next: Effect.Effect<ReadonlyArray<LogicalEvent>, LogicalError | Cause.Done> = Effect.flatMap(upstream, decodeChunk)
        const pull: Effect.Effect<ReadonlyArray<LogicalEvent>, LogicalError | Cause.Done> = Effect.suspend(() => {
          if (autoAck && pendingAck !== undefined) {
            const at = pendingAck
            pendingAck = undefined
            return Effect.andThen(ack(at), next)
          }
          return next
        })
        return Stream.fromPull(Effect.succeed(pull as never)) as Stream.Stream<LogicalEvent, LogicalError>
      })
    )

    let sessionHadEvents = false
    const loop = (attempt: number): Stream.Stream<LogicalEvent, LogicalError> =>
      Stream.suspend(() => {
        sessionHadEvents = false
        const retryAfter = (error: LogicalError | undefined): Stream.Stream<LogicalEvent, LogicalError> => {
          const next = sessionHadEvents ? 1 : attempt + 1
          if (reconnect === undefined || next > maxAttempts || (error !== undefined && !isTransient(error))) {
            return error === undefined ? Stream.empty : Stream.fail(error)
          }
          current = undefined
          const delay = Math.min(maxDelay, initialDelay * 2 ** (next - 1))
          return Stream.fromEffectDrain(Effect.sleep(Duration.millis(delay))).pipe(Stream.concat(loop(next)))
        }
        return session.pipe(
          // The server ended COPY without being asked (e.g. shutting down): reconnect as after a failure.
          Stream.concat(Stream.suspend(() => retryAfter(undefined))),
          Stream.catch((e: LogicalError) => retryAfter(e))
        )
      })

    const acknowledge = <A extends LogicalEvent, E, R>(self: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
      Stream.tap(self, (a) => ackTarget(a))

    // `ready` never outlives the stream unsettled: an end before the first START_REPLICATION settles it.
    const changes = loop(1).pipe(
      Stream.onExit((exit) =>
        Effect.sync(() => {
          Deferred.doneUnsafe(
            ready,
            Exit.isFailure(exit)
              ? Exit.failCause(exit.cause)
              : Exit.fail(new InvalidRequestError({ reason: "Other", message: `replication from slot ${options.slot} ended before it started` }))
          )
        })
      )
    )

    return {
      changes,
      ready: Deferred.await(ready),
      ack: ackTarget,
      acknowledge,
      flush: Effect.suspend(() => (current === undefined ? Effect.void : current.sendStatus)),
      positions: () => {
        const p = current?.positions()
        return {
          received: p?.received ?? Lsn.zero,
          acked: p === undefined || acked > p.acked ? acked : p.acked,
          confirmed: p?.confirmed ?? acked,
          serverWalEnd: p?.serverWalEnd ?? Lsn.zero,
          reconnects: Math.max(0, sessions - 1)
        }
      }
    }
  })

/**
 * Logical replication as a plain Stream: each element is acknowledged once the consumer pulls the
 * next chunk (`autoAck: "onPull"` unless set otherwise), so a sequential consumer gets at-least-once
 * delivery without calling `ack`.
 */
export const streamLogical = (
  input: Connection.ConnectionInput,
  options: LogicalOptions
): Stream.Stream<LogicalEvent, LogicalError> =>
  Stream.unwrap(Effect.map(make(input, { autoAck: "onPull", ...options }), (r) => r.changes))

/** The ChangeEvent, or None for raw/test_decoding/transaction elements. */
export const asChangeEvent = (e: LogicalEvent): Option.Option<Event.ChangeEvent> =>
  e._tag === "Raw" || e._tag === "TestDecoding" || e._tag === "Transaction" ? Option.none() : Option.some(e)
