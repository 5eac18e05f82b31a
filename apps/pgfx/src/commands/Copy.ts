/**
 * `pgfx copy`: table or query → file/stdout (CSV, TSV, NDJSON, COPY binary); file/stdin → table;
 * database → database. Everything streams with backpressure: memory stays bounded whatever the size.
 *
 * Invariants:
 * - Exactly one direction per run: `--output` (export, the default), `--input` (import), or
 *   `--from URL --to URL` (database to database); anything else is a usage error (exit 2).
 * - An export to a regular file is written as `<file>.partial` and renamed when complete, so an
 *   interrupted or failed copy never leaves a truncated file that looks complete (Output.ts).
 * - An import is one COPY (CSV/TSV/binary) or one transaction (NDJSON): a failure leaves the table as
 *   it was.
 * - The summary line (rows, bytes, time) goes to stderr unless `--quiet`; data goes only to the output.
 */
import * as Fs from "node:fs"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { Command, Flag } from "effect/cli"
import * as Connection from "@pgfx/connection/Connection"
import { copyFrom, copyFromFile, copyTo, copyToFile } from "@pgfx/connection/Copy"
import { encodeTextRow } from "@pgfx/connection/CopyFormat"
import { resolve as resolveConfig } from "@pgfx/connection/PgConfig"
import { conninfoArgument, connectionFlags, toConfigInput } from "../ConnectionFlags.ts"
import { CliFailure, UsageError } from "../Errors.ts"
import { toJson } from "../Json.ts"
import { ioFailure, openOutput } from "../Output.ts"
import { formatBytes, ProgressBar } from "../Progress.ts"
import { setInterruptedNote } from "../Shutdown.ts"

export type CopyFormat = "csv" | "tsv" | "ndjson" | "binary"

/** A table name as the user wrote it (`schema.table` or `table`), quoted for SQL. */
export const quoteTableName = (name: string): string =>
  name.split(".").map((part) => (/^[a-z_][a-z0-9_$]*$/.test(part) ? part : `"${part.replace(/"/g, "\"\"")}"`)).join(".")

const copyOptions = (format: CopyFormat, header: boolean): string => {
  switch (format) {
    case "csv":
      return header ? "(FORMAT csv, HEADER true)" : "(FORMAT csv)"
    case "tsv":
      return header ? "(FORMAT text, HEADER true)" : "(FORMAT text)"
    case "binary":
      return "(FORMAT binary)"
    case "ndjson":
      return ""
  }
}

const countNewlines = (buf: Uint8Array): number => {
  let n = 0
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) n++
  return n
}

const flags = {
  conninfo: conninfoArgument,
  ...connectionFlags,
  table: Flag.String("table").pipe(Flag.withAlias("t"), Flag.withDescription("table to copy ([schema.]name)"), Flag.optional),
  query: Flag.String("query").pipe(Flag.withAlias("c"), Flag.withDescription("a SELECT to export instead of a table"), Flag.optional),
  output: Flag.String("output").pipe(Flag.withAlias("o"), Flag.withDescription("export to this file ('-' = stdout, the default)"), Flag.optional),
  input: Flag.String("input").pipe(Flag.withAlias("i"), Flag.withDescription("import this file into --table ('-' = stdin)"), Flag.optional),
  from: Flag.String("from").pipe(Flag.withDescription("source database (URI or keyword string) for database → database"), Flag.optional),
  to: Flag.String("to").pipe(Flag.withDescription("target database for database → database"), Flag.optional),
  targetTable: Flag.String("target-table").pipe(Flag.withDescription("target table for --from/--to (default: --table)"), Flag.optional),
  format: Flag.Literals("format", ["csv", "tsv", "ndjson", "binary"] as const).pipe(
    Flag.withAlias("f"),
    Flag.withDescription("data format (default csv; database → database always uses binary)"),
    Flag.withDefault("csv" as const)
  ),
  header: Flag.Boolean("header").pipe(Flag.withDescription("CSV/TSV: a header line (written on export, skipped on import)"), Flag.withDefault(false)),
  quiet: Flag.Boolean("quiet").pipe(Flag.withAlias("q"), Flag.withDescription("no progress and no summary on stderr"), Flag.withDefault(false))
}

type CopyArgs = {
  readonly [K in keyof typeof flags]: (typeof flags)[K] extends Flag.Flag<infer A> ? A : Option.Option<string>
}

const sourceSql = (table: Option.Option<string>, query: Option.Option<string>): Effect.Effect<string, UsageError> => {
  if (Option.isSome(query) && Option.isSome(table)) return Effect.fail(new UsageError({ message: "give --table or --query, not both" }))
  if (Option.isSome(query)) return Effect.succeed(query.value)
  if (Option.isSome(table)) return Effect.succeed(`SELECT * FROM ${quoteTableName(table.value)}`)
  return Effect.fail(new UsageError({ message: "nothing to copy: give --table or --query" }))
}

