// A pool as a service (PgPool) and a transaction: every query made through the pool inside
// `withTransaction` runs on the one pinned session; a failure rolls the whole transaction back.
import { Data, Effect } from "effect"
import * as PgConfig from "@pgfx/connection/PgConfig"
import * as Pool from "@pgfx/connection/Pool"

class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: string }> {}

const transfer = (from: string, to: string, amount: number) =>
  Pool.withTransaction(
    Effect.gen(function*() {
      const pool = yield* Pool.PgPool
      yield* pool.query("update docs_accounts set balance = balance + $2 where name = $1", [to, amount])
      const { rows } = yield* pool.query<{ balance: number }>(
        "update docs_accounts set balance = balance - $2 where name = $1 returning balance",
        [from, amount]
      )
      if (rows[0]!.balance < 0) return yield* new InsufficientFunds({ account: from })
    })
  )

export const program = Effect.gen(function*() {
  const pool = yield* Pool.PgPool
  yield* pool.simple(`drop table if exists docs_accounts;
    create table docs_accounts (name text primary key, balance int not null);
    insert into docs_accounts values ('alice', 100), ('bob', 0)`)
  yield* transfer("alice", "bob", 70)
  const refused = yield* transfer("alice", "bob", 70).pipe(Effect.flip) // would leave alice at -40: rolled back
  const { rows } = yield* pool.query<{ name: string; balance: number }>("select name, balance from docs_accounts order by name")
  yield* pool.simple("drop table docs_accounts")
  return { refused: refused._tag, balances: rows }
}).pipe(Effect.provide(Pool.layerConfig(PgConfig.config, { max: 4 })))
