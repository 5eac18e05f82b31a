/**
 * CancelRequest over a separate socket (54.2.8), with the session's TLS when it used TLS and the
 * protocol-3.2 variable-length key.
 *
 * Invariant: `sendCancel` completes only once the server closed the cancel socket. The postmaster
 * signals the backend before it closes that socket, so when this completes the signal is already
 * pending in the backend; a backend idle in ReadCommand consumes and ignores it ("If we are reading a
 * command from the client, just ignore the cancel request"). The connection therefore holds back any
 * later request until both this has completed and the cancelled request reached ReadyForQuery, which is
 * how a cancel can never hit another fiber's statement (see Connection.ts).
 */
import type * as Tls from "node:tls"
import * as Effect from "effect/Effect"
import { Framer } from "@pgfx/codec/Frame"
import { encodeFrontend } from "@pgfx/codec/FrontendMessage"
import { Writer } from "@pgfx/codec/internal/Writer"
import { negotiateTls } from "./Handshake.ts"
import { connect, type Endpoint } from "./Transport.ts"

export interface CancelTarget {
  readonly endpoint: Endpoint
  /** TLS options when the session uses TLS (the cancel uses TLS too). */
  readonly tls: Tls.ConnectionOptions | undefined
  readonly processId: number
  readonly secretKey: Uint8Array
}

export const sendCancel = (
  target: CancelTarget,
  timeoutMs = 5000
): Effect.Effect<void> =>
  Effect.scoped(
    Effect.gen(function*() {
      const transport = yield* Effect.acquireRelease(
        connect({ endpoint: target.endpoint, timeoutMs }),
        (t) => Effect.sync(() => t.destroy())
      )
      const w = new Writer(64)
      if (target.tls !== undefined) {
        yield* negotiateTls(transport, new Framer(), w, "require", target.tls, timeoutMs)
      }
      encodeFrontend(w, { _tag: "CancelRequest", processId: target.processId, secretKey: target.secretKey } as never)
      yield* transport.write(w.take())
      // Wait for the server to close the socket: the signal has then been sent.
      while (true) {
        const events = yield* transport.take
        if (events.some((e) => e._tag !== "Data")) return
      }
    })
  ).pipe(Effect.timeout(timeoutMs), Effect.ignore)
