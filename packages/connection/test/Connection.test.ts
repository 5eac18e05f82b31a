import { assert, describe, it } from "@effect/vitest"
import { Cause, Chunk, Duration, Effect, Exit, Fiber, Stream } from "effect"
import * as Connection from "../src/Connection.ts"
import { pg18, refuseInt4, tcpConfig, unixConfig } from "./helpers.ts"

const open = (input: Parameters<typeof Connection.make>[0]) => Connection.make(input)

describe("Connection: queries", () => {
  it.live("runs SELECT 1 over the unix socket, protocol 3.2", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const r = yield* conn.query<{ one: number }>("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
      assert.strictEqual(r.command, "SELECT")
      assert.strictEqual(r.rowCount, 1)
      assert.strictEqual(conn.info.protocolVersion, "3.2")
      assert.isTrue(conn.info.serverVersion.startsWith("18"))
      assert.isTrue(conn.info.processId > 0)
    }))

  it.live("simple query returns every statement's result", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const results = yield* conn.simple("select 1 as a; select 'x' as b, 2 as c; create temp table t(x int)")
      assert.deepStrictEqual(results.map((r) => r.command), ["SELECT", "SELECT", "CREATE TABLE"])
      assert.deepStrictEqual(results[1]!.rows, [{ b: "x", c: 2 }])
      const empty = yield* conn.simple("")
      assert.deepStrictEqual(empty.map((r) => r.command), [""])
    }))

  it.live("binary parameters and results round-trip through the prepared statement", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const r = yield* conn.query<{ i: number; b: bigint; t: string; f: number; n: string; ok: boolean; nul: null }>(
        "select $1::int4 as i, $2::int8 as b, $3::text as t, $4::float8 as f, $5::numeric as n, $6::bool as ok, $7::int as nul",
        [42, 9007199254740993n, "héllo", 1.5, "12345678901234567890.123456789", true, null]
      )
      assert.deepStrictEqual(r.rows[0], {
        i: 42,
        b: 9007199254740993n,
        t: "héllo",
        f: 1.5,
        n: "12345678901234567890.123456789",
        ok: true,
        nul: null
      })
    }))

  it.live("numeric parameters: exact decimal strings, and JS numbers and bigints as the decimal they print as", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const r = yield* conn.query<{ a: string; b: string; c: string; d: string }>(
        "select $1::numeric::text as a, $2::numeric::text as b, $3::numeric::text as c, $4::numeric::text as d",
        ["0.1000000000000000000001", 1.5, 12345678901234567890n, 1e-7]
      )
      assert.deepStrictEqual(r.rows[0], { a: "0.1000000000000000000001", b: "1.5", c: "12345678901234567890", d: "0.0000001" })
    }))

  it.live("the connection's type registry takes options (lossless timestamps)", () =>
    Effect.gen(function*() {
      const conn = yield* Connection.make(unixConfig(), { types: { temporal: "lossless" } })
      const r = yield* conn.query<{ t: { toString(): string } }>("select '2024-01-02 03:04:05.123456+00'::timestamptz as t")
      assert.include(r.rows[0]!.t.toString(), "05.123456")
    }))

  it.live("a failed query leaves the connection usable and reports the server's error", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const err = yield* Effect.flip(conn.query("select 1/0"))
      assert.strictEqual(err._tag, "PgServerError")
      if (err._tag === "PgServerError") {
        assert.strictEqual(err.code, "22012")
        assert.strictEqual(err.conditionName, "division_by_zero")
        assert.strictEqual(err.classCode, "22")
      }
      const bad = yield* Effect.flip(conn.query("select from nowhere_at_all"))
      assert.strictEqual(bad._tag, "PgServerError")
      const ok = yield* conn.query("select 2 as two")
      assert.deepStrictEqual(ok.rows, [{ two: 2 }])
    }))

  it.live("wrong parameter count is a typed error before anything is sent", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const err = yield* Effect.flip(conn.query("select $1::int", []))
      assert.strictEqual(err._tag, "InvalidRequestError")
      const ok = yield* conn.query("select $1::int as x", [7])
      assert.deepStrictEqual(ok.rows, [{ x: 7 }])
    }))

  it.live("array row mode and unnamed statements", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig(18, { statementCacheSize: 0 }))
      const r = yield* conn.query("select $1::int + 1 as a, 'z' as b", [1], { rowMode: "array" })
      assert.deepStrictEqual(r.rows as unknown, [[2, "z"]])
    }))

  it.live("evicted statements are closed on the server: it never holds more than the cache size", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig(18, { statementCacheSize: 2 }))
      for (let i = 0; i < 6; i++) yield* conn.query(`select $1::int + ${i} as v`, [i])
      yield* conn.query("select $1::int + 0 as v", [1]) // a cached one, used again
      const r = yield* conn.query<{ n: number }>("select count(*)::int as n from pg_prepared_statements")
      assert.isAtMost(r.rows[0]!.n, 2)
      assert.isAtLeast(r.rows[0]!.n, 1)
    }))

  it.live("1,000 concurrent queries pipeline on one connection and each gets its own answer", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const results = yield* Effect.forEach(
        Array.from({ length: 1000 }, (_, i) => i),
        (i) => Effect.map(conn.query<{ v: number }>("select $1::int * 2 as v", [i]), (r) => r.rows[0]!.v),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results, Array.from({ length: 1000 }, (_, i) => i * 2))
    }))

  it.live("an error in one pipelined query does not disturb the others", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const exits = yield* Effect.forEach(
        [1, 0, 2, 0, 4],
        (d) => Effect.exit(conn.query<{ v: number }>("select 8 / $1::int as v", [d])),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(exits.map((e) => Exit.isSuccess(e)), [true, false, true, false, true])
      assert.deepStrictEqual(exits.filter(Exit.isSuccess).map((e) => (e.value.rows[0] as { v: number }).v), [8, 4, 2])
    }))

  it.live("statement cache re-prepares after the result type changes (0A000)", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      yield* conn.simple("create temp table shape(a int)")
      yield* conn.query("select * from shape")
      yield* conn.simple("alter table shape add column b text; insert into shape values (1, 'x')")
      const r = yield* conn.query("select * from shape")
      assert.deepStrictEqual(r.rows, [{ a: 1, b: "x" }])
    }))
})

