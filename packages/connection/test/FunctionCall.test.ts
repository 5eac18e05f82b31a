import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Connection from "../src/Connection.ts"
import { callFunction, functionCall, lookupFunction } from "../src/FunctionCall.ts"
import { unixConfig } from "./helpers.ts"

const open = () => Connection.make(unixConfig())
const utf8 = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b))
const int4 = (n: number) => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setInt32(0, n)
  return b
}

/** A SQL function in the public schema with a unique name, dropped when the test's scope closes. */
const withFunction = (conn: Connection.ConnectionApi, args: string, body: string, returns: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `pgfx_fc_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`
      yield* conn.simple(`create function public.${name}(${args}) returns ${returns} language sql as $f$ ${body} $f$`)
      return name
    }),
    (name) => Effect.ignore(conn.simple(`drop function if exists public.${name}`))
  )

describe("FunctionCall", () => {
  it.live("calls a SQL function looked up by regprocedure, raw (text) and typed (through the registry)", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const name = yield* withFunction(conn, "a int4, b text", "select b || ':' || (a * 2)::text", "text")
      const { rows } = yield* conn.query<{ oid: number }>(`select '${name}(int4,text)'::regprocedure::oid as oid`)
      const oid = rows[0]!.oid
      const signature = yield* lookupFunction(conn, `${name}(int4, text)`)
      assert.deepStrictEqual(signature, { oid, argumentTypes: [23, 25], resultType: 25 })

      // Raw, text format for everything.
      const raw = yield* functionCall(conn, oid, [utf8("21"), utf8("héllo ☃ 'q'")])
      assert.strictEqual(text(raw), "héllo ☃ 'q':42")
      // Raw, mixed formats: int4 in binary, text in text.
      const mixed = yield* functionCall(conn, oid, [int4(-5), utf8("m")], { argumentFormats: [1, 0], resultFormat: 1 })
      assert.strictEqual(text(mixed), "m:-10")
      // Typed.
      assert.strictEqual(yield* callFunction<string>(conn, signature, [7, "typed"]), "typed:14")
      // NULL in, NULL out (the function is not strict; text || NULL is NULL).
      assert.strictEqual(yield* callFunction(conn, signature, [7, null]), null)
      assert.strictEqual(yield* functionCall(conn, oid, [utf8("1"), null]), null)
    }))

  it.live("typed results decode through the registry in binary (int8, bytea, float8, bool)", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const name = yield* withFunction(conn, "a int8, b bytea", "select a * 2 + length(b)", "int8")
      const signature = yield* lookupFunction(conn, `${name}(int8,bytea)`)
      assert.strictEqual(yield* callFunction(conn, signature, [9007199254740993n, new Uint8Array([1, 2, 3])]), 18014398509481989n)
      const sqrt = yield* lookupFunction(conn, "sqrt(float8)")
      assert.strictEqual(yield* callFunction(conn, sqrt, [2.25]), 1.5)
      const isFinite = yield* lookupFunction(conn, "isfinite(date)")
      assert.strictEqual(yield* callFunction(conn, isFinite, ["2024-02-29"]), true)
    }))

  it.live("an error in the function is a PgServerError and the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const name = yield* withFunction(conn, "a int4, b int4", "select a / b", "int4")
      const signature = yield* lookupFunction(conn, `${name}(int4,int4)`)
      const error = yield* Effect.flip(callFunction(conn, signature, [1, 0]))
      assert.strictEqual(error._tag, "PgServerError")
      if (error._tag === "PgServerError") {
        assert.strictEqual(error.code, "22012")
        assert.strictEqual(error.conditionName, "division_by_zero")
      }
      assert.strictEqual(conn.transactionStatus(), "I")
      assert.strictEqual(yield* callFunction(conn, signature, [10, 2]), 5)
      const ok = yield* conn.query<{ x: number }>("select 1 as x")
      assert.deepStrictEqual(ok.rows, [{ x: 1 }])
      // A nonexistent OID is the server's error too.
      const missing = yield* Effect.flip(functionCall(conn, 4_000_000_000, []))
      assert.strictEqual(missing._tag, "PgServerError")
      assert.strictEqual((yield* conn.query<{ y: number }>("select 2 as y")).rows[0]!.y, 2)
    }))

  it.live("refuses a wrong argument count or an unencodable argument before sending anything", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const sqrt = yield* lookupFunction(conn, "sqrt(float8)")
      const count = yield* Effect.flip(callFunction(conn, sqrt, [1, 2]))
      assert.strictEqual(count._tag, "InvalidRequestError")
      const value = yield* Effect.flip(callFunction(conn, sqrt, [{ not: "a number" }]))
      assert.strictEqual(value._tag, "InvalidRequestError")
      const formats = yield* Effect.flip(functionCall(conn, sqrt.oid, [utf8("1")], { argumentFormats: [0, 0] }))
      assert.strictEqual(formats._tag, "InvalidRequestError")
      assert.strictEqual(yield* callFunction(conn, sqrt, [16]), 4)
    }))

  it.live("large objects through the lo_* functions, inside a transaction", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const INV_WRITE = 0x20000
      const INV_READ = 0x40000
      const signatures = yield* Effect.all({
        creat: lookupFunction(conn, "lo_creat(int4)"),
        open: lookupFunction(conn, "lo_open(oid,int4)"),
        write: lookupFunction(conn, "lowrite(int4,bytea)"),
        read: lookupFunction(conn, "loread(int4,int4)"),
        close: lookupFunction(conn, "lo_close(int4)"),
        unlink: lookupFunction(conn, "lo_unlink(oid)")
      })
      // The OIDs are pg_proc's.
      const procs = yield* conn.query<{ proname: string; oid: number }>(
        "select proname, oid from pg_proc where oid = any($1::oid[]) order by proname",
        [Object.values(signatures).map((s) => s.oid)]
      )
      assert.deepStrictEqual(procs.rows.map((r) => r.proname), ["lo_close", "lo_creat", "lo_open", "lo_unlink", "loread", "lowrite"])

      const data = new Uint8Array(200_000)
      for (let i = 0; i < data.length; i++) data[i] = (i * 7919 + (i >> 8)) & 0xff

      yield* conn.simple("begin")
      const loid = (yield* callFunction<number>(conn, signatures.creat, [-1]))!
      assert.isAbove(loid, 0)
      const fd = (yield* callFunction<number>(conn, signatures.open, [loid, INV_WRITE]))!
      // Written in two pieces, the second through the raw call in binary.
      const written1 = yield* callFunction<number>(conn, signatures.write, [fd, data.subarray(0, 150_000)])
      const written2 = yield* functionCall(conn, signatures.write.oid, [int4(fd), data.subarray(150_000)], {
        argumentFormats: 1,
        resultFormat: 1
      })
      assert.strictEqual(written1, 150_000)
      assert.deepStrictEqual(written2, int4(50_000))
      assert.strictEqual(yield* callFunction(conn, signatures.close, [fd]), 0)
      yield* conn.simple("commit")

      yield* conn.simple("begin")
      const rfd = (yield* callFunction<number>(conn, signatures.open, [loid, INV_READ]))!
      const back = yield* callFunction<Uint8Array>(conn, signatures.read, [rfd, 1_000_000])
      assert.strictEqual(back!.length, data.length)
      assert.deepStrictEqual(back, data)
      assert.strictEqual(yield* callFunction(conn, signatures.close, [rfd]), 0)
      assert.strictEqual(yield* callFunction(conn, signatures.unlink, [loid]), 1)
      yield* conn.simple("commit")
      const gone = yield* conn.query<{ n: number }>("select count(*)::int as n from pg_largeobject_metadata where oid = $1", [loid])
      assert.deepStrictEqual(gone.rows, [{ n: 0 }])
    }))

  it.live("function calls pipeline with queries and keep their order", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const name = yield* withFunction(conn, "a int4", "select a * a", "int4")
      const square = yield* lookupFunction(conn, `${name}(int4)`)
      const results = yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) =>
          i % 2 === 0
            ? callFunction<number>(conn, square, [i])
            : Effect.map(conn.query<{ v: number }>("select $1::int4 * $1::int4 as v", [i]), (r) => r.rows[0]!.v),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results, Array.from({ length: 40 }, (_, i) => i * i))
    }))

  it.live("interrupting a long function call cancels it; the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const sleep = yield* lookupFunction(conn, "pg_sleep(float8)")
      const started = Date.now()
      const timedOut = yield* Effect.flip(Effect.timeout(callFunction(conn, sleep, [30]), "200 millis"))
      assert.strictEqual(timedOut._tag, "TimeoutError")
      const r = yield* conn.query<{ x: number }>("select 3 as x")
      assert.deepStrictEqual(r.rows, [{ x: 3 }])
      assert.isBelow(Date.now() - started, 10_000)
    }))
})
