/**
 * The orders repository: a Context.Service over effect/sql's SqlClient (provided here by @pgfx/sql).
 *
 * - insert / find / updateStatus with SqlSchema (Request and Result schemas), find's Result checked
 *   against the server's columns at first use (TypedQuery).
 * - list as a Stream: rows arrive with backpressure, never all in memory.
 * - placeOrder: an order and its lines written in one transaction (both or neither).
 */
import { Array as Arr, Context, Effect, Layer, Schema, Stream } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as SqlSchema from "effect/sql/SqlSchema"
import * as PgClient from "@pgfx/sql/PgClient"
import * as TypedQuery from "@pgfx/sql/TypedQuery"
import { NewLine, NewOrder, Order, OrderLine, OrderStatus } from "./Domain.ts"

export class OrderRepository extends Context.Service<OrderRepository>()("examples/orders/OrderRepository", {
  make: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const pg = yield* PgClient.PgClient
    const schema = yield* OrdersSchema

    const orders = sql(`${schema}.orders`)
    const lines = sql(`${schema}.order_lines`)

    const insert = SqlSchema.findOne({
      Request: NewOrder,
      Result: Order,
      execute: (order) => sql`insert into ${orders} ${sql.insert(order).returning("*")}`
    })

    const find = TypedQuery.findOne({
      Request: Schema.Number,
      Result: Order,
      execute: (id) => sql`select * from ${orders} where id = ${id}`
    })

    const updateStatus = SqlSchema.findOneOption({
      Request: Schema.Struct({ id: Schema.Number, status: OrderStatus }),
      Result: Order,
      execute: ({ id, status }) => sql`update ${orders} set ${sql.update({ status })} where id = ${id} returning *`
    })

    const linesOf = SqlSchema.findAll({
      Request: Schema.Number,
      Result: OrderLine,
      execute: (orderId) => sql`select * from ${lines} where order_id = ${orderId} order by sku`
    })

    const decodeOrder = Schema.decodeUnknownEffect(Order)

    /** Every order of a customer, oldest first, streamed. */
    const listByCustomer = (customer: string): Stream.Stream<Order, unknown> =>
      sql`select * from ${orders} where customer = ${customer} order by id`.stream.pipe(Stream.mapEffect((row) => decodeOrder(row)))

    /** The order and its lines in one transaction; the total is computed from the lines. */
    const placeOrder = (customer: string, items: ReadonlyArray<NewLine>) =>
      sql.withTransaction(Effect.gen(function*() {
        const totalCents = items.reduce((sum, l) => sum + l.quantity * l.unitCents, 0)
        const order = yield* insert({ customer, totalCents })
        const rows: ReadonlyArray<Record<string, unknown>> = items.map((l) => ({ orderId: order.id, ...l }))
        if (Arr.isReadonlyArrayNonEmpty(rows)) yield* sql`insert into ${lines} ${sql.insert(rows)}`
        return order
      }))

    /** Ids of the orders in any of these states (an array parameter). */
    const withStatusIn = (statuses: ReadonlyArray<OrderStatus>) =>
      sql<{ id: number }>`select id from ${orders} where status = any(${pg.array(statuses, "text")}) order by id`

    return { insert, find, updateStatus, linesOf, listByCustomer, placeOrder, withStatusIn } as const
  })
}) {
  static readonly layer = Layer.effect(OrderRepository, OrderRepository.make)
}

/** The database schema the orders tables live in. */
export class OrdersSchema extends Context.Service<OrdersSchema, string>()("examples/orders/OrdersSchema") {}
