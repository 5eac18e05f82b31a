import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Stream } from "effect"
import { afterAll, beforeAll } from "vitest"
import { startTestServer, type TestServer } from "../../../testing/src/index.ts"
import * as Connection from "../src/Connection.ts"
import * as Pool from "../src/Pool.ts"
import { unixConfig } from "./helpers.ts"

let appCounter = 0
/** A unique application_name per pool, so pg_stat_activity counts exactly this pool's sessions. */
const appName = (label: string) => `pgfx_pool_${label}_${process.pid}_${++appCounter}`

const sessionsOf = (admin: Connection.ConnectionApi, app: string) =>
  Effect.map(
    admin.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where application_name = $1", [app]),
    (r) => r.rows[0]!.n
  )

const backendPid = (pool: Pool.PgPoolApi) =>
  Effect.map(pool.query<{ pid: number }>("select pg_backend_pid() as pid"), (r) => r.rows[0]!.pid)

/** Polls until `check` holds (the server needs a moment to drop a closed session from pg_stat_activity). */
const eventually = <E>(check: Effect.Effect<boolean, E>, timeoutMs = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error("condition not reached in time"))
      yield* Effect.sleep(Duration.millis(20))
    }
  })

describe("Pool: query surface", () => {
  it.live("query, simple, pipeline, stream and forEach through the PgPool service", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.PgPool
      const r = yield* pool.query<{ n: number }>("select $1::int + 1 as n", [41])
      assert.deepStrictEqual(r.rows, [{ n: 42 }])
      const s = yield* pool.simple("select 1 as a; select 2 as b")
      assert.deepStrictEqual(s.map((x) => x.rows), [[{ a: 1 }], [{ b: 2 }]])
      const p = yield* pool.pipeline([[{ sql: "select $1::int as x", params: [7] }], [{ sql: "select 1/0" }]])
      assert.strictEqual(p[0]![0]!._tag, "Success")
      assert.strictEqual(p[1]![0]!._tag, "Failure")
      const rows = yield* Stream.runCollect(pool.stream<{ i: number }>("select generate_series(1, 5000) as i"))
      const all = rows
      assert.strictEqual(all.length, 5000)
      assert.strictEqual(all[4999]!.i, 5000)
      let sum = 0
      const each = yield* pool.forEach<{ i: number }>("select generate_series(1, $1::int) as i", (row) => void (sum += row.i), [5000])
      assert.strictEqual(each.rowCount, 5000)
      assert.strictEqual(sum, 5000 * 5001 / 2)
      const stats = yield* pool.stats
      assert.isAtMost(stats.open, 3)
      assert.strictEqual(stats.used, 0)
    }).pipe(Effect.provide(Pool.layer(unixConfig(), { max: 3 }))))

  it.live("a server error leaves the session in the pool; withConnection pins one session", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 1 })
      const before = yield* backendPid(pool)
      const err = yield* Effect.flip(pool.query("select 1/0"))
      assert.strictEqual(err._tag, "PgServerError")
      assert.strictEqual(yield* backendPid(pool), before)
      const pids = yield* pool.withConnection((conn) =>
        Effect.all([
          Effect.map(conn.query<{ pid: number }>("select pg_backend_pid() as pid"), (r) => r.rows[0]!.pid),
          // The pool's own queries inside withConnection run on the pinned session.
          backendPid(pool),
          Effect.map(conn.simple("set application_name = 'pinned_session'"), () => conn.info.processId)
        ], { concurrency: "unbounded" })
      )
      assert.deepStrictEqual(pids, [before, before, before])
      assert.strictEqual((yield* pool.stats).retired, 0)
    }))

  it.live("resetSession returns a pinned session clean and keeps its prepared statements", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 1, resetSession: true })
      yield* pool.query("select $1::int as warm", [1])
      yield* pool.withConnection((conn) =>
        Effect.all([
          conn.simple("set search_path = pg_catalog, public; listen pgfx_reset_test"),
          conn.query("select pg_advisory_lock(4242)"),
          conn.simple("create temp table reset_me(x int)")
        ])
      )
      const r = yield* pool.query<{ sp: string; locks: number; listening: number; temps: number }>(
        "select current_setting('search_path') as sp, " +
          "(select count(*)::int from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) as locks, " +
          "(select count(*)::int from pg_listening_channels()) as listening, " +
          "(select count(*)::int from pg_class where relname = 'reset_me' and relpersistence = 't') as temps"
      )
      assert.deepStrictEqual(r.rows[0], { sp: "\"$user\", public", locks: 0, listening: 0, temps: 0 })
      // The statement cache is still valid (no DEALLOCATE ALL): the cached statement runs again.
      const again = yield* pool.query<{ warm: number }>("select $1::int as warm", [2])
      assert.deepStrictEqual(again.rows, [{ warm: 2 }])
      assert.strictEqual((yield* pool.stats).retired, 0)
    }))

  it.live("a plain query that leaves a transaction open gets its session discarded", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 1 })
      const first = yield* backendPid(pool)
      const table = `pgfx_pool_open_tx_${process.pid}`
      yield* pool.simple(`begin; create table ${table}(x int)`)
      // The next borrower gets a fresh session; the abandoned transaction was rolled back with the old one.
      const r = yield* pool.query<{ pid: number; found: string | null }>(
        "select pg_backend_pid() as pid, to_regclass($1)::text as found",
        [table]
      )
      assert.notStrictEqual(r.rows[0]!.pid, first)
      assert.strictEqual(r.rows[0]!.found, null)
      assert.strictEqual((yield* pool.stats).retired, 1)
    }))
})

