/**
 * The pg dialect compiler against @effect/sql-pg's: the same statements must compile to the same SQL
 * text and parameters (JSON fragments differ only in the bound value: pgfx binds JSON text).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, String as Str } from "effect"
import * as Statement from "effect/sql/Statement"
import { PgClient as EffectPgClient } from "@effect/sql-pg"
import { array, arrayLiteral, json, makeCompiler } from "../src/Compiler.ts"

// A constructor that never runs anything: only compile() is used.
const constructorFor = (compiler: Statement.Compiler) =>
  Statement.make(Effect.die("not executed") as never, compiler, [], undefined)

const pgfx = constructorFor(makeCompiler())
const theirs = constructorFor(EffectPgClient.makeCompiler())
const pgfxSnake = constructorFor(makeCompiler(Str.camelToSnake))
const theirsSnake = constructorFor(EffectPgClient.makeCompiler(Str.camelToSnake))

type Build = (sql: Statement.Constructor) => Statement.Statement<unknown>

const cases: ReadonlyArray<readonly [string, Build]> = [
  ["placeholders", (sql) => sql`select * from t where a = ${1} and b = ${"x"} and c = ${null}`],
  ["identifiers", (sql) => sql`select ${sql("weird\"name")}, ${sql("schema.table")} from ${sql("people")}`],
  ["in", (sql) => sql`select * from t where id in ${sql.in([1, 2, 3])}`],
  ["in with column", (sql) => sql`select * from t where ${sql.in("id", [1, 2])}`],
  ["empty in", (sql) => sql`select * from t where id in ${sql.in([])}`],
  ["empty not in", (sql) => sql`select * from t where id not in ${sql.in([])}`],
  ["empty in with column", (sql) => sql`select * from t where ${sql.in("id", [])}`],
  ["insert one", (sql) => sql`insert into people ${sql.insert({ name: "a", age: 3 })}`],
  ["insert many returning", (sql) =>
    sql`insert into people ${sql.insert([{ name: "a", age: 3 }, { name: "b", age: 4 }]).returning("*")}`],
  ["insert returning fragment", (sql) =>
    sql`insert into people ${sql.insert({ name: "a" }).returning(sql`id, ${sql("name")}`)}`],
  ["update", (sql) => sql`update people set ${sql.update({ name: "a", age: 3 })} where id = ${1}`],
  ["update omit returning", (sql) =>
    sql`update people set ${sql.update({ id: 1, name: "a", age: 3 }, ["id"]).returning("*")} where id = ${1}`],
  ["updateValues", (sql) =>
    sql`update people set name = data.name from ${sql.updateValues([{ id: 1, name: "a" }, { id: 2, name: "b" }], "data")} where people.id = data.id`],
  ["and/or", (sql) => sql`select * from t where ${sql.and([sql`a = ${1}`, sql.or([sql`b = ${2}`, "c is null"])])}`],
  ["csv", (sql) => sql`select ${sql.csv(["a", "b"])} from t`],
  ["literal", (sql) => sql`select ${sql.literal("now()")}, ${1}`],
  ["unsafe with params", (sql) => sql.unsafe("select $1::int + $2::int", [1, 2])],
  ["nested fragments", (sql) => {
    const where = sql`where a = ${1}`
    return sql`select * from (select * from t ${where}) x where b = ${2}`
  }],
  ["array parameter", (sql) => sql`select * from t where id = any(${[1, 2, 3]})`],
  ["dates and bigints", (sql) => sql`insert into t ${sql.insert({ at: new Date(0), n: 10n, ok: true })}`],
  ["camelCase identifiers", (sql) => sql`select ${sql("createdAt")} from ${sql("orderLines")} where ${sql.in("orderId", [1])}`],
  ["camelCase insert", (sql) => sql`insert into orders ${sql.insert({ customerId: 1, totalCents: 5 })}`]
]

describe("Compiler: same output as @effect/sql-pg", () => {
  for (const [name, build] of cases) {
    it(name, () => {
      assert.deepStrictEqual(build(pgfx).compile(), build(theirs).compile())
      assert.deepStrictEqual(build(pgfxSnake).compile(), build(theirsSnake).compile())
    })
  }

  it("withoutTransform keeps identifiers as written", () => {
    const build: Build = (sql) => sql`select ${sql("createdAt")} from t`
    assert.deepStrictEqual(build(pgfxSnake).compile(true), build(theirsSnake).compile(true))
    assert.strictEqual(build(pgfxSnake).compile(true)[0], `select "createdAt" from t`)
    assert.strictEqual(build(pgfxSnake).compile()[0], `select "created_at" from t`)
  })
})

describe("Compiler: pgfx fragments", () => {
  it("json binds JSON text at the placeholder position (sql-pg's SQL text)", () => {
    const value = { a: [1, "x"], nested: { b: null } }
    const [sqlText, params] = pgfx`insert into t (doc, n) values (${json(value)}, ${2})`.compile()
    const [theirSql] = theirs`insert into t (doc, n) values (${json(value)}, ${2})`.compile()
    assert.strictEqual(sqlText, "insert into t (doc, n) values ($1, $2)")
    assert.strictEqual(sqlText, theirSql)
    assert.deepStrictEqual(params, [JSON.stringify(value), 2])
  })

  it("json keys follow transformQueryNames unless transformJson is off", () => {
    const camel = constructorFor(makeCompiler(Str.camelToSnake))
    const camelNoJson = constructorFor(makeCompiler(Str.camelToSnake, false))
    const value = { orderId: 1, lineItems: [{ unitPrice: 2 }] }
    assert.deepStrictEqual(camel`select ${json(value)}`.compile()[1], [JSON.stringify({ order_id: 1, line_items: [{ unit_price: 2 }] })])
    assert.deepStrictEqual(camelNoJson`select ${json(value)}`.compile()[1], [JSON.stringify(value)])
  })

  it("json inside the insert helper", () => {
    const [sqlText, params] = pgfx`insert into t ${pgfx.insert({ id: 1, doc: json({ a: 1 }) })}`.compile()
    assert.strictEqual(sqlText, `insert into t ("id","doc") VALUES ($1,$2)`)
    assert.deepStrictEqual(params, [1, "{\"a\":1}"])
  })

  it("array binds an array literal, cast when the element type is given", () => {
    assert.deepStrictEqual(pgfx`select ${array([1, 2, null])}`.compile(), ["select $1", ["{1,2,NULL}"]])
    assert.deepStrictEqual(pgfx`select ${array(["a", "b c"], "text")}, ${3}`.compile(), ["select $1::text[], $2", ["{a,\"b c\"}", 3]])
    assert.throws(() => array([1], "int; drop table x"))
  })

  it("array literals quote what the array parser would misread", () => {
    assert.strictEqual(arrayLiteral([]), "{}")
    assert.strictEqual(arrayLiteral(["", "NULL", "null", "a\"b", "c\\d", "{x}", "e,f"]), `{"","NULL","null","a\\"b","c\\\\d","{x}","e,f"}`)
    assert.strictEqual(arrayLiteral([[1, 2], [3, 4]]), "{{1,2},{3,4}}")
    assert.strictEqual(arrayLiteral([true, false, 10n]), "{t,f,10}")
    assert.strictEqual(arrayLiteral([new Date(0)]), "{1970-01-01T00:00:00.000Z}")
  })
})
