/**
 * pgfx capabilities reachable from the SqlClient: COPY, LISTEN/NOTIFY, explicit pipelines, the raw
 * connection (inside and outside transactions), and a replication connection with the same config.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Queue, type Scope, Stream } from "effect"
import * as PgClient from "../src/PgClient.ts"
import { clientConfig, freshTable } from "./helpers.ts"

/** Runs `effect` in its own Scope inside the client layer, so its finalizers run before the pool closes. */
const provide = <A, E>(effect: Effect.Effect<A, E, PgClient.PgClient | Scope.Scope>) =>
  Effect.provide(Effect.scoped(effect), PgClient.layer(clientConfig({ maxConnections: 4 })))

describe("PgClient extras", () => {
  it.live("copyFrom / copyFromRows / copyTo", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const t = yield* freshTable(sql, "sql_copy", "id int primary key, name text")
      const copied = yield* sql.copyFrom(`copy ${t} from stdin`, Stream.make("1\tann\n", "2\tbob\n", new TextEncoder().encode("3\t\\N\n")))
      assert.strictEqual(copied, 3)
      const rows = yield* sql.copyFromRows(t, ["id", "name"], Stream.range(4, 100).pipe(Stream.map((i) => [i, `n${i}`])))
      assert.strictEqual(rows, 97)
      const text = yield* sql.copyTo(`copy (select id, name from ${t} where id <= 3 order by id) to stdout`).pipe(
        Stream.decodeText(),
        Stream.mkString
      )
      assert.strictEqual(text, "1\tann\n2\tbob\n3\t\\N\n")
      // inside a transaction COPY runs on the transaction's session: rolled back with it
      yield* Effect.ignore(sql.withTransaction(Effect.andThen(sql.copyFrom(`copy ${t} from stdin`, Stream.make("500\tx\n")), Effect.fail("undo"))))
      assert.deepStrictEqual(yield* sql`select count(*)::int as n from ${sql(t)}`, [{ n: 100 }])
    })))

  it.live("listen (sql-pg style queue), listenStream and notify", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const channel = `sql_chan_${process.pid}`
      const queue = yield* sql.listen(channel)
      yield* sql.notify(channel, "hello")
      yield* sql`select pg_notify(${channel}, ${"world"})`
      const first = yield* Queue.take(queue)
      const second = yield* Queue.take(queue)
      assert.deepStrictEqual([first.payload, second.payload], ["hello", "world"])
      assert.strictEqual(first.channel, channel)
      // notifications sent inside a transaction arrive only once it commits
      const events = yield* Effect.forkChild(Stream.runCollect(Stream.take(sql.listenStream(`${channel}_s`), 2)))
      yield* Effect.sleep("100 millis")
      yield* Effect.ignore(sql.withTransaction(Effect.andThen(sql.notify(`${channel}_s`, "rolled back"), Effect.fail("undo"))))
      yield* sql.withTransaction(Effect.andThen(sql.notify(`${channel}_s`, "a"), sql.notify(`${channel}_s`, "b")))
      const got = yield* Fiber.await(events)
      assert.strictEqual(got._tag, "Success")
      if (got._tag === "Success") assert.deepStrictEqual(got.value.map((n) => n.payload), ["a", "b"])
    })))

  it.live("on one connection (layerClient) a listener does not hold other statements back", () =>
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const channel = `sql_single_${process.pid}`
      const queue = yield* sql.listen(channel)
      assert.deepStrictEqual(yield* sql`select 1 as x`, [{ x: 1 }])
      yield* sql.withTransaction(sql.notify(channel, "in a transaction"))
      assert.strictEqual((yield* Queue.take(queue)).payload, "in a transaction")
    }).pipe(Effect.scoped, Effect.provide(PgClient.layerClient(clientConfig())), Effect.timeout("20 seconds")))

  it.live("explicit pipelines of plain and effect/sql statements, with per-segment failure", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const outcomes = yield* sql.pipeline([
        [sql`select ${1}::int as a`, { sql: "select $1::text as b", params: ["x"] }],
        [sql`select 1/0 as boom`, sql`select 2 as skipped`],
        [sql`select ${3}::int as c`]
      ])
      assert.strictEqual(outcomes[0]![0]!._tag, "Success")
      const a = outcomes[0]![0]!
      if (a._tag === "Success") assert.deepStrictEqual(a.result.rows, [{ a: 1 }])
      assert.strictEqual(outcomes[1]![0]!._tag, "Failure")
      assert.strictEqual(outcomes[1]![1]!._tag, "Skipped")
      const c = outcomes[2]![0]!
      assert.strictEqual(c._tag, "Success")
      if (c._tag === "Success") assert.deepStrictEqual(c.result.rows, [{ c: 3 }])
    })))

  it.live("withConnection gives the transaction's session inside a transaction", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      yield* sql.withTransaction(Effect.gen(function*() {
        const pid = (yield* sql<{ pid: number }>`select pg_backend_pid() as pid`)[0]!.pid
        const status = yield* sql.withConnection((conn) => Effect.succeed([conn.info.processId, conn.transactionStatus()] as const))
        assert.deepStrictEqual(status, [pid, "T"])
      }))
      const outside = yield* sql.withConnection((conn) => Effect.succeed(conn.transactionStatus()))
      assert.strictEqual(outside, "I")
    })))

  it.live("a replication connection with the same configuration", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const conn = yield* sql.replicationConnection("logical")
      const [result] = yield* conn.simple("IDENTIFY_SYSTEM")
      assert.strictEqual(result!.rows.length, 1)
      assert.property(result!.rows[0], "systemid")
      assert.strictEqual(result!.rows[0]!["dbname"], sql.pgConfig.database)
    })))
})