describe("Connection: explicit pipelines", () => {
  it.live("an error skips the rest of its segment only; other segments are unaffected", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      yield* conn.simple("create temp table pl(x int primary key)")
      const out = yield* conn.pipeline([
        [{ sql: "insert into pl values ($1)", params: [1] }, { sql: "select 1/$1::int as y", params: [0] }, {
          sql: "insert into pl values ($1)",
          params: [2]
        }],
        [{ sql: "insert into pl values ($1)", params: [3] }, { sql: "select count(*)::int as n from pl" }]
      ])
      assert.deepStrictEqual(out[0]!.map((o) => o._tag), ["Success", "Failure", "Skipped"])
      const failure = out[0]![1]!
      assert.strictEqual(failure._tag === "Failure" ? failure.error.code : "", "22012")
      assert.deepStrictEqual(out[1]!.map((o) => o._tag), ["Success", "Success"])
      // The failed segment's implicit transaction rolled back its first insert.
      const n = out[1]![1]!
      assert.deepStrictEqual(n._tag === "Success" ? n.result.rows : [], [{ n: 1 }])
      const rows = yield* conn.query("select x from pl order by x")
      assert.deepStrictEqual(rows.rows, [{ x: 3 }])
    }))

  it.live("a pipeline of 10,000 statements in 100 segments does not deadlock", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const segments = Array.from({ length: 100 }, (_, s) =>
        Array.from({ length: 100 }, (_, i) => ({ sql: "select $1::int as v, repeat('x', 200) as pad", params: [s * 100 + i] })))
      const out = yield* conn.pipeline(segments)
      const values = out.flat().map((o) => (o._tag === "Success" ? (o.result.rows[0] as { v: number }).v : -1))
      assert.deepStrictEqual(values, Array.from({ length: 10000 }, (_, i) => i))
    }))
})

