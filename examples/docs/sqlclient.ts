// pgfx through Effect's own `effect/sql`: the SqlClient service, tagged-template statements, helpers and
// transactions; the layer reads DATABASE_URL and the PG* variables through Effect's Config.
import { Effect, String } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as PgConfig from "@pgfx/connection/PgConfig"
import * as PgClient from "@pgfx/sql/PgClient"

const SqlLive = PgClient.layerConfig(PgConfig.config, {
  maxConnections: 4,
  transformQueryNames: String.camelToSnake,
  transformResultNames: String.snakeToCamel
})

export const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`drop table if exists docs_orders`
  yield* sql`create table docs_orders (id int primary key, customer_id int not null, total_cents int not null)`
  yield* sql.withTransaction(
    sql`insert into docs_orders ${sql.insert([{ id: 1, customerId: 7, totalCents: 250 }, { id: 2, customerId: 7, totalCents: 990 }])}`
  )
  const totals = yield* sql<{ customerId: number; totalCents: number }>`
    select customer_id, sum(total_cents)::int as total_cents from docs_orders where ${sql.in("id", [1, 2])} group by 1`
  yield* sql`drop table docs_orders`
  return totals
}).pipe(Effect.provide(SqlLive))
