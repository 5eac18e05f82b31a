/**
 * Pipe: `copyTo` (and `copyToBytes`) on one connection piped into `copyFrom` on another (table → table through the client),
 * for narrow rows (B4's table: 1,000,000 rows of int, text, timestamptz, float8, md5 text, ~90 B each) and
 * wide rows (200,000 rows of ~1 KB), beside pg + pg-copy-streams piping the same way and the server alone
 * (`COPY … FROM` a file of the same rows: no client, no socket, the ceiling for any pipe).
 *
 * Invariants:
 * - Both ends are real: one connection reads the source table, the other writes an UNLOGGED target; the
 *   client holds at most its stream buffers (backpressure both ways, no deadlock: the sink is pulled only
 *   while the source flows).
 * - Every round truncates the target, pipes once untimed (the warm-up: as much work as the timed pipe, as in
 *   every benchmark here), truncates again, pipes, and checks the target's row count and `sum(i)` against the
 *   source's, and the row count the COPY reported.
 * - MB/s counts the COPY text bytes that crossed the client (the source's `COPY TO` size).
 */
import * as Fs from "node:fs"
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { startTimer } from "../harness.ts"
import { pgClient, withPgfx } from "../clients.ts"
import { ensureTextData, psql, psqlValue, ROWS, TEXT_COLUMNS, withBytes } from "./copyFixtures.ts"

const WIDE_ROWS = 200_000
const FILE_DIR = "/tmp/pgfx-bench-pipe"

interface Shape {
  readonly name: "narrow" | "wide"
  readonly rows: number
  readonly group: string
}
const NARROW: Shape = { name: "narrow", rows: ROWS, group: `narrow rows: ${ROWS.toLocaleString("en")} rows of B4's 5 columns` }
const WIDE: Shape = { name: "wide", rows: WIDE_ROWS, group: `wide rows: ${WIDE_ROWS.toLocaleString("en")} rows of ~1 KB` }

const source = (s: Shape) => `pipe_${s.name}_src`
const target = (s: Shape) => `pipe_${s.name}_dst`
const file = (s: Shape) => `${FILE_DIR}/${s.name}.tsv`
const checkSql = (table: string) => `select count(*)::text || ' ' || coalesce(sum(i), 0)::text as check from ${table}`

/** The common round: truncate, an untimed warm-up pipe of the same rows, truncate, timed pipe, checks. */
const round = async (
  shape: Shape,
  exec: (sql: string) => Promise<unknown>,
  pipe: () => Promise<{ readonly rows: number; readonly bytes: number }>
): Promise<WorkerOutcome> => {
  await exec(`truncate ${target(shape)}`)
  await pipe()
  await exec(`truncate ${target(shape)}`)
  const stop = startTimer()
  const piped = await pipe()
  const outcome = stop(shape.rows)
  if (piped.rows !== shape.rows) throw new Error(`COPY reported ${piped.rows} rows, expected ${shape.rows}`)
  const [want, got] = [await exec(checkSql(source(shape))), await exec(checkSql(target(shape)))]
  if (want !== got) throw new Error(`target ${String(got)} differs from source ${String(want)}`)
  return withBytes(outcome, piped.bytes)
}

const pgfx = (shape: Shape, api: "copyTo" | "copyToBytes" = "copyTo") => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Stream = await import("effect/Stream")
  const Copy = await import("@pgfx/connection/Copy")
  const copyOut = Copy[api]
  return withPgfx(ctx, "tcp", (from) =>
    withPgfx(ctx, "tcp", (to, exec) =>
      round(shape, exec, async () => {
        let bytes = 0
        const rows = await Effect.runPromise(
          copyOut(from, `copy ${source(shape)} to stdout`).pipe(
            Stream.mapArray((payloads) => {
              for (let i = 0; i < payloads.length; i++) bytes += payloads[i]!.length
              return payloads
            }),
            Stream.run(Copy.copyFrom(to, `copy ${target(shape)} from stdin`))
          )
        )
        return { rows, bytes }
      })))
}

const pgCopyStreams = (shape: Shape) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { from, to } = await import("pg-copy-streams")
  const { Transform } = await import("node:stream")
  const { pipeline } = await import("node:stream/promises")
  const [a, b] = [await pgClient(ctx), await pgClient(ctx)]
  const exec = async (sql: string) => (await b.query(sql)).rows[0]?.["check"]
  try {
    return await round(shape, exec, async () => {
      let bytes = 0
      const counter = new Transform({
        transform(chunk: Uint8Array, _encoding, done) {
          bytes += chunk.length
          done(null, chunk)
        }
      })
      const sink = b.query(from(`copy ${target(shape)} from stdin`)) as unknown as ReturnType<typeof from>
      await pipeline(a.query(to(`copy ${source(shape)} to stdout`)) as unknown as ReturnType<typeof to>, counter, sink)
      return { rows: Number(sink.rowCount), bytes }
    })
  } finally {
    await a.end()
    await b.end()
  }
}

