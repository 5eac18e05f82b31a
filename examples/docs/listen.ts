// LISTEN/NOTIFY: `listenScoped` returns once the server is listening, so nothing sent afterwards is missed.
// Each listener has a bounded buffer; one that falls too far behind fails instead of growing without bound.
import { Effect, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as Notifications from "@pgfx/connection/Notifications"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const listener = yield* Connection.make({})
    const sender = yield* Connection.make({})
    const jobs = yield* Notifications.listenScoped(listener, "jobs")
    yield* Effect.forEach(["resize 1", "resize 2", "resize 3"], (payload) => Notifications.notify(sender, "jobs", payload))
    const received = yield* jobs.pipe(Stream.take(3), Stream.runCollect)
    return received.map((n) => ({ channel: n.channel, payload: n.payload, fromSender: n.processId === sender.info.processId }))
  })
)
