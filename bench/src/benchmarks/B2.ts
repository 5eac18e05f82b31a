/**
 * B2: 100,000 `SELECT $1::int` with up to 1,000 in flight on ONE connection.
 *
 * Invariants:
 * - One connection per contender; at most IN_FLIGHT queries are outstanding at any time (fibers
 *   with bounded concurrency, or promise lanes that each await their previous query); each
 *   query's result is checked against its parameter.
 * - Each contender runs in its best single-connection mode: pgfx pipelines by itself, pg with
 *   `pipeline: true` (pg 8.23 has it), postgres.js pipelines by itself (`max: 1`), @effect/sql-pg
 *   with `multiplex` on its one connection, pgbench with `\startpipeline … \endpipeline`.
 */
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { startTimer } from "../harness.ts"
import { effectSqlLayer, lanes, pgClient, pgfxInput, postgresJs, type Via } from "../clients.ts"
import { runPgbench } from "../pgbench.ts"

const QUERIES = 100_000
const IN_FLIGHT = 1_000
const WARMUP = 100_000
const SQL = "select $1::int as x"
const GROUP = `SELECT $1::int, ${IN_FLIGHT} in flight, 1 connection`

const check = (value: unknown, expected: number) => {
  if (Number(value) !== expected) throw new Error(`SELECT $1::int returned ${String(value)} for ${expected}`)
}

const pgfx = (via: Via) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Connection = await import("@pgfx/connection/Connection")
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const conn = yield* Connection.make({ ...pgfxInput(ctx, via), pipelineDepth: IN_FLIGHT })
        const all = (n: number) =>
          Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            (i) =>
              Effect.map(conn.query<ReadonlyArray<unknown>>(SQL, [i], { rowMode: "array" }), (r) => check(r.rows[0]![0], i)),
            { concurrency: IN_FLIGHT, discard: true }
          )
        yield* all(WARMUP)
        const stop = startTimer()
        yield* all(QUERIES)
        return stop(QUERIES)
      })
    )
  )
}

/**
 * pgfx's explicit pipeline API (`conn.pipeline`), used as libpq's pipeline mode is by pgbench: two
 * lanes, each sending 500 statements as one segment (one Sync, so the server flushes once per segment;
 * PostgreSQL's semantics: an error would skip the rest of the segment) and waiting for them before the
 * next 500 — at most 1,000 in flight, like the others. With `syncEach`, every statement is its own segment
 * (its own Sync, as the fiber API and every Node client send them): the least client work there is for that
 * protocol shape, so its rate is what the server allows with one flush per statement.
 */
const pgfxPipeline = (syncEach: boolean) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Connection = await import("@pgfx/connection/Connection")
  const LANES = 2
  const PER_PIPELINE = IN_FLIGHT / LANES
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const conn = yield* Connection.make(pgfxInput(ctx, "tcp"))
        const lane = (first: number, n: number) =>
          Effect.gen(function*() {
            for (let at = first; at < first + n; at += PER_PIPELINE) {
              const segment = Array.from({ length: PER_PIPELINE }, (_, k) => ({ sql: SQL, params: [at + k] }))
              const outs = yield* conn.pipeline(syncEach ? segment.map((statement) => [statement]) : [segment], { rowMode: "array" })
              outs.flat().forEach((o, k) => {
                if (o._tag !== "Success") throw new Error(`statement ${at + k} failed: ${o._tag}`)
                check((o.result.rows[0] as unknown as ReadonlyArray<unknown>)[0], at + k)
              })
            }
          })
        const all = (n: number) =>
          Effect.forEach(Array.from({ length: LANES }, (_, l) => l), (l) => lane((l * n) / LANES, n / LANES), {
            concurrency: LANES,
            discard: true
          })
        yield* all(WARMUP)
        const stop = startTimer()
        yield* all(QUERIES)
        return stop(QUERIES)
      })
    )
  )
}

