// A callback per row, called as each row is decoded (no queue, no effect per row): the fastest way
// through a large result when the work per row is synchronous. Each row is garbage once the callback
// returns, so memory stays at a socket chunk; a callback that throws stops the statement on the server.
import { Effect } from "effect"
import * as Connection from "@pgfx/connection/Connection"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const conn = yield* Connection.make({})
    const longest = { name: "", length: 0 }
    const result = yield* conn.forEach<{ name: string }>(
      "select 'item ' || repeat('x', n % 97) as name from generate_series(1, $1::int) as n",
      (row) => {
        if (row.name.length > longest.length) Object.assign(longest, { name: row.name, length: row.name.length })
      },
      [500_000]
    )
    return { rows: result.rowCount, longest: longest.length }
  })
)