/** The server reads a file of the same rows itself: no client, no socket. */
const serverFile = (shape: Shape) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const client = await pgClient(ctx)
  const exec = async (sql: string) => (await client.query(sql)).rows[0]?.["check"]
  try {
    return await round(shape, exec, async () => {
      const result = await client.query(`copy ${target(shape)} from '${file(shape)}'`)
      return { rows: result.rowCount ?? 0, bytes: Fs.statSync(file(shape)).size }
    })
  } finally {
    await client.end()
  }
}

const contendersOf = (shape: Shape): Array<Contender> => [
  { id: `pgfx-${shape.name}`, label: "pgfx copyTo → copyFrom", group: shape.group, isPgfx: true, run: pgfx(shape) },
  { id: `pgfx-bytes-${shape.name}`, label: "pgfx copyToBytes (a chunk per read) → copyFrom", group: shape.group, isPgfx: true, run: pgfx(shape, "copyToBytes") },
  { id: `pg-copy-streams-${shape.name}`, label: "pg 8.23 + pg-copy-streams 7, to → from", group: shape.group, run: pgCopyStreams(shape) },
  {
    id: `server-${shape.name}`,
    label: "server only: COPY … FROM a file of the same rows",
    group: shape.group,
    subprocess: true,
    run: serverFile(shape)
  }
]

export const benchmark: Benchmark = {
  name: "Pipe",
  title: "copyTo / copyToBytes on one connection piped into copyFrom on another, over TCP loopback",
  unit: "row",
  unitPlural: "rows",
  defaultRounds: 3,
  needsServer: true,
  contenders: [...contendersOf(NARROW), ...contendersOf(WIDE)],
  prepare: async (ctx) => {
    const data = ensureTextData(ctx)
    Fs.mkdirSync(FILE_DIR, { recursive: true })
    Fs.chmodSync(FILE_DIR, 0o777) // the server (user postgres) writes the reference files
    await psql(
      ctx,
      [
        `drop table if exists ${source(NARROW)}, ${target(NARROW)}, ${source(WIDE)}, ${target(WIDE)}`,
        `create unlogged table ${source(NARROW)} (${TEXT_COLUMNS})`,
        `copy ${source(NARROW)} from '${data.file}'`,
        `create unlogged table ${target(NARROW)} (like ${source(NARROW)})`,
        `create unlogged table ${source(WIDE)} as select i, repeat(md5(i::text), 30) as payload from generate_series(1, ${WIDE_ROWS}) i`,
        `create unlogged table ${target(WIDE)} (like ${source(WIDE)})`,
        `copy ${source(NARROW)} to '${file(NARROW)}'`,
        `copy ${source(WIDE)} to '${file(WIDE)}'`,
        `vacuum analyze ${source(NARROW)}, ${source(WIDE)}`
      ],
      ["-q"]
    )
    const rows = await psqlValue(ctx, `select count(*) from ${source(WIDE)}`)
    if (Number(rows) !== WIDE_ROWS) throw new Error(`wide source has ${rows} rows`)
  },
  goals: [
    { _tag: "Rate", label: "narrow rows: pgfx pipe", contender: "pgfx-narrow", extra: "MB/s", atLeast: 100 },
    { _tag: "Rate", label: "wide rows: pgfx pipe", contender: "pgfx-wide", extra: "MB/s", atLeast: 100 },
    { _tag: "Ratio", label: "narrow rows: pgfx vs pg-copy-streams", pgfx: "pgfx-narrow", peers: ["pg-copy-streams-narrow"], atLeast: 1.0 },
    { _tag: "Ratio", label: "wide rows: pgfx vs pg-copy-streams", pgfx: "pgfx-wide", peers: ["pg-copy-streams-wide"], atLeast: 1.0 },
    { _tag: "Ratio", label: "narrow rows: pgfx vs the server alone", pgfx: "pgfx-narrow", peers: ["server-narrow"], atLeast: 0.9 },
    { _tag: "Ratio", label: "wide rows: pgfx vs the server alone", pgfx: "pgfx-wide", peers: ["server-wide"], atLeast: 0.9 }
  ]
}