describe("Connection: streaming", () => {
  it.live("streams 200,000 rows in chunks", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const count = yield* conn.stream<{ i: number }>("select i from generate_series(1, 200000) i").pipe(
        Stream.runFold(() => 0, (n, row) => n + (row.i > 0 ? 1 : 0))
      )
      assert.strictEqual(count, 200000)
      const after = yield* conn.query("select 1 as x")
      assert.deepStrictEqual(after.rows, [{ x: 1 }])
    }))

  it.live("rows are decoded as the consumer takes them: a value its codec rejects fails the stream there, and the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const restore = refuseInt4(conn, 150000)
      let seen = 0
      const error = yield* Effect.flip(
        conn.stream<{ i: number }>("select i from generate_series(1, 300000) i").pipe(
          Stream.runForEach((row) => Effect.sync(() => void (seen = row.i)))
        )
      )
      assert.strictEqual(error._tag, "ProtocolError")
      assert.match(error.message, /column 0 "i" .*value 150000 is refused/)
      // Every row before the refused one reached the consumer, none after it.
      assert.strictEqual(seen, 149999)
      restore()
      const after = yield* conn.query("select 1 as x")
      assert.deepStrictEqual(after.rows, [{ x: 1 }])
    }))

  it.live("a slow consumer pauses the server (backpressure) and memory stays bounded", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const observer = yield* open(unixConfig())
      const rssBefore = process.memoryUsage().rss
      let seen = 0
      const fiber = yield* Effect.forkChild(
        conn.stream<{ i: number; pad: string }>("select i, repeat('x', 100) as pad from generate_series(1, 5000000) i").pipe(
          Stream.runForEach(() =>
            Effect.suspend(() => (++seen === 1000 ? Effect.sleep(Duration.seconds(30)) : Effect.void))
          )
        )
      )
      // The backend fills the socket and then waits to write: the server is paused by our reader.
      let waiting = ""
      for (let i = 0; i < 100 && waiting !== "ClientWrite"; i++) {
        yield* Effect.sleep(Duration.millis(50))
        const r = yield* observer.query<{ w: string | null }>("select wait_event as w from pg_stat_activity where pid = $1", [
          conn.info.processId
        ])
        waiting = r.rows[0]?.w ?? ""
      }
      assert.strictEqual(waiting, "ClientWrite")
      assert.isBelow(seen, 200000, "the consumer saw only a few batches ahead of the pause")
      assert.isBelow(process.memoryUsage().rss - rssBefore, 100 * 1024 * 1024)
      yield* Fiber.interrupt(fiber)
    }))

  it.live("a consumer that stops early leaves the connection usable", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const first = yield* conn.stream<{ i: number }>("select i from generate_series(1, 1000000) i").pipe(
        Stream.take(10),
        Stream.runCollect
      )
      assert.strictEqual(first.length, 10)
      const after = yield* conn.query("select 3 as x")
      assert.deepStrictEqual(after.rows, [{ x: 3 }])
    }))
})

