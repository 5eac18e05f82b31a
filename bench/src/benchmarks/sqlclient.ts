/**
 * sqlclient: B1–B3's workloads through `effect/sql`'s SqlClient on pgfx (`@pgfx/sql`), beside
 * `@effect/sql-pg` 4's PgClient and pgfx's own connection API, in the same run.
 *
 * Invariants:
 * - Same data and checks as B1 (sequential `select 1`), B2 (`select $1::int`, 1,000 in flight, one
 *   connection) and B3 (1,000,000 rows × 5 columns, fully decoded, buffered and streamed).
 * - Every contender uses ONE connection: the pgfx SqlClient over a pool of max 1 (the layer a user gets
 *   from `PgClient.layer`, as `@effect/sql-pg`'s contender) and over a single connection
 *   (`PgClient.fromConnection`); the raw pgfx connection is the baseline of each group, so the
 *   "vs pgfx" column of the SqlClient rows is the layer's overhead.
 * - effect/sql makes a client span per statement (with the query text and the client's attributes, timed
 *   with the clock) whatever the driver; the "effect tracing off" rows (`References.TracerEnabled` false,
 *   which makes those spans no-ops) show how much of the overhead is that span. They are information:
 *   the goals use the default (tracing on).
 */
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { describeRow, startTimer } from "../harness.ts"
import { effectSqlLayer, pgfxInput } from "../clients.ts"

const B1_QUERIES = 20_000
const B1_WARMUP = 20_000
const B2_QUERIES = 100_000
const B2_IN_FLIGHT = 1_000
const B2_WARMUP = 100_000
const B3_ROWS = 1_000_000
const B3_WARMUP_ROWS = 1_000_000
const b3Sql = (n: number) =>
  `select i, 'text value ' || i as t, now() as ts, i * 1.5::float8 as f, md5(i::text) as h from generate_series(1, ${n}) i`

const B1 = "B1: sequential SELECT 1"
const B2 = `B2: SELECT $1::int, ${B2_IN_FLIGHT} in flight, 1 connection`
const B3Q = "B3: 1,000,000 rows, buffered"
const B3S = "B3: 1,000,000 rows, streamed"

const checkOne = (value: unknown) => {
  if (Number(value) !== 1) throw new Error(`SELECT 1 returned ${String(value)}`)
}
const checkInt = (value: unknown, expected: number) => {
  if (Number(value) !== expected) throw new Error(`SELECT $1::int returned ${String(value)} for ${expected}`)
}

class Tally {
  sum = 0
  count = 0
  first: unknown = undefined
  add(row: Record<string, unknown>): void {
    if (this.first === undefined) this.first = row
    this.sum += row["i"] as number
    this.count++
  }
  finish(n: number): string {
    if (this.count !== n || this.sum !== (n * (n + 1)) / 2) throw new Error(`saw ${this.count} rows summing to ${this.sum}`)
    return `row: ${describeRow(this.first)}`
  }
}

/** "sql-conn-untraced": fromConnection with effect's tracing off (`References.TracerEnabled` false). */
type Kind = "raw" | "sql-pool" | "sql-conn" | "sql-conn-untraced" | "effect-sql"

/**
 * Runs `body` with a SqlClient of the given kind (or the raw connection), all on one connection.
 * `inFlight` sizes the pipeline for B2.
 */
const withClient = async <A>(
  ctx: BenchContext,
  kind: Kind,
  inFlight: number | undefined,
  body: (client: {
    readonly sql: import("effect/sql/SqlClient").SqlClient | undefined
    readonly conn: import("@pgfx/connection/Connection").ConnectionApi | undefined
  }) => import("effect/Effect").Effect<A, unknown>
): Promise<A> => {
  type Eff<X> = import("effect/Effect").Effect<X, unknown>
  const Effect = await import("effect/Effect")
  if (kind === "effect-sql") {
    const { PgClient } = await import("@effect/sql-pg")
    const layer = await effectSqlLayer(ctx, inFlight === undefined ? {} : { multiplexConcurrency: inFlight })
    return Effect.runPromise(
      Effect.flatMap(Effect.service(PgClient.PgClient), (sql) => body({ sql, conn: undefined })).pipe(Effect.provide(layer)) as Eff<A>
    )
  }
  const Connection = await import("@pgfx/connection/Connection")
  const Reactivity = await import("effect/reactivity/Reactivity")
  const References = await import("effect/References")
  const PgClient = await import("@pgfx/sql/PgClient")
  const input = { ...pgfxInput(ctx, "tcp"), ...(inFlight === undefined ? {} : { pipelineDepth: inFlight }) }
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        if (kind === "raw") {
          const conn = yield* Connection.make(input)
          return yield* body({ sql: undefined, conn })
        }
        if (kind === "sql-conn" || kind === "sql-conn-untraced") {
          const conn = yield* Connection.make(input)
          const sql = yield* PgClient.fromConnection(conn)
          return yield* body({ sql, conn: undefined })
        }
        const sql = yield* PgClient.make({
          ...input,
          maxConnections: 1,
          minConnections: 1,
          ...(inFlight === undefined ? {} : { multiplex: true, multiplexConcurrency: inFlight })
        })
        return yield* body({ sql, conn: undefined })
      }).pipe(
        Effect.provide(Reactivity.layer),
        (program) => kind === "sql-conn-untraced" ? Effect.provideService(program, References.TracerEnabled, false) : program
      )
    ) as import("effect/Effect").Effect<A, unknown>
  )
}