const summary = (quiet: boolean, text: string) => (quiet ? Effect.void : Effect.sync(() => process.stderr.write(`${text}\n`)))

const elapsed = (start: number) => `${((Date.now() - start) / 1000).toFixed(2)} s`

const exportData = (args: CopyArgs) =>
  Effect.gen(function*() {
    const sql = yield* sourceSql(args.table, args.query)
    const conn = yield* Connection.make(toConfigInput(args.conninfo, args))
    const out = yield* openOutput(Option.getOrUndefined(args.output))
    setInterruptedNote(
      out.name === "stdout"
        ? "interrupted: the export to stdout is incomplete"
        : `interrupted: the export was not written (${out.name} untouched, its .partial file removed)`
    )
    const progress = new ProgressBar({ quiet: args.quiet || out.name === "stdout" && process.stdout.isTTY === true, label: "export" })
    const start = Date.now()
    if (args.format === "ndjson") {
      yield* conn.stream(sql).pipe(
        Stream.runForEachArray((rows) =>
          Effect.suspend(() => {
            let text = ""
            for (const row of rows) text += toJson(row) + "\n"
            progress.update(rows.length, Buffer.byteLength(text))
            return out.write(text)
          })
        )
      )
    } else {
      const copySql = `COPY (${sql}) TO STDOUT ${copyOptions(args.format, args.header)}`
      const binary = args.format === "binary"
      if (out.fd !== undefined) {
        // A file (or FIFO, or device): written straight from the socket's reads, as psql's \copy does, with
        // blocking writes (this command has nothing else to do meanwhile).
        yield* copyToFile(conn, copySql, { fd: out.fd, name: out.name }, {
          blockingWrites: true,
          // COPY TO sends one CopyData per row (text/CSV); binary rows are counted at the end.
          onData: (messages, bytes) => progress.update(binary ? 0 : messages, bytes)
        }).pipe(Effect.catchTag("CopyFileError", (e) => Effect.fail(new CliFailure({ message: e.message, cause: e }))))
      } else yield* copyTo(conn, copySql).pipe(
        Stream.runForEachArray((payloads) =>
          Effect.suspend(() => {
            let bytes = 0
            for (const p of payloads) bytes += p.length
            // COPY TO sends one CopyData per row (text/CSV); binary rows are counted at the end.
            progress.update(binary ? 0 : payloads.length, bytes)
            return out.writeChunks(payloads)
          })
        )
      )
      if (args.header && !binary && progress.rows > 0) progress.rows--
    }
    yield* out.finish
    progress.done()
    const rows = args.format === "binary" ? "" : `${progress.rows} rows, `
    yield* summary(args.quiet, `pgfx copy: ${rows}${formatBytes(progress.bytes)} to ${out.name} in ${elapsed(start)}`)
  })

/** The input as a Stream of byte chunks (for NDJSON and stdin; other formats read a file with copyFromFile). */
const inputStream = (path: string): Stream.Stream<Uint8Array, ReturnType<typeof ioFailure>> => {
  const name = path === "-" ? "stdin" : path
  return Stream.suspend(() => {
    const readable = path === "-" ? process.stdin : Fs.createReadStream(path, { highWaterMark: 256 * 1024 })
    return Stream.fromAsyncIterable(readable as AsyncIterable<Uint8Array>, (e) => ioFailure(`cannot read ${name}`, e))
  })
}

