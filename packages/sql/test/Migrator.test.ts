/**
 * effect/sql's Migrator running on pgfx: a migrations table, migrations in order inside a transaction,
 * a second run is a no-op, and a failing migration leaves nothing behind.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"
import * as PgClient from "../src/PgClient.ts"
import { clientConfig, tableName } from "./helpers.ts"

const run = Migrator.make({})

const provide = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | PgClient.PgClient | Scope.Scope>) =>
  Effect.provide(Effect.scoped(effect), PgClient.layer(clientConfig()))

describe("Migrator on pgfx", () => {
  it.live("runs pending migrations once; a second run is a no-op", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const table = tableName("sql_migrations")
      const widgets = tableName("sql_widgets")
      yield* Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`drop table if exists ${table}, ${widgets}`)))
      const loader = Migrator.fromRecord({
        "0001_create_widgets": sql`create table ${sql(widgets)} (id serial primary key, name text not null)`,
        "0002_add_price": sql`alter table ${sql(widgets)} add column price_cents int not null default 0`,
        "0003_seed": sql`insert into ${sql(widgets)} ${sql.insert([{ name: "a", price_cents: 1 }, { name: "b", price_cents: 2 }])}`
      })
      const first = yield* run({ loader, table })
      assert.deepStrictEqual(first, [[1, "create_widgets"], [2, "add_price"], [3, "seed"]])
      const second = yield* run({ loader, table })
      assert.deepStrictEqual(second, [])
      const recorded = yield* sql<{ migration_id: number; name: string }>`select migration_id, name from ${sql(table)} order by migration_id`
      assert.deepStrictEqual(recorded.map((r) => [r.migration_id, r.name]), [[1, "create_widgets"], [2, "add_price"], [3, "seed"]])
      assert.deepStrictEqual(yield* sql`select count(*)::int as n from ${sql(widgets)}`, [{ n: 2 }])

      // a later migration is picked up alone
      const more = Migrator.fromRecord({
        "0001_create_widgets": Effect.die("must not run again"),
        "0002_add_price": Effect.die("must not run again"),
        "0003_seed": Effect.die("must not run again"),
        "0004_index": sql`create index on ${sql(widgets)} (name)`
      })
      assert.deepStrictEqual(yield* run({ loader: more, table }), [[4, "index"]])
    })))

  it.live("a failing migration rolls back the whole run", () =>
    provide(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const table = tableName("sql_migrations_fail")
      const things = tableName("sql_things")
      yield* Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`drop table if exists ${table}, ${things}`)))
      const loader = Migrator.fromRecord({
        "0001_things": sql`create table ${sql(things)} (id int primary key)`,
        "0002_broken": sql`insert into ${sql(things)} values (1), (1)`
      })
      const error = yield* Effect.flip(run({ loader, table }))
      assert.strictEqual(error._tag, "MigrationError")
      const exists = yield* sql<{ t: string | null }>`select to_regclass(${things})::text as t`
      assert.deepStrictEqual(exists, [{ t: null }])
      const recorded = yield* sql<{ n: number }>`select count(*)::int as n from ${sql(table)}`
      assert.deepStrictEqual(recorded, [{ n: 0 }])
    })))
})
