/**
 * The SqlClient on pgfx against PostgreSQL 18: statements, helpers, transforms, transactions and
 * savepoints, streaming, errors (reasons), SqlSchema, and the single-connection client.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Deferred, Effect, Exit, Fiber, Layer, Option, Schema, Scope, Stream, String as Str } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import { SqlError } from "effect/sql/SqlError"
import * as SqlSchema from "effect/sql/SqlSchema"
import * as PgConfig from "@pgfx/connection/PgConfig"
import { PgServerError } from "@pgfx/connection/PgError"
import * as Pool from "@pgfx/connection/Pool"
import { recordingTracer } from "@pgfx/testing/RecordingTracer"
import * as PgClient from "../src/PgClient.ts"
import { clientConfig, freshTable } from "./helpers.ts"

const pooled = PgClient.layer(clientConfig({ maxConnections: 4 }))
/** Runs `effect` in its own Scope inside the client layer, so its finalizers run before the pool closes. */
const provide = <A, E>(effect: Effect.Effect<A, E, PgClient.PgClient | SqlClient.SqlClient | Scope.Scope>) =>
  Effect.provide(Effect.scoped(effect), pooled)

const backendPid = (sql: SqlClient.SqlClient) =>
  Effect.map(sql<{ pid: number }>`select pg_backend_pid() as pid`, (rows) => rows[0]!.pid)

