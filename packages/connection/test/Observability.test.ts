import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect, Stream, Tracer } from "effect"
import { recordingTracer } from "@pgfx/testing/RecordingTracer"
import * as Connection from "../src/Connection.ts"
import { copyFrom, copyFromFile, copyFromRows, copyTo, copyToBytes, copyToFile, copyToRows } from "../src/Copy.ts"
import { tcpConfig } from "./helpers.ts"

describe("Connection: observability", () => {
  it.live("a client span per query with OpenTelemetry database attributes, and never the password", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const config = tcpConfig("scram")
      yield* Effect.gen(function*() {
        const conn = yield* Connection.make(config)
        yield* conn.query("select $1::text as secret_param", ["parameter-value"])
        yield* conn.simple("select 1")
        yield* conn.forEach("select 2", () => {})
        yield* Effect.flip(conn.query("select 1/0"))
      }).pipe(Effect.withSpan("caller"), Effect.withTracer(tracer))
      const query = spans.find((s) => s.name === "pgfx.query")
      const simple = spans.find((s) => s.name === "pgfx.simple")
      const forEach = spans.find((s) => s.name === "pgfx.forEach")
      assert.isDefined(query)
      assert.isDefined(simple)
      assert.isDefined(forEach)
      assert.strictEqual(forEach!.attributes.get("db.query.text"), "select 2")
      assert.strictEqual(query!.kind, "client")
      // Each statement's span is a child of the caller's span and ends with the statement's outcome.
      const caller = spans.find((s) => s.name === "caller")!
      for (const span of spans.filter((s) => s.name !== "caller")) {
        assert.strictEqual(span.parent._tag === "Some" ? span.parent.value.spanId : undefined, caller.spanId)
        assert.strictEqual(span.status._tag, "Ended")
      }
      const failed = spans.find((s) => s.attributes.get("db.query.text") === "select 1/0")!
      assert.isTrue(failed.status._tag === "Ended" && failed.status.exit._tag === "Failure")
      const attrs = Object.fromEntries(query!.attributes)
      assert.strictEqual(attrs["db.system.name"], "postgresql")
      assert.strictEqual(attrs["db.namespace"], config.database)
      assert.strictEqual(attrs["db.query.text"], "select $1::text as secret_param")
      assert.strictEqual(attrs["server.address"], "127.0.0.1")
      assert.strictEqual(attrs["server.port"], config.port)
      const everything = JSON.stringify(spans.map((s) => Object.fromEntries(s.attributes)))
      assert.notInclude(everything, String(config.password))
      assert.notInclude(everything, "parameter-value", "parameters are never put on spans")
    }))

  it.live("span: false runs a statement without its pgfx span (for callers that make their own)", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      yield* Effect.gen(function*() {
        const conn = yield* Connection.make(tcpConfig("scram"))
        yield* conn.query("select 1 as one", [], { span: false })
        yield* conn.simple("select 2", { span: false })
        yield* conn.query("select 3 as three")
      }).pipe(Effect.withTracer(tracer))
      assert.deepStrictEqual(spans.map((s) => s.attributes.get("db.query.text")), ["select 3 as three"])
    }))

  it.live("no statement span is made when no tracing backend is installed (effect's native tracer)", () =>
    Effect.gen(function*() {
      // The native tracer exports nothing and a statement's span is never its parent, so nothing could read
      // it: counting the native tracer's spans around statements shows none are made (a span per statement
      // cost ~10 % of B1's client CPU).
      const native = Tracer.nativeTracer as { span: Tracer.Tracer["span"] }
      const original = native.span
      const names: Array<string> = []
      native.span = (options) => {
        names.push(options.name)
        return original.call(native as Tracer.Tracer, options)
      }
      try {
        yield* Effect.scoped(Effect.gen(function*() {
          const conn = yield* Connection.make(tcpConfig("scram"))
          names.length = 0
          yield* conn.query("select 1 as one")
          yield* conn.simple("select 2")
          yield* Stream.runDrain(copyTo(conn, "copy (select 1) to stdout"))
          yield* Effect.withSpan(conn.query("select 3 as three"), "caller")
        }))
      } finally {
        native.span = original
      }
      // Only the caller's own span: none for the four statements.
      assert.deepStrictEqual(names, ["caller"])
      // With a backend installed, the same statements are traced (see the first test).
      const { spans, tracer } = recordingTracer()
      yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* Connection.make(tcpConfig("scram"))
        yield* conn.query("select 1 as one")
      }).pipe(Effect.withTracer(tracer)))
      assert.isTrue(spans.some((s) => s.name === "pgfx.query"))
    }))

  it.live("a client span per COPY (in, out, from and to a file, typed rows), ended with its outcome", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const file = Path.join(Os.tmpdir(), `pgfx-span-${process.pid}.tsv`)
      Fs.writeFileSync(file, "1\n2\n")
      yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* Connection.make(tcpConfig("scram"))
        yield* conn.simple("create temp table spans_t(i int)")
        yield* Stream.make("3\n").pipe(Stream.run(copyFrom(conn, "copy spans_t from stdin")))
        yield* copyFromFile(conn, "copy spans_t (i) from stdin", file)
        yield* Stream.make({ i: 4 }).pipe(Stream.run(copyFromRows(conn, "spans_t", ["i"])))
        yield* Stream.runDrain(copyTo(conn, "copy spans_t to stdout"))
        yield* Stream.runDrain(copyToBytes(conn, "copy spans_t to stdout (format csv)"))
        yield* Stream.runDrain(copyToRows(conn, "spans_t"))
        yield* copyToFile(conn, "copy spans_t to stdout", "/dev/null")
        yield* Effect.flip(Stream.make("x\n").pipe(Stream.run(copyFrom(conn, "copy spans_t from stdin (format text)"))))
      }).pipe(Effect.ensuring(Effect.sync(() => Fs.rmSync(file, { force: true }))), Effect.withTracer(tracer)))
      const copies = spans.filter((s) => s.name.startsWith("pgfx.copy"))
      assert.deepStrictEqual(copies.map((s) => s.name), [
        "pgfx.copyFrom",
        "pgfx.copyFromFile",
        "pgfx.copyFromRows",
        "pgfx.copyTo",
        "pgfx.copyToBytes",
        "pgfx.copyToRows",
        "pgfx.copyToFile",
        "pgfx.copyFrom"
      ])
      for (const span of copies) {
        assert.strictEqual(span.kind, "client")
        assert.strictEqual(span.attributes.get("db.system.name"), "postgresql")
        assert.match(String(span.attributes.get("db.query.text")), /^COPY /i)
        assert.strictEqual(span.status._tag, "Ended")
      }
      const outcomes = copies.map((s) => (s.status._tag === "Ended" ? s.status.exit._tag : "open"))
      assert.deepStrictEqual(outcomes, ["Success", "Success", "Success", "Success", "Success", "Success", "Success", "Failure"])
    }))

  it.live("connection errors never carry the password", () =>
    Effect.gen(function*() {
      const config = tcpConfig("scram", { password: "Sup3r-Secret-Pw" })
      const err = yield* Effect.flip(Connection.make(config))
      const rendered = JSON.stringify(err) + String(err) + (err as Error).stack
      assert.notInclude(rendered, "Sup3r-Secret-Pw")
      const unreachable = yield* Effect.flip(Connection.make({ ...config, port: 1 }))
      assert.notInclude(JSON.stringify(unreachable) + String(unreachable), "Sup3r-Secret-Pw")
    }))
})
