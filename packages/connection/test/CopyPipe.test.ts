import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { copyFrom, copyTo } from "../src/Copy.ts"
import * as Connection from "../src/Connection.ts"
import { unixConfig } from "./helpers.ts"

const suffix = `${process.pid}_${Date.now() % 1_000_000}`

/** Pipes a COPY OUT into a COPY IN, counting the bytes; returns [rows, bytes, seconds]. */
const pipe = (from: Connection.ConnectionApi, outSql: string, to: Connection.ConnectionApi, inSql: string) =>
  Effect.gen(function*() {
    let bytes = 0
    const started = performance.now()
    const rows = yield* copyTo(from, outSql).pipe(
      Stream.mapArray((chunk) => {
        for (let i = 0; i < chunk.length; i++) bytes += chunk[i]!.length
        return chunk
      }),
      Stream.run(copyFrom(to, inSql))
    )
    return [rows, bytes, (performance.now() - started) / 1000] as const
  })

const checksum = "select count(*)::int as n, sum(i)::text as s, sum(hashtext(h))::text as hs"

describe("COPY pipes", () => {
  it.live("table → table: 1,000,000 rows from one connection into another", () =>
    Effect.gen(function*() {
      const a = yield* Connection.make(unixConfig())
      const b = yield* Connection.make(unixConfig())
      const src = `copy_src_${suffix}`
      yield* a.simple(`create unlogged table ${src} as select i, md5(i::text) as h from generate_series(1, 1000000) i`)
      yield* Effect.addFinalizer(() =>
        Effect.ignore(Effect.scoped(Effect.flatMap(Connection.make(unixConfig()), (c) => c.simple(`drop table if exists ${src}`))))
      )
      yield* b.simple("create temp table dst(i int, h text)")
      const [rows, bytes, seconds] = yield* pipe(a, `copy ${src} to stdout (format binary)`, b, "copy dst from stdin (format binary)")
      assert.strictEqual(rows, 1_000_000)
      console.log(`table → table: ${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s = ${(bytes / 1e6 / seconds).toFixed(0)} MB/s`)
      const expected = (yield* a.query(`${checksum} from ${src}`)).rows
      const actual = (yield* b.query(`${checksum} from dst`)).rows
      assert.deepStrictEqual(actual, expected)
    }), { timeout: 60_000 })

  it.live("database → database (text format) with backpressure and no deadlock", () =>
    Effect.gen(function*() {
      const admin = yield* Connection.make(unixConfig())
      const db = `copy_db_${suffix}`
      yield* admin.simple(`create database ${db}`)
      yield* Effect.addFinalizer(() => Effect.ignore(admin.simple(`drop database if exists ${db} with (force)`)))
      yield* Effect.scoped(Effect.gen(function*() {
        const source = yield* Connection.make(unixConfig())
        const target = yield* Connection.make(unixConfig(18, { database: db }))
        yield* target.simple("create table t(i int, h text)")
        const [rows, bytes, seconds] = yield* pipe(
          source,
          "copy (select i, md5(i::text) as h from generate_series(1, 1000000) i) to stdout",
          target,
          "copy t from stdin"
        )
        assert.strictEqual(rows, 1_000_000)
        console.log(`database → database: ${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s = ${(bytes / 1e6 / seconds).toFixed(0)} MB/s`)
        const actual = (yield* target.query(`${checksum} from t`)).rows
        const expected = (yield* source.query(`${checksum} from (select i, md5(i::text) as h from generate_series(1, 1000000) i) s`)).rows
        assert.deepStrictEqual(actual, expected)
      }))
    }), { timeout: 60_000 })

  it.live("~200 MB through copyTo → copyFrom keeps the resident set bounded", () =>
    Effect.gen(function*() {
      const a = yield* Connection.make(unixConfig())
      const b = yield* Connection.make(unixConfig())
      yield* b.simple("create temp table mem(i int, t text)")
      globalThis.gc?.()
      const before = process.memoryUsage().rss
      let peak = before
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss)
      }, 20)
      const [rows, bytes, seconds] = yield* pipe(
        a,
        "copy (select i, repeat('x', 200) from generate_series(1, 1000000) i) to stdout",
        b,
        "copy mem from stdin"
      ).pipe(Effect.ensuring(Effect.sync(() => clearInterval(sampler))))
      peak = Math.max(peak, process.memoryUsage().rss)
      assert.strictEqual(rows, 1_000_000)
      assert.isAbove(bytes, 200e6)
      console.log(
        `200 MB pipe: ${(bytes / 1e6 / seconds).toFixed(0)} MB/s, rss +${((peak - before) / 1e6).toFixed(0)} MB (peak)`
      )
      assert.isBelow(peak - before, 150e6)
    }), { timeout: 60_000 })
})
