// A first program: one connection for the Scope, a query with a parameter, and rows as a Stream.
import { Effect, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"

export const program = Effect.scoped(
  Effect.gen(function*() {
    // {} resolves like libpq: PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, ~/.pgpass, defaults.
    // A URI ("postgresql://app@db.internal/app?sslmode=verify-full") or "host=… dbname=…" works too.
    const conn = yield* Connection.make({})
    const { rows } = yield* conn.query<{ answer: number }>("select $1::int + 1 as answer", [41])
    // Rows as a stream: while the consumer is slow, the socket is paused.
    const squares = yield* conn.stream<{ n: number }>("select n * n as n from generate_series(1, 5) as n").pipe(
      Stream.map((row) => row.n),
      Stream.runCollect
    )
    return { answer: rows[0]!.answer, squares }
  })
)
