import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Schema, Sink, Stream } from "effect"
import { copyBoth, copyFrom, copyFromRows, copyTo, copyToBytes, copyToRows } from "../src/Copy.ts"
import * as Connection from "../src/Connection.ts"
import { startTestServer } from "../../../testing/src/index.ts"
import { refuseInt4, unixConfig } from "./helpers.ts"

const open = () => Connection.make(unixConfig())
const enc = new TextEncoder()
const dec = new TextDecoder()

const text = (chunks: Iterable<Uint8Array>) => {
  let s = ""
  for (const c of chunks) s += dec.decode(c, { stream: true })
  return s + dec.decode()
}

describe("copyFrom", () => {
  it.live("text, CSV and binary COPY IN return the row count; rows arrive intact", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table cf(id int, name text)")
      const n1 = yield* Stream.make("1\talpha\n2\tbe", "ta\n3\t\\N\n").pipe(Stream.run(copyFrom(conn, "copy cf from stdin")))
      assert.strictEqual(n1, 3)
      const n2 = yield* Stream.make(enc.encode("4,\"x,\"\"y\"\"\"\n5,\n")).pipe(
        Stream.run(copyFrom(conn, "copy cf from stdin (format csv)"))
      )
      assert.strictEqual(n2, 2)
      const r = yield* conn.query<{ id: number; name: string | null }>("select id, name from cf order by id")
      assert.deepStrictEqual(r.rows, [
        { id: 1, name: "alpha" },
        { id: 2, name: "beta" },
        { id: 3, name: null },
        { id: 4, name: "x,\"y\"" },
        { id: 5, name: null }
      ])
      // A binary COPY OUT fed back as binary COPY IN.
      const binary = yield* Stream.runCollect(copyTo(conn, "copy cf to stdout (format binary)"))
      yield* conn.simple("create temp table cf2 (like cf)")
      const n3 = yield* Stream.fromIterable(binary).pipe(Stream.run(copyFrom(conn, "copy cf2 from stdin (format binary)")))
      assert.strictEqual(n3, 5)
      const same = yield* conn.query("select count(*)::int as n from (select * from cf except select * from cf2) d")
      assert.deepStrictEqual(same.rows, [{ n: 0 }])
    }))

  it.live("a chunk larger than the message size is split into several CopyData messages", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table big(t text)")
      const value = "x".repeat(300_000)
      const n = yield* Stream.make(enc.encode(value + "\n" + value + "\n")).pipe(
        Stream.run(copyFrom(conn, "copy big from stdin", { messageSize: 8192 }))
      )
      assert.strictEqual(n, 2)
      const r = yield* conn.query<{ n: number }>("select sum(length(t))::int as n from big")
      assert.strictEqual(r.rows[0]!.n, 600_000)
    }))

  it.live("a server error during the copy fails with the PgServerError and its line context; the producer stops", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table strict_t(id int primary key)")
      let pulled = 0
      const producer = Stream.fromIterable(Array.from({ length: 100_000 }, (_, i) => i)).pipe(
        Stream.rechunk(1),
        Stream.mapEffect((i) =>
          Effect.sync(() => {
            pulled++
            return i === 2 ? "not a number\n" : `${i + 1}\n`
          })
        )
      )
      const err = yield* Effect.flip(producer.pipe(Stream.run(copyFrom(conn, "copy strict_t from stdin"))))
      assert.strictEqual(err._tag, "PgServerError")
      if (err._tag === "PgServerError") {
        assert.strictEqual(err.code, "22P02")
        assert.match(err.where ?? "", /COPY strict_t, line 3/)
      }
      assert.isBelow(pulled, 100_000, "the producer was not drained after the server failed")
      // The connection is usable, and a constraint violation behaves the same.
      const dup = yield* Effect.flip(Stream.make("1\n2\n1\n").pipe(Stream.run(copyFrom(conn, "copy strict_t from stdin"))))
      assert.strictEqual(dup._tag === "PgServerError" ? dup.code : "", "23505")
      const r = yield* conn.query("select count(*)::int as n from strict_t")
      assert.deepStrictEqual(r.rows, [{ n: 0 }])
    }))

  it.live("a producer failing halfway sends CopyFail with its reason; the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table pf(id int)")
      const producer = Stream.make("1\n", "2\n").pipe(Stream.concat(Stream.fail(new Error("disk on fire"))))
      const err = yield* Effect.flip(producer.pipe(Stream.run(copyFrom(conn, "copy pf from stdin"))))
      assert.instanceOf(err, Error)
      assert.strictEqual((err as Error).message, "disk on fire")
      const r = yield* conn.query("select count(*)::int as n from pf")
      assert.deepStrictEqual(r.rows, [{ n: 0 }])
      assert.strictEqual(conn.transactionStatus(), "I")
    }))

  it.live("interrupting a COPY IN sends CopyFail; the next query works", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table ci(id int)")
      const slow = Stream.fromEffectRepeat(Effect.as(Effect.sleep("1 millis"), "7\n"))
      const fiber = yield* Effect.forkChild(slow.pipe(Stream.run(copyFrom(conn, "copy ci from stdin"))))
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(fiber)
      const r = yield* conn.query("select count(*)::int as n from ci")
      assert.deepStrictEqual(r.rows, [{ n: 0 }])
    }))

  it.live("a statement that is not COPY FROM STDIN fails cleanly", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const err = yield* Effect.flip(Stream.make("x").pipe(Stream.run(copyFrom(conn, "select 1"))))
      assert.strictEqual(err._tag, "InvalidRequestError")
      const err2 = yield* Effect.flip(Stream.make("x").pipe(Stream.run(copyFrom(conn, "copy (select 1) to stdout"))))
      assert.strictEqual(err2._tag, "InvalidRequestError")
      const r = yield* conn.query("select 2 as two")
      assert.deepStrictEqual(r.rows, [{ two: 2 }])
    }))

  it.live("queries issued during a COPY wait for it (the COPY has the wire to itself)", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table ex(id int)")
      const producer = Stream.fromEffectRepeat(Effect.as(Effect.sleep("2 millis"), "5\n")).pipe(Stream.take(50))
      const copy = yield* Effect.forkChild(producer.pipe(Stream.run(copyFrom(conn, "copy ex from stdin"))))
      yield* Effect.sleep("20 millis")
      const r = yield* conn.query<{ n: number }>("select count(*)::int as n from ex")
      // The count ran after the COPY committed.
      assert.deepStrictEqual(r.rows, [{ n: 50 }])
      assert.strictEqual(yield* Fiber.join(copy), 50)
    }))
})

