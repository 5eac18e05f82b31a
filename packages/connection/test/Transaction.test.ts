import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Schedule } from "effect"
import * as Connection from "../src/Connection.ts"
import * as Pool from "../src/Pool.ts"
import * as Transaction from "../src/Transaction.ts"
import { unixConfig } from "./helpers.ts"

let tableCounter = 0

/** A fresh table (dropped with the test's scope), visible to every session of the pool. */
const freshTable = (pool: Pool.PgPoolApi) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `pgfx_tx_${process.pid}_${++tableCounter}`
      yield* pool.simple(`create table ${name}(id int primary key, v text)`)
      return name
    }),
    (name) => Effect.ignore(pool.simple(`drop table if exists ${name}`))
  )

const idsIn = (pool: Pool.PgPoolApi, table: string) =>
  Effect.map(pool.query<{ id: number }>(`select id from ${table} order by id`), (r) => r.rows.map((x) => x.id))

class Boom {
  readonly _tag = "Boom"
}

describe("Transaction: on a pool", () => {
  it.live("commits on success, rolls back on failure", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 3 })
      const t = yield* freshTable(pool)
      yield* pool.withTransaction(pool.query(`insert into ${t} values (1, 'a')`))
      const failed = yield* Effect.flip(
        pool.withTransaction(
          Effect.andThen(pool.query(`insert into ${t} values (2, 'b')`), Effect.fail(new Boom()))
        )
      )
      assert.instanceOf(failed, Boom)
      assert.deepStrictEqual(yield* idsIn(pool, t), [1])
      // A failing statement fails the transaction with the server's error and rolls it back.
      const err = yield* Effect.flip(
        pool.withTransaction(
          Effect.andThen(pool.query(`insert into ${t} values (3, 'c')`), pool.query(`insert into ${t} values (1, 'dup')`))
        )
      )
      assert.strictEqual(err._tag, "PgServerError")
      assert.deepStrictEqual(yield* idsIn(pool, t), [1])
      assert.strictEqual((yield* pool.stats).retired, 0)
    }))

  it.live("every query inside the transaction, from any fiber, runs on the pinned session", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 4 })
      const t = yield* freshTable(pool)
      const seen = yield* pool.withTransaction(
        Effect.gen(function*() {
          const pids = yield* Effect.all(
            Array.from({ length: 8 }, (_, i) =>
              Effect.andThen(
                pool.query(`insert into ${t} values ($1, 'x')`, [i]),
                Effect.map(pool.query<{ pid: number }>("select pg_backend_pid() as pid"), (r) => r.rows[0]!.pid)
              )),
            { concurrency: "unbounded" }
          )
          // Uncommitted rows are visible only inside the transaction.
          const inside = yield* idsIn(pool, t)
          const forked = yield* Effect.forkChild(idsIn(pool, t))
          return { pids, inside, fromFork: yield* Fiber.join(forked) }
        })
      )
      assert.strictEqual(new Set(seen.pids).size, 1)
      assert.deepStrictEqual(seen.inside, [0, 1, 2, 3, 4, 5, 6, 7])
      assert.deepStrictEqual(seen.fromFork, [0, 1, 2, 3, 4, 5, 6, 7])
      assert.deepStrictEqual(yield* idsIn(pool, t), [0, 1, 2, 3, 4, 5, 6, 7])
    }))

  it.live("under a mixed load no shared query ever runs inside another borrower's transaction", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 3, borrowersPerConnection: 4 })
      const t = yield* freshTable(pool)
      // A read-only statement outside a transaction has no transaction id; inside one that wrote, it has.
      const shared = Effect.map(
        pool.query<{ x: string | null }>("select pg_current_xact_id_if_assigned()::text as x from pg_sleep(0.001)"),
        (r) => r.rows[0]!.x
      )
      const tx = (id: number) =>
        pool.withTransaction(
          Effect.gen(function*() {
            yield* pool.query(`insert into ${t} values ($1, 'x')`, [id])
            const a = (yield* pool.query<{ x: string }>("select pg_current_xact_id_if_assigned()::text as x")).rows[0]!.x
            yield* Effect.sleep(Duration.millis(2))
            const b = (yield* pool.query<{ x: string }>("select pg_current_xact_id_if_assigned()::text as x")).rows[0]!.x
            return [a, b] as const
          })
        )
      const work: Array<Effect.Effect<unknown, unknown>> = []
      for (let i = 0; i < 300; i++) work.push(i % 10 === 0 ? tx(i) : shared)
      const out = yield* Effect.all(work, { concurrency: "unbounded" })
      const xids = new Set<string>()
      out.forEach((o, i) => {
        if (i % 10 === 0) {
          const [a, b] = o as readonly [string, string]
          assert.isNotNull(a)
          assert.strictEqual(a, b)
          xids.add(a)
        } else assert.isNull(o)
      })
      assert.strictEqual(xids.size, 30)
      assert.strictEqual((yield* idsIn(pool, t)).length, 30)
      assert.isAtMost((yield* pool.stats).opened, 3)
    }))

  it.live("outside queries do not see uncommitted rows nor run on the pinned session", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 4 })
      const t = yield* freshTable(pool)
      const inserted = yield* Deferred.make<number>()
      const finish = yield* Deferred.make<void>()
      const tx = yield* Effect.forkChild(
        pool.withTransaction(
          Effect.gen(function*() {
            yield* pool.query(`insert into ${t} values (1, 'a')`)
            const pid = (yield* pool.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid
            yield* Deferred.succeed(inserted, pid)
            yield* Deferred.await(finish)
          })
        )
      )
      const txPid = yield* Deferred.await(inserted)
      const outside = yield* Effect.all(
        Array.from({ length: 10 }, () => pool.query<{ pid: number; n: number }>(`select pg_backend_pid() as pid, (select count(*)::int from ${t}) as n`)),
        { concurrency: "unbounded" }
      )
      for (const r of outside) {
        assert.notStrictEqual(r.rows[0]!.pid, txPid)
        assert.strictEqual(r.rows[0]!.n, 0)
      }
      yield* Deferred.succeed(finish, undefined)
      yield* Fiber.join(tx)
      assert.deepStrictEqual(yield* idsIn(pool, t), [1])
    }))

  it.live("nested calls are savepoints: inner failure rolls back only the inner part", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 2 })
      const t = yield* freshTable(pool)
      yield* pool.withTransaction(
        Effect.gen(function*() {
          yield* pool.query(`insert into ${t} values (1, 'outer')`)
          const inner = yield* Effect.flip(
            pool.withTransaction(
              Effect.andThen(pool.query(`insert into ${t} values (2, 'inner')`), Effect.fail(new Boom()))
            )
          )
          assert.instanceOf(inner, Boom)
          // A server error inside the savepoint leaves the outer transaction usable after ROLLBACK TO.
          const dup = yield* Effect.flip(pool.withTransaction(pool.query(`insert into ${t} values (1, 'dup')`)))
          assert.strictEqual(dup._tag, "PgServerError")
          yield* pool.withTransaction(
            Effect.andThen(
              pool.query(`insert into ${t} values (3, 'inner ok')`),
              pool.withTransaction(pool.query(`insert into ${t} values (4, 'inner inner')`))
            )
          )
          yield* pool.query(`insert into ${t} values (5, 'outer again')`)
        })
      )
      assert.deepStrictEqual(yield* idsIn(pool, t), [1, 3, 4, 5])
    }))

  it.live("interruption rolls back and the session goes back clean", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 1 })
      const t = yield* freshTable(pool)
      const inserted = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(
        pool.withTransaction(
          Effect.gen(function*() {
            yield* pool.query(`insert into ${t} values (1, 'a')`)
            yield* Deferred.succeed(inserted, undefined)
            yield* pool.query("select pg_sleep(30)")
          })
        )
      )
      yield* Deferred.await(inserted)
      yield* Effect.sleep(Duration.millis(50))
      const started = Date.now()
      yield* Fiber.interrupt(fiber)
      assert.isBelow(Date.now() - started, 3_000)
      assert.deepStrictEqual(yield* idsIn(pool, t), [])
      const r = yield* pool.query<{ one: number }>("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
      // Whichever session serves next is not inside a transaction.
      yield* pool.withConnection((conn) => Effect.sync(() => assert.strictEqual(conn.transactionStatus(), "I")))
    }))

  it.live("isolation level, read only and deferrable reach the server", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 1 })
      const t = yield* freshTable(pool)
      const settings = yield* pool.withTransaction(
        Effect.map(
          pool.query<{ iso: string; ro: string; def: string }>(
            "select current_setting('transaction_isolation') as iso, current_setting('transaction_read_only') as ro, " +
              "current_setting('transaction_deferrable') as def"
          ),
          (r) => r.rows[0]
        ),
        { isolationLevel: "serializable", readOnly: true, deferrable: true }
      )
      assert.deepStrictEqual(settings, { iso: "serializable", ro: "on", def: "on" })
      const rr = yield* pool.withTransaction(
        Effect.map(pool.query<{ iso: string }>("select current_setting('transaction_isolation') as iso"), (r) => r.rows[0]!.iso),
        { isolationLevel: "repeatable read" }
      )
      assert.strictEqual(rr, "repeatable read")
      const err = yield* Effect.flip(
        pool.withTransaction(pool.query(`insert into ${t} values (1, 'x')`), { readOnly: true })
      )
      assert.strictEqual(err._tag, "PgServerError")
      if (err._tag === "PgServerError") assert.strictEqual(err.code, "25006")
      assert.strictEqual(Transaction.beginStatement({ isolationLevel: "read committed", readOnly: false }), "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE")
    }))

  it.live("an error caught inside the transaction is not committed silently: 25P02", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 1 })
      const t = yield* freshTable(pool)
      const err = yield* Effect.flip(
        pool.withTransaction(
          Effect.gen(function*() {
            yield* pool.query(`insert into ${t} values (1, 'a')`)
            yield* Effect.ignore(pool.query("select 1/0"))
          })
        )
      )
      assert.strictEqual(err._tag, "PgServerError")
      if (err._tag === "PgServerError") assert.strictEqual(err.code, "25P02")
      assert.deepStrictEqual(yield* idsIn(pool, t), [])
    }))
})

