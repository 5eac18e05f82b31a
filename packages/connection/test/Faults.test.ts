/**
 * Network faults between pgfx and the real PostgreSQL 18, injected by the fault proxy: cuts in the
 * middle of a pipelined batch, of COPY FROM STDIN and of a replication stream, corrupted bytes, stalls
 * and dripping connects. Every waiting fiber ends in a typed error (or its correct result) within a
 * deadline, nothing is half-applied, and a fresh connection — and the pool — recover.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import { FaultProxy } from "@pgfx/testing/FaultProxy"
import * as Logical from "@pgfx/replication/Logical"
import type * as Event from "@pgfx/replication/ChangeEvent"
import * as Connection from "../src/Connection.ts"
import { copyFrom, copyTo } from "../src/Copy.ts"
import type { PgConfigInput } from "../src/PgConfig.ts"
import * as Pool from "../src/Pool.ts"
import { pg18, unixConfig } from "./helpers.ts"
import { healthMonitor, outcome, type Outcome, show, TYPED_ERRORS } from "./RobustnessHelpers.ts"

const health = healthMonitor()
beforeAll(() => health.start())
afterAll(() => health.stop())

/**
 * A fault proxy in front of the shared PostgreSQL 18 over TCP loopback (trust for the superuser).
 * TCP on both sides, so `cut({ reset: true })` can send a real RST (it cannot on a unix socket).
 */
const proxied = Effect.gen(function*() {
  const info = pg18()
  const proxy = yield* FaultProxy.scoped({ host: "127.0.0.1", port: info.port })
  const config = (extra: PgConfigInput = {}): PgConfigInput =>
    unixConfig(18, { host: proxy.host, port: proxy.port, sslMode: "disable", ...extra })
  return { proxy, config }
})

const unique = (prefix: string) => `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`

const isTypedFailure = (o: Outcome<unknown>) => o._tag === "Failure" && TYPED_ERRORS.has(o.error._tag)

/** A fresh connection through the proxy answers a query (the proxy and the server are fine). */
const freshWorks = (config: PgConfigInput) =>
  Effect.scoped(Effect.flatMap(Connection.make(config), (c) => c.query<{ ok: number }>("select 1 as ok"))).pipe(
    Effect.map((r) => r.rows[0]?.ok === 1)
  )

