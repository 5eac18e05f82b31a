// Cancellation by interruption: a timeout interrupts the query's fiber, pgfx sends a CancelRequest, and the
// server stops the statement; the connection stays usable. `{ timeout }` does the same with pgfx's own
// TimeoutError("Statement").
import { Effect } from "effect"
import * as Connection from "@pgfx/connection/Connection"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const conn = yield* Connection.make({})
    const started = Date.now()
    const viaEffect = yield* conn.query("select pg_sleep(30)").pipe(Effect.timeout("200 millis"), Effect.flip)
    const viaOption = yield* conn.query("select pg_sleep(30)", [], { timeout: "200 millis" }).pipe(Effect.flip)
    // Replies are in order: this answer comes only after the server stopped both sleeps.
    const { rows } = yield* conn.query<{ n: number }>("select 1 as n")
    return {
      errors: [viaEffect._tag, viaOption._tag === "TimeoutError" ? `TimeoutError(${viaOption.reason})` : viaOption._tag],
      n: rows[0]!.n,
      elapsedMs: Date.now() - started
    }
  })
)