describe("Pool: sizing and limits", () => {
  it.live("1,000 concurrent borrowers on a pool of 10: all succeed, never more than 10 sessions", () =>
    Effect.gen(function*() {
      const app = appName("thousand")
      const admin = yield* Connection.make(unixConfig())
      const pool = yield* Pool.make(unixConfig(18, { applicationName: app }), { max: 10 })
      let peak = 0
      const sampler = yield* Effect.forkChild(
        Effect.forever(
          Effect.andThen(
            Effect.map(sessionsOf(admin, app), (n) => {
              peak = Math.max(peak, n)
            }),
            Effect.sleep(Duration.millis(5))
          )
        )
      )
      const results = yield* Effect.forEach(
        Array.from({ length: 1000 }, (_, i) => i),
        (i) => Effect.map(pool.query<{ n: number }>("select $1::int as n, pg_sleep(0.002)", [i]), (r) => r.rows[0]!.n),
        { concurrency: "unbounded" }
      )
      yield* Fiber.interrupt(sampler)
      peak = Math.max(peak, yield* sessionsOf(admin, app))
      assert.deepStrictEqual(results, Array.from({ length: 1000 }, (_, i) => i))
      assert.isAtMost(peak, 10)
      assert.isAtLeast(peak, 2)
      const stats = yield* pool.stats
      assert.isAtMost(stats.opened, 10)
      assert.strictEqual(stats.retired, 0)
    }))

  it.live("acquire timeout when every session is pinned: TimeoutError(Acquire)", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 2, acquireTimeout: "200 millis" })
      const hold = yield* Deferred.make<void>()
      const pinned = yield* Deferred.make<void>()
      let pins = 0
      const holders = yield* Effect.forkChild(
        Effect.all(
          [1, 2].map(() =>
            pool.withConnection(() =>
              Effect.andThen(
                Effect.sync(() => {
                  if (++pins === 2) Deferred.doneUnsafe(pinned, Exit.void)
                }),
                Deferred.await(hold)
              )
            )
          ),
          { concurrency: "unbounded" }
        )
      )
      yield* Deferred.await(pinned)
      const started = Date.now()
      const err = yield* Effect.flip(pool.query("select 1"))
      const waited = Date.now() - started
      assert.strictEqual(err._tag, "TimeoutError")
      if (err._tag === "TimeoutError") assert.strictEqual(err.reason, "Acquire")
      assert.isAtLeast(waited, 150)
      assert.isBelow(waited, 2_000)
      yield* Deferred.succeed(hold, undefined)
      yield* Fiber.join(holders)
      const r = yield* pool.query<{ one: number }>("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
    }))

  it.live("idle timeout shrinks the pool back to min", () =>
    Effect.gen(function*() {
      const app = appName("idle")
      const admin = yield* Connection.make(unixConfig())
      const pool = yield* Pool.make(unixConfig(18, { applicationName: app }), {
        min: 1,
        max: 4,
        idleTimeout: "150 millis"
      })
      // Four pinned borrowers at once need four sessions.
      const latch = yield* Deferred.make<void>()
      let inside = 0
      yield* Effect.all(
        [1, 2, 3, 4].map(() =>
          pool.withConnection(() =>
            Effect.andThen(
              Effect.sync(() => {
                if (++inside === 4) Deferred.doneUnsafe(latch, Exit.void)
              }),
              Deferred.await(latch)
            )
          )
        ),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(yield* sessionsOf(admin, app), 4)
      yield* eventually(Effect.map(sessionsOf(admin, app), (n) => n === 1))
      const stats = yield* pool.stats
      assert.strictEqual(stats.open, 1)
      assert.strictEqual(stats.retired, 3)
      // The pool still serves.
      assert.deepStrictEqual((yield* pool.query("select 2 as two")).rows, [{ two: 2 }])
    }))

  it.live("max lifetime retires old sessions and replaces them", () =>
    Effect.gen(function*() {
      const app = appName("lifetime")
      const admin = yield* Connection.make(unixConfig())
      const pool = yield* Pool.make(unixConfig(18, { applicationName: app }), {
        min: 1,
        max: 2,
        maxLifetime: "300 millis"
      })
      const first = yield* backendPid(pool)
      yield* eventually(
        Effect.map(
          admin.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where pid = $1", [first]),
          (r) => r.rows[0]!.n === 0
        )
      )
      const second = yield* backendPid(pool)
      assert.notStrictEqual(second, first)
      assert.isAtLeast((yield* pool.stats).retired, 1)
      assert.isAtMost(yield* sessionsOf(admin, app), 2)
    }))
})