const b1 = (kind: Kind) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  return withClient(ctx, kind, undefined, ({ conn, sql }) =>
    Effect.gen(function*() {
      const once = conn !== undefined
        ? Effect.map(conn.query<ReadonlyArray<unknown>>("select 1 as x", undefined, { rowMode: "array" }), (r) => r.rows[0]![0])
        : Effect.map(sql!`select 1 as x`, (rows) => rows[0]!["x"])
      for (let i = 0; i < B1_WARMUP; i++) checkOne(yield* once)
      const stop = startTimer()
      for (let i = 0; i < B1_QUERIES; i++) checkOne(yield* once)
      return stop(B1_QUERIES)
    }))
}

const b2 = (kind: Kind) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  return withClient(ctx, kind, B2_IN_FLIGHT, ({ conn, sql }) =>
    Effect.gen(function*() {
      const once: (i: number) => import("effect/Effect").Effect<void, unknown> = conn !== undefined
        ? (i: number) =>
          Effect.map(conn.query<ReadonlyArray<unknown>>("select $1::int as x", [i], { rowMode: "array" }), (r) => checkInt(r.rows[0]![0], i))
        : (i: number) => Effect.map(sql!`select ${i}::int as x`, (rows) => checkInt(rows[0]!["x"], i))
      const all = (n: number) =>
        Effect.forEach(Array.from({ length: n }, (_, i) => i), once, { concurrency: B2_IN_FLIGHT, discard: true })
      yield* all(B2_WARMUP)
      const stop = startTimer()
      yield* all(B2_QUERIES)
      return stop(B2_QUERIES)
    }))
}

const b3Buffered = (kind: Kind) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  return withClient(ctx, kind, undefined, ({ conn, sql }) =>
    Effect.gen(function*() {
      const rowsOf = (text: string): import("effect/Effect").Effect<ReadonlyArray<Record<string, unknown>>, unknown> =>
        conn !== undefined
          ? Effect.map(conn.query<Record<string, unknown>>(text), (r) => r.rows)
          : sql!.unsafe<Record<string, unknown>>(text)
      const run = (n: number) =>
        Effect.map(rowsOf(b3Sql(n)), (rows) => {
          const tally = new Tally()
          for (const row of rows) tally.add(row)
          return tally.finish(n)
        })
      yield* run(B3_WARMUP_ROWS)
      // Off the warm-up's stack first, so startTimer's GC can collect what it left.
      yield* Effect.yieldNow
      const stop = startTimer({ collect: true })
      const note = yield* run(B3_ROWS)
      return stop(B3_ROWS, undefined, note)
    }))
}

const b3Streamed = (kind: Kind) => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Stream = await import("effect/Stream")
  return withClient(ctx, kind, undefined, ({ conn, sql }) =>
    Effect.gen(function*() {
      const streamOf = (text: string): import("effect/Stream").Stream<Record<string, unknown>, unknown> =>
        conn !== undefined ? conn.stream<Record<string, unknown>>(text) : sql!.unsafe<Record<string, unknown>>(text).stream
      const run = (n: number) => {
        const tally = new Tally()
        return Effect.map(Stream.runForEach(streamOf(b3Sql(n)), (row) => Effect.sync(() => tally.add(row))), () => tally.finish(n))
      }
      yield* run(B3_WARMUP_ROWS)
      const stop = startTimer()
      const note = yield* run(B3_ROWS)
      return stop(B3_ROWS, undefined, note)
    }))
}

