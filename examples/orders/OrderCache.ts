/**
 * A read-through cache of orders kept correct by LISTEN/NOTIFY: a trigger notifies `orders_changed`
 * with the order's id on every change (committed changes only: NOTIFY is transactional), and the cache
 * drops that entry. The listener runs for the layer's lifetime on a session of its own.
 */
import { Context, Effect, Layer, Ref, Stream } from "effect"
import * as PgClient from "@pgfx/sql/PgClient"
import { type Order, ordersChangedChannel } from "./Domain.ts"
import { OrderRepository } from "./OrderRepository.ts"

export class OrderCache extends Context.Service<OrderCache>()("examples/orders/OrderCache", {
  make: Effect.gen(function*() {
    const pg = yield* PgClient.PgClient
    const repository = yield* OrderRepository
    const entries = new Map<number, Order>()
    const invalidations = yield* Ref.make(0)

    // LISTEN before serving, so no change made after the layer is built can be missed.
    const queue = yield* pg.listen(ordersChangedChannel)
    yield* Stream.fromQueue(queue).pipe(
      Stream.runForEach((n) =>
        Effect.andThen(
          Effect.sync(() => entries.delete(Number(n.payload))),
          Ref.update(invalidations, (k) => k + 1)
        )),
      Effect.forkScoped
    )

    const get = (id: number) =>
      Effect.suspend(() => {
        const hit = entries.get(id)
        if (hit !== undefined) return Effect.succeed(hit)
        return Effect.tap(repository.find(id), (order) => Effect.sync(() => entries.set(id, order)))
      })

    return {
      get,
      isCached: (id: number) => Effect.sync(() => entries.has(id)),
      invalidations: Ref.get(invalidations)
    } as const
  })
}) {
  static readonly layer = Layer.effect(OrderCache, OrderCache.make)
}