describe("Transaction: through the PgPool service", () => {
  it.live("Pool.withTransaction uses the service's pool, and withConnection inside a transaction is the same session", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.PgPool
      const t = yield* freshTable(pool)
      const [a, b, status] = yield* Pool.withTransaction(
        Effect.gen(function*() {
          yield* pool.query(`insert into ${t} values (1, 'svc')`)
          const a = (yield* pool.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid
          return yield* pool.withConnection((conn) => Effect.succeed([a, conn.info.processId, conn.transactionStatus()] as const))
        }),
        { isolationLevel: "repeatable read" }
      )
      assert.strictEqual(a, b)
      assert.strictEqual(status, "T")
      assert.deepStrictEqual(yield* idsIn(pool, t), [1])
    }).pipe(Effect.scoped, Effect.provide(Pool.layer(unixConfig(), { max: 2 }))))

  it.live("borrowing from a closed pool fails with ConnectionError", () =>
    Effect.gen(function*() {
      const pool = yield* Effect.scoped(Pool.make(unixConfig(), { max: 1 }))
      const err = yield* Effect.flip(pool.query("select 1"))
      assert.strictEqual(err._tag, "ConnectionError")
      if (err._tag === "ConnectionError") assert.strictEqual(err.reason, "Unusable")
    }))
})

