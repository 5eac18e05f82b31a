/**
 * B4: COPY FROM STDIN of 1,000,000 text rows (int, text, timestamptz, float8, md5 text) read from a file,
 * into an UNLOGGED table, beside pg-copy-streams, postgres.js `.writable()`, `psql \copy`, and the
 * server reading the same file itself (`COPY … FROM '/path'`: no client, no socket).
 *
 * Invariants:
 * - Every round truncates the table, copies the whole file once untimed (a warm-up as long as the timed
 *   copy: a JIT-compiled client spends the first ~100,000 rows compiling its hot path on background threads,
 *   which counts as client CPU; a 50,000-row warm-up left that inside the timed copy), truncates again, then
 *   times one COPY of the whole file. The table is checked afterwards against the file's checksums (every
 *   column) and the client's own row count where it reports one.
 * - Every client streams the file in 64 KiB chunks (node:fs read streams; pgfx's copyFromFile its own
 *   64 KiB reads; psql its own reads), so no client holds the file in memory. One pgfx row shows
 *   copyFromFile's default 1 MiB reads, beside pg-copy-streams fed 1 MiB chunks (the same read size on
 *   both sides), and one the Stream path (`Stream.run(fileStream, copyFrom(…))`).
 * - The server-only figure runs over node-postgres but the client only sends one statement: its client
 *   CPU is nil; its throughput is what the server can do alone, the ceiling for every client.
 */
import * as Fs from "node:fs"
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { startTimer } from "../harness.ts"
import { pgClient, postgresJs, type Via, withPgfx } from "../clients.ts"
import { checkChecksum, checksumSql, ensureTextData, psql, psqlValue, ROWS, TEXT_COLUMNS, type TextData, textData, withBytes } from "./copyFixtures.ts"

const TABLE = "b4_rows"
const GROUP = "COPY FROM STDIN, text format, from a file"
const CHUNK = 64 * 1024

const readStream = (path: string, chunk = CHUNK) => Fs.createReadStream(path, { highWaterMark: chunk })

/** The common round: warm-up, timed copy, checks. `copy` returns the client's row count when it has one. */
const round = async (
  data: TextData,
  exec: (sql: string) => Promise<unknown>,
  copy: (path: string) => Promise<number | undefined>
): Promise<WorkerOutcome> => {
  await exec(`truncate ${TABLE}`)
  await copy(data.file)
  await exec(`truncate ${TABLE}`)
  const stop = startTimer()
  const count = await copy(data.file)
  const outcome = stop(ROWS)
  if (count !== undefined && count !== ROWS) throw new Error(`COPY reported ${count} rows, expected ${ROWS}`)
  checkChecksum(TABLE, await exec(checksumSql(TABLE)), data.checksum)
  return withBytes(outcome, data.bytes)
}

const pgfx = (via: Via) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Stream = await import("effect/Stream")
  const { copyFrom } = await import("@pgfx/connection/Copy")
  return withPgfx(ctx, via, (conn, exec) => {
    const copy = (path: string) =>
      Effect.runPromise(
        Stream.fromAsyncIterable(readStream(path) as AsyncIterable<Uint8Array>, (e) => e).pipe(
          Stream.run(copyFrom(conn, `copy ${TABLE} from stdin`))
        )
      )
    return round(textData(), exec, copy)
  })
}

/** `copyFromFile`: the file read straight into CopyData messages, in `readSize` reads. */
const pgfxFile = (via: Via, readSize: number, blockingReads = false) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const { copyFromFile } = await import("@pgfx/connection/Copy")
  return withPgfx(ctx, via, (conn, exec) => {
    const copy = (path: string) => Effect.runPromise(copyFromFile(conn, `copy ${TABLE} from stdin`, path, { readSize, blockingReads }))
    return round(textData(), exec, copy)
  })
}

/** pg-copy-streams fed by a node:fs read stream of `chunk`-byte reads (each chunk one CopyData message). */
const pgCopyStreams = (chunk: number) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { from } = await import("pg-copy-streams")
  const { pipeline } = await import("node:stream/promises")
  const client = await pgClient(ctx)
  const exec = async (sql: string) => (await client.query(sql)).rows[0]?.["checksum"]
  const copy = async (path: string) => {
    const sink = client.query(from(`copy ${TABLE} from stdin`)) as unknown as ReturnType<typeof from>
    await pipeline(readStream(path, chunk), sink)
    return sink.rowCount
  }
  const outcome = await round(textData(), exec, copy)
  await client.end()
  return outcome
}

const postgresWritable = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { pipeline } = await import("node:stream/promises")
  const sql = await postgresJs(ctx)
  const exec = async (query: string) => (await sql.unsafe(query))[0]?.["checksum"]
  const copy = async (path: string) => {
    const sink = await sql.unsafe(`copy ${TABLE} from stdin`).writable()
    await pipeline(readStream(path), sink)
    return undefined
  }
  const outcome = await round(textData(), exec, copy)
  await sql.end()
  return outcome
}