describe("Connection: forEach (a callback per row, in the reader)", () => {
  // The backend of `conn` is idle again (its statement ended or was cancelled) within ~2 s.
  const idleSoon = (observer: Connection.ConnectionApi, pid: number) =>
    Effect.gen(function*() {
      let state = ""
      for (let i = 0; i < 100 && state !== "idle"; i++) {
        const r = yield* observer.query<{ s: string | null }>("select state as s from pg_stat_activity where pid = $1", [pid])
        state = r.rows[0]?.s ?? ""
        if (state !== "idle") yield* Effect.sleep(Duration.millis(20))
      }
      return state
    })

  it.live("hands every row to the callback in order and returns the command's tag and count", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      let n = 0
      let inOrder = true
      const r = yield* conn.forEach<{ i: number; t: string }>(
        "select i, 'row ' || i as t from generate_series(1, $1::int) i",
        (row) => {
          n++
          if (row.i !== n || row.t !== `row ${n}`) inOrder = false
        },
        [300_000]
      )
      assert.strictEqual(n, 300_000)
      assert.isTrue(inOrder)
      assert.strictEqual(r.command, "SELECT")
      assert.strictEqual(r.rowCount, 300_000)
      assert.strictEqual(r.rows.length, 0)
      // Rows kept past the call, bytea values included, are intact at the end (values are copies, not views).
      const kept: Array<{ i: number; b: Uint8Array; t: string }> = []
      yield* conn.forEach<{ i: number; b: Uint8Array; t: string }>(
        "select i, decode(lpad(to_hex(i), 8, '0'), 'hex') as b, repeat(chr(65 + i % 26), i % 50) as t from generate_series(1, 50000) i",
        (row) => void kept.push(row)
      )
      assert.strictEqual(kept.length, 50_000)
      kept.forEach((row, k) => {
        const i = k + 1
        assert.strictEqual(row.i, i)
        assert.deepStrictEqual(Array.from(row.b), [(i >>> 24) & 0xff, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff])
        assert.strictEqual(row.t, String.fromCharCode(65 + i % 26).repeat(i % 50))
      })
      const arrays: Array<ReadonlyArray<unknown>> = []
      yield* conn.forEach<ReadonlyArray<unknown>>("select 1 as a, 'x' as b", (row) => void arrays.push(row), [], { rowMode: "array" })
      assert.deepStrictEqual(arrays, [[1, "x"]])
      const after = yield* conn.query("select 1 as x")
      assert.deepStrictEqual(after.rows, [{ x: 1 }])
    }))

  it.live("a callback that throws: the effect dies with its error, no row after it, the statement is cancelled", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const observer = yield* open(unixConfig())
      const boom = new Error("stop at 1000")
      let last = 0
      // 100 million rows, produced one at a time (a set-returning function in the select list streams):
      // read to the end, this would take minutes.
      const exit = yield* Effect.exit(
        conn.forEach<{ i: number }>("select generate_series(1, 100000000) as i", (row) => {
          last = row.i
          if (row.i === 1000) throw boom
        })
      )
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) assert.strictEqual(Cause.squash(exit.cause), boom)
      assert.strictEqual(last, 1000)
      assert.strictEqual(yield* idleSoon(observer, conn.info.processId), "idle")
      const after = yield* conn.query("select 2 as x")
      assert.deepStrictEqual(after.rows, [{ x: 2 }])
    }))

  it.live("a row that cannot be decoded fails it with a ProtocolError after the rows before it; the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const restore = refuseInt4(conn, 150000)
      let seen = 0
      const error = yield* Effect.flip(
        conn.forEach<{ i: number }>("select i from generate_series(1, 300000) i", (row) => void (seen = row.i))
      )
      restore()
      assert.strictEqual(error._tag, "ProtocolError")
      assert.match(error.message, /value 150000 is refused/)
      assert.strictEqual(seen, 149999)
      const after = yield* conn.query("select 3 as x")
      assert.deepStrictEqual(after.rows, [{ x: 3 }])
    }))

  it.live("a server error fails it with the PgServerError", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      let seen = 0
      const error = yield* Effect.flip(conn.forEach("select 10 / (5 - i) as x from generate_series(1, 10) i", () => void seen++))
      assert.strictEqual(error._tag, "PgServerError")
      if (error._tag === "PgServerError") assert.strictEqual(error.code, "22012")
      const after = yield* conn.query("select 4 as x")
      assert.deepStrictEqual(after.rows, [{ x: 4 }])
    }))

  it.live("interrupting it cancels the statement on the server", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const observer = yield* open(unixConfig())
      let seen = 0
      const fiber = yield* Effect.forkChild(conn.forEach("select generate_series(1, 100000000) as i", () => void seen++))
      for (let i = 0; i < 200 && seen === 0; i++) yield* Effect.sleep(Duration.millis(10))
      assert.isAbove(seen, 0)
      yield* Fiber.interrupt(fiber)
      const at = seen
      assert.strictEqual(yield* idleSoon(observer, conn.info.processId), "idle")
      assert.isBelow(at, 100000000)
      const after = yield* conn.query("select 5 as x")
      assert.deepStrictEqual(after.rows, [{ x: 5 }])
    }))
})

describe("Connection: cursors (portal row limits)", () => {
  it.live("fetches in batches with PortalSuspended and returns every row in order", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const rows = yield* conn.cursor<{ i: number }>("select i from generate_series(1, $1::int) i", [10_000], { batchSize: 333 })
        .pipe(Stream.runCollect)
      assert.strictEqual(rows.length, 10_000)
      assert.isTrue(rows.every((r, k) => r.i === k + 1))
    }))

  it.live("rows are fetched only as the consumer pulls; other requests wait and then run", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      yield* conn.simple("create temp table fetched(n int)")
      // A volatile function records each row the server actually produced.
      yield* conn.simple(
        "create function pg_temp.note(i int) returns int language plpgsql as $$ begin insert into fetched values (i); return i; end $$"
      )
      const first = yield* conn.cursor<{ i: number }>("select pg_temp.note(i) as i from generate_series(1, 100000) i", [], {
        batchSize: 50
      }).pipe(Stream.take(120), Stream.runCollect)
      assert.strictEqual(first.length, 120)
      const produced = yield* conn.query<{ n: number }>("select count(*)::int as n from fetched")
      assert.strictEqual(produced.rows[0]!.n, 150, "three batches of 50, not 100,000 rows")
    }))

  it.live("an error inside a cursor fails the stream and leaves the connection usable", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const err = yield* Effect.flip(
        conn.cursor("select 10 / (5 - i) as x from generate_series(1, 10) i", [], { batchSize: 2 }).pipe(Stream.runCollect)
      )
      assert.strictEqual(err._tag, "PgServerError")
      const ok = yield* conn.query("select 9 as nine")
      assert.deepStrictEqual(ok.rows, [{ nine: 9 }])
    }))
})

