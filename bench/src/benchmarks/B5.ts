/**
 * B5: COPY TO STDOUT of a 1,000,000-row table (the rows of B4's file: int, text, timestamptz, float8, md5
 * text), the data counted and dropped, beside pg-copy-streams, postgres.js `.readable()`, `psql \copy … to
 * '/dev/null'`, and the server writing to /dev/null itself; and pgfx's `copyToFile` into '/dev/null' as psql.
 *
 * Invariants:
 * - The table is loaded once, before any worker (untimed, by the server from B4's data file).
 * - Every Node contender counts the bytes and the line ends of everything it receives (the same
 *   `LineCounter` work for all) and checks them against the row count and the size of the table's text
 *   form, computed by SQL in the contender's own session (its TimeZone decides how timestamps print).
 *   psql and the server-only figure are checked by their command tag (`COPY 1000000`).
 * - One untimed warm-up COPY of WARMUP_ROWS rows precedes the timed one.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { startTimer } from "../harness.ts"
import { pgClient, postgresJs, type Via, withPgfx } from "../clients.ts"
import { copyOutBytesSql, ensureTextData, LineCounter, psql, ROWS, TEXT_COLUMNS, WARMUP_ROWS, withBytes } from "./copyFixtures.ts"

const TABLE = "b5_rows"
const GROUP = "COPY TO STDOUT, text format, counted and dropped"
const COPY_SQL = `copy ${TABLE} to stdout`
const WARM_SQL = `copy (select * from ${TABLE} limit ${WARMUP_ROWS}) to stdout`

/** Warm-up, timed copy, checks. `copy` feeds every received chunk to the counter. */
const round = async (
  exec: (sql: string) => Promise<unknown>,
  copy: (sql: string, counter: LineCounter) => Promise<void>
): Promise<WorkerOutcome> => {
  const warm = new LineCounter()
  await copy(WARM_SQL, warm)
  if (warm.lines !== WARMUP_ROWS) throw new Error(`warm-up received ${warm.lines} lines`)
  const counter = new LineCounter()
  const stop = startTimer()
  await copy(COPY_SQL, counter)
  const outcome = stop(ROWS)
  counter.check(ROWS, Number(await exec(copyOutBytesSql(TABLE))))
  return withBytes(outcome, counter.bytes)
}

const pgfx = (via: Via, api: "copyTo" | "copyToBytes" = "copyTo") => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Stream = await import("effect/Stream")
  const copyOut = (await import("@pgfx/connection/Copy"))[api]
  return withPgfx(ctx, via, (conn, exec) => {
    const copy = (sql: string, counter: LineCounter) =>
      Effect.runPromise(
        Stream.runForEachArray(copyOut(conn, sql), (payloads) =>
          Effect.sync(() => {
            for (let i = 0; i < payloads.length; i++) counter.add(payloads[i]!)
          }))
      )
    return round(exec, copy)
  })
}

/**
 * pgfx `copyToFile` into '/dev/null', as psql's `\copy`: the warm-up goes to a real file, whose lines and
 * bytes are checked; the timed COPY is checked by its row count and the table's text size.
 */
const pgfxFile = (blockingWrites: boolean) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const { copyToFile } = await import("@pgfx/connection/Copy")
  return withPgfx(ctx, "tcp", async (conn, exec) => {
    const warmFile = Path.join(Os.tmpdir(), `pgfx-b5-${process.pid}.tsv`)
    try {
      const warmRows = await Effect.runPromise(copyToFile(conn, WARM_SQL, warmFile, { blockingWrites }))
      const warm = new LineCounter()
      const fd = Fs.openSync(warmFile, "r")
      const block = new Uint8Array(1 << 20)
      for (let n = Fs.readSync(fd, block); n > 0; n = Fs.readSync(fd, block)) warm.add(block.subarray(0, n))
      Fs.closeSync(fd)
      if (warmRows !== WARMUP_ROWS || warm.lines !== WARMUP_ROWS) throw new Error(`warm-up wrote ${warm.lines} lines (${warmRows} rows)`)
    } finally {
      Fs.rmSync(warmFile, { force: true })
    }
    const stop = startTimer()
    const rows = await Effect.runPromise(copyToFile(conn, COPY_SQL, "/dev/null", { blockingWrites }))
    const outcome = stop(ROWS)
    if (rows !== ROWS) throw new Error(`copyToFile reported ${rows} rows`)
    return withBytes(outcome, Number(await exec(copyOutBytesSql(TABLE))))
  })
}

const pgCopyStreams = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { to } = await import("pg-copy-streams")
  const client = await pgClient(ctx)
  const exec = async (sql: string) => (await client.query(sql)).rows[0]?.["bytes"]
  const copy = async (sql: string, counter: LineCounter) => {
    const source = client.query(to(sql)) as unknown as ReturnType<typeof to>
    for await (const chunk of source) counter.add(chunk as Uint8Array)
  }
  const outcome = await round(exec, copy)
  await client.end()
  return outcome
}

