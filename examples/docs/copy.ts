// COPY in both directions with backpressure: a Stream of CSV text into `copyFrom` (a Sink; the producer is
// pulled only while the socket keeps up), a file into `copyFromFile` (read straight into CopyData
// messages), `copyTo` as a Stream of CopyData payloads (one per row), and `copyToFile` (a table into a file).
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as Copy from "@pgfx/connection/Copy"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const conn = yield* Connection.make({})
    yield* conn.simple("create temporary table readings (sensor int, value float8)")

    const csv = Stream.range(1, 50_000).pipe(Stream.map((i) => `${i % 10},${i / 100}\n`))
    const copied = yield* Stream.run(csv, Copy.copyFrom(conn, "copy readings from stdin (format csv)"))

    const file = Path.join(Os.tmpdir(), `readings-${process.pid}.csv`)
    Fs.writeFileSync(file, "1,0.5\n2,0.25\n")
    const fromFile = yield* Copy.copyFromFile(conn, "copy readings from stdin (format csv)", file).pipe(
      Effect.ensuring(Effect.sync(() => Fs.rmSync(file, { force: true })))
    )

    const decoder = new TextDecoder()
    const exported = yield* Copy.copyTo(conn, "copy (select sensor, sum(value) from readings group by 1 order by 1) to stdout").pipe(
      Stream.map((line) => decoder.decode(line).trimEnd().split("\t")),
      Stream.runCollect
    )

    const out = Path.join(Os.tmpdir(), `readings-out-${process.pid}.csv`)
    const toFile = yield* Copy.copyToFile(conn, "copy readings to stdout (format csv)", out)
    const lines = Fs.readFileSync(out, "utf8").split("\n").length - 1
    Fs.rmSync(out)
    return { copied, fromFile, exported, toFile, lines }
  })
)
