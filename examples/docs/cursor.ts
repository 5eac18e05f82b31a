// A cursor: rows fetched 500 at a time (a portal with a row limit), each batch only when the consumer
// pulls. Taking the first 1,200 rows fetches three batches and closes the portal.
import { Effect, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const conn = yield* Connection.make({})
    const rows = yield* conn.cursor<{ n: number }>("select n from generate_series(1, 1000000) as n", [], { batchSize: 500 }).pipe(
      Stream.take(1200),
      Stream.runCollect
    )
    // The connection is free again once the cursor's stream ended.
    const { rows: [after] } = yield* conn.query<{ ok: boolean }>("select true as ok")
    return { count: rows.length, last: rows[rows.length - 1]!.n, after: after!.ok }
  })
)