const postgresReadable = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const sql = await postgresJs(ctx)
  const exec = async (query: string) => (await sql.unsafe(query))[0]?.["bytes"]
  const copy = async (query: string, counter: LineCounter) => {
    const source = await sql.unsafe(query).readable()
    for await (const chunk of source) counter.add(chunk as Uint8Array)
  }
  const outcome = await round(exec, copy)
  await sql.end()
  return outcome
}

/** psql's `\copy … to '/dev/null'` (libpq): the psql process's time and CPU, startup and connection included (~10 ms). */
const psqlCopy = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  await psql(ctx, [`\\copy (select * from ${TABLE} limit ${WARMUP_ROWS}) to '/dev/null'`])
  const run = await psql(ctx, [`\\copy ${TABLE} to '/dev/null'`])
  if (!run.output.includes(`COPY ${ROWS}`)) throw new Error(`psql said: ${run.output.trim()}`)
  return { _tag: "Sample", sample: { ops: ROWS, seconds: run.seconds, cpuUs: run.cpuUs } }
}

/** The server writes /dev/null itself: no socket, no client. */
const serverFile = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const client = await pgClient(ctx)
  await client.query(`copy (select * from ${TABLE} limit ${WARMUP_ROWS}) to '/dev/null'`)
  const stop = startTimer()
  const result = await client.query(`copy ${TABLE} to '/dev/null'`)
  const outcome = stop(ROWS)
  if (result.rowCount !== ROWS) throw new Error(`COPY reported ${result.rowCount} rows`)
  await client.end()
  return outcome
}

const contenders: ReadonlyArray<Contender> = [
  { id: "pgfx", label: "pgfx copyTo (a payload per row)", group: GROUP, isPgfx: true, run: pgfx("tcp") },
  { id: "pgfx-bytes", label: "pgfx copyToBytes (a chunk per read)", group: GROUP, isPgfx: true, run: pgfx("tcp", "copyToBytes") },
  { id: "pgfx-unix", label: "pgfx copyTo, unix socket", group: GROUP, isPgfx: true, run: pgfx("unix") },
  { id: "pgfx-file", label: "pgfx copyToFile → '/dev/null' (as psql)", group: GROUP, isPgfx: true, run: pgfxFile(false) },
  { id: "pgfx-file-blocking", label: "pgfx copyToFile → '/dev/null', blockingWrites (psql's mode)", group: GROUP, isPgfx: true, run: pgfxFile(true) },
  { id: "pg-copy-streams", label: "pg 8.23 + pg-copy-streams 7", group: GROUP, run: pgCopyStreams },
  { id: "postgres", label: "postgres.js 3.4 .readable()", group: GROUP, run: postgresReadable },
  { id: "psql", label: "psql \\copy … to '/dev/null' (libpq)", group: GROUP, subprocess: true, run: psqlCopy },
  { id: "server-file", label: "server only: COPY … TO '/dev/null' (no client work)", group: GROUP, subprocess: true, run: serverFile }
]

export const benchmark: Benchmark = {
  name: "B5",
  title: `COPY TO STDOUT of ${ROWS.toLocaleString("en")} text rows, over TCP loopback`,
  unit: "row",
  unitPlural: "rows",
  defaultRounds: 3,
  needsServer: true,
  contenders,
  prepare: async (ctx) => {
    const data = ensureTextData(ctx)
    await psql(
      ctx,
      [
        `drop table if exists ${TABLE}`,
        `create unlogged table ${TABLE} (${TEXT_COLUMNS})`,
        `copy ${TABLE} from '${data.file}'`,
        `vacuum analyze ${TABLE}`
      ],
      ["-q"]
    )
  },
  goals: [
    { _tag: "Ratio", label: "pgfx copyTo vs psql \\copy", pgfx: "pgfx", peers: ["psql"], atLeast: 1.0 },
    { _tag: "Ratio", label: "pgfx copyTo vs psql \\copy", pgfx: "pgfx", peers: ["psql"], atLeast: 1.0, metric: "cpu" },
    { _tag: "Ratio", label: "pgfx copyToBytes vs psql \\copy", pgfx: "pgfx-bytes", peers: ["psql"], atLeast: 1.0 },
    { _tag: "Ratio", label: "pgfx copyToFile vs psql \\copy, both to '/dev/null'", pgfx: "pgfx-file", peers: ["psql"], atLeast: 1.0 },
    { _tag: "Ratio", label: "pgfx copyToFile vs psql \\copy, both to '/dev/null'", pgfx: "pgfx-file", peers: ["psql"], atLeast: 1.0, metric: "cpu" }
  ]
}