describe("Pool: broken sessions", () => {
  it.live("health check on borrow detects a backend killed by pg_terminate_backend", () =>
    Effect.gen(function*() {
      const admin = yield* Connection.make(unixConfig())
      const pool = yield* Pool.make(unixConfig(), { max: 1, pingAfterIdle: 0 })
      const first = yield* backendPid(pool)
      yield* admin.query("select pg_terminate_backend($1, 5000)", [first])
      // Straight away: the dead session is either seen closed or fails its ping, and is replaced.
      const second = yield* backendPid(pool)
      assert.notStrictEqual(second, first)
      assert.strictEqual((yield* pool.stats).retired, 1)
    }))

  it.live("a session that dies mid-query is discarded, not reused", () =>
    Effect.gen(function*() {
      const admin = yield* Connection.make(unixConfig())
      const pool = yield* Pool.make(unixConfig(), { max: 1 })
      const victim = yield* backendPid(pool)
      const fiber = yield* Effect.forkChild(pool.query("select pg_sleep(30)"))
      yield* eventually(Effect.map(
        admin.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where pid = $1 and state = 'active'", [victim]),
        (r) => r.rows[0]!.n === 1
      ))
      yield* admin.query("select pg_terminate_backend($1)", [victim])
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      const err = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : undefined
      assert.strictEqual(err?._tag === "Some" ? err.value._tag : "none", "ConnectionError")
      const next = yield* backendPid(pool)
      assert.notStrictEqual(next, victim)
      assert.strictEqual((yield* pool.stats).retired, 1)
    }))

  it.live("interrupting a pooled query cancels only its statement", () =>
    Effect.gen(function*() {
      const admin = yield* Connection.make(unixConfig())
      const pool = yield* Pool.make(unixConfig(), { max: 4, borrowersPerConnection: 1 })
      const other = yield* Effect.forkChild(pool.query<{ v: number }>("select 7 as v from pg_sleep(0.6)"))
      const victim = yield* Effect.forkChild(pool.query("select pg_sleep(30) as slow"))
      yield* eventually(Effect.map(
        admin.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where query like 'select pg_sleep(30)%'"),
        (r) => r.rows[0]!.n === 1
      ))
      const started = Date.now()
      yield* Fiber.interrupt(victim)
      assert.isBelow(Date.now() - started, 3_000)
      const r = yield* Fiber.join(other)
      assert.deepStrictEqual(r.rows, [{ v: 7 }])
      // No later query is hit by the cancel: the cancelled session is not handed out while it may still land.
      const after = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => Effect.map(pool.query<{ i: number }>("select $1::int as i from pg_sleep(0.01)", [i]), (x) => x.rows[0]!.i),
        { concurrency: 4 }
      )
      assert.deepStrictEqual(after, Array.from({ length: 20 }, (_, i) => i))
      yield* eventually(Effect.map(
        admin.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where query like 'select pg_sleep(30)%' and state = 'active'"),
        (r) => r.rows[0]!.n === 0
      ))
    }))
  it.live("a cancel for an interrupted query never hits the next borrower's statement", () =>
    Effect.gen(function*() {
      const admin = yield* Connection.make(unixConfig())
      const pool = yield* Pool.make(unixConfig(), { max: 1, borrowersPerConnection: 1 })
      for (let round = 0; round < 5; round++) {
        const tag = `pgfx_cancel_round_${process.pid}_${round}`
        const victim = yield* Effect.forkChild(pool.query(`select pg_sleep(30) as ${tag}`))
        yield* eventually(Effect.map(
          admin.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where query like $1 and state = 'active'", [
            `%${tag}%`
          ]),
          (r) => r.rows[0]!.n === 1
        ))
        yield* Fiber.interrupt(victim)
        // The very next borrower (same pool, max 1) runs a statement long enough for a stray cancel to land.
        const r = yield* pool.query<{ ok: number }>("select 1 as ok from pg_sleep(0.05)")
        assert.deepStrictEqual(r.rows, [{ ok: 1 }])
      }
    }))
})