const pg = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const client = await pgClient(ctx, { pipeline: true })
  const once = async (i: number) => check((await client.query({ text: SQL, values: [i], rowMode: "array" })).rows[0][0], i)
  await lanes(IN_FLIGHT, WARMUP, once)
  const stop = startTimer()
  await lanes(IN_FLIGHT, QUERIES, once)
  const outcome = stop(QUERIES)
  await client.end()
  return outcome
}

const postgres = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const sql = await postgresJs(ctx)
  const once = async (i: number) => check((await sql`select ${i}::int as x`)[0]!["x"], i)
  await lanes(IN_FLIGHT, WARMUP, once)
  const stop = startTimer()
  await lanes(IN_FLIGHT, QUERIES, once)
  const outcome = stop(QUERIES)
  await sql.end()
  return outcome
}

const effectSql = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const { PgClient } = await import("@effect/sql-pg")
  const layer = await effectSqlLayer(ctx, { multiplexConcurrency: IN_FLIGHT })
  return Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const all = (n: number) =>
        Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) => Effect.map(sql`select ${i}::int as x`, (rows) => check(rows[0]!["x"], i)),
          { concurrency: IN_FLIGHT, discard: true }
        )
      yield* all(WARMUP)
      const stop = startTimer()
      yield* all(QUERIES)
      return stop(QUERIES)
    }).pipe(Effect.provide(layer))
  )
}

const pgbench = (ctx: BenchContext) =>
  runPgbench(ctx, {
    name: "B2-pipeline",
    script: `\\set x random(1, 1000000)\n\\startpipeline\n${"select :x::int;\n".repeat(IN_FLIGHT)}\\endpipeline\n`,
    transactions: QUERIES / IN_FLIGHT,
    queriesPerTransaction: IN_FLIGHT,
    protocol: "prepared"
  })

const contenders: ReadonlyArray<Contender> = [
  { id: "pgfx", label: "pgfx, 1000 fibers", group: GROUP, isPgfx: true, run: pgfx("tcp") },
  { id: "pgfx-unix", label: "pgfx, 1000 fibers, unix socket", group: GROUP, isPgfx: true, run: pgfx("unix") },
  { id: "pgfx-pipeline", label: "pgfx explicit pipeline (conn.pipeline), 2 × 500 per Sync", group: GROUP, isPgfx: true, run: pgfxPipeline(false) },
  {
    id: "pgfx-pipeline-sync-each",
    label: "pgfx explicit pipeline, a Sync after each statement (the fibers' protocol shape)",
    group: GROUP,
    isPgfx: true,
    run: pgfxPipeline(true)
  },
  { id: "pg", label: "pg 8.23, pipeline: true, 1000 promises", group: GROUP, run: pg },
  { id: "postgres", label: "postgres.js 3.4, max 1, 1000 promises", group: GROUP, run: postgres },
  { id: "effect-sql", label: "@effect/sql-pg 4, 1 connection, multiplex", group: GROUP, run: effectSql },
  { id: "pgbench-pipeline", label: "pgbench pipeline (libpq), 1000 per pipeline", group: GROUP, subprocess: true, run: pgbench }
]

export const benchmark: Benchmark = {
  name: "B2",
  title: `${QUERIES.toLocaleString("en")} SELECT $1::int, up to ${IN_FLIGHT.toLocaleString("en")} in flight on one connection`,
  unit: "query",
  unitPlural: "queries",
  defaultRounds: 3,
  needsServer: true,
  contenders,
  goals: [
    { _tag: "Ratio", label: "pgfx vs best Node client", pgfx: "pgfx", peers: ["pg", "postgres", "effect-sql"], atLeast: 2 },
    { _tag: "Ratio", label: "pgfx vs pgbench pipeline", pgfx: "pgfx", peers: ["pgbench-pipeline"], atLeast: 0.7 },
    { _tag: "Ratio", label: "pgfx explicit pipeline vs best Node client", pgfx: "pgfx-pipeline", peers: ["pg", "postgres", "effect-sql"], atLeast: 2 },
    { _tag: "Ratio", label: "pgfx explicit pipeline vs pgbench pipeline", pgfx: "pgfx-pipeline", peers: ["pgbench-pipeline"], atLeast: 0.7 }
  ]
}