describe("Connection: cancellation", () => {
  it.live("interrupting a running query cancels it on the server within 1 s", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const observer = yield* open(unixConfig())
      const fiber = yield* Effect.forkChild(conn.query("select pg_sleep(30)"))
      // Wait until the server runs it.
      const active = (state: string) =>
        observer.query<{ n: bigint }>(
          "select count(*) as n from pg_stat_activity where pid = $1 and state = $2",
          [conn.info.processId, state]
        ).pipe(Effect.map((r) => Number(r.rows[0]!.n)))
      for (let i = 0; i < 100 && (yield* active("active")) === 0; i++) yield* Effect.sleep(Duration.millis(20))
      assert.strictEqual(yield* active("active"), 1)
      const t0 = Date.now()
      yield* Fiber.interrupt(fiber)
      let idle = 0
      while (Date.now() - t0 < 1000 && (idle = yield* active("idle")) === 0) yield* Effect.sleep(Duration.millis(10))
      assert.strictEqual(idle, 1, "the backend is idle again within 1 s")
      const r = yield* conn.query("select 5 as five")
      assert.deepStrictEqual(r.rows, [{ five: 5 }])
    }))

  it.live("a per-query timeout cancels the statement and fails with TimeoutError", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const err = yield* Effect.flip(conn.query("select pg_sleep(20)", [], { timeout: Duration.millis(200) }))
      assert.strictEqual(err._tag, "TimeoutError")
      const r = yield* conn.query("select 6 as six")
      assert.deepStrictEqual(r.rows, [{ six: 6 }])
    }))

  it.live("a broken socket fails every waiting request with ConnectionError", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig())
      const killer = yield* open(unixConfig())
      const waiting = yield* Effect.forkChild(
        Effect.forEach([1, 2, 3], () => Effect.exit(conn.query("select pg_sleep(5)")), { concurrency: "unbounded" })
      )
      yield* Effect.sleep(Duration.millis(200))
      yield* killer.query("select pg_terminate_backend($1)", [conn.info.processId])
      const exits = yield* Fiber.join(waiting)
      for (const e of exits) {
        assert.isTrue(Exit.isFailure(e))
        if (Exit.isFailure(e)) {
          const err = Cause.squash(e.cause) as { _tag: string }
          assert.strictEqual(err._tag, "ConnectionError")
        }
      }
      assert.isFalse(conn.isOpen())
      const later = yield* Effect.flip(conn.query("select 1"))
      assert.strictEqual(later._tag, "ConnectionError")
    }))

  it.live("closing the scope terminates the session", () =>
    Effect.gen(function*() {
      const observer = yield* open(unixConfig())
      const pid = yield* Effect.scoped(Effect.map(open(unixConfig()), (c) => c.info.processId))
      let n = 1
      for (let i = 0; i < 50 && n > 0; i++) {
        const r = yield* observer.query<{ n: bigint }>("select count(*) as n from pg_stat_activity where pid = $1", [pid])
        n = Number(r.rows[0]!.n)
        if (n > 0) yield* Effect.sleep(Duration.millis(20))
      }
      assert.strictEqual(n, 0)
    }))
})

