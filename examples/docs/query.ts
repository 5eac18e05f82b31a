// A query with parameters, its rows checked by a Schema. The connection is a service (Connection.Connection)
// provided by a Layer that reads the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD…).
import { Effect, Schema } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as PgConfig from "@pgfx/connection/PgConfig"

const Product = Schema.Struct({
  id: Schema.Number, // int4 → number
  name: Schema.String,
  price: Schema.String, // numeric → exact decimal string, never a float
  stock: Schema.BigInt, // int8 → bigint
  tags: Schema.Array(Schema.String) // text[] → array
})

export const program = Effect.gen(function*() {
  const conn = yield* Connection.Connection
  const { rows } = yield* conn.query(
    `select id, name, price, stock, tags
       from (values (1, 'pen', 1.25::numeric, 120::int8, '{office}'::text[]),
                    (2, 'ink', 7.50, 8, '{office,refill}'),
                    (3, 'desk', 240.00, 2, '{furniture}')) as p(id, name, price, stock, tags)
      where price < $1 and $2 = any(tags)
      order by id`,
    ["10.00", "office"] // numeric parameters are decimal strings too: exact both ways
  )
  return yield* Schema.decodeUnknownEffect(Schema.Array(Product))(rows)
}).pipe(Effect.provide(Connection.layerConfig(PgConfig.config)))
