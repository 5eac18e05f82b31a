/**
 * B3: 1,000,000 rows × 5 columns (int, text, timestamptz, float8, md5 text), fully decoded,
 * streamed (rows consumed as they arrive) and buffered (the whole result as one array).
 *
 * Invariants:
 * - Every contender decodes every column to its JS value (int and float8 → number, timestamptz →
 *   Date, text → string) and touches every row (sums the int column, checked against n(n+1)/2);
 *   the note shows the decoded value types of a row, so the rows are comparable.
 * - Streaming contenders never hold the result: peak RSS says how much each keeps in memory.
 * - One untimed warm-up query of WARMUP_ROWS rows precedes the timed one.
 */
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { describeRow, skipped, startTimer } from "../harness.ts"
import { effectSqlLayer, pgClient, pgfxInput, postgresJs } from "../clients.ts"

const ROWS = 1_000_000
/** As much work as the timed query (see copyFixtures.ts WARMUP_ROWS). */
const WARMUP_ROWS = 1_000_000
const sqlFor = (n: number) =>
  `select i, 'text value ' || i as t, now() as ts, i * 1.5::float8 as f, md5(i::text) as h from generate_series(1, ${n}) i`
const SQL = sqlFor(ROWS)
const STREAMED = "streamed"
const BUFFERED = "buffered"

/** Sums column `i` of every row and checks the total, so every row is touched and none is missing. */
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

/**
 * pgfx streamed, either way a user consumes rows one at a time: `stream` with `Stream.runForEach`, or
 * `forEach`, a plain callback called as rows are decoded (postgres.js' `.forEach`).
 */
const pgfxStreamed = (api: "stream" | "forEach") => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Stream = await import("effect/Stream")
  const Connection = await import("@pgfx/connection/Connection")
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const conn = yield* Connection.make(pgfxInput(ctx, "tcp"))
        const run = (sql: string, tally: Tally): import("effect/Effect").Effect<unknown, import("@pgfx/connection/PgError").PgError> =>
          api === "forEach"
            ? conn.forEach<Record<string, unknown>>(sql, (row) => tally.add(row))
            : Stream.runForEach(conn.stream<Record<string, unknown>>(sql), (row) => Effect.sync(() => tally.add(row)))
        const warm = new Tally()
        yield* run(sqlFor(WARMUP_ROWS), warm)
        warm.finish(WARMUP_ROWS)
        const tally = new Tally()
        const stop = startTimer()
        yield* run(SQL, tally)
        return stop(ROWS, undefined, tally.finish(ROWS))
      })
    )
  )
}

const pgfxQuery = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Connection = await import("@pgfx/connection/Connection")
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const conn = yield* Connection.make(pgfxInput(ctx, "tcp"))
        const run = (sql: string, n: number) =>
          Effect.map(conn.query<Record<string, unknown>>(sql), (r) => {
            const tally = new Tally()
            for (const row of r.rows) tally.add(row)
            return tally.finish(n)
          })
        yield* run(sqlFor(WARMUP_ROWS), WARMUP_ROWS)
        // Off the warm-up's stack first, so startTimer's GC can collect what it left.
        yield* Effect.yieldNow
        const stop = startTimer({ collect: true })
        const note = yield* run(SQL, ROWS)
        return stop(ROWS, undefined, note)
      })
    )
  )
}

const postgresForEach = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const sql = await postgresJs(ctx)
  const run = async (query: string, n: number) => {
    const tally = new Tally()
    await sql.unsafe(query).forEach((row) => tally.add(row))
    return tally.finish(n)
  }
  await run(sqlFor(WARMUP_ROWS), WARMUP_ROWS)
  const stop = startTimer()
  const note = await run(SQL, ROWS)
  const outcome = stop(ROWS, undefined, note)
  await sql.end()
  return outcome
}

const postgresCursor = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const sql = await postgresJs(ctx)
  const run = async (query: string, n: number) => {
    const tally = new Tally()
    for await (const rows of sql.unsafe(query).cursor(1000)) for (const row of rows) tally.add(row)
    return tally.finish(n)
  }
  await run(sqlFor(WARMUP_ROWS), WARMUP_ROWS)
  const stop = startTimer()
  const note = await run(SQL, ROWS)
  const outcome = stop(ROWS, undefined, note)
  await sql.end()
  return outcome
}

const pgCursor = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  let Cursor: typeof import("pg-cursor").default
  try {
    Cursor = (await import("pg-cursor")).default
  } catch {
    return skipped("pg-cursor is not installed")
  }
  const client = await pgClient(ctx)
  const run = async (query: string, n: number) => {
    const tally = new Tally()
    const cursor = client.query(new Cursor(query)) as unknown as InstanceType<typeof Cursor>
    for (;;) {
      const rows = await cursor.read(1000)
      if (rows.length === 0) break
      for (const row of rows) tally.add(row as Record<string, unknown>)
    }
    await cursor.close()
    return tally.finish(n)
  }
  await run(sqlFor(WARMUP_ROWS), WARMUP_ROWS)
  const stop = startTimer()
  const note = await run(SQL, ROWS)
  const outcome = stop(ROWS, undefined, note)
  await client.end()
  return outcome
}