describe("Connection: authentication and TLS", () => {
  it.live("SCRAM-SHA-256 over TCP", () =>
    Effect.gen(function*() {
      const conn = yield* open(tcpConfig("scram"))
      assert.strictEqual(conn.info.authenticationMethod, "scram-sha-256")
      assert.isFalse(conn.info.tls)
      const r = yield* conn.query("select current_user as u")
      assert.deepStrictEqual(r.rows, [{ u: pg18().users.scram.user }])
    }))

  it.live("SCRAM-SHA-256-PLUS with channel binding over verified TLS", () =>
    Effect.gen(function*() {
      const conn = yield* open(
        tcpConfig("scram", { host: "localhost", sslMode: "verify-full", sslRootCert: pg18().caFile, channelBinding: "require" })
      )
      assert.strictEqual(conn.info.authenticationMethod, "scram-sha-256-plus")
      assert.isTrue(conn.info.tls)
      const r = yield* conn.query<{ ssl: boolean }>("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
      assert.deepStrictEqual(r.rows, [{ ssl: true }])
    }))

  it.live("direct TLS negotiation (ALPN postgresql)", () =>
    Effect.gen(function*() {
      const conn = yield* open(
        tcpConfig("scram", { host: "localhost", sslMode: "verify-full", sslRootCert: pg18().caFile, sslNegotiation: "direct" })
      )
      assert.isTrue(conn.info.tls)
      assert.strictEqual(conn.info.authenticationMethod, "scram-sha-256-plus")
    }))

  it.live("verify-full rejects a host name the certificate does not name", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(
        open(tcpConfig("scram", { host: "127.0.0.2", sslMode: "verify-full", sslRootCert: pg18().caFile }))
      )
      assert.include(["ConnectionError", "TimeoutError"], err._tag)
    }))

  it.live("MD5 and cleartext password", () =>
    Effect.gen(function*() {
      const md5 = yield* open(tcpConfig("md5"))
      assert.strictEqual(md5.info.authenticationMethod, "md5")
      const clear = yield* open(tcpConfig("password"))
      assert.strictEqual(clear.info.authenticationMethod, "password")
    }))

  it.live("a wrong password fails fast with the server's message", () =>
    Effect.gen(function*() {
      const t0 = Date.now()
      const err = yield* Effect.flip(open(tcpConfig("scram", { password: "definitely-wrong" })))
      assert.strictEqual(err._tag, "AuthenticationError")
      if (err._tag === "AuthenticationError") {
        assert.strictEqual(err.reason, "Rejected")
        assert.strictEqual(err.code, "28P01")
        assert.notInclude(err.message, "definitely-wrong")
      }
      assert.isBelow(Date.now() - t0, 5000)
    }))

  it.live("require_auth refuses a method before sending the password", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(open(tcpConfig("password", { requireAuth: "scram-sha-256" })))
      assert.strictEqual(err._tag, "AuthenticationError")
      if (err._tag === "AuthenticationError") assert.strictEqual(err.reason, "MethodNotAllowed")
      const cb = yield* Effect.flip(open(tcpConfig("md5", { channelBinding: "require", sslMode: "require" })))
      assert.strictEqual(cb._tag, "AuthenticationError")
    }))

  it.live("client certificate authentication", () =>
    Effect.gen(function*() {
      const info = pg18()
      const conn = yield* open({
        host: "localhost",
        port: info.port,
        user: info.users.cert.user,
        database: info.database,
        sslMode: "verify-full",
        sslRootCert: info.caFile,
        sslCert: info.users.cert.certFile,
        sslKey: info.users.cert.keyFile
      })
      const r = yield* conn.query("select current_user as u")
      assert.deepStrictEqual(r.rows, [{ u: info.users.cert.user }])
    }))

  it.live("several hosts: the first unreachable one is skipped", () =>
    Effect.gen(function*() {
      const info = pg18()
      const conn = yield* open({
        host: ["127.0.0.1", info.socketDir],
        port: [1, info.port],
        user: info.superuser,
        database: info.database,
        sslMode: "disable"
      })
      assert.strictEqual(conn.info.port, info.port)
      const ro = yield* Effect.flip(open({
        host: info.socketDir,
        port: info.port,
        user: info.superuser,
        database: info.database,
        targetSessionAttrs: "standby"
      }))
      assert.strictEqual(ro._tag, "ConnectionError")
    }))
})

describe("Connection: PostgreSQL 15 (protocol 3.0)", () => {
  it.live("negotiates down to 3.0 and queries", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig(15))
      assert.strictEqual(conn.info.protocolVersion, "3.0")
      assert.isTrue(conn.info.serverVersion.startsWith("15"))
      const r = yield* conn.query("select $1::text || '!' as s", ["hi"])
      assert.deepStrictEqual(r.rows, [{ s: "hi!" }])
    }))

  it.live("min_protocol_version=3.2 refuses a 3.0-only server", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(open(unixConfig(15, { minProtocolVersion: "3.2" })))
      assert.strictEqual(err._tag, "ConnectionError")
      if (err._tag === "ConnectionError") assert.strictEqual(err.reason, "ProtocolVersion")
    }))

  it.live("interrupt cancels on PostgreSQL 15 too (4-byte key)", () =>
    Effect.gen(function*() {
      const conn = yield* open(unixConfig(15))
      const err = yield* Effect.flip(conn.query("select pg_sleep(20)", [], { timeout: Duration.millis(300) }))
      assert.strictEqual(err._tag, "TimeoutError")
      const r = yield* conn.query("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
    }))
})

void Chunk