describe("copyTo", () => {
  it.live("streams the payloads of COPY TO STDOUT", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const chunks = yield* Stream.runCollect(copyTo(conn, "copy (select i, 'r' || i from generate_series(1, 5000) i) to stdout"))
      const lines = text(chunks).split("\n")
      assert.strictEqual(lines.length, 5001)
      assert.strictEqual(lines[0], "1\tr1")
      assert.strictEqual(lines[4999], "5000\tr5000")
    }))

  it.live("a CopyData larger than the piece threshold arrives in pieces, never joined", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const chunks = Array.from(
        yield* Stream.runCollect(
          copyTo(conn, "copy (select repeat('ab', 2000000)) to stdout", { pieceThreshold: 64 * 1024 })
        )
      )
      assert.isAbove(chunks.length, 1)
      for (const c of chunks) assert.isAtMost(c.length, 1024 * 1024)
      assert.strictEqual(text(chunks), "ab".repeat(2_000_000) + "\n")
      // The framer is back to its normal mode.
      assert.isUndefined(conn.internal.wire.framer.streamFrames)
    }))

  it.live("copyToBytes: the same bytes as copyTo, one chunk per socket read instead of one per row", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const sql = "copy (select i, md5(i::text), repeat('z', i % 300) from generate_series(1, 200000) i) to stdout"
      const rows = Array.from(yield* Stream.runCollect(copyTo(conn, sql)))
      const lentBefore = conn.internal.wire.transport.lentReads
      const bytes = Array.from(yield* Stream.runCollect(copyToBytes(conn, sql)))
      // Its payloads are copied out of each read at once, so the reads were lent, not copied first.
      assert.isAbove(conn.internal.wire.transport.lentReads, lentBefore)
      assert.strictEqual(rows.length, 200_000)
      assert.isBelow(bytes.length, rows.length / 10) // a read holds ~9 KB, ~50 rows, here
      for (const c of bytes) assert.isAtMost(c.length, 1024 * 1024)
      assert.strictEqual(Buffer.concat(bytes).toString("hex"), Buffer.concat(rows).toString("hex"))
      // Chunks are never written to again: later chunks did not overwrite earlier ones.
      const copies = bytes.map((c) => c.slice())
      yield* Stream.runDrain(copyToBytes(conn, sql))
      bytes.forEach((c, i) => assert.deepStrictEqual(c, copies[i]))
      // A slow consumer: the reader waits on it, reads are then copied (never lent to a busy reader); same bytes.
      const slow = Array.from(
        yield* Stream.runCollect(copyToBytes(conn, sql, { bufferChunks: 1 }).pipe(Stream.tap(() => Effect.sleep("1 millis"))))
      )
      assert.strictEqual(Buffer.concat(slow).toString("hex"), Buffer.concat(rows).toString("hex"))
      // A payload over the piece threshold arrives joined per read, never whole.
      const big = Array.from(
        yield* Stream.runCollect(copyToBytes(conn, "copy (select repeat('ab', 2000000)) to stdout", { pieceThreshold: 64 * 1024 }))
      )
      assert.isAbove(big.length, 1)
      assert.strictEqual(text(big), "ab".repeat(2_000_000) + "\n")
      const r = yield* conn.query("select 6 as six")
      assert.deepStrictEqual(r.rows, [{ six: 6 }])
    }))

  it.live("a server error fails the stream; the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const err = yield* Effect.flip(
        Stream.runCollect(copyTo(conn, "copy (select 1/(i - 500) from generate_series(1, 1000) i) to stdout"))
      )
      assert.strictEqual(err._tag === "PgServerError" ? err.code : err._tag, "22012")
      const r = yield* conn.query("select 3 as three")
      assert.deepStrictEqual(r.rows, [{ three: 3 }])
    }))

  it.live("a consumer that stops early cancels the COPY; the next query works", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const started = Date.now()
      const first = yield* copyTo(conn, "copy (select i, repeat('x', 100) from generate_series(1, 1000) a, generate_series(1, 100000) i) to stdout").pipe(
        Stream.take(3),
        Stream.runCollect
      )
      assert.strictEqual(Chunk.size(Chunk.fromIterable(first)), 3)
      const r = yield* conn.query("select 4 as four")
      assert.deepStrictEqual(r.rows, [{ four: 4 }])
      assert.isBelow(Date.now() - started, 10_000)
    }))

  it.live("interrupting a slow consumer mid-stream leaves the connection usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const fiber = yield* Effect.forkChild(
        copyTo(conn, "copy (select i from generate_series(1, 1000) a, generate_series(1, 100000) i) to stdout").pipe(
          Stream.tap(() => Effect.sleep("1 millis")),
          Stream.runDrain
        )
      )
      yield* Effect.sleep("200 millis")
      yield* Fiber.interrupt(fiber)
      const r = yield* conn.query("select 5 as five")
      assert.deepStrictEqual(r.rows, [{ five: 5 }])
    }))
})

