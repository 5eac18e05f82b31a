import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import { FaultProxy } from "../../../testing/src/FaultProxy.ts"
import { Writer } from "@pgfx/codec/internal/Writer"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import { TypeRegistry } from "@pgfx/codec/TypeRegistry"
import { copyFrom, copyTo } from "../src/Copy.ts"
import { BINARY_HEADER, BinaryRowParser, type BinaryColumn, encodeBinaryRow, writeBinaryTrailer } from "../src/CopyBinary.ts"
import * as Connection from "../src/Connection.ts"
import { pg18, unixConfig } from "./helpers.ts"

const open = () => Connection.make(unixConfig())

/** A producer that never ends: numbered rows, a few per pull. */
const endlessRows = Stream.iterate(0, (i) => i + 1).pipe(Stream.map((i) => `${i}\n`), Stream.rechunk(200))

describe("COPY faults", () => {
  it.live("malformed binary data fails with the server's error; the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table mb(id int)")
      const err = yield* Effect.flip(
        Stream.make(new TextEncoder().encode("definitely not PGCOPY\n")).pipe(
          Stream.run(copyFrom(conn, "copy mb from stdin (format binary)"))
        )
      )
      assert.strictEqual(err._tag === "PgServerError" ? err.code : err._tag, "22P04")
      // Truncated binary data (header, half a tuple).
      const truncated = new Uint8Array([...BINARY_HEADER, 0, 1, 0, 0, 0, 4, 0, 0])
      const err2 = yield* Effect.flip(Stream.make(truncated).pipe(Stream.run(copyFrom(conn, "copy mb from stdin (format binary)"))))
      assert.strictEqual(err2._tag, "PgServerError")
      const r = yield* conn.query("select 1 as ok")
      assert.deepStrictEqual(r.rows, [{ ok: 1 }])
    }))

  it.live("the server killing the backend during COPY IN fails promptly with ConnectionError", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const admin = yield* open()
      yield* conn.simple("create temp table kill_in(id int)")
      const fiber = yield* Effect.forkChild(endlessRows.pipe(Stream.run(copyFrom(conn, "copy kill_in from stdin"))))
      yield* Effect.sleep("150 millis")
      yield* admin.query("select pg_terminate_backend($1)", [conn.info.processId])
      const started = Date.now()
      const err = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(err._tag, "ConnectionError")
      assert.isBelow(Date.now() - started, 3000)
      assert.isFalse(conn.isOpen())
    }))

  it.live("the server killing the backend during COPY OUT fails promptly with ConnectionError", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const admin = yield* open()
      const fiber = yield* Effect.forkChild(
        // A consumer that keeps up: a slower one sees the failure once it has taken the data that came before it.
        Stream.runDrain(copyTo(conn, "copy (select i from generate_series(1, 1000) a, generate_series(1, 100000) i) to stdout"))
      )
      yield* Effect.sleep("150 millis")
      yield* admin.query("select pg_terminate_backend($1)", [conn.info.processId])
      const started = Date.now()
      const err = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(err._tag, "ConnectionError")
      assert.isBelow(Date.now() - started, 3000)
    }))

  it.live("a connection cut by the fault proxy mid-COPY fails both directions with ConnectionError", () =>
    Effect.gen(function*() {
      const info = pg18()
      const proxy = yield* FaultProxy.scoped({ path: `${info.socketDir}/.s.PGSQL.${info.port}` })
      const viaProxy = unixConfig(18, { host: proxy.host, port: proxy.port, sslMode: "disable" })
      // COPY OUT cut after some data reached the client.
      const out = yield* Connection.make(viaProxy)
      const outConn = proxy.connections[proxy.connections.length - 1]!
      const outFiber = yield* Effect.forkChild(
        Stream.runDrain(copyTo(out, "copy (select i, repeat('y', 50) from generate_series(1, 2000000) i) to stdout"))
      )
      outConn.cut({ afterBytes: 200_000, direction: "toClient" })
      const outErr = yield* Effect.flip(Fiber.join(outFiber))
      assert.strictEqual(outErr._tag, "ConnectionError")
      // COPY IN cut while the producer is pumping.
      const inn = yield* Connection.make(viaProxy)
      const inConn = proxy.connections[proxy.connections.length - 1]!
      yield* inn.simple("create temp table cut_in(id int)")
      const inFiber = yield* Effect.forkChild(endlessRows.pipe(Stream.run(copyFrom(inn, "copy cut_in from stdin"))))
      inConn.cut({ afterBytes: 300_000, direction: "toServer" })
      const inErr = yield* Effect.flip(Fiber.join(inFiber))
      assert.strictEqual(inErr._tag, "ConnectionError")
    }))
})

describe("COPY BINARY parser", () => {
  const registry = TypeRegistry.make()
  const columns: Array<BinaryColumn> = [
    { name: "id", typeOid: 23, codec: registry.get(23) },
    { name: "t", typeOid: 25, codec: registry.get(25) }
  ]
  const encoded = (rows: ReadonlyArray<ReadonlyArray<unknown>>) => {
    const w = new Writer()
    w.bytes(BINARY_HEADER)
    for (const r of rows) encodeBinaryRow(w, columns, r)
    writeBinaryTrailer(w)
    return w.take().slice()
  }
  const parseAll = (pieces: ReadonlyArray<Uint8Array>) => {
    const parser = new BinaryRowParser(columns, "array")
    const out: Array<unknown> = []
    for (const p of pieces) parser.push(p, out)
    parser.end()
    return out
  }

  it("decodes what it encodes at every split point", () => {
    const rows = [[1, "one"], [null, "ä".repeat(40)], [3, null], [-7, ""]]
    const bytes = encoded(rows)
    for (let i = 0; i <= bytes.length; i++) {
      for (const j of [i, Math.min(bytes.length, i + 3), Math.min(bytes.length, i + 17)]) {
        assert.deepStrictEqual(parseAll([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]), rows)
      }
    }
  })

  it("rejects malformed data with ProtocolError", () => {
    const good = encoded([[1, "x"]])
    const bad = (bytes: Uint8Array) => assert.throws(() => parseAll([bytes]), ProtocolError)
    bad(new TextEncoder().encode("PGCOPX\n\xff\r\n\0" + "\0".repeat(8)))
    bad(good.subarray(0, good.length - 2)) // no trailer
    bad(good.subarray(0, good.length - 5)) // ends inside a tuple
    bad(new Uint8Array([...good, 0])) // data after the trailer
    const wrongCount = good.slice()
    wrongCount[20] = 3
    bad(wrongCount)
  })
})