/** psql's `\copy` (libpq): the time and CPU of the psql process, startup and connection included (~10 ms). */
const psqlCopy = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const data = textData()
  const exec = (sql: string) => psqlValue(ctx, sql)
  await exec(`truncate ${TABLE}`)
  await psql(ctx, [`\\copy ${TABLE} from '${data.file}'`])
  await exec(`truncate ${TABLE}`)
  const run = await psql(ctx, [`\\copy ${TABLE} from '${data.file}'`])
  if (!run.output.includes(`COPY ${ROWS}`)) throw new Error(`psql said: ${run.output.trim()}`)
  checkChecksum(TABLE, await exec(checksumSql(TABLE)), data.checksum)
  return withBytes({ _tag: "Sample", sample: { ops: ROWS, seconds: run.seconds, cpuUs: run.cpuUs } }, data.bytes)
}

/** The server reads the file itself: the ceiling for any client. */
const serverFile = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const client = await pgClient(ctx)
  const exec = async (sql: string) => (await client.query(sql)).rows[0]?.["checksum"]
  const copy = async (path: string) => (await client.query(`copy ${TABLE} from '${path}'`)).rowCount ?? undefined
  const outcome = await round(textData(), exec, copy)
  await client.end()
  return outcome
}

const contenders: ReadonlyArray<Contender> = [
  { id: "pgfx", label: "pgfx copyFromFile (64 KiB reads)", group: GROUP, isPgfx: true, run: pgfxFile("tcp", CHUNK) },
  { id: "pgfx-blocking", label: "pgfx copyFromFile (64 KiB blocking reads, as psql)", group: GROUP, isPgfx: true, run: pgfxFile("tcp", CHUNK, true) },
  { id: "pgfx-file-default", label: "pgfx copyFromFile (1 MiB reads, its default)", group: GROUP, isPgfx: true, run: pgfxFile("tcp", 1024 * 1024) },
  { id: "pgfx-unix", label: "pgfx copyFromFile (64 KiB reads), unix socket", group: GROUP, isPgfx: true, run: pgfxFile("unix", CHUNK) },
  { id: "pgfx-stream", label: "pgfx copyFrom (Node file stream → Stream)", group: GROUP, isPgfx: true, run: pgfx("tcp") },
  { id: "pg-copy-streams", label: "pg 8.23 + pg-copy-streams 7", group: GROUP, run: pgCopyStreams(CHUNK) },
  { id: "pg-copy-streams-1m", label: "pg 8.23 + pg-copy-streams 7 (1 MiB reads)", group: GROUP, run: pgCopyStreams(1024 * 1024) },
  { id: "postgres", label: "postgres.js 3.4 .writable()", group: GROUP, run: postgresWritable },
  { id: "psql", label: "psql \\copy (libpq)", group: GROUP, subprocess: true, run: psqlCopy },
  {
    id: "server-file",
    label: "server only: COPY … FROM '/file' (no client work)",
    group: GROUP,
    subprocess: true,
    run: serverFile
  }
]

export const benchmark: Benchmark = {
  name: "B4",
  title: `COPY FROM STDIN of ${ROWS.toLocaleString("en")} text rows into an UNLOGGED table, over TCP loopback`,
  unit: "row",
  unitPlural: "rows",
  defaultRounds: 3,
  needsServer: true,
  contenders,
  prepare: async (ctx) => {
    ensureTextData(ctx)
    await psql(ctx, [`drop table if exists ${TABLE}`, `create unlogged table ${TABLE} (${TEXT_COLUMNS})`], ["-q"])
  },
  goals: [
    { _tag: "Ratio", label: "pgfx vs the server reading the file itself", pgfx: "pgfx", peers: ["server-file"], atLeast: 0.97 },
    {
      _tag: "Ratio",
      label: "pgfx client CPU ≤ 0.7× pg-copy-streams', i.e. rows per CPU-second",
      pgfx: "pgfx",
      peers: ["pg-copy-streams"],
      atLeast: 1.43,
      metric: "cpu"
    },
    {
      _tag: "Ratio",
      label: "the same with blockingReads (reads on the event loop, as psql)",
      pgfx: "pgfx-blocking",
      peers: ["pg-copy-streams"],
      atLeast: 1.43,
      metric: "cpu"
    },
    {
      _tag: "Ratio",
      label: "the same with 1 MiB reads on both sides (copyFromFile's default; pg-copy-streams fed 1 MiB chunks)",
      pgfx: "pgfx-file-default",
      peers: ["pg-copy-streams-1m"],
      atLeast: 1.43,
      metric: "cpu"
    }
  ]
}