describe("typed rows over COPY BINARY", () => {
  it.live("copyFromRows encodes typed rows through the binary codecs; copyToRows decodes them", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple(
        "create temp table typed(id int8, name text, score float8, ok bool, born date, data bytea, tags text[], n numeric, j jsonb)"
      )
      const rows = [
        { id: 1n, name: "ä\tb\nc\\", score: 1.5, ok: true, born: new Date("2001-02-03T00:00:00Z"), data: new Uint8Array([0, 1, 255]), tags: ["a", "b,c"], n: "123.456", j: { k: [1, 2] } },
        { id: 2n, name: null, score: null, ok: false, born: null, data: null, tags: [], n: null, j: null },
        [3n, "array row", -0.25, null, null, new Uint8Array(0), null, "-1", [1, "x"]]
      ]
      const columns = ["id", "name", "score", "ok", "born", "data", "tags", "n", "j"]
      const n = yield* Stream.fromIterable(rows).pipe(Stream.run(copyFromRows(conn, "typed", columns)))
      assert.strictEqual(n, 3)
      const viaSelect = (yield* conn.query("select * from typed order by id")).rows
      const viaCopy = Array.from(yield* Stream.runCollect(copyToRows(conn, "typed")))
      assert.deepStrictEqual(viaCopy, viaSelect as Array<unknown>)
      assert.deepStrictEqual(viaCopy[0], { ...rows[0] as object })
      const arrays = Array.from(yield* Stream.runCollect(copyToRows<ReadonlyArray<unknown>>(conn, "select id, name from typed where id > 1 order by id", { rowMode: "array" })))
      assert.deepStrictEqual(arrays, [[2n, null], [3n, "array row"]])
    }))

  it.live("copyFromRows with a Schema encodes each value first; an unencodable row sends CopyFail", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table sch(id int4, label text)")
      const Item = Schema.Struct({ id: Schema.Number, label: Schema.String })
      const n = yield* Stream.make({ id: 1, label: "one" }, { id: 2, label: "two" }).pipe(
        Stream.run(copyFromRows(conn, "sch", ["id", "label"], Item))
      )
      assert.strictEqual(n, 2)
      const err = yield* Effect.flip(
        Stream.make({ id: 3, label: "x" }, { id: 2 ** 40, label: "too big" }).pipe(Stream.run(copyFromRows(conn, "sch", ["id", "label"])))
      )
      assert.strictEqual(err._tag, "InvalidRequestError")
      const r = yield* conn.query("select count(*)::int as n from sch")
      assert.deepStrictEqual(r.rows, [{ n: 2 }])
      const missing = yield* Effect.flip(Stream.make([1]).pipe(Stream.run(copyFromRows(conn, "sch", ["nope"]))))
      assert.strictEqual(missing._tag, "InvalidRequestError")
    }))
})

