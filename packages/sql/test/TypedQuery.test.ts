/**
 * Result schemas checked against the server's RowDescription at first use.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, type Scope, Schema, String as Str } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as PgClient from "../src/PgClient.ts"
import * as TypedQuery from "../src/TypedQuery.ts"
import { clientConfig, freshTable } from "./helpers.ts"

const provide = <A, E>(effect: Effect.Effect<A, E, PgClient.PgClient | SqlClient.SqlClient | Scope.Scope>, config = clientConfig()) =>
  Effect.provide(Effect.scoped(effect), PgClient.layer(config))

const Order = Schema.Struct({
  id: Schema.Number,
  customer: Schema.String,
  total: Schema.NumberFromString, // numeric arrives as a string
  big: Schema.BigInt,
  placedAt: Schema.Date,
  paid: Schema.Boolean,
  note: Schema.NullOr(Schema.String),
  tags: Schema.Array(Schema.String),
  meta: Schema.Struct({ source: Schema.String }),
  blob: Schema.Uint8Array,
  extra: Schema.optional(Schema.String)
})

const columns = "id int primary key, customer text not null, total numeric(10,2), big int8, placed_at timestamptz, " +
  "paid bool, note varchar(20), tags text[], meta jsonb, blob bytea"

describe("TypedQuery", () => {
  it.live("a matching schema passes and decodes; the check runs once per SQL text", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const t = yield* freshTable(sql, "sql_typed", columns)
      yield* sql`insert into ${sql(t)} values (1, 'ann', 12.50, 9007199254740993, '2024-01-02T03:04:05Z', true, null, '{a,b}', '{"source":"web"}', '\\x0102')`
      const find = TypedQuery.findAll({
        Request: Schema.Number,
        Result: Order,
        execute: (id) => sql`select * from ${sql(t)} where id = ${id}`
      })
      const [order] = yield* find(1)
      assert.deepStrictEqual(order, {
        id: 1,
        customer: "ann",
        total: 12.5,
        big: 9007199254740993n,
        placedAt: new Date("2024-01-02T03:04:05Z"),
        paid: true,
        note: null,
        tags: ["a", "b"],
        meta: { source: "web" },
        blob: new Uint8Array([1, 2])
      })
      // later runs (also with other parameters) reuse the verification
      yield* find(1)
      yield* find(2)
      const one = TypedQuery.findOne({ Request: Schema.Number, Result: Order, execute: (id) => sql`select * from ${sql(t)} where id = ${id}` })
      assert.strictEqual((yield* one(1)).customer, "ann")
      assert.isTrue(Cause.isNoSuchElementError(yield* Effect.flip(one(2))))
    }), clientConfig({ transformResultNames: Str.snakeToCamel })))

  it.live("a mismatching column type names the column, its type and the expectation", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const t = yield* freshTable(sql, "sql_typed_bad", "id int primary key, total numeric, at date, n int8")
      const wrongTotal = TypedQuery.checked(Schema.Struct({ id: Schema.Number, total: Schema.Number }))
      const e1 = yield* Effect.flip(wrongTotal(sql`select id, total from ${sql(t)}`))
      assert.instanceOf(e1, TypedQuery.ResultShapeError)
      assert.strictEqual((e1 as TypedQuery.ResultShapeError).column, "total")
      assert.match(e1.message, /column "total" is numeric \(oid 1700\), decoded as string, but the Result schema expects number/)
      const wrongId = yield* Effect.flip(TypedQuery.checked(Schema.Struct({ id: Schema.String }))(sql`select id from ${sql(t)}`))
      assert.match(wrongId.message, /column "id" is int4 \(oid 23\), decoded as number, but the Result schema expects string/)
      const wrongBig = yield* Effect.flip(TypedQuery.checked(Schema.Struct({ n: Schema.Number }))(sql`select n from ${sql(t)}`))
      assert.match(wrongBig.message, /column "n" is int8 \(oid 20\), decoded as bigint/)
      const wrongDate = yield* Effect.flip(TypedQuery.checked(Schema.Struct({ at: Schema.String }))(sql`select at from ${sql(t)}`))
      assert.match(wrongDate.message, /column "at" is date/)
    })))

  it.live("a missing column is named with the columns the query returns; optional fields may be absent", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const e = yield* Effect.flip(TypedQuery.checked(Schema.Struct({ id: Schema.Number, name: Schema.String }))(sql`select 1 as id, 'x' as nom`))
      assert.instanceOf(e, TypedQuery.ResultShapeError)
      assert.strictEqual((e as TypedQuery.ResultShapeError).column, "name")
      assert.match(e.message, /column "name" is required by the Result schema but the query returns id, nom/)
      const ok = yield* TypedQuery.checked(Schema.Struct({ id: Schema.Number, name: Schema.optional(Schema.String) }))(sql`select 1 as id`)
      assert.deepStrictEqual(ok, [{ id: 1 }])
    })))

  it.live("json columns accept any JSON shape; unknown fields accept anything; arrays check their element", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const rows = yield* TypedQuery.checked(Schema.Struct({
        j: Schema.Array(Schema.Number),
        u: Schema.Unknown,
        xs: Schema.Array(Schema.Number)
      }))(sql`select '[1,2]'::jsonb as j, now() as u, array[1,2]::int4[] as xs`)
      assert.deepStrictEqual(rows[0]!.j, [1, 2])
      const bad = yield* Effect.flip(TypedQuery.checked(Schema.Struct({ xs: Schema.Array(Schema.String) }))(sql`select array[1,2]::int4[] as xs`))
      assert.match(bad.message, /column "xs" is _int4/)
    })))

  it.live("verify checks without running the statement", () =>
    provide(Effect.gen(function*() {
      const sql = yield* PgClient.PgClient
      const t = yield* freshTable(sql, "sql_typed_verify", "id int primary key")
      yield* TypedQuery.verify(Schema.Struct({ id: Schema.Number }), sql`insert into ${sql(t)} values (1) returning id`)
      assert.deepStrictEqual(yield* sql`select count(*)::int as n from ${sql(t)}`, [{ n: 0 }])
    })))
})