const contenders: ReadonlyArray<Contender> = [
  { id: "b1-raw", label: "pgfx connection query", group: B1, isPgfx: true, run: b1("raw") },
  { id: "b1-sql", label: "pgfx SqlClient (PgClient.layer, pool max 1)", group: B1, isPgfx: true, run: b1("sql-pool") },
  { id: "b1-sql-conn", label: "pgfx SqlClient (fromConnection)", group: B1, isPgfx: true, run: b1("sql-conn") },
  {
    id: "b1-sql-conn-untraced",
    label: "pgfx SqlClient (fromConnection), effect tracing off",
    group: B1,
    isPgfx: true,
    run: b1("sql-conn-untraced")
  },
  { id: "b1-effect-sql", label: "@effect/sql-pg 4 (prepared)", group: B1, run: b1("effect-sql") },
  { id: "b2-raw", label: "pgfx connection query, 1000 fibers", group: B2, isPgfx: true, run: b2("raw") },
  { id: "b2-sql", label: "pgfx SqlClient (pool max 1, multiplex 1000), 1000 fibers", group: B2, isPgfx: true, run: b2("sql-pool") },
  { id: "b2-sql-conn", label: "pgfx SqlClient (fromConnection), 1000 fibers", group: B2, isPgfx: true, run: b2("sql-conn") },
  {
    id: "b2-sql-conn-untraced",
    label: "pgfx SqlClient (fromConnection), 1000 fibers, effect tracing off",
    group: B2,
    isPgfx: true,
    run: b2("sql-conn-untraced")
  },
  { id: "b2-effect-sql", label: "@effect/sql-pg 4, 1 connection, multiplex", group: B2, run: b2("effect-sql") },
  { id: "b3q-raw", label: "pgfx connection query", group: B3Q, isPgfx: true, run: b3Buffered("raw") },
  { id: "b3q-sql", label: "pgfx SqlClient sql.unsafe (pool max 1)", group: B3Q, isPgfx: true, run: b3Buffered("sql-pool") },
  { id: "b3q-effect-sql", label: "@effect/sql-pg 4 sql.unsafe", group: B3Q, run: b3Buffered("effect-sql") },
  { id: "b3s-raw", label: "pgfx connection stream", group: B3S, isPgfx: true, run: b3Streamed("raw") },
  { id: "b3s-sql", label: "pgfx SqlClient .stream (pool max 1)", group: B3S, isPgfx: true, run: b3Streamed("sql-pool") },
  { id: "b3s-effect-sql", label: "@effect/sql-pg 4 .stream", group: B3S, run: b3Streamed("effect-sql") }
]

export const benchmark: Benchmark = {
  name: "sqlclient",
  title: "B1–B3 through effect/sql's SqlClient: @pgfx/sql vs @effect/sql-pg 4 vs the raw pgfx connection",
  unit: "op",
  unitPlural: "ops",
  defaultRounds: 3,
  needsServer: true,
  contenders,
  // Client CPU per operation (metric "cpu"): robust when other processes compete for the two cores.
  goals: [
    { _tag: "Ratio", label: "B2: pgfx SqlClient (one connection) vs @effect/sql-pg, CPU", pgfx: "b2-sql-conn", peers: ["b2-effect-sql"], atLeast: 1.3, metric: "cpu" },
    { _tag: "Ratio", label: "B3 buffered: pgfx SqlClient vs @effect/sql-pg, CPU", pgfx: "b3q-sql", peers: ["b3q-effect-sql"], atLeast: 1.3, metric: "cpu" },
    { _tag: "Ratio", label: "B3 streamed: pgfx SqlClient vs @effect/sql-pg, CPU", pgfx: "b3s-sql", peers: ["b3s-effect-sql"], atLeast: 1.3, metric: "cpu" },
    { _tag: "Ratio", label: "B1: SqlClient overhead over the raw connection, CPU", pgfx: "b1-sql-conn", peers: ["b1-raw"], atLeast: 0.9, metric: "cpu" },
    { _tag: "Ratio", label: "B2: SqlClient overhead over the raw connection, CPU", pgfx: "b2-sql-conn", peers: ["b2-raw"], atLeast: 0.9, metric: "cpu" },
    { _tag: "Ratio", label: "B3 buffered: SqlClient overhead, CPU", pgfx: "b3q-sql", peers: ["b3q-raw"], atLeast: 0.9, metric: "cpu" },
    { _tag: "Ratio", label: "B3 streamed: SqlClient overhead, CPU", pgfx: "b3s-sql", peers: ["b3s-raw"], atLeast: 0.9, metric: "cpu" },
    { _tag: "Ratio", label: "B2: pgfx SqlClient over the pool (PgClient.layer) vs @effect/sql-pg, CPU", pgfx: "b2-sql", peers: ["b2-effect-sql"], atLeast: 1.3, metric: "cpu" }
  ]
}
