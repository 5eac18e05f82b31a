// Schema-typed queries whose Result schema is checked against the server's columns at first use: a field
// whose column decodes to another type fails with ResultShapeError instead of producing wrong values.
import { Effect, Schema, String } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as PgConfig from "@pgfx/connection/PgConfig"
import * as PgClient from "@pgfx/sql/PgClient"
import * as TypedQuery from "@pgfx/sql/TypedQuery"

const Order = Schema.Struct({ id: Schema.Number, total: Schema.String, placedAt: Schema.Date })
const WrongOrder = Schema.Struct({ id: Schema.Number, total: Schema.Number }) // numeric is not a number

export const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const orderSql = (id: number) => sql`select ${id}::int as id, 12.50::numeric as total, now() as placed_at`

  const findOrder = TypedQuery.findOne({ Request: Schema.Number, Result: Order, execute: orderSql })
  const order = yield* findOrder(1)

  const findWrong = TypedQuery.findOne({ Request: Schema.Number, Result: WrongOrder, execute: orderSql })
  const mismatch = yield* findWrong(1).pipe(Effect.flip)
  return { order, mismatch: mismatch._tag === "ResultShapeError" ? mismatch.message : mismatch._tag }
}).pipe(Effect.provide(PgClient.layerConfig(PgConfig.config, { transformResultNames: String.snakeToCamel })))