describe("Transaction: retryable failures", () => {
  /**
   * Two SERIALIZABLE transactions with write skew, forced into the conflicting order with latches on the
   * first attempt: each reads the other's rows, then both insert; the second to commit fails with 40001.
   */
  it.live("serialization failure is retryable and retryTransaction makes both succeed", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 4 })
      const t = yield* freshTable(pool)
      const bothRead = yield* Deferred.make<void>()
      const firstCommitted = yield* Deferred.make<void>()
      let reads = 0
      let attempts = 0
      const transfer = (id: number, waitBeforeCommit: boolean) =>
        Effect.suspend(() => {
          const first = ++attempts <= 2
          return pool.withTransaction(
            Effect.gen(function*() {
              const n = (yield* pool.query<{ n: number }>(`select count(*)::int as n from ${t}`)).rows[0]!.n
              if (first) {
                if (++reads === 2) yield* Deferred.succeed(bothRead, undefined)
                yield* Deferred.await(bothRead)
              }
              yield* pool.query(`insert into ${t} values ($1, $2)`, [id, `saw ${n}`])
              if (first && waitBeforeCommit) yield* Deferred.await(firstCommitted)
            }),
            { isolationLevel: "serializable" }
          ).pipe(Effect.tap(() => (waitBeforeCommit ? Effect.void : Deferred.succeed(firstCommitted, undefined))))
        })

      // Without retry: one of the two fails with a serialization failure.
      const exits = yield* Effect.all([Effect.exit(transfer(1, false)), Effect.exit(transfer(2, true))], {
        concurrency: "unbounded"
      })
      const failures = exits.filter(Exit.isFailure)
      assert.strictEqual(failures.length, 1)
      const cause = failures[0]!.cause
      const err = cause.reasons.find((r) => r._tag === "Fail")
      assert.isDefined(err)
      const e = (err as { error: unknown }).error
      assert.isTrue(Transaction.isRetryable(e))
      assert.isTrue(e instanceof Connection.PgServerError && e.code === "40001" && e.isRetryable)

      // With retryTransaction: the loser runs again (without latches) and commits.
      yield* pool.simple(`truncate ${t}`)
      reads = 0
      attempts = 0
      const bothRead2 = yield* Deferred.make<void>()
      const firstCommitted2 = yield* Deferred.make<void>()
      const transfer2 = (id: number, waitBeforeCommit: boolean) =>
        Effect.suspend(() => {
          const first = ++attempts <= 2
          return pool.withTransaction(
            Effect.gen(function*() {
              yield* pool.query(`select count(*)::int as n from ${t}`)
              if (first) {
                if (++reads === 2) yield* Deferred.succeed(bothRead2, undefined)
                yield* Deferred.await(bothRead2)
              }
              yield* pool.query(`insert into ${t} values ($1, 'x')`, [id])
              if (first && waitBeforeCommit) yield* Deferred.await(firstCommitted2)
            }),
            { isolationLevel: "serializable" }
          ).pipe(Effect.tap(() => (waitBeforeCommit ? Effect.void : Deferred.succeed(firstCommitted2, undefined))))
        }).pipe(Transaction.retryTransaction(Schedule.recurs(3)))
      yield* Effect.all([transfer2(1, false), transfer2(2, true)], { concurrency: "unbounded" })
      assert.deepStrictEqual(yield* idsIn(pool, t), [1, 2])
      assert.strictEqual(attempts, 3)
    }))

  it.live("a deadlock fails one transaction with 40P01, which is retryable", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make(unixConfig(), { max: 4 })
      const t = yield* freshTable(pool)
      yield* pool.query(`insert into ${t} values (1, 'a'), (2, 'b')`)
      const bothLocked = yield* Deferred.make<void>()
      let locked = 0
      const lockBoth = (a: number, b: number) =>
        pool.withTransaction(
          Effect.gen(function*() {
            yield* pool.simple("set local deadlock_timeout = '50ms'")
            yield* pool.query(`update ${t} set v = 'x' where id = $1`, [a])
            if (++locked === 2) yield* Deferred.succeed(bothLocked, undefined)
            yield* Deferred.await(bothLocked)
            yield* pool.query(`update ${t} set v = 'y' where id = $1`, [b])
          })
        )
      const exits = yield* Effect.all([Effect.exit(lockBoth(1, 2)), Effect.exit(lockBoth(2, 1))], {
        concurrency: "unbounded"
      })
      const failures = exits.filter(Exit.isFailure)
      assert.strictEqual(failures.length, 1)
      const e = (failures[0]!.cause.reasons.find((r) => r._tag === "Fail") as { error: unknown } | undefined)?.error
      assert.isTrue(e instanceof Connection.PgServerError && e.code === "40P01")
      assert.isTrue(Transaction.isRetryable(e))
      // A non-retryable error is not retried.
      let runs = 0
      const notRetried = yield* Effect.flip(
        pool.withTransaction(Effect.andThen(Effect.sync(() => runs++), pool.query("select 1/0"))).pipe(
          Transaction.retryTransaction(Schedule.recurs(3))
        )
      )
      assert.strictEqual(notRetried._tag, "PgServerError")
      assert.strictEqual(runs, 1)
    }))
})

describe("Transaction: on a single connection", () => {
  it.live("withConnectionTransaction commits, rolls back and nests as savepoints", () =>
    Effect.gen(function*() {
      const conn = yield* Connection.make(unixConfig())
      yield* conn.simple("create temp table tx_single(id int)")
      yield* Transaction.withConnectionTransaction(
        conn,
        Effect.gen(function*() {
          yield* conn.query("insert into tx_single values (1)")
          assert.strictEqual(conn.transactionStatus(), "T")
          yield* Effect.ignore(
            Transaction.withConnectionTransaction(
              conn,
              Effect.andThen(conn.query("insert into tx_single values (2)"), Effect.fail(new Boom()))
            )
          )
        })
      )
      assert.strictEqual(conn.transactionStatus(), "I")
      yield* Effect.ignore(
        Transaction.withConnectionTransaction(conn, Effect.andThen(conn.query("insert into tx_single values (3)"), Effect.fail(new Boom())))
      )
      const r = yield* conn.query<{ id: number }>("select id from tx_single order by id")
      assert.deepStrictEqual(r.rows.map((x) => x.id), [1])
    }))
})
