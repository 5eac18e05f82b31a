// An explicit pipeline: every statement is written at once; each segment ends with a Sync and is its own
// implicit transaction. An error skips the rest of its segment only.
import { Effect } from "effect"
import * as Connection from "@pgfx/connection/Connection"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const conn = yield* Connection.make({})
    const outcomes = yield* conn.pipeline([
      [{ sql: "select $1::int + 1 as n", params: [41] }, { sql: "select 1 / $1::int as n", params: [0] }, {
        sql: "select 'never' as s"
      }],
      [{ sql: "select upper($1) as s", params: ["still runs"] }]
    ])
    return outcomes.map((segment) =>
      segment.map((o) =>
        o._tag === "Success" ? o.result.rows[0] : o._tag === "Failure" ? `${o.error.code} ${o.error.conditionName}` : "skipped"
      )
    )
  })
)
