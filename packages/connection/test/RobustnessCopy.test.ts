/**
 * Protocol state in the COPY sub-protocol, played by the mock server: during COPY FROM STDIN or
 * COPY TO STDOUT only CopyData/CopyDone/CopyFail-era messages (and the statement's ending) are legal;
 * a result set (or a ReadyForQuery) in the middle of a COPY means the reply stream no longer lines up
 * with the requests, and must fail the connection with a ProtocolError rather than be ignored.
 * The fixes belong to Copy.ts (CopyRequest ignores 'D'/'T' while in COPY) and ReplicationStream.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import type { BackendMessage } from "@pgfx/codec/BackendMessage"
import { expect as expectMessage, hang, MockServer, send, sendBytes, sleep, trustStartup } from "@pgfx/testing/MockServer"
import * as Connection from "../src/Connection.ts"
import { startReplication } from "@pgfx/replication/ReplicationStream"
import { copyFrom, copyTo } from "../src/Copy.ts"
import { cat, commandComplete, dataRow, frame, mockConfig, outcome, readyForQuery, show, text } from "./RobustnessHelpers.ts"

const copyIn: BackendMessage = { _tag: "CopyInResponse", format: 0, columnFormats: [0] } as never
const copyOut: BackendMessage = { _tag: "CopyOutResponse", format: 0, columnFormats: [0] } as never
const copyBoth: BackendMessage = { _tag: "CopyBothResponse", format: 0, columnFormats: [] } as never

describe("Robustness: protocol state during COPY", () => {
  it.live("a DataRow during COPY FROM STDIN is a ProtocolError", () =>
    Effect.gen(function*() {
      const server = yield* MockServer.scoped([
        ...trustStartup(),
        expectMessage("Query"),
        send(copyIn),
        sleep(50),
        sendBytes(cat(dataRow("x"), commandComplete("COPY 2"), readyForQuery())),
        hang()
      ])
      const o = yield* outcome(
        Effect.scoped(
          Effect.flatMap(Connection.make(mockConfig(server.port)), (conn) =>
            Stream.run(Stream.make("1\n", "2\n"), copyFrom(conn, "copy t from stdin")))
        ),
        5000
      )
      assert.strictEqual(o._tag === "Failure" ? o.error._tag : o._tag, "ProtocolError", show(o))
    }))

  it.live("a DataRow during COPY TO STDOUT is a ProtocolError", () =>
    Effect.gen(function*() {
      const server = yield* MockServer.scoped([
        ...trustStartup(),
        expectMessage("Query"),
        send(copyOut),
        sendBytes(cat(frame("d", text("1\n")), dataRow("x"), frame("c", new Uint8Array(0)), commandComplete("COPY 1"), readyForQuery())),
        hang()
      ])
      const o = yield* outcome(
        Effect.scoped(
          Effect.flatMap(Connection.make(mockConfig(server.port)), (conn) => Stream.runCollect(copyTo(conn, "copy t to stdout")))
        ),
        5000
      )
      assert.strictEqual(o._tag === "Failure" ? o.error._tag : o._tag, "ProtocolError", show(o))
    }))

  it.live("a ReadyForQuery in the middle of CopyBoth (no CopyDone, no CommandComplete) is a ProtocolError", () =>
    Effect.gen(function*() {
      const server = yield* MockServer.scoped([
        ...trustStartup(),
        expectMessage("Query"),
        send(copyBoth),
        sendBytes(cat(frame("d", cat(text("w"), new Uint8Array(24), text("BEGIN"))), readyForQuery())),
        hang()
      ])
      const o = yield* outcome(
        Effect.scoped(
          Effect.flatMap(Connection.make(mockConfig(server.port, { replication: "database" })), (conn) =>
            Effect.flatMap(
              startReplication(conn, "START_REPLICATION SLOT s LOGICAL 0/0", { mode: "logical", statusInterval: 0 }),
              (stream) => Stream.runDrain(stream.messages)
            ))
        ),
        5000
      )
      assert.strictEqual(o._tag === "Failure" ? o.error._tag : o._tag, "ProtocolError", show(o))
    }))
})