describe("PgClient: statements", () => {
  it.live("parameters, helpers and driver name", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      assert.strictEqual(sql.driver, "pgfx")
      const t = yield* freshTable(sql, "sql_people", "id serial primary key, name text not null, age int, tags text[], doc jsonb")
      const inserted = yield* sql<{ id: number; name: string }>`insert into ${sql(t)} ${
        sql.insert([{ name: "ann", age: 30 }, { name: "bob", age: 40 }]).returning("*")
      }`
      assert.deepStrictEqual(inserted.map((r) => r.name), ["ann", "bob"])
      const found = yield* sql<{ name: string }>`select name from ${sql(t)} where ${sql.in("id", inserted.map((r) => r.id))} order by id`
      assert.deepStrictEqual(found.map((r) => r.name), ["ann", "bob"])
      const none = yield* sql`select * from ${sql(t)} where id in ${sql.in([])}`
      assert.deepStrictEqual(none, [])
      const updated = yield* sql<{ age: number }>`update ${sql(t)} set ${sql.update({ age: 31 })} where name = ${"ann"} returning age`
      assert.deepStrictEqual(updated, [{ age: 31 }])
      // Parameters are typed by the server from their context: in a VALUES list that is text, so cast.
      yield* sql`update ${sql(t)} set age = data.age::int from ${
        sql.updateValues([{ name: "ann", age: 1 }, { name: "bob", age: 2 }], "data")
      } where ${sql(t)}.name = data.name`
      const ages = yield* sql<{ age: number }>`select age from ${sql(t)} order by id`
      assert.deepStrictEqual(ages.map((r) => r.age), [1, 2])
      const values = yield* sql`select id, name from ${sql(t)} order by id`.values
      assert.deepStrictEqual(values.map((v) => v[1]), ["ann", "bob"])
      const raw = (yield* sql`update ${sql(t)} set age = age + 1`.raw) as { command: string; rowCount: number }
      assert.strictEqual(raw.command, "UPDATE")
      assert.strictEqual(raw.rowCount, 2)
      const unprepared = yield* sql<{ n: number }>`select ${5}::int as n`.unprepared
      assert.deepStrictEqual(unprepared, [{ n: 5 }])
    })))

  it.live("one client span per statement: effect/sql's, not a second pgfx.query beneath it", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      yield* provide(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`select ${1}::int as one`
        yield* sql`select 2 as two`.unprepared
      })).pipe(Effect.withTracer(tracer))
      const names = spans.map((s) => s.name)
      assert.isFalse(names.some((n) => n.startsWith("pgfx.")), names.join(", "))
      assert.strictEqual(spans.filter((s) => s.kind === "client").length, 2, names.join(", "))
    }))

  it.live("unprepared without parameters runs a script (simple protocol): rows of the last statement", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`create temp table script_probe (x int); insert into script_probe values (1), (2); select sum(x)::int as s from script_probe`.unprepared
      assert.deepStrictEqual(rows, [{ s: 3 }])
      const prepared = yield* Effect.flip(sql`select 1; select 2`)
      assert.strictEqual((prepared as SqlError).reason._tag, "SqlSyntaxError")
    })))

  it.live("JSON and array fragments and parameters round-trip", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const t = yield* freshTable(sql, "sql_docs", "id int primary key, tags text[], nums int[], doc jsonb")
      const doc = { a: [1, "x"], b: { c: null }, s: "quote\"d" }
      yield* sql`insert into ${sql(t)} ${sql.insert({ id: 1, tags: sql.array(["a", "b c", "NULL"]), nums: [1, 2, 3], doc: sql.json(doc) })}`
      yield* sql`insert into ${sql(t)} (id, doc) values (${2}, ${sql.json("just a string")})`
      const rows = yield* sql<{ id: number; tags: Array<string> | null; nums: Array<number> | null; doc: unknown }>`select * from ${sql(t)} order by id`
      assert.deepStrictEqual(rows[0], { id: 1, tags: ["a", "b c", "NULL"], nums: [1, 2, 3], doc })
      assert.deepStrictEqual(rows[1], { id: 2, tags: null, nums: null, doc: "just a string" })
      const any = yield* sql<{ id: number }>`select id from ${sql(t)} where id = any(${sql.array([2, 3], "int4")})`
      assert.deepStrictEqual(any, [{ id: 2 }])
      const unprepared = yield* sql<{ n: Array<number> }>`select ${sql.array([1, 2], "int4")} as n`.unprepared
      assert.deepStrictEqual(unprepared, [{ n: [1, 2] }])
    })))

  it.live("transformQueryNames / transformResultNames (camelCase ↔ snake_case)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_camel", "order_id int primary key, total_cents int, line_items jsonb")
      yield* sql`insert into ${sql(t)} ${sql.insert({ orderId: 1, totalCents: 250, lineItems: (sql as PgClient.PgClient).json([{ unitPrice: 5 }]) })}`
      const rows = yield* sql`select * from ${sql(t)}`
      assert.deepStrictEqual(rows, [{ orderId: 1, totalCents: 250, lineItems: [{ unitPrice: 5 }] }])
      const raw = yield* sql`select * from ${sql(t)}`.withoutTransform
      assert.deepStrictEqual(raw, [{ order_id: 1, total_cents: 250, line_items: [{ unit_price: 5 }] }])
      const streamed = yield* Stream.runCollect(sql`select order_id from ${sql(t)}`.stream)
      assert.deepStrictEqual(streamed, [{ orderId: 1 }])
      const plain = sql.withoutTransforms()
      assert.deepStrictEqual(yield* plain`select order_id from ${plain(t)}`, [{ order_id: 1 }])
    }).pipe(Effect.scoped, Effect.provide(PgClient.layer(clientConfig({ transformQueryNames: Str.camelToSnake, transformResultNames: Str.snakeToCamel })))))

  it.live("prepare: false runs statements unnamed (nothing left in pg_prepared_statements)", () =>
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      yield* sql`select ${1}::int as a`
      const prepared = yield* sql.withConnection((conn) => conn.query("select count(*)::int as n from pg_prepared_statements", [], { prepare: false }))
      assert.strictEqual(prepared.rows[0]!["n"], 0)
    }).pipe(Effect.scoped, Effect.provide(PgClient.layer(clientConfig({ prepare: false, maxConnections: 1 })))))

  it.live("prepared statements are the session's cache: one entry per distinct SQL text", () =>
    Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      for (let i = 0; i < 5; i++) yield* sql`select ${i}::int as a, 'cache-probe' as b`
      const n = yield* sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements where statement like '%' || 'cache-probe' || '%' and statement not like '%pg_prepared_statements%'`
      assert.strictEqual(n[0]!.n, 1)
    }).pipe(Effect.scoped, Effect.provide(PgClient.layer(clientConfig({ maxConnections: 1 })))))
})

class Boom extends Schema.TaggedError<Boom>()("Boom", {}) {}

describe("PgClient: transactions", () => {
  it.live("commit, rollback on failure, nested savepoints", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_tx", "id int primary key")
      const ids = Effect.map(sql<{ id: number }>`select id from ${sql(t)} order by id`, (r) => r.map((x) => x.id))
      yield* sql.withTransaction(sql`insert into ${sql(t)} values (1)`)
      const failed = yield* Effect.flip(sql.withTransaction(Effect.andThen(sql`insert into ${sql(t)} values (2)`, Effect.fail(new Boom()))))
      assert.instanceOf(failed, Boom)
      assert.deepStrictEqual(yield* ids, [1])
      // inner failure rolls back only the savepoint; the outer transaction commits
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`insert into ${sql(t)} values (3)`
        yield* Effect.ignore(sql.withTransaction(Effect.andThen(sql`insert into ${sql(t)} values (4)`, Effect.fail(new Boom()))))
        yield* sql.withTransaction(sql`insert into ${sql(t)} values (5)`)
      }))
      assert.deepStrictEqual(yield* ids, [1, 3, 5])
      // outer failure rolls back a committed savepoint too
      yield* Effect.ignore(sql.withTransaction(Effect.gen(function*() {
        yield* sql.withTransaction(sql`insert into ${sql(t)} values (6)`)
        return yield* new Boom()
      })))
      assert.deepStrictEqual(yield* ids, [1, 3, 5])
    })))

  it.live("every statement of a transaction runs on its session, also from forked fibers; others do not see it", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_tx_pin", "id int primary key")
      yield* sql.withTransaction(Effect.gen(function*() {
        const pid = yield* backendPid(sql)
        const pids = yield* Effect.forEach([1, 2, 3, 4, 5, 6], (i) =>
          Effect.andThen(sql`insert into ${sql(t)} values (${i})`, backendPid(sql)), { concurrency: "unbounded" })
        assert.deepStrictEqual(new Set(pids), new Set([pid]))
        const status = yield* Effect.flatMap(Effect.forkChild(sql<{ n: number }>`select count(*)::int as n from ${sql(t)}`), Fiber.join)
        assert.strictEqual(status[0]!.n, 6)
        // through the pool directly (not this client's transaction): another session, nothing visible yet
        const outside = yield* (sql as PgClient.PgClient).pool!.query<{ n: number }>(`select count(*)::int as n from ${t}`)
        assert.strictEqual(outside.rows[0]!.n, 0)
      }))
      const after = yield* sql<{ n: number }>`select count(*)::int as n from ${sql(t)}`
      assert.strictEqual(after[0]!.n, 6)
    })))

  it.live("interrupting a transaction rolls it back", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_tx_int", "id int primary key")
      const inserted = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
        yield* sql`insert into ${sql(t)} values (1)`
        yield* Deferred.succeed(inserted, undefined)
        yield* sql`select pg_sleep(30)`
      })))
      yield* Deferred.await(inserted)
      yield* Effect.sleep("50 millis")
      yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(fiber)))
      const n = yield* sql<{ n: number }>`select count(*)::int as n from ${sql(t)}`
      assert.strictEqual(n[0]!.n, 0)
      // the pool is still usable afterwards, with every session out of any transaction
      const statuses = yield* Effect.forEach([1, 2, 3, 4], () => sql`select now()`, { concurrency: 4 })
      assert.strictEqual(statuses.length, 4)
    })))

  it.live("a COMMIT the server turns into ROLLBACK fails (the error was swallowed inside)", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_tx_abort", "id int primary key")
      const error = yield* Effect.flip(sql.withTransaction(Effect.gen(function*() {
        yield* sql`insert into ${sql(t)} values (1)`
        yield* Effect.ignore(sql`select 1/0`)
      })))
      assert.instanceOf(error, SqlError)
      const n = yield* sql<{ n: number }>`select count(*)::int as n from ${sql(t)}`
      assert.strictEqual(n[0]!.n, 0)
    })))

  it.live("BeginTransaction sets the isolation level of one transaction", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const level = yield* sql.withTransaction(sql<{ l: string }>`select current_setting('transaction_isolation') as l`).pipe(
        Effect.provideService(SqlClient.BeginTransaction, "BEGIN ISOLATION LEVEL SERIALIZABLE")
      )
      assert.strictEqual(level[0]!.l, "serializable")
    })))

  it.live("afterCommit runs after COMMIT, not after a rollback", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const seen: Array<string> = []
      yield* sql.withTransaction(sql.afterCommit(Effect.sync(() => seen.push("committed"))))
      yield* Effect.ignore(sql.withTransaction(Effect.andThen(sql.afterCommit(Effect.sync(() => seen.push("rolled back"))), Effect.fail(new Boom()))))
      assert.deepStrictEqual(seen, ["committed"])
    })))

  it.live("single connection: a transaction excludes other fibers' statements until it ends", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_single", "id int primary key")
      const began = yield* Deferred.make<void>()
      const finish = yield* Deferred.make<void>()
      const tx = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
        yield* sql`insert into ${sql(t)} values (1)`
        yield* Deferred.succeed(began, undefined)
        yield* Deferred.await(finish)
        yield* Effect.ignore(sql`select 1/0`) // fails the transaction: it must roll back
        return yield* new Boom()
      })))
      yield* Deferred.await(began)
      const outside = yield* Effect.forkChild(sql<{ n: number }>`select count(*)::int as n from ${sql(t)}`)
      yield* Effect.sleep("100 millis")
      assert.isUndefined(outside.pollUnsafe())
      yield* Deferred.succeed(finish, undefined)
      yield* Fiber.await(tx)
      const n = yield* Fiber.join(outside)
      assert.strictEqual(n[0]!.n, 0)
    }).pipe(Effect.scoped, Effect.provide(PgClient.layerClient(clientConfig()))))
})

describe("PgClient: streaming", () => {
  it.live("rows stream in order; taking a prefix ends the query and the session stays usable", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const all = yield* Stream.runFold(sql<{ i: number }>`select i from generate_series(1, 20000) i`.stream, () => 0, (acc, r) => acc + r.i)
      assert.strictEqual(all, (20000 * 20001) / 2)
      const firstFive = yield* Stream.runCollect(Stream.take(sql<{ i: number }>`select i from generate_series(1, 1000000) i`.stream, 5))
      assert.deepStrictEqual(firstFive.map((r) => r.i), [1, 2, 3, 4, 5])
      assert.deepStrictEqual(yield* sql`select 1 as x`, [{ x: 1 }])
    })))

  it.live("a slow consumer pauses the query (bounded buffering), and all rows still arrive", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      let seen = 0
      yield* Stream.runForEach(sql<{ i: number; pad: string }>`select i, repeat('x', 1000) as pad from generate_series(1, 3000) i`.stream, () =>
        Effect.sync(() => {
          seen++
        }).pipe(Effect.andThen(seen % 500 === 0 ? Effect.sleep("5 millis") : Effect.void)))
      assert.strictEqual(seen, 3000)
    })))

  it.live("a stream inside a transaction runs on the transaction's session", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_stream_tx", "id int primary key")
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`insert into ${sql(t)} select generate_series(1, 100)`
        const rows = yield* Stream.runCollect(sql<{ id: number }>`select id from ${sql(t)}`.stream)
        assert.strictEqual(rows.length, 100)
      }))
    })))
})

const reasonOf = (e: unknown) => (e as SqlError).reason

describe("PgClient: errors as SqlError reasons, pgfx error kept as cause", () => {
  it.live("unique violation, constraint error, syntax error, authorization", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_err", "id int primary key, n int check (n > 0)")
      yield* sql`insert into ${sql(t)} values (1, 1)`
      const unique = reasonOf(yield* Effect.flip(sql`insert into ${sql(t)} values (1, 1)`))
      assert.strictEqual(unique._tag, "UniqueViolation")
      assert.strictEqual((unique as { constraint: string }).constraint, `${t}_pkey`)
      assert.instanceOf(unique.cause, PgServerError)
      assert.strictEqual((unique.cause as PgServerError).code, "23505")
      assert.match((unique.cause as PgServerError).detail ?? "", /Key \(id\)=\(1\) already exists/)
      assert.strictEqual(unique.operation, "execute")
      const check = reasonOf(yield* Effect.flip(sql`insert into ${sql(t)} values (2, -1)`))
      assert.strictEqual(check._tag, "ConstraintError")
      const syntax = reasonOf(yield* Effect.flip(sql`selec 1`))
      assert.strictEqual(syntax._tag, "SqlSyntaxError")
      assert.strictEqual((syntax.cause as PgServerError).code, "42601")
      const missing = reasonOf(yield* Effect.flip(sql`select * from no_such_table_here`))
      assert.strictEqual(missing._tag, "SqlSyntaxError")
      assert.isFalse(new SqlError({ reason: unique }).isRetryable)
    })))

  it.live("statement timeout and lock timeout", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const timeout = yield* Effect.flip(sql.withTransaction(Effect.andThen(sql`set local statement_timeout = 50`, sql`select pg_sleep(5)`)))
      assert.strictEqual(reasonOf(timeout)._tag, "StatementTimeoutError")
      assert.isTrue((timeout as SqlError).isRetryable)
      const t = yield* freshTable(sql, "sql_lock", "id int primary key")
      yield* sql`insert into ${sql(t)} values (1)`
      const locked = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
        yield* sql`select * from ${sql(t)} for update`
        yield* Deferred.succeed(locked, undefined)
        yield* Deferred.await(release)
      })))
      yield* Deferred.await(locked)
      const nowait = yield* Effect.flip(sql.withTransaction(sql`select * from ${sql(t)} for update nowait`))
      assert.strictEqual(reasonOf(nowait)._tag, "LockTimeoutError")
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
    })))

  it.live("deadlock and serialization failure", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_dead", "id int primary key, v int")
      yield* sql`insert into ${sql(t)} values (1, 0), (2, 0)`
      const bothLocked = yield* Deferred.make<void>()
      let locks = 0
      const worker = (first: number, second: number) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql`update ${sql(t)} set v = v + 1 where id = ${first}`
          if (++locks === 2) yield* Deferred.succeed(bothLocked, undefined)
          yield* Deferred.await(bothLocked)
          yield* sql`update ${sql(t)} set v = v + 1 where id = ${second}`
        }))
      const results = yield* Effect.all([Effect.exit(worker(1, 2)), Effect.exit(worker(2, 1))], { concurrency: 2 })
      const failures = results.filter(Exit.isFailure)
      assert.strictEqual(failures.length, 1)
      const deadlock = Cause.findErrorOption(failures[0]!.cause)
      assert.isTrue(Option.isSome(deadlock))
      assert.strictEqual(reasonOf(Option.getOrThrow(deadlock))._tag, "DeadlockError")
      assert.isTrue((Option.getOrThrow(deadlock) as SqlError).isRetryable)

      const serializable = (value: number) =>
        sql.withTransaction(Effect.gen(function*() {
          const rows = yield* sql<{ v: number }>`select sum(v)::int as v from ${sql(t)}`
          yield* Deferred.succeed(readBoth, undefined).pipe(Effect.when(Effect.sync(() => ++reads === 2)))
          yield* Deferred.await(readBoth)
          yield* sql`insert into ${sql(t)} values (${value}, ${rows[0]!.v})`
        })).pipe(Effect.provideService(SqlClient.BeginTransaction, "BEGIN ISOLATION LEVEL SERIALIZABLE"))
      let reads = 0
      const readBoth = yield* Deferred.make<void>()
      const serial = yield* Effect.all([Effect.exit(serializable(10)), Effect.exit(serializable(11))], { concurrency: 2 })
      const serialFailures = serial.filter(Exit.isFailure)
      assert.strictEqual(serialFailures.length, 1)
      assert.strictEqual(reasonOf(Option.getOrThrow(Cause.findErrorOption(serialFailures[0]!.cause)))._tag, "SerializationError")
    })))

  it.live("connection failure is a ConnectionError reason", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql`select 1`
      }).pipe(Effect.scoped, Effect.provide(PgClient.layer(clientConfig({ host: "127.0.0.1", port: 1, sslMode: "disable", pool: { acquireTimeout: "5 seconds" } })))))
      assert.instanceOf(error, SqlError)
      assert.strictEqual(reasonOf(error)._tag, "ConnectionError")
      assert.isTrue((error as SqlError).isRetryable)
    }))
})

const Person = Schema.Struct({ id: Schema.Number, name: Schema.String, age: Schema.NullOr(Schema.Number) })

describe("PgClient: SqlSchema", () => {
  it.live("findAll, findOne, findOneOption, findNonEmpty, void", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const t = yield* freshTable(sql, "sql_schema", "id serial primary key, name text not null, age int")
      const insert = SqlSchema.void({
        Request: Schema.Struct({ name: Schema.String, age: Schema.NullOr(Schema.Number) }),
        execute: (p) => sql`insert into ${sql(t)} ${sql.insert(p)}`
      })
      yield* insert({ name: "ann", age: 30 })
      yield* insert({ name: "bob", age: null })
      const all = SqlSchema.findAll({ Request: Schema.Void, Result: Person, execute: () => sql`select * from ${sql(t)} order by id` })
      assert.deepStrictEqual((yield* all(undefined)).map((p) => p.name), ["ann", "bob"])
      const byName = SqlSchema.findOne({ Request: Schema.String, Result: Person, execute: (name) => sql`select * from ${sql(t)} where name = ${name}` })
      assert.strictEqual((yield* byName("bob")).age, null)
      const missing = yield* Effect.flip(byName("zed"))
      assert.isTrue(Cause.isNoSuchElementError(missing))
      const option = SqlSchema.findOneOption({ Request: Schema.String, Result: Person, execute: (name) => sql`select * from ${sql(t)} where name = ${name}` })
      assert.isTrue(Option.isNone(yield* option("zed")))
      const nonEmpty = SqlSchema.findNonEmpty({ Request: Schema.String, Result: Person, execute: (name) => sql`select * from ${sql(t)} where name = ${name}` })
      assert.strictEqual((yield* nonEmpty("ann"))[0].age, 30)
      const badShape = SqlSchema.findAll({ Request: Schema.Void, Result: Schema.Struct({ id: Schema.String }), execute: () => sql`select id from ${sql(t)}` })
      const schemaError = yield* Effect.flip(badShape(undefined))
      assert.isTrue(Schema.isSchemaError(schemaError))
    })))
})

describe("PgClient: layers", () => {
  const whoAmI = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return (yield* sql<{ me: string; db: string }>`select current_user as me, current_database() as db`)[0]!
  })
  const { host, port, user, database } = clientConfig()

  it.live("layerConfig(PgConfig.config) reads the PG* variables through the ConfigProvider", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* whoAmI, { me: user!, db: database! })
    }).pipe(
      Effect.scoped,
      Effect.provide(PgClient.layerConfig(PgConfig.config, { maxConnections: 2 })),
      Effect.provideService(
        ConfigProvider.ConfigProvider,
        ConfigProvider.fromEnv({ env: { PGHOST: String(host), PGPORT: String(port), PGUSER: user!, PGDATABASE: database! } })
      )
    ))

  it.live("layerConfig accepts a Config.Wrap of the sql-pg names", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* whoAmI, { me: user!, db: database! })
    }).pipe(
      Effect.scoped,
      Effect.provide(PgClient.layerConfig({
        path: Config.succeed(String(host)),
        port: Config.succeed(Number(port)),
        username: Config.succeed(user!),
        database: Config.String("DB"),
        maxConnections: Config.succeed(2)
      })),
      Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: { DB: database! } }))
    ))

  it.live("layerFrom an existing pgfx pool: statements and pgfx pool transactions interoperate", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pool = yield* Pool.PgPool
      const t = yield* freshTable(sql, "sql_from_pool", "id int primary key")
      // a pgfx pool transaction: SqlClient statements inside it run on the pinned session
      yield* Effect.ignore(pool.withTransaction(Effect.andThen(sql`insert into ${sql(t)} values (1)`, Effect.fail(new Boom()))))
      yield* pool.withTransaction(sql`insert into ${sql(t)} values (2)`)
      assert.deepStrictEqual(yield* sql`select id from ${sql(t)}`, [{ id: 2 }])
    }).pipe(Effect.scoped, Effect.provide(PgClient.layerFrom().pipe(Layer.provideMerge(Pool.layer(clientConfig() as never, { max: 2 }))))))
})

