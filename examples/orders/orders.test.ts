/**
 * The orders examples, run against PostgreSQL 18: migrations, the repository (insert, find, update,
 * streaming list, a two-write transaction) and the LISTEN-driven cache.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Stream, String as Str } from "effect"
import * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"
import * as PgClient from "@pgfx/sql/PgClient"
import { inject } from "vitest"
import { migrations } from "./Domain.ts"
import { OrderCache } from "./OrderCache.ts"
import { OrderRepository, OrdersSchema } from "./OrderRepository.ts"

const info = inject("pg18")
const schemaName = `orders_example_${process.pid}`

/** The client as an application would configure it: a pool, camelCase in code, snake_case in SQL. */
const ClientLive = PgClient.layer({
  host: info.socketDir,
  port: info.port,
  username: info.superuser,
  database: info.database,
  maxConnections: 4,
  transformQueryNames: Str.camelToSnake,
  transformResultNames: Str.snakeToCamel
})

/** A private schema, migrated on start and dropped at the end. */
const SchemaLive = Layer.effect(
  OrdersSchema,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.acquireRelease(
      sql.unsafe(`create schema ${schemaName}`),
      () => Effect.ignore(sql.unsafe(`drop schema ${schemaName} cascade`))
    )
    const ran = yield* Migrator.make({})({ loader: migrations(schemaName), table: `${schemaName}.migrations` })
    assert.deepStrictEqual(ran.map(([id]) => id), [1, 2, 3])
    return schemaName
  })
)

const AppLive = Layer.mergeAll(OrderRepository.layer, OrderCache.layer.pipe(Layer.provide(OrderRepository.layer))).pipe(
  Layer.provideMerge(SchemaLive),
  Layer.provideMerge(ClientLive)
)

describe("examples/orders", () => {
  it.layer(AppLive, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("insert, find, update (with the Result checked against the table)", () =>
      Effect.gen(function*() {
        const repo = yield* OrderRepository
        const order = yield* repo.insert({ customer: "ann", totalCents: 1200 })
        assert.strictEqual(order.status, "pending")
        assert.instanceOf(order.createdAt, Date)
        const found = yield* repo.find(order.id)
        assert.deepStrictEqual(found, order)
        const paid = yield* repo.updateStatus({ id: order.id, status: "paid" })
        assert.isTrue(Option.isSome(paid))
        assert.strictEqual(Option.getOrThrow(paid).status, "paid")
        assert.isTrue(Option.isNone(yield* repo.updateStatus({ id: -1, status: "paid" })))
        const ids = yield* repo.withStatusIn(["paid", "shipped"])
        assert.isTrue(ids.some((r) => r.id === order.id))
      }))

    it.effect("placeOrder writes the order and its lines in one transaction", () =>
      Effect.gen(function*() {
        const repo = yield* OrderRepository
        const order = yield* repo.placeOrder("bob", [
          { sku: "apple", quantity: 3, unitCents: 50 },
          { sku: "pear", quantity: 1, unitCents: 80 }
        ])
        assert.strictEqual(order.totalCents, 230)
        assert.deepStrictEqual((yield* repo.linesOf(order.id)).map((l) => [l.sku, l.quantity]), [["apple", 3], ["pear", 1]])
        // a line that violates a constraint rolls back the order as well
        const failed = yield* Effect.flip(repo.placeOrder("bob", [{ sku: "bad", quantity: 0, unitCents: 1 }]))
        assert.strictEqual((failed as { reason?: { _tag: string } }).reason?._tag, "ConstraintError")
        const bobs = yield* Stream.runCollect(repo.listByCustomer("bob"))
        assert.deepStrictEqual(bobs.map((o) => o.id), [order.id])
      }))

    it.effect("listByCustomer streams every order in order", () =>
      Effect.gen(function*() {
        const repo = yield* OrderRepository
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`insert into ${schemaName}.orders (customer, total_cents) select 'carol', i from generate_series(1, 5000) i`)
        let count = 0
        let last = 0
        yield* Stream.runForEach(repo.listByCustomer("carol"), (o) =>
          Effect.sync(() => {
            assert.isAbove(o.id, last)
            last = o.id
            count++
          }))
        assert.strictEqual(count, 5000)
      }))

    it.effect("the cache is invalidated by committed changes only (LISTEN/NOTIFY)", () =>
      Effect.gen(function*() {
        const repo = yield* OrderRepository
        const cache = yield* OrderCache
        const sql = yield* SqlClient.SqlClient
        const order = yield* repo.insert({ customer: "dan", totalCents: 10 })
        const waitFor = (condition: Effect.Effect<boolean>) =>
          Effect.repeat(Effect.andThen(Effect.sleep("10 millis"), condition), { until: (ok) => ok, times: 300 })
        // the insert's own notification may still be on its way: wait until it has been seen
        yield* waitFor(Effect.map(cache.invalidations, (n) => n >= 1))
        assert.strictEqual((yield* cache.get(order.id)).status, "pending")
        assert.isTrue(yield* cache.isCached(order.id))
        // a rolled-back update notifies nobody: the entry stays (the global invalidation count is not
        // compared: notifications of other tests' orders may still be arriving)
        yield* Effect.ignore(sql.withTransaction(Effect.andThen(repo.updateStatus({ id: order.id, status: "shipped" }), Effect.fail("undo"))))
        yield* Effect.sleep("100 millis")
        assert.isTrue(yield* cache.isCached(order.id))
        assert.strictEqual((yield* cache.get(order.id)).status, "pending")
        // a committed one drops it, and the next read sees the new state
        yield* repo.updateStatus({ id: order.id, status: "shipped" })
        yield* waitFor(Effect.map(cache.isCached(order.id), (cached) => !cached))
        assert.strictEqual((yield* cache.get(order.id)).status, "shipped")
      }))
  })
})
