/**
 * B1: 20,000 sequential `SELECT 1`, one at a time (each waits for the previous one's result).
 *
 * Invariants:
 * - Every contender connects first, runs an untimed warm-up of WARMUP queries, then times exactly
 *   QUERIES queries; connection setup is never timed.
 * - The result of every query is checked (one row holding 1), so nothing is skipped silently.
 */
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { startTimer } from "../harness.ts"
import { effectSqlLayer, pgClient, pgfxInput, postgresJs, type Via } from "../clients.ts"
import { runPgbench } from "../pgbench.ts"

const QUERIES = 20_000
const WARMUP = 20_000
const GROUP = "sequential SELECT 1"

const check = (value: unknown) => {
  if (Number(value) !== 1) throw new Error(`SELECT 1 returned ${String(value)}`)
}

const pgfx = (via: Via, protocol: "extended" | "simple") => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Connection = await import("@pgfx/connection/Connection")
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const conn = yield* Connection.make(pgfxInput(ctx, via))
        const once = protocol === "extended"
          ? Effect.map(conn.query<ReadonlyArray<unknown>>("select 1 as x", undefined, { rowMode: "array" }), (r) => r.rows[0]![0])
          : Effect.map(conn.simple("select 1 as x", { rowMode: "array" }), (r) => (r[0]!.rows[0] as unknown as ReadonlyArray<unknown>)[0])
        for (let i = 0; i < WARMUP; i++) check(yield* once)
        const stop = startTimer()
        for (let i = 0; i < QUERIES; i++) check(yield* once)
        return stop(QUERIES)
      })
    )
  )
}

const pg = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const client = await pgClient(ctx)
  const query = { text: "select 1 as x", rowMode: "array" }
  for (let i = 0; i < WARMUP; i++) check((await client.query(query)).rows[0][0])
  const stop = startTimer()
  for (let i = 0; i < QUERIES; i++) check((await client.query(query)).rows[0][0])
  const outcome = stop(QUERIES)
  await client.end()
  return outcome
}

const postgres = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const sql = await postgresJs(ctx)
  for (let i = 0; i < WARMUP; i++) check((await sql`select 1 as x`)[0]!["x"])
  const stop = startTimer()
  for (let i = 0; i < QUERIES; i++) check((await sql`select 1 as x`)[0]!["x"])
  const outcome = stop(QUERIES)
  await sql.end()
  return outcome
}

const effectSql = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const { PgClient } = await import("@effect/sql-pg")
  const layer = await effectSqlLayer(ctx)
  return Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const once = Effect.map(sql`select 1 as x`, (rows) => rows[0]!["x"])
      for (let i = 0; i < WARMUP; i++) check(yield* once)
      const stop = startTimer()
      for (let i = 0; i < QUERIES; i++) check(yield* once)
      return stop(QUERIES)
    }).pipe(Effect.provide(layer))
  )
}

const pgbench = (protocol: "prepared" | "simple") => (ctx: BenchContext) =>
  runPgbench(ctx, { name: `B1-${protocol}`, script: "select 1;\n", transactions: QUERIES, queriesPerTransaction: 1, protocol })

const contenders: ReadonlyArray<Contender> = [
  { id: "pgfx", label: "pgfx query (extended, prepared)", group: GROUP, isPgfx: true, run: pgfx("tcp", "extended") },
  { id: "pgfx-simple", label: "pgfx simple (simple protocol)", group: GROUP, isPgfx: true, run: pgfx("tcp", "simple") },
  { id: "pgfx-unix", label: "pgfx query, unix socket", group: GROUP, isPgfx: true, run: pgfx("unix", "extended") },
  { id: "pg", label: "pg 8.23 (simple protocol)", group: GROUP, run: pg },
  { id: "postgres", label: "postgres.js 3.4 (prepared)", group: GROUP, run: postgres },
  { id: "effect-sql", label: "@effect/sql-pg 4 (prepared)", group: GROUP, run: effectSql },
  { id: "pgbench-prepared", label: "pgbench -M prepared (libpq)", group: GROUP, subprocess: true, run: pgbench("prepared") },
  { id: "pgbench-simple", label: "pgbench -M simple (libpq)", group: GROUP, subprocess: true, run: pgbench("simple") }
]

export const benchmark: Benchmark = {
  name: "B1",
  title: `${QUERIES.toLocaleString("en")} sequential SELECT 1 over TCP loopback`,
  unit: "query",
  unitPlural: "queries",
  defaultRounds: 5,
  needsServer: true,
  contenders,
  goals: [
    { _tag: "Ratio", label: "pgfx vs best Node client", pgfx: "pgfx", peers: ["pg", "postgres", "effect-sql"], atLeast: 1.1 },
    { _tag: "Cpu", label: "pgfx client CPU per query", contender: "pgfx", maxUsPerOp: 10 }
  ]
}