const pgQuery = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const client = await pgClient(ctx)
  const run = async (query: string, n: number) => {
    const tally = new Tally()
    for (const row of (await client.query(query)).rows) tally.add(row)
    return tally.finish(n)
  }
  await run(sqlFor(WARMUP_ROWS), WARMUP_ROWS)
  const stop = startTimer({ collect: true })
  const note = await run(SQL, ROWS)
  const outcome = stop(ROWS, undefined, note)
  await client.end()
  return outcome
}

const postgresQuery = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const sql = await postgresJs(ctx)
  const run = async (query: string, n: number) => {
    const tally = new Tally()
    for (const row of await sql.unsafe(query)) tally.add(row)
    return tally.finish(n)
  }
  await run(sqlFor(WARMUP_ROWS), WARMUP_ROWS)
  const stop = startTimer({ collect: true })
  const note = await run(SQL, ROWS)
  const outcome = stop(ROWS, undefined, note)
  await sql.end()
  return outcome
}

const effectSqlQuery = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const { PgClient } = await import("@effect/sql-pg")
  const layer = await effectSqlLayer(ctx)
  return Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const run = (query: string, n: number) =>
        Effect.map(sql.unsafe<Record<string, unknown>>(query), (rows) => {
          const tally = new Tally()
          for (const row of rows) tally.add(row)
          return tally.finish(n)
        })
      yield* run(sqlFor(WARMUP_ROWS), WARMUP_ROWS)
      // Off the warm-up's stack first, so startTimer's GC can collect what it left.
      yield* Effect.yieldNow
      const stop = startTimer({ collect: true })
      const note = yield* run(SQL, ROWS)
      return stop(ROWS, undefined, note)
    }).pipe(Effect.provide(layer))
  )
}

/** Reference points for peak RSS: the client loaded and connected, one `select 1`, nothing else. */
const idlePgfx = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Connection = await import("@pgfx/connection/Connection")
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const conn = yield* Connection.make(pgfxInput(ctx, "tcp"))
        const stop = startTimer()
        yield* conn.query("select 1")
        return stop(1)
      })
    )
  )
}

const idlePostgres = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const sql = await postgresJs(ctx)
  const stop = startTimer()
  await sql`select 1`
  const outcome = stop(1)
  await sql.end()
  return outcome
}

const idleNode = async (): Promise<WorkerOutcome> => startTimer()(1)

const IDLE = "RSS reference: client loaded and connected, one SELECT 1"

const contenders: ReadonlyArray<Contender> = [
  { id: "pgfx-stream", label: "pgfx stream", group: STREAMED, isPgfx: true, run: pgfxStreamed("stream") },
  { id: "pgfx-foreach", label: "pgfx forEach (a callback per row)", group: STREAMED, isPgfx: true, run: pgfxStreamed("forEach") },
  { id: "postgres-foreach", label: "postgres.js .forEach", group: STREAMED, run: postgresForEach },
  { id: "postgres-cursor", label: "postgres.js .cursor(1000)", group: STREAMED, run: postgresCursor },
  { id: "pg-cursor", label: "pg + pg-cursor (1000)", group: STREAMED, run: pgCursor },
  { id: "pgfx-query", label: "pgfx query", group: BUFFERED, isPgfx: true, run: pgfxQuery },
  { id: "pg", label: "pg 8.23", group: BUFFERED, run: pgQuery },
  { id: "postgres", label: "postgres.js 3.4", group: BUFFERED, run: postgresQuery },
  { id: "effect-sql", label: "@effect/sql-pg 4", group: BUFFERED, run: effectSqlQuery },
  { id: "idle-pgfx", label: "pgfx", group: IDLE, isPgfx: true, rssOnly: true, run: idlePgfx },
  { id: "idle-postgres", label: "postgres.js", group: IDLE, rssOnly: true, run: idlePostgres },
  { id: "idle-node", label: "the worker alone (Node 24 + type stripping, no client)", group: IDLE, rssOnly: true, run: idleNode }
]

export const benchmark: Benchmark = {
  name: "B3",
  title: "1,000,000 rows × 5 columns, fully decoded, over TCP loopback",
  unit: "row",
  unitPlural: "rows",
  defaultRounds: 3,
  needsServer: true,
  contenders,
  goals: [
    { _tag: "Ratio", label: "streamed: pgfx vs postgres.js .forEach", pgfx: "pgfx-stream", peers: ["postgres-foreach"], atLeast: 1.0 },
    { _tag: "Rss", label: "streamed: pgfx peak RSS", contender: "pgfx-stream", maxMB: 80 },
    { _tag: "Ratio", label: "streamed: pgfx forEach vs postgres.js .forEach", pgfx: "pgfx-foreach", peers: ["postgres-foreach"], atLeast: 1.0 },
    { _tag: "Rss", label: "streamed: pgfx forEach peak RSS", contender: "pgfx-foreach", maxMB: 80 },
    { _tag: "Ratio", label: "buffered: pgfx vs pg", pgfx: "pgfx-query", peers: ["pg"], atLeast: 1.5 }
  ]
}
