// Rows as a Stream: the socket is paused while the consumer is behind, so memory stays bounded
// whatever the size of the result.
import { Effect, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const conn = yield* Connection.make({}) // {}: everything from the PG* environment variables
    return yield* conn.stream<{ n: number }>("select n from generate_series(1, $1::int) as n", [200_000]).pipe(
      Stream.filter((row) => row.n % 2 === 0),
      Stream.runFold(() => 0, (sum, row) => sum + row.n)
    )
  })
)
