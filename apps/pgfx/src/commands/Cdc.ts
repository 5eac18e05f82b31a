/**
 * `pgfx cdc`: logical replication (pgoutput) to NDJSON, one typed change event per line.
 *
 * Invariants:
 * - At-least-once with a checkpoint file: a transaction's lines are written (and flushed to the OS)
 *   before its end LSN is recorded in the checkpoint and acknowledged to the server. A restart reads the
 *   checkpoint and starts there: nothing acknowledged is lost; a transaction whose lines were written but
 *   not checkpointed may be written again (whole).
 * - The output file is appended to, never truncated: a resumed run continues it.
 * - The slot and the publication are created when missing and reused otherwise; `--drop-slot` drops the
 *   slot (and a publication this run created) at exit. A slot active in another session is an error at
 *   once (not retried). A connection lost mid-stream (server restart) is reconnected with backoff and
 *   resumes at the last acknowledged position.
 * - `--snapshot` (new slots only): the slot is created with an exported snapshot, the published tables are
 *   copied inside it (COPY BINARY, typed rows) as `"op":"snapshot"` lines, then streaming starts at the slot's consistent point, so
 *   every row is seen exactly once across the handoff.
 * - Ctrl-C ends the stream cleanly: exit 0 after the checkpoint holds the last complete transaction.
 */
import * as Fs from "node:fs"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Command, Flag } from "effect/cli"
import * as Connection from "@pgfx/connection/Connection"
import { copyToRows } from "@pgfx/connection/Copy"
import { type PgConfig, resolve as resolveConfig } from "@pgfx/connection/PgConfig"
import { MAX_READ_BATCHING_MS } from "@pgfx/connection/Transport"
import * as Commands from "@pgfx/replication/Commands"
import * as Logical from "@pgfx/replication/Logical"
import * as Lsn from "@pgfx/replication/Lsn"
import { conninfoArgument, connectionFlags, toConfigInput } from "../ConnectionFlags.ts"
import { parseDurationMs } from "../Duration.ts"
import { CliFailure, UsageError } from "../Errors.ts"
import { toJson } from "../Json.ts"
import { ioFailure, openOutput, type Output } from "../Output.ts"
import { markStopIsClean } from "../Shutdown.ts"
import { quoteTableName } from "./Copy.ts"

const flags = {
  conninfo: conninfoArgument,
  ...connectionFlags,
  slot: Flag.String("slot").pipe(Flag.withDescription("replication slot (created when missing; default pgfx_cdc)"), Flag.withDefault("pgfx_cdc")),
  publication: Flag.String("publication").pipe(
    Flag.withDescription("publication (created when missing: FOR ALL TABLES, or FOR TABLE --tables; default pgfx_cdc)"),
    Flag.withDefault("pgfx_cdc")
  ),
  tables: Flag.String("tables").pipe(Flag.withDescription("comma-separated tables to stream (schema.table); others are skipped"), Flag.optional),
  startLsn: Flag.String("start-lsn").pipe(Flag.withDescription("start at this LSN (X/X) instead of the slot's or checkpoint's position"), Flag.optional),
  protoVersion: Flag.Int("proto-version").pipe(Flag.withDescription("pgoutput protocol version 1–4 (default: the newest the server speaks)"), Flag.optional),
  binary: Flag.Boolean("binary").pipe(Flag.withDescription("ask pgoutput for binary values"), Flag.withDefault(false)),
  output: Flag.String("output").pipe(Flag.withAlias("o"), Flag.withDescription("append NDJSON to this file ('-' = stdout, the default)"), Flag.optional),
  checkpoint: Flag.String("checkpoint").pipe(Flag.withDescription("file holding the last acknowledged LSN; a restart resumes there"), Flag.optional),
  snapshot: Flag.Boolean("snapshot").pipe(Flag.withDescription("copy the published tables first (new slot, exported snapshot), then stream"), Flag.withDefault(false)),
  transactions: Flag.Boolean("transactions").pipe(Flag.withDescription("also write begin/commit lines"), Flag.withDefault(false)),
  dropSlot: Flag.Boolean("drop-slot").pipe(Flag.withDescription("drop the slot (and a publication created by this run) at exit"), Flag.withDefault(false)),
  temporary: Flag.Boolean("temporary").pipe(Flag.withDescription("create the slot TEMPORARY (gone when the session ends)"), Flag.withDefault(false)),
  readBatching: Flag.String("read-batching").pipe(
    Flag.withDescription("over TCP, on a busy stream, after a small read stop reading this long (default 10ms, at most 100ms; off turns it off) so the server sends changes in batches: more changes/s, less CPU per change"),
    Flag.optional
  ),
  duration: Flag.String("duration").pipe(Flag.withDescription("stop after this long (e.g. 30s); default: until Ctrl-C"), Flag.optional),
  quiet: Flag.Boolean("quiet").pipe(Flag.withAlias("q"), Flag.withDescription("no status lines on stderr"), Flag.withDefault(false))
}