describe("Faults: cuts through the proxy against PostgreSQL 18", () => {
  it.live("a cut in the middle of a pipelined batch fails every unanswered query with ConnectionError", () =>
    Effect.gen(function*() {
      const { proxy, config } = yield* proxied
      const conn = yield* Connection.make(config())
      const link = proxy.connections[proxy.connections.length - 1]!
      // Prepared once, so the batch is Bind/Execute only and every reply is the same size.
      yield* conn.query("select i, repeat('x', 100) as pad from generate_series(1, $1::int) i", [1])
      link.cut({ afterBytes: 150_000 + 37, direction: "toClient" })
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 300 }, (_, k) => k),
        (k) => outcome(conn.query<{ i: number }>("select i, repeat('x', 100) as pad from generate_series(1, $1::int) i", [50 + (k % 7)]), 10_000),
        { concurrency: "unbounded" }
      )
      const succeeded = outcomes.filter((o) => o._tag === "Success")
      const failed = outcomes.filter((o) => o._tag !== "Success")
      assert.isAbove(succeeded.length, 0, "some replies arrived before the cut")
      assert.isAbove(failed.length, 0, "the cut failed the rest")
      for (const [k, o] of outcomes.entries()) {
        if (o._tag === "Success") {
          // An answered query got its own rows, complete.
          const rows = (o.value as { rows: ReadonlyArray<{ i: number }> }).rows
          assert.strictEqual(rows.length, 50 + (k % 7))
          assert.strictEqual(rows[rows.length - 1]!.i, rows.length)
        } else {
          assert.strictEqual(o._tag === "Failure" ? o.error._tag : o._tag, "ConnectionError", show(o))
        }
      }
      // Answered queries form a prefix of the batch (replies are routed in order).
      const firstFailure = outcomes.findIndex((o) => o._tag !== "Success")
      assert.isTrue(outcomes.slice(firstFailure).every((o) => o._tag !== "Success"))
      assert.isFalse(conn.isOpen())
      const later = yield* outcome(conn.query("select 1"), 2000)
      assert.strictEqual(later._tag === "Failure" ? later.error._tag : later._tag, "ConnectionError", show(later))
      assert.isTrue(yield* freshWorks(config()))
    }))

  it.live("a TCP reset mid-message and a corrupted type byte end in typed errors", () =>
    Effect.gen(function*() {
      const { proxy, config } = yield* proxied
      const reset = yield* Connection.make(config())
      proxy.connections[proxy.connections.length - 1]!.cut({ afterBytes: 7, direction: "toClient", reset: true })
      const o1 = yield* outcome(reset.query("select repeat('z', 5000) as z"), 5000)
      assert.strictEqual(o1._tag === "Failure" ? o1.error._tag : o1._tag, "ConnectionError", show(o1))

      const corrupt = yield* Connection.make(config())
      const link = proxy.connections[proxy.connections.length - 1]!
      // The very next byte the server sends is the type byte of the first reply.
      link.corrupt({ atByte: link.bytesForwarded.toClient, xor: 0x80, direction: "toClient" })
      const o2 = yield* outcome(corrupt.simple("select 1"), 5000)
      assert.strictEqual(o2._tag === "Failure" ? o2.error._tag : o2._tag, "ProtocolError", show(o2))
      assert.isFalse(corrupt.isOpen())
      assert.isTrue(yield* freshWorks(config()))
    }))

  it.live("a stalled server is bounded by the statement timeout, and the connection recovers when it resumes", () =>
    Effect.gen(function*() {
      const { proxy, config } = yield* proxied
      const conn = yield* Connection.make(config())
      const link = proxy.connections[proxy.connections.length - 1]!
      link.stall("toClient")
      const started = Date.now()
      const o = yield* outcome(conn.query("select 42 as answer", [], { timeout: "300 millis" }), 5000)
      assert.strictEqual(o._tag === "Failure" ? o.error._tag : o._tag, "TimeoutError", show(o))
      assert.isBelow(Date.now() - started, 1500)
      link.resume("toClient")
      const after = yield* conn.query<{ v: number }>("select 7 as v")
      assert.deepStrictEqual(after.rows, [{ v: 7 }])
    }))

  it.live("a server dripping one byte at a time cannot keep a connect pending past connect_timeout", () =>
    Effect.gen(function*() {
      const { proxy, config } = yield* proxied
      proxy.dripBytes(40, "toClient")
      const started = Date.now()
      const o = yield* outcome(Effect.scoped(Connection.make(config({ connectTimeout: 2 }))), 10_000)
      assert.strictEqual(o._tag === "Failure" ? o.error._tag : o._tag, "TimeoutError", show(o))
      assert.isBelow(Date.now() - started, 3500)
      proxy.reset()
      assert.isTrue(yield* freshWorks(config()))
    }))

  it.live("a cut during COPY FROM STDIN fails the copy and applies none of it", () =>
    Effect.gen(function*() {
      const { proxy, config } = yield* proxied
      const table = unique("faults_copy")
      const direct = yield* Connection.make(unixConfig())
      yield* direct.simple(`create table ${table}(id int, pad text)`)
      yield* Effect.addFinalizer(() => Effect.ignore(direct.simple(`drop table if exists ${table}`)))
      const conn = yield* Connection.make(config())
      const link = proxy.connections[proxy.connections.length - 1]!
      link.cut({ afterBytes: 500_000, direction: "toServer" })
      const rows = Stream.range(1, 1_000_000).pipe(Stream.map((i) => `${i}\tpadding-padding-padding\n`), Stream.rechunk(500))
      const o = yield* outcome(Stream.run(rows, copyFrom(conn, `copy ${table} from stdin`)), 20_000)
      assert.strictEqual(o._tag === "Failure" ? o.error._tag : o._tag, "ConnectionError", show(o))
      // The server rolls the COPY back when its client vanishes: nothing half-applied.
      yield* Effect.sleep("200 millis")
      const count = yield* direct.query<{ n: bigint }>(`select count(*) as n from ${table}`)
      assert.strictEqual(count.rows[0]!.n, 0n)
      // A fresh connection copies the same rows completely.
      const copied = yield* Effect.scoped(Effect.flatMap(Connection.make(config()), (c) =>
        Stream.run(Stream.range(1, 1000).pipe(Stream.map((i) => `${i}\tok\n`)), copyFrom(c, `copy ${table} from stdin`))))
      assert.strictEqual(copied, 1000)
    }))

  it.live("a cut during COPY TO STDOUT fails the stream with ConnectionError; a fresh connection copies it all", () =>
    Effect.gen(function*() {
      const { proxy, config } = yield* proxied
      const conn = yield* Connection.make(config())
      proxy.connections[proxy.connections.length - 1]!.cut({ afterBytes: 300_001, direction: "toClient" })
      const sql = "copy (select i, repeat('y', 40) from generate_series(1, 200000) i) to stdout"
      let received = 0
      const o = yield* outcome(Stream.runForEach(copyTo(conn, sql), (b) => Effect.sync(() => (received += b.length))), 20_000)
      assert.strictEqual(o._tag === "Failure" ? o.error._tag : o._tag, "ConnectionError", show(o))
      assert.isAbove(received, 0)
      assert.isBelow(received, 300_001)
      const all = yield* Effect.scoped(Effect.flatMap(Connection.make(config()), (c) =>
        Stream.runFold(copyTo(c, sql), () => 0, (n, b) => n + b.length)))
      assert.isAbove(all, 200000 * 40)
    }))

  it.live("the pool recovers after every session is cut", () =>
    Effect.gen(function*() {
      const { proxy, config } = yield* proxied
      const pool = yield* Pool.make(config(), { max: 4, min: 2, pingAfterIdle: "10 millis" })
      const before = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) => pool.query<{ v: number }>("select $1::int as v", [i]), {
        concurrency: 16
      })
      assert.deepStrictEqual(before.map((r) => r.rows[0]!.v), Array.from({ length: 40 }, (_, i) => i))
      // Cut every session while a batch is in flight.
      const batch = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 80 }, (_, i) => i), (i) => outcome(pool.query("select pg_sleep(0.01), $1::int as v", [i]), 10_000), {
          concurrency: 16
        })
      )
      yield* Effect.sleep("30 millis")
      proxy.cut()
      const during = yield* Fiber.join(batch)
      for (const o of during) assert.isTrue(o._tag === "Success" || isTypedFailure(o), show(o))
      // Afterwards the pool opens new sessions: every query succeeds (a dead session found by a ping is replaced).
      yield* Effect.sleep("50 millis")
      const after = yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) => pool.query<{ v: number }>("select $1::int as v", [i]).pipe(Effect.retry({ times: 2 })),
        { concurrency: 16 }
      )
      assert.deepStrictEqual(after.map((r) => r.rows[0]!.v), Array.from({ length: 40 }, (_, i) => i))
      const stats = yield* pool.stats
      assert.isAtLeast(stats.retired, 1)
    }))
})

