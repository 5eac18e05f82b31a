// A fault-injection proxy between a connection and the real server: cut the TCP stream and watch every
// waiting request fail promptly with ConnectionError (never hang), and `closed` report the same failure.
import { Effect, Fiber } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as PgConfig from "@pgfx/connection/PgConfig"
import { FaultProxy } from "@pgfx/testing/FaultProxy"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const { hosts: [server] } = yield* PgConfig.resolve() // the PG* environment: here a unix socket
    const proxy = yield* FaultProxy.scoped(
      server!.kind === "unix" ? { path: `${server!.host}/.s.PGSQL.${server!.port}` } : { host: server!.host, port: server!.port }
    )
    const conn = yield* Connection.make({ host: proxy.host, port: proxy.port, sslMode: "disable" })
    const before = yield* conn.query<{ ok: boolean }>("select true as ok")

    const link = proxy.connections[0]!
    const sent = link.bytesForwarded.toServer
    const sleeping = yield* Effect.forkScoped(Effect.flip(conn.query("select pg_sleep(30)")))
    yield* Effect.promise(() => link.waitForBytes(sent + 1, "toServer")) // the query reached the server
    proxy.cut()
    const failure = yield* Fiber.join(sleeping)
    const closed = yield* conn.closed
    return {
      before: before.rows[0]!.ok,
      failure: failure._tag === "ConnectionError" ? `ConnectionError(${failure.reason})` : failure._tag,
      closed: closed._tag,
      isOpen: conn.isOpen()
    }
  })
)