type Args = { readonly [K in keyof typeof flags]: (typeof flags)[K] extends Flag.Flag<infer A> ? A : Option.Option<string> }

const lsnText = (lsn: Lsn.Lsn | undefined) => (lsn === undefined ? undefined : Lsn.format(lsn))

/** One NDJSON line for an event, or undefined for events that are not written. */
export const eventLine = (e: Logical.LogicalEvent, withTransactions: boolean): string | undefined => {
  switch (e._tag) {
    case "Insert":
      return toJson({ op: "insert", lsn: Lsn.format(e.lsn), xid: e.xid, table: e.relation.qualifiedName, new: e.new })
    case "Update":
      return toJson({ op: "update", lsn: Lsn.format(e.lsn), xid: e.xid, table: e.relation.qualifiedName, key: e.key, old: e.old, new: e.new })
    case "Delete":
      return toJson({ op: "delete", lsn: Lsn.format(e.lsn), xid: e.xid, table: e.relation.qualifiedName, key: e.key, old: e.old })
    case "Truncate":
      return toJson({ op: "truncate", lsn: Lsn.format(e.lsn), xid: e.xid, tables: e.relations.map((r) => r.qualifiedName), cascade: e.cascade, restart_identity: e.restartIdentity })
    case "Begin":
      return withTransactions ? toJson({ op: "begin", lsn: Lsn.format(e.lsn), xid: e.xid, final_lsn: Lsn.format(e.finalLsn), commit_time: e.commitTime }) : undefined
    case "Commit":
      return withTransactions
        ? toJson({ op: "commit", lsn: Lsn.format(e.lsn), xid: e.xid, commit_lsn: Lsn.format(e.commitLsn), end_lsn: Lsn.format(e.endLsn), commit_time: e.commitTime })
        : undefined
    case "Message":
      return toJson({ op: "message", lsn: Lsn.format(e.lsn), xid: e.xid, transactional: e.transactional, prefix: e.prefix, content: new TextDecoder().decode(e.content) })
    default:
      return undefined
  }
}

const readCheckpoint = (file: string): Effect.Effect<Lsn.Lsn | undefined, CliFailure> =>
  Effect.try({
    try: () => {
      if (!Fs.existsSync(file)) return undefined
      const text = Fs.readFileSync(file, "utf8").trim()
      const lsn = Lsn.fromString(text.split(/\s+/)[0] ?? "")
      if (Option.isNone(lsn)) throw new Error(`not an LSN: "${text.slice(0, 40)}"`)
      return lsn.value
    },
    catch: (e) => ioFailure(`cannot read checkpoint ${file}`, e)
  })

const writeCheckpoint = (file: string, lsn: Lsn.Lsn): Effect.Effect<void, CliFailure> =>
  Effect.try({
    try: () => {
      Fs.writeFileSync(`${file}.tmp`, `${Lsn.format(lsn)}\n`)
      Fs.renameSync(`${file}.tmp`, file)
    },
    catch: (e) => ioFailure(`cannot write checkpoint ${file}`, e)
  })

const relationTableName = (name: string) => (name.includes(".") ? name : `public.${name}`)

