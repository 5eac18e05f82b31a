// A scripted mock server plays what a real PostgreSQL will not: here, a message of a type the protocol does
// not define, in reply to a query. The connection fails with ProtocolError (the reply stream can no longer
// be trusted: every waiting request fails with it) and the mock recorded exactly what the client sent.
import { Effect } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import { expect, MockServer, sendBytes, trustStartup } from "@pgfx/testing/MockServer"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const server = yield* MockServer.scoped([
      trustStartup(),
      expect("Query"),
      sendBytes(Uint8Array.of(0x6a, 0, 0, 0, 4)) // type 'j', which the protocol does not define
    ])
    const conn = yield* Connection.make({ host: server.host, port: server.port, user: "docs", database: "docs", sslMode: "disable" })
    const error = yield* conn.simple("select 1").pipe(Effect.flip)
    return {
      error: error._tag === "ProtocolError" ? `ProtocolError(${error.reason})` : error._tag,
      isOpen: conn.isOpen(),
      received: server.connections[0]!.messages.map((m) => m._tag)
    }
  })
)