describe("Pool: server restarts (private server)", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer({ version: 18 })
  })
  afterAll(async () => {
    await server?.stop()
  })
  const privateConfig = () => ({
    host: server.info.socketDir,
    port: server.info.port,
    user: server.info.superuser,
    database: server.info.database
  })

  it.live("restart while the pool is idle: the pool recovers", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(privateConfig(), { min: 2, max: 4, acquireTimeout: "10 seconds" })
      const before = yield* backendPid(pool)
      yield* Effect.promise(() => server.restart("immediate"))
      const after = yield* backendPid(pool)
      assert.notStrictEqual(after, before)
      const rs = yield* Effect.forEach([1, 2, 3, 4, 5, 6], (i) => pool.query<{ i: number }>("select $1::int as i", [i]), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(rs.map((r) => r.rows[0]!.i), [1, 2, 3, 4, 5, 6])
    }))

  it.live("restart while the pool is busy: every borrower settles, then the pool serves again", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(privateConfig(), { max: 4, acquireTimeout: "10 seconds" })
      yield* backendPid(pool)
      const borrowers = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) => Effect.exit(pool.query<{ i: number }>("select $1::int as i from pg_sleep(0.2)", [i])),
          { concurrency: "unbounded" }
        )
      )
      yield* Effect.sleep(Duration.millis(100))
      yield* Effect.promise(() => server.restart("immediate"))
      const exits = yield* Fiber.join(borrowers).pipe(Effect.timeout(Duration.seconds(20)))
      let failed = 0
      exits.forEach((exit, i) => {
        if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.rows[0]!.i, i)
        else {
          failed++
          const e = Cause.findErrorOption(exit.cause)
          assert.strictEqual(e._tag === "Some" ? e.value._tag : "defect", "ConnectionError")
        }
      })
      assert.isAbove(failed, 0)
      const r = yield* pool.query<{ one: number }>("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
    }))

  it.live("a borrower waiting while the server is down fails with ConnectionError, nothing hangs", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(privateConfig(), { max: 2, acquireTimeout: "10 seconds" })
      yield* backendPid(pool)
      yield* Effect.promise(() => server.stopImmediate())
      const exit = yield* Effect.exit(backendPid(pool)).pipe(Effect.timeout(Duration.seconds(10)))
      assert.isTrue(Exit.isFailure(exit))
      const e = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : undefined
      assert.strictEqual(e?._tag === "Some" ? e.value._tag : "none", "ConnectionError")
      yield* Effect.promise(() => server.start())
      const pid = yield* backendPid(pool)
      assert.isAbove(pid, 0)
    }))
})