describe("copyToRows: rows decoded from the CopyData frames", () => {
  it.live("values larger than pieceThreshold (streamed in pieces) and many rows per socket read decode as SELECT returns them", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table wide(id int4, body text, at timestamptz)")
      yield* conn.simple(
        "insert into wide select g, repeat(chr(65 + g % 26), case when g % 1000 = 0 then 300000 else g % 50 end), " +
          "'2024-01-01'::timestamptz + g * interval '1 second' from generate_series(1, 20000) g"
      )
      const viaSelect = (yield* conn.query<{ id: number; body: string; at: Date }>("select * from wide order by id")).rows
      const viaCopy = Array.from(yield* Stream.runCollect(copyToRows(conn, "select * from wide order by id", { pieceThreshold: 65536 })))
      assert.strictEqual(viaCopy.length, 20000)
      assert.deepStrictEqual(viaCopy, viaSelect as Array<unknown>)
      assert.strictEqual((viaCopy[999] as { body: string }).body.length, 300000)
    }))

  it.live("a value its codec rejects ends the stream with the error, mid-COPY, and the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table unlucky(id int4, name text)")
      yield* conn.simple("insert into unlucky select g, 'name ' || g from generate_series(1, 200000) g")
      const restore = refuseInt4(conn, 100000)
      let seen = 0
      const error = yield* Effect.flip(
        copyToRows<{ id: number }>(conn, "select * from unlucky order by id").pipe(
          Stream.runForEach((row) => Effect.sync(() => void (seen = row.id)))
        )
      )
      assert.strictEqual(error._tag, "ProtocolError")
      assert.match(error.message, /column 0 "id" \(type OID 23, binary\): value 100000 is refused/)
      // Every row before the refused one reached the consumer, none after it.
      assert.strictEqual(seen, 99999)
      restore()
      const r = yield* conn.query("select count(*)::int as n from unlucky")
      assert.deepStrictEqual(r.rows, [{ n: 200000 }])
    }))

  it.live("a consumer that stops early cancels the COPY; the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const first = Array.from(
        yield* Stream.runCollect(Stream.take(copyToRows<{ g: number }>(conn, "select g from generate_series(1, 5000000) g"), 3))
      )
      assert.deepStrictEqual(first, [{ g: 1 }, { g: 2 }, { g: 3 }])
      const r = yield* conn.query("select 41 + 1 as n")
      assert.deepStrictEqual(r.rows, [{ n: 42 }])
    }))
})

describe("copyBoth", () => {
  // A private server: creating a logical slot waits for every transaction running in the cluster, and
  // test_decoding decodes every change of the database, so the shared server's other tests must not be
  // able to stall this one.
  it.live("START_REPLICATION on a logical slot: XLogData after an insert, then a clean CopyDone", () =>
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => startTestServer({ version: 18 })),
        (s) => Effect.promise(() => s.stop())
      )
      const config = { host: server.info.socketDir, port: server.info.port, user: server.info.superuser, database: server.info.database }
      const conn = yield* Connection.make(config)
      const slot = "copy_both"
      yield* conn.simple("create table repl_t(id int)")
      yield* conn.simple(`select pg_create_logical_replication_slot('${slot}', 'test_decoding')`)
      const repl = yield* Connection.make({ ...config, replication: "database" })
      const duplex = yield* copyBoth(repl, `START_REPLICATION SLOT ${slot} LOGICAL 0/0`)
      yield* conn.query("insert into repl_t values (42)")
      const xlog = yield* duplex.messages.pipe(
        Stream.filter((m) => m[0] === 0x77 /* 'w' */),
        Stream.map((m) => dec.decode(m.subarray(25))),
        Stream.filter((s) => s.includes("repl_t")),
        Stream.take(1),
        Stream.runCollect
      )
      assert.match(Array.from(xlog)[0]!, /table public\.repl_t: INSERT: id\[integer\]:42/)
      // A standby status update goes the other way.
      const status = new Uint8Array(34)
      status[0] = 0x72 // 'r'
      yield* duplex.send(status)
      yield* duplex.end
      assert.isTrue(repl.isOpen())
      const r = yield* repl.simple("IDENTIFY_SYSTEM")
      assert.strictEqual(r[0]!.rows.length, 1)
    }), 60_000)
})

void Sink