export const runCdc = (args: Args) =>
  Effect.gen(function*() {
    markStopIsClean()
    const info = (s: string) => (args.quiet ? Effect.void : Effect.sync(() => process.stderr.write(`pgfx cdc: ${s}\n`)))
    let readBatchingMs: number | false | undefined
    if (Option.isSome(args.readBatching)) {
      readBatchingMs = args.readBatching.value === "off" ? false : parseDurationMs(args.readBatching.value)
      if (readBatchingMs === undefined || (readBatchingMs !== false && (readBatchingMs <= 0 || readBatchingMs > MAX_READ_BATCHING_MS))) {
        return yield* Effect.fail(new UsageError({ message: `--read-batching: "${args.readBatching.value}" is neither off nor a duration above 0 and at most ${MAX_READ_BATCHING_MS}ms` }))
      }
    }
    let durationMs: number | undefined
    if (Option.isSome(args.duration)) {
      durationMs = parseDurationMs(args.duration.value)
      if (durationMs === undefined) return yield* Effect.fail(new UsageError({ message: `--duration: cannot read "${args.duration.value}"` }))
    }
    let explicitStart: Lsn.Lsn | undefined
    if (Option.isSome(args.startLsn)) {
      const parsed = Lsn.fromString(args.startLsn.value)
      if (Option.isNone(parsed)) return yield* Effect.fail(new UsageError({ message: `--start-lsn: "${args.startLsn.value}" is not an LSN (X/X)` }))
      explicitStart = parsed.value
    }
    const protoVersion = Option.getOrUndefined(args.protoVersion)
    if (protoVersion !== undefined && (protoVersion < 1 || protoVersion > 4)) {
      return yield* Effect.fail(new UsageError({ message: "--proto-version must be 1, 2, 3 or 4" }))
    }
    const tables = Option.isSome(args.tables) ? args.tables.value.split(",").map((t) => t.trim()).filter((t) => t.length > 0) : undefined
    const tableFilter = tables === undefined ? undefined : new Set(tables.map(relationTableName))

    const input = toConfigInput(args.conninfo, args)
    const config = yield* resolveConfig(input)
    const sql = yield* Connection.make(config)

    // The publication.
    const pub = yield* sql.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [args.publication])
    let createdPublication = false
    if (pub.rows.length === 0) {
      const target = tables === undefined ? "ALL TABLES" : `TABLE ${tables.map(quoteTableName).join(", ")}`
      yield* sql.query(`CREATE PUBLICATION ${Commands.quoteIdentifier(args.publication)} FOR ${target}`)
      createdPublication = true
      yield* info(`created publication ${args.publication} for ${target.toLowerCase()}`)
    }

    // The slot: reuse (refusing an active one), or create.
    const slot = yield* sql.query<{ active_pid: number | null; plugin: string | null; slot_type: string }>(
      "SELECT active_pid, plugin, slot_type FROM pg_replication_slots WHERE slot_name = $1",
      [args.slot]
    )
    const existing = slot.rows[0]
    if (existing !== undefined) {
      if (existing.active_pid !== null) {
        return yield* Effect.fail(new CliFailure({ message: `replication slot ${args.slot} is active for PID ${existing.active_pid}; stop the other consumer or choose another --slot` }))
      }
      if (existing.slot_type !== "logical" || existing.plugin !== "pgoutput") {
        return yield* Effect.fail(new CliFailure({ message: `replication slot ${args.slot} is not a pgoutput logical slot (${existing.slot_type}, ${existing.plugin ?? "no plugin"})` }))
      }
      if (args.snapshot) return yield* Effect.fail(new UsageError({ message: `--snapshot needs a new slot, but ${args.slot} exists` }))
    }

    const checkpointFile = Option.getOrUndefined(args.checkpoint)
    const checkpointed = checkpointFile === undefined ? undefined : yield* readCheckpoint(checkpointFile)
    const out = yield* openOutput(Option.getOrUndefined(args.output), { append: true })

    let startLsn = explicitStart ?? checkpointed ?? Lsn.zero
    let createInStream: Logical.LogicalOptions["createSlot"] = undefined
    if (existing === undefined) {
      if (args.snapshot) {
        startLsn = yield* snapshotCopy(config, args, out, tableFilter)
      } else if (args.temporary) {
        createInStream = { temporary: true, snapshot: "nothing" }
      } else {
        const replication = yield* Connection.make({ ...config, replication: "database" })
        const created = yield* Commands.createReplicationSlot(replication, args.slot, Commands.logical("pgoutput"), { snapshot: "nothing" })
        yield* info(`created slot ${args.slot} at ${lsnText(created.consistentPoint) ?? "?"}`)
      }
    } else {
      yield* info(`reusing slot ${args.slot}${checkpointed !== undefined ? `, resuming at checkpoint ${Lsn.format(checkpointed)}` : ""}`)
    }

    if (args.dropSlot && !args.temporary) {
      yield* Effect.addFinalizer(() =>
        sql.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [args.slot]).pipe(
          Effect.retry({ times: 50, while: (e) => e._tag === "PgServerError" && e.code === "55006", schedule: Schedule.spaced("100 millis") }),
          Effect.andThen(createdPublication ? sql.query(`DROP PUBLICATION IF EXISTS ${Commands.quoteIdentifier(args.publication)}`) : Effect.void),
          Effect.andThen(info(`dropped slot ${args.slot}`)),
          Effect.catch((e) => info(`could not drop slot ${args.slot}: ${e.message}`))
        )
      )
    }

    const repl = yield* Logical.make(config, {
      slot: args.slot,
      publications: [args.publication],
      protocolVersion: protoVersion as 1 | 2 | 3 | 4 | undefined,
      binary: args.binary,
      messages: true,
      startLsn,
      createSlot: createInStream,
      statusInterval: Duration.seconds(5),
      readBatching: readBatchingMs // milliseconds, false, or undefined (the default)
    })
    yield* info(`streaming slot ${args.slot} (publication ${args.publication}) to ${out.name}`)
    if (createInStream !== undefined) {
      // The temporary slot captures commits from its consistent point on: say when that is.
      yield* Effect.forkScoped(
        Effect.ignore(Effect.flatMap(repl.ready, (r) => info(`created temporary slot ${args.slot} at ${lsnText(r.createdSlot?.consistentPoint) ?? "?"}`)))
      )
    }
    let lines = 0
    let transactions = 0
    let lastAck: Lsn.Lsn | undefined
    let reconnects = 0
    const stream = repl.changes.pipe(
      Stream.runForEachArray((events) =>
        Effect.gen(function*() {
          let commit: Lsn.Lsn | undefined
          let text = ""
          for (const e of events) {
            if (tableFilter !== undefined && (e._tag === "Insert" || e._tag === "Update" || e._tag === "Delete") && !tableFilter.has(e.relation.qualifiedName)) {
              continue
            }
            const line = eventLine(e, args.transactions)
            if (line !== undefined) {
              text += line + "\n"
              lines++
            }
            if (e._tag === "Commit") {
              commit = e.endLsn
              transactions++
            }
          }
          if (text.length > 0) yield* out.write(text)
          if (commit === undefined) return
          // Written (and handed to the OS) before it is checkpointed and acknowledged: at-least-once.
          yield* out.flush
          if (checkpointFile !== undefined) yield* writeCheckpoint(checkpointFile, commit)
          lastAck = commit
          yield* repl.ack(commit)
          const r = repl.positions().reconnects
          if (r > reconnects) {
            reconnects = r
            yield* info(`reconnected (${r}), resumed after ${Lsn.format(commit)}`)
          }
        })
      )
    )
    yield* Effect.addFinalizer(() =>
      Effect.andThen(
        Effect.ignore(out.flush),
        info(`stopped: ${lines} lines, ${transactions} transactions, acknowledged ${lastAck === undefined ? "nothing new" : Lsn.format(lastAck)}`)
      )
    )
    if (durationMs === undefined) yield* stream
    else yield* Effect.raceFirst(stream, Effect.sleep(Duration.millis(durationMs)))
    yield* Effect.ignore(repl.flush)
  })