const importData = (args: CopyArgs, path: string) =>
  Effect.gen(function*() {
    if (Option.isNone(args.table)) return yield* Effect.fail(new UsageError({ message: "--input needs --table" }))
    if (Option.isSome(args.query)) return yield* Effect.fail(new UsageError({ message: "--query is for export; import needs --table" }))
    const table = quoteTableName(args.table.value)
    setInterruptedNote(`interrupted: the import was rolled back, ${args.table.value} is unchanged`)
    let totalBytes: number | undefined
    if (path !== "-") {
      totalBytes = yield* Effect.try({ try: () => Fs.statSync(path).size, catch: (e) => ioFailure(`cannot read ${path}`, e) })
    }
    const conn = yield* Connection.make(toConfigInput(args.conninfo, args))
    const progress = new ProgressBar({ quiet: args.quiet, totalBytes, label: "import" })
    const start = Date.now()
    const count = (chunk: Uint8Array) => progress.update(args.format === "binary" ? 0 : countNewlines(chunk), chunk.length)
    const counted = inputStream(path).pipe(Stream.tap((chunk) => Effect.sync(() => count(chunk))))
    const copySql = `COPY ${table} FROM STDIN ${copyOptions(args.format, args.header)}`
    let rows: number
    if (args.format === "ndjson") {
      // Each line lands in a temporary jsonb column, then jsonb_populate_record maps it onto the table's
      // types (arrays, jsonb, numeric…) in the server: one transaction, all or nothing.
      yield* conn.simple("BEGIN; CREATE TEMP TABLE pgfx_ndjson_in (doc jsonb) ON COMMIT DROP")
      const lines = counted.pipe(
        Stream.decodeText,
        Stream.splitLines,
        Stream.filter((line) => line.trim().length > 0),
        Stream.mapArray((lines) => [lines.map((l) => encodeTextRow([l])).join("")])
      )
      const loaded = Effect.gen(function*() {
        yield* Stream.run(lines, copyFrom(conn, "COPY pgfx_ndjson_in (doc) FROM STDIN"))
        const result = yield* conn.query(`INSERT INTO ${table} SELECT r.* FROM pgfx_ndjson_in, jsonb_populate_record(NULL::${table}, doc) r`)
        yield* conn.simple("COMMIT")
        return result.rowCount ?? 0
      })
      rows = yield* Effect.onError(loaded, () => Effect.ignore(conn.simple("ROLLBACK")))
    } else if (path !== "-") {
      // A file goes straight into CopyData messages (no Node stream); reads may block the event loop,
      // which has nothing else to do here (see copyFromFile's blockingReads).
      rows = yield* copyFromFile(conn, copySql, path, { blockingReads: true, onRead: count }).pipe(Effect.catchTag("CopyFileError", (e) => Effect.fail(new CliFailure({ message: e.message, cause: e }))))
    } else {
      rows = yield* Stream.run(counted, copyFrom(conn, copySql))
    }
    progress.rows = rows
    progress.done()
    yield* summary(args.quiet, `pgfx copy: ${rows} rows, ${formatBytes(progress.bytes)} into ${args.table.value} in ${elapsed(start)}`)
  })

const databaseToDatabase = (args: CopyArgs, from: string, to: string) =>
  Effect.gen(function*() {
    const sql = yield* sourceSql(args.table, args.query)
    const target = Option.getOrUndefined(args.targetTable) ?? Option.getOrUndefined(args.table)
    if (target === undefined) return yield* Effect.fail(new UsageError({ message: "--query needs --target-table" }))
    setInterruptedNote(`interrupted: the copy was rolled back, ${target} is unchanged`)
    const source = yield* Connection.make(toConfigInput(from))
    const destination = yield* Connection.make(toConfigInput(to))
    const progress = new ProgressBar({ quiet: args.quiet, label: "copy" })
    const start = Date.now()
    const rows = yield* copyTo(source, `COPY (${sql}) TO STDOUT (FORMAT binary)`).pipe(
      Stream.mapArray((payloads) => {
        for (const payload of payloads) progress.update(0, payload.length)
        return payloads
      }),
      Stream.run(copyFrom(destination, `COPY ${quoteTableName(target)} FROM STDIN (FORMAT binary)`))
    )
    progress.rows = rows
    progress.done()
    yield* summary(args.quiet, `pgfx copy: ${rows} rows, ${formatBytes(progress.bytes)} into ${target} in ${elapsed(start)}`)
  })

export const command = Command.make("copy", flags, (args) =>
  Effect.scoped(
    Effect.gen(function*() {
      const from = Option.getOrUndefined(args.from)
      const to = Option.getOrUndefined(args.to)
      const input = Option.getOrUndefined(args.input)
      if (from !== undefined || to !== undefined) {
        if (from === undefined || to === undefined) return yield* Effect.fail(new UsageError({ message: "--from and --to go together" }))
        if (input !== undefined || Option.isSome(args.output)) {
          return yield* Effect.fail(new UsageError({ message: "--from/--to copy between databases; drop --input/--output" }))
        }
        // Validate both settings before connecting (a bad string is a usage error, exit 2).
        yield* resolveConfig(toConfigInput(from))
        yield* resolveConfig(toConfigInput(to))
        return yield* databaseToDatabase(args, from, to)
      }
      if (input !== undefined) {
        if (Option.isSome(args.output)) return yield* Effect.fail(new UsageError({ message: "give --input or --output, not both" }))
        return yield* importData(args, input)
      }
      return yield* exportData(args)
    })
  )).pipe(
    Command.withDescription(
      "Copy data: a table or query to a file or stdout (CSV, TSV, NDJSON, COPY binary), a file or stdin into a table, or between databases — streamed with backpressure."
    ),
    Command.withExamples([
      { command: "pgfx copy postgresql://app@db/app -t orders -o orders.csv --header", description: "export a table as CSV" },
      { command: "pgfx copy -d app -c \"select * from orders where total > 100\" -f ndjson", description: "a query as NDJSON on stdout" },
      { command: "pgfx copy -d app -t orders -i orders.csv --header", description: "import a CSV file" },
      { command: "cat rows.tsv | pgfx copy -d app -t orders -f tsv -i -", description: "import TSV from stdin" },
      { command: "pgfx copy --from postgresql://src/app --to postgresql://dst/app -t orders", description: "database to database (COPY binary)" }
    ])
  )