describe("Faults: replication through the proxy", () => {
  it.live("a cut replication stream reconnects and delivers every committed change; without reconnect it fails typed", () =>
    Effect.gen(function*() {
      const { proxy, config } = yield* proxied
      const table = unique("faults_repl")
      const slot = unique("faults_slot")
      const publication = unique("faults_pub")
      const admin = yield* Connection.make(unixConfig())
      yield* admin.simple(`create table ${table}(id int primary key); create publication ${publication} for table ${table}`)
      yield* admin.query("select pg_create_logical_replication_slot($1, 'pgoutput')", [slot])
      yield* Effect.addFinalizer(() =>
        Effect.ignore(
          Effect.gen(function*() {
            yield* Effect.sleep("300 millis")
            yield* admin.query(
              "select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null",
              [slot]
            )
            yield* Effect.sleep("200 millis")
            yield* admin.query("select pg_drop_replication_slot($1)", [slot]).pipe(Effect.retry({ times: 10 }))
            yield* admin.simple(`drop publication if exists ${publication}; drop table if exists ${table}`)
          })
        )
      )

      // Without reconnect: the cut ends the stream with a typed error.
      const once = yield* Logical.make(config(), { slot, publications: [publication], mode: "transaction", reconnect: false })
      const failing = yield* Effect.forkChild(outcome(Stream.runDrain(once.changes), 15_000))
      yield* Effect.sleep("500 millis")
      proxy.cut()
      const o = yield* Fiber.join(failing)
      assert.isTrue(isTypedFailure(o), show(o))

      // With reconnect: cuts while changes flow lose nothing.
      const TOTAL = 300
      const seen = new Set<number>()
      const repl = yield* Logical.make(config(), {
        slot,
        publications: [publication],
        mode: "transaction",
        statusInterval: "200 millis",
        reconnect: { initialDelay: "50 millis", maxDelay: "500 millis", maxAttempts: 50 }
      })
      const consumer = yield* Effect.forkChild(
        repl.changes.pipe(
          Stream.filter((e): e is Event.Transaction => e._tag === "Transaction"),
          Stream.tap((t) =>
            Effect.sync(() => {
              for (const c of t.changes) if (c._tag === "Insert") seen.add((c.new as { id: number }).id)
            })
          ),
          repl.acknowledge,
          Stream.takeUntil(() => seen.size >= TOTAL),
          Stream.runDrain,
          Effect.timeout("60 seconds")
        )
      )
      for (let i = 1; i <= TOTAL; i++) {
        yield* admin.query(`insert into ${table} values ($1)`, [i])
        if (i % 75 === 0) proxy.cut()
        if (i % 10 === 0) yield* Effect.sleep("5 millis")
      }
      yield* Fiber.join(consumer)
      assert.strictEqual(seen.size, TOTAL)
      assert.isAtLeast(repl.positions().reconnects, 1)
    }), 120_000)
})

describe("Faults: the process stayed healthy", () => {
  it("no uncaught exception escaped", () => {
    assert.deepStrictEqual(health.uncaught.map((e) => (e instanceof Error ? e.stack : String(e))), [])
  })
})