/** Creates the slot with an exported snapshot and writes the published tables' rows; returns the consistent point. */
const snapshotCopy = (
  config: PgConfig,
  args: Args,
  out: Output,
  tableFilter: ReadonlySet<string> | undefined
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const replication = yield* Connection.make({ ...config, replication: "database" })
      const created = yield* Commands.createReplicationSlot(replication, args.slot, Commands.logical("pgoutput"), {
        snapshot: "export",
        temporary: args.temporary
      })
      if (created.snapshotName === undefined || created.consistentPoint === undefined) {
        return yield* Effect.fail(new CliFailure({ message: "the server exported no snapshot for the new slot" }))
      }
      const conn = yield* Connection.make(config)
      yield* conn.simple(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '${created.snapshotName}'`)
      const published = yield* conn.query<{ schemaname: string; tablename: string }>(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
        [args.publication]
      )
      let rows = 0
      for (const t of published.rows) {
        const name = `${t.schemaname}.${t.tablename}`
        if (tableFilter !== undefined && !tableFilter.has(name)) continue
        // COPY BINARY inside the exported snapshot, rows decoded to typed values.
        yield* copyToRows(conn, [t.schemaname, t.tablename]).pipe(
          Stream.runForEachArray((batch) =>
            Effect.suspend(() => {
              let text = ""
              for (const row of batch) text += toJson({ op: "snapshot", lsn: Lsn.format(created.consistentPoint!), table: name, new: row }) + "\n"
              rows += batch.length
              return out.write(text)
            })
          )
        )
      }
      yield* conn.simple("COMMIT")
      yield* out.flush
      if (!args.quiet) process.stderr.write(`pgfx cdc: snapshot of ${published.rows.length} table(s), ${rows} rows; streaming from ${Lsn.format(created.consistentPoint)}\n`)
      return created.consistentPoint
    })
  )

export const command = Command.make("cdc", flags, (args) => Effect.scoped(runCdc(args))).pipe(
  Command.withDescription(
    "Logical replication (pgoutput) to NDJSON: one typed change event per line with column names; slot and publication created or reused; a checkpoint file makes a restart resume (at-least-once)."
  ),
  Command.withExamples([
    { command: "pgfx cdc postgresql://repl@db/app --slot app_cdc --checkpoint app.lsn -o changes.ndjson", description: "stream changes to a file; rerun to resume" },
    { command: "pgfx cdc -d app --tables public.orders --snapshot --transactions", description: "initial copy of orders, then its changes, with begin/commit lines" },
    { command: "pgfx cdc -d app --slot tmp --temporary --duration 30s", description: "a throwaway slot for 30 seconds" },
    { command: "pgfx cdc -d app --slot app_cdc --drop-slot", description: "stream until Ctrl-C, then drop the slot" }
  ])
)


