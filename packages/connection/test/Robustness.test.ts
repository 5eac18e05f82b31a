/**
 * Robustness against a broken or malicious server, played by the scriptable mock server: every
 * byte sequence ends in a typed error (or a correct result) delivered to the waiting fibers, within a
 * deadline, with no defect, no uncaught exception, no event-loop stall and bounded memory.
 *
 * The mock server plays only what a real server will not send; behaviour against the real
 * PostgreSQL under network faults is in Faults.test.ts.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Stream } from "effect"
import * as fc from "fast-check"
import type { BackendMessage } from "@pgfx/codec/BackendMessage"
import {
  close,
  encodeMessages,
  expect as expectMessage,
  hang,
  MockServer,
  type Script,
  send,
  sendBytes,
  sendChunks,
  sessionStart,
  sleep,
  sslRefused,
  step,
  trustStartup
} from "@pgfx/testing/MockServer"
import { ScramServer } from "@pgfx/codec/Scram"
import * as Connection from "../src/Connection.ts"
import { startReplication } from "@pgfx/replication/ReplicationStream"
import { copyTo } from "../src/Copy.ts"
import type { PgConfigInput } from "../src/PgConfig.ts"
import {
  cat,
  commandComplete,
  dataRow,
  errorResponse,
  frame,
  healthMonitor,
  i16,
  i32,
  mockConfig,
  notice,
  notification,
  outcome,
  type Outcome,
  parameterStatus,
  readyForQuery,
  repeat,
  retainedHeap,
  rowDescription,
  show,
  text,
  TYPED_ERRORS
} from "./RobustnessHelpers.ts"
import { unixConfig } from "./helpers.ts"

const health = healthMonitor()
beforeAll(() => health.start())
afterAll(() => health.stop())

const MB = 1024 * 1024

/** Opens a connection to a mock server playing `script` and runs `action` on it, with a deadline. */
const attack = <A>(
  script: Script | ((id: number) => Script),
  action: (conn: Connection.ConnectionApi) => Effect.Effect<A, unknown, never>,
  extra: PgConfigInput = {},
  deadlineMs = 8000
) =>
  Effect.gen(function*() {
    const server = yield* MockServer.scoped(script)
    const started = Date.now()
    const o = yield* outcome(
      Effect.scoped(Effect.flatMap(Connection.make(mockConfig(server.port, extra)), action)) as Effect.Effect<
        A,
        { readonly _tag: string; readonly message: string }
      >,
      deadlineMs
    )
    return { outcome: o, server, elapsedMs: Date.now() - started }
  })

/** Asserts a typed failure with this tag (and reason, and message fragment, when given). */
const assertFails = (
  o: Outcome<unknown>,
  tag: string,
  reason?: string | ReadonlyArray<string>,
  messageIncludes?: string
): void => {
  assert.strictEqual(o._tag, "Failure", show(o))
  if (o._tag !== "Failure") return
  assert.strictEqual(o.error._tag, tag, show(o))
  if (reason !== undefined) {
    const reasons = typeof reason === "string" ? [reason] : reason
    assert.include(reasons, o.error.reason, show(o))
  }
  if (messageIncludes !== undefined) assert.include(o.error.message, messageIncludes, show(o))
}

/** A session, then the reply bytes to the first Query; the socket then stays open. */
const afterQuery = (...replies: ReadonlyArray<Uint8Array>): Script => [
  ...trustStartup(),
  expectMessage("Query"),
  ...replies.map((r) => sendBytes(r)),
  hang()
]

const simple = (sql = "select") => (conn: Connection.ConnectionApi) => conn.simple(sql)

describe("Robustness: every length is checked", () => {
  it.live("a negative message length is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("D", i16(0), -16)), simple())
      assertFails(o, "ProtocolError", "LengthOutOfRange")
    }))

  it.live("a length below the minimum (3) is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("C", new Uint8Array(0), 3)), simple())
      assertFails(o, "ProtocolError", "LengthOutOfRange")
    }))

  it.live("a message above the configured maxMessageSize is refused, naming the setting", () =>
    Effect.gen(function*() {
      const big = "x".repeat(5000)
      const { outcome: o } = yield* attack(
        afterQuery(rowDescription("a"), dataRow(big)),
        simple(),
        { maxMessageSize: 4096 }
      )
      assertFails(o, "ProtocolError", "MessageTooLarge", "maxMessageSize")
    }))

  it.live("a DataRow claiming 900 MB fails at its header, without allocating it, while the server drips", () =>
    Effect.gen(function*() {
      const before = retainedHeap()
      const header = cat(Uint8Array.of(0x44), i32(900 * MB), i16(1), i32(900 * MB - 10))
      const drip = Array.from({ length: 50 }, () => new Uint8Array(1024).fill(0x61))
      const { outcome: o, elapsedMs } = yield* attack(
        [...trustStartup(), expectMessage("Query"), sendBytes(rowDescription("a")), sendChunks([header, ...drip], { intervalMs: 100 }), hang()],
        simple(),
        { maxMessageSize: 64 * MB }
      )
      assertFails(o, "ProtocolError", "MessageTooLarge", "maxMessageSize")
      // The error comes with the header, not after the 5 s the drip would take.
      assert.isBelow(elapsedMs, 2500)
      assert.isBelow(retainedHeap() - before, 32 * MB)
    }))

  it.live("under the default limit a 900 MB DataRow only holds the bytes that arrived, and a close ends it", () =>
    Effect.gen(function*() {
      const header = cat(Uint8Array.of(0x44), i32(900 * MB), i16(1), i32(900 * MB - 10))
      const chunk = new Uint8Array(64 * 1024).fill(0x62)
      let buffered = -1
      const before = retainedHeap()
      let during = 0
      const { outcome: o } = yield* attack(
        [
          ...trustStartup(),
          expectMessage("Query"),
          sendBytes(rowDescription("a")),
          sendChunks([header, ...Array.from({ length: 40 }, () => chunk)], { intervalMs: 5 }),
          sleep(300),
          close()
        ],
        (conn) =>
          Effect.gen(function*() {
            const fiber = yield* Effect.forkChild(conn.simple("select"))
            yield* Effect.sleep(Duration.millis(600))
            buffered = conn.internal.wire.framer.buffered
            during = retainedHeap() - before
            return yield* Fiber.join(fiber)
          }),
        {}
      )
      assertFails(o, "ConnectionError", "Closed")
      // What the framer holds is what arrived (header + 40 × 64 KiB), never the claimed size.
      assert.isAtMost(buffered, header.length + 40 * chunk.length)
      assert.isAbove(buffered, 0)
      assert.isBelow(during, 64 * MB)
    }))

  it.live("a DataRow with a different column count than its RowDescription is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(rowDescription("a", "b"), dataRow("1")), simple())
      assertFails(o, "ProtocolError", "InvalidValue", "column")
    }))

  it.live("a column running past its DataRow is never completed from the next message's bytes", () =>
    Effect.gen(function*() {
      // The column claims 12 bytes; its message holds 2, and the next message's bytes follow at once.
      const lying = frame("D", cat(i16(1), i32(12), text("ab")))
      const { outcome: o } = yield* attack(
        afterQuery(cat(rowDescription("a"), lying, commandComplete("SELECT 1"), readyForQuery())),
        simple()
      )
      assertFails(o, "ProtocolError", "Truncated")
    }))

  it.live("a column length below -1 is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(rowDescription("a"), frame("D", cat(i16(1), i32(-2)))), simple())
      assertFails(o, "ProtocolError", "LengthOutOfRange")
    }))

  it.live("bytes after the last column are a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(rowDescription("a"), frame("D", cat(i16(1), i32(1), text("xyz")))), simple())
      assertFails(o, "ProtocolError", "TrailingBytes")
    }))

  it.live("a RowDescription whose field count exceeds its fields is a ProtocolError", () =>
    Effect.gen(function*() {
      const one = rowDescription("a")
      const lying = frame("T", cat(i16(3), one.subarray(7)))
      const { outcome: o } = yield* attack(afterQuery(lying), simple())
      assertFails(o, "ProtocolError")
    }))

  it.live("a negative field count is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("T", i16(-1))), simple())
      assertFails(o, "ProtocolError")
    }))

  it.live("an ErrorResponse field without its terminator is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("E", cat(text("S"), text("ERROR")))), simple())
      assertFails(o, "ProtocolError")
    }))

  it.live("a CommandComplete tag without its terminator is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("C", text("SELECT 1")), readyForQuery()), simple())
      assertFails(o, "ProtocolError")
    }))

  it.live("a ParameterStatus without its terminators is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("S", text("TimeZone"))), simple())
      assertFails(o, "ProtocolError")
    }))

  it.live("a truncated NotificationResponse is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("A", Uint8Array.of(0, 0))), simple())
      assertFails(o, "ProtocolError")
    }))

  for (const keyLength of [0, 3, 257, 1000]) {
    it.live(`a cancel key of ${keyLength} bytes is refused at startup`, () =>
      Effect.gen(function*() {
        const key = frame("K", cat(i32(77), new Uint8Array(keyLength)))
        const { outcome: o } = yield* attack(
          [expectMessage("StartupMessage"), send({ _tag: "AuthenticationOk" }), sendBytes(key), sendBytes(readyForQuery()), hang()],
          simple()
        )
        assertFails(o, "ProtocolError")
      }))
  }

  it.live("cancel keys of 4 and 256 bytes are accepted", () =>
    Effect.gen(function*() {
      for (const keyLength of [4, 256]) {
        const { outcome: o } = yield* attack(
          [
            ...trustStartup({ secretKey: new Uint8Array(keyLength).fill(7) }),
            expectMessage("Query"),
            sendBytes(cat(commandComplete("SELECT 0"), readyForQuery())),
            hang()
          ],
          simple()
        )
        assert.strictEqual(o._tag, "Success", show(o))
      }
    }))
})

describe("Robustness: protocol state is checked", () => {
  it.live("an unknown message type in a query is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("~", text("??"))), simple())
      assertFails(o, "ProtocolError")
    }))

  it.live("an unknown message type during startup is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack([expectMessage("StartupMessage"), sendBytes(frame("~", text("??"))), hang()], simple())
      assertFails(o, "ProtocolError")
    }))

  it.live("a ReadyForQuery with an unknown status byte is a ProtocolError (query and startup)", () =>
    Effect.gen(function*() {
      const inQuery = yield* attack(afterQuery(commandComplete("SELECT 0"), readyForQuery("X")), simple())
      assertFails(inQuery.outcome, "ProtocolError")
      const longer = yield* attack(afterQuery(commandComplete("SELECT 0"), frame("Z", text("II"))), simple())
      assertFails(longer.outcome, "ProtocolError")
      const atStartup = yield* attack(
        [expectMessage("StartupMessage"), send({ _tag: "AuthenticationOk" }), sendBytes(readyForQuery("Q")), hang()],
        simple()
      )
      assertFails(atStartup.outcome, "ProtocolError")
    }))

  it.live("a message with no request in flight fails the connection; waiting and later requests get the error", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(
        [...trustStartup(), sleep(100), sendBytes(dataRow("stray")), hang()],
        (conn) =>
          Effect.gen(function*() {
            const closed = yield* conn.closed
            assert.strictEqual(closed._tag, "ProtocolError")
            assert.isFalse(conn.isOpen())
            return yield* conn.simple("select 1")
          })
      )
      assertFails(o, "ProtocolError", "UnexpectedMessage")
    }))

  it.live("a second ReadyForQuery after the request completed is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(
        afterQuery(cat(commandComplete("SELECT 0"), readyForQuery(), readyForQuery())),
        (conn) => Effect.flatMap(conn.simple("select"), () => Effect.flatMap(conn.closed, (e) => Effect.fail(e)))
      )
      assertFails(o, "ProtocolError")
    }))

  it.live("BackendKeyData before authentication is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o, server } = yield* attack(
        [
          expectMessage("StartupMessage"),
          send({ _tag: "BackendKeyData", processId: 1, secretKey: Uint8Array.of(1, 2, 3, 4) }),
          send({ _tag: "AuthenticationCleartextPassword" }),
          hang()
        ],
        simple(),
        { password: "secret" }
      )
      assertFails(o, "ProtocolError", "UnexpectedMessage")
      assert.isFalse(server.connections[0]!.messages.some((m) => m._tag === "PasswordMessage"))
    }))

  it.live("ReadyForQuery or ParameterStatus before authentication is a ProtocolError", () =>
    Effect.gen(function*() {
      const rfq = yield* attack([expectMessage("StartupMessage"), sendBytes(readyForQuery()), hang()], simple())
      assertFails(rfq.outcome, "ProtocolError")
      const ps = yield* attack([expectMessage("StartupMessage"), sendBytes(parameterStatus("a", "b")), hang()], simple())
      assertFails(ps.outcome, "ProtocolError")
    }))

  it.live("a DataRow before any RowDescription is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(dataRow("x")), simple())
      assertFails(o, "ProtocolError", "UnexpectedMessage")
    }))

  it.live("CopyData outside COPY is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("d", text("row\n"))), simple())
      assertFails(o, "ProtocolError", "UnexpectedMessage")
    }))

  it.live("an authentication request in the middle of a query is a ProtocolError", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(afterQuery(frame("R", i32(3))), simple())
      assertFails(o, "ProtocolError")
    }))

  it.live("a CopyData claiming 900 MB in COPY TO fails at its header, naming maxMessageSize", () =>
    Effect.gen(function*() {
      const copyOut: BackendMessage = { _tag: "CopyOutResponse", format: 0, columnFormats: [0] } as never
      const { outcome: o, elapsedMs } = yield* attack(
        [
          ...trustStartup(),
          expectMessage("Query"),
          send(copyOut),
          sendChunks([cat(Uint8Array.of(0x64), i32(900 * MB)), ...Array.from({ length: 30 }, () => new Uint8Array(4096))], {
            intervalMs: 100
          }),
          hang()
        ],
        (conn) => Stream.runDrain(copyTo(conn, "copy t to stdout")),
        { maxMessageSize: 16 * MB }
      )
      assertFails(o, "ProtocolError", "MessageTooLarge", "maxMessageSize")
      assert.isBelow(elapsedMs, 2500)
    }))
})

// ------------------------------------------------------------------------------------------------
// Authentication
// ------------------------------------------------------------------------------------------------

const PASSWORD = "correct horse battery staple"
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")
const utf8 = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes ?? new Uint8Array(0))

/** The client nonce of a client-first-message ("n,,n=,r=<nonce>"). */
const clientNonceOf = (clientFirst: string): string => clientFirst.split(",").find((a) => a.startsWith("r="))!.slice(2)

/** A SCRAM server that forges its answers: `serverFirst` builds the server-first-message from the client nonce. */
const forgedScram = (serverFirst: (clientNonce: string) => string): Script => [
  expectMessage("StartupMessage"),
  send({ _tag: "AuthenticationSASL", mechanisms: ["SCRAM-SHA-256"] }),
  step("forged server-first", async (ctx) => {
    const initial = (await ctx.next()).message
    if (initial?._tag !== "SASLInitialResponse") throw new Error(`expected SASLInitialResponse, got ${initial?._tag}`)
    const nonce = clientNonceOf(utf8(initial.data ?? undefined))
    ctx.send({ _tag: "AuthenticationSASLContinue", data: new TextEncoder().encode(serverFirst(nonce)) })
  }),
  hang()
]

/** Honest SCRAM up to the client's proof, then `after` decides what the server sends. */
const scramThen = (after: "badSignature" | "okWithoutFinal"): Script => [
  expectMessage("StartupMessage"),
  step("SCRAM, then a forged ending", async (ctx) => {
    const server = ScramServer.fromPassword(PASSWORD, { iterations: 4096 })
    ctx.send({ _tag: "AuthenticationSASL", mechanisms: [...server.mechanisms] })
    const initial = (await ctx.next()).message
    if (initial?._tag !== "SASLInitialResponse") throw new Error("expected SASLInitialResponse")
    const first = server.onClientFirst(initial.mechanism, initial.data ?? new Uint8Array(0))
    ctx.send({ _tag: "AuthenticationSASLContinue", data: first.serverFirstMessage })
    const response = (await ctx.next()).message
    if (response?._tag !== "SASLResponse") throw new Error("expected SASLResponse")
    if (after === "badSignature") {
      ctx.send([
        { _tag: "AuthenticationSASLFinal", data: new TextEncoder().encode(`v=${b64(new Uint8Array(32).fill(9))}`) },
        ...sessionStart()
      ])
    } else {
      ctx.send(sessionStart())
    }
  }),
  hang()
]

const scramConfig: PgConfigInput = { password: PASSWORD }
const saltB64 = b64(new Uint8Array(16).fill(1))

describe("Robustness: authentication is mutual", () => {
  it.live("a server nonce that does not extend ours is refused before the proof is sent", () =>
    Effect.gen(function*() {
      const { outcome: o, server } = yield* attack(
        forgedScram(() => `r=someoneElsesNonce0123456789,s=${saltB64},i=4096`),
        simple(),
        scramConfig
      )
      assertFails(o, "AuthenticationError", "ServerVerificationFailed", "nonce")
      assert.isFalse(server.connections[0]!.messages.some((m) => m._tag === "SASLResponse"))
    }))

  it.live("an iteration count below scramMinIterations is refused before the proof is sent", () =>
    Effect.gen(function*() {
      const { outcome: o, server } = yield* attack(
        forgedScram((n) => `r=${n}server,s=${saltB64},i=1`),
        simple(),
        scramConfig
      )
      assertFails(o, "AuthenticationError", "ServerVerificationFailed", "iteration")
      assert.isFalse(server.connections[0]!.messages.some((m) => m._tag === "SASLResponse"))
    }))

  it.live("a huge iteration count is refused at once (no CPU pinned)", () =>
    Effect.gen(function*() {
      health.reset()
      const { outcome: o, server, elapsedMs } = yield* attack(
        forgedScram((n) => `r=${n}server,s=${saltB64},i=2000000000`),
        simple(),
        scramConfig
      )
      assertFails(o, "AuthenticationError", "ServerVerificationFailed", "iteration")
      assert.isFalse(server.connections[0]!.messages.some((m) => m._tag === "SASLResponse"))
      assert.isBelow(elapsedMs, 1000)
      assert.isBelow(health.maxDelayMs(), 500)
    }))

  it.live("a server asking for 5,000,000 SCRAM iterations does not stall the event loop", () =>
    Effect.gen(function*() {
      const salt = b64(crypto.getRandomValues(new Uint8Array(16)))
      health.reset()
      const { outcome: o, server } = yield* attack(
        [
          ...forgedScram((n) => `r=${n}server,s=${salt},i=5000000`).slice(0, -1),
          expectMessage("SASLResponse"),
          close()
        ],
        simple(),
        { ...scramConfig, connectTimeout: 20 },
        20_000
      )
      // The client did the work (it sent its proof), then the server hung up.
      assertFails(o, "ConnectionError")
      assert.isTrue(server.connections[0]!.messages.some((m) => m._tag === "SASLResponse"))
      assert.isBelow(health.maxDelayMs(), 300, `event loop stalled ${health.maxDelayMs()} ms`)
    }), 30_000)

  it.live("the connect timeout interrupts a long SCRAM computation", () =>
    Effect.gen(function*() {
      const salt = b64(crypto.getRandomValues(new Uint8Array(16)))
      health.reset()
      const { outcome: o, elapsedMs } = yield* attack(
        forgedScram((n) => `r=${n}server,s=${salt},i=10000000`),
        simple(),
        { ...scramConfig, connectTimeout: 2 }
      )
      assertFails(o, "TimeoutError", "Startup")
      assert.isBelow(elapsedMs, 3000)
      assert.isBelow(health.maxDelayMs(), 300, `event loop stalled ${health.maxDelayMs()} ms`)
    }), 30_000)

  it.live("a wrong server signature in SASLFinal is refused, and the session never starts", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(scramThen("badSignature"), simple(), scramConfig)
      assertFails(o, "AuthenticationError", "ServerVerificationFailed")
    }))

  it.live("AuthenticationOk without SASLFinal is refused", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(scramThen("okWithoutFinal"), simple(), scramConfig)
      assertFails(o, "AuthenticationError", "ServerVerificationFailed")
    }))

  it.live("the honest SCRAM exchange of the mock server succeeds (control)", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(
        [step("scram", async (ctx) => {
          const server = ScramServer.fromPassword(PASSWORD, { iterations: 4096 })
          await ctx.next()
          ctx.send({ _tag: "AuthenticationSASL", mechanisms: [...server.mechanisms] })
          const initial = (await ctx.next()).message as { mechanism: string; data?: Uint8Array }
          const first = server.onClientFirst(initial.mechanism, initial.data ?? new Uint8Array(0))
          ctx.send({ _tag: "AuthenticationSASLContinue", data: first.serverFirstMessage })
          const response = (await ctx.next()).message as { data: Uint8Array }
          ctx.send([{ _tag: "AuthenticationSASLFinal", data: first.next.onClientFinal(response.data).serverFinalMessage }, ...sessionStart()])
        }), expectMessage("Query"), sendBytes(cat(commandComplete("SELECT 0"), readyForQuery())), hang()],
        simple(),
        scramConfig
      )
      assert.strictEqual(o._tag, "Success", show(o))
    }))

  const askFor = (request: BackendMessage): Script => [expectMessage("StartupMessage"), send(request), hang()]
  const md5Request: BackendMessage = { _tag: "AuthenticationMD5Password", salt: Uint8Array.of(1, 2, 3, 4) } as never

  it.live("require_auth=scram-sha-256 refuses cleartext and MD5 before any secret is sent", () =>
    Effect.gen(function*() {
      for (const request of [{ _tag: "AuthenticationCleartextPassword" } as BackendMessage, md5Request]) {
        const { outcome: o, server } = yield* attack(askFor(request), simple(), { ...scramConfig, requireAuth: "scram-sha-256" })
        assertFails(o, "AuthenticationError", "MethodNotAllowed")
        assert.deepStrictEqual(server.connections[0]!.messages.map((m) => m._tag), ["StartupMessage"])
      }
    }))

  it.live("require_auth=scram-sha-256 refuses a server that skips authentication", () =>
    Effect.gen(function*() {
      const { outcome: o } = yield* attack(trustStartup(), simple(), { ...scramConfig, requireAuth: "scram-sha-256" })
      assertFails(o, "AuthenticationError", "MethodNotAllowed")
    }))

  it.live("channel_binding=require refuses cleartext, MD5, SCRAM without TLS and no authentication", () =>
    Effect.gen(function*() {
      const cb: PgConfigInput = { ...scramConfig, channelBinding: "require", sslMode: "prefer" }
      for (const request of [{ _tag: "AuthenticationCleartextPassword" } as BackendMessage, md5Request]) {
        const { outcome: o, server } = yield* attack([...sslRefused(), ...askFor(request)], simple(), cb)
        assertFails(o, "AuthenticationError", "MethodNotAllowed")
        assert.deepStrictEqual(server.connections[0]!.messages.map((m) => m._tag), ["SSLRequest", "StartupMessage"])
      }
      const sasl = yield* attack(
        [...sslRefused(), ...askFor({ _tag: "AuthenticationSASL", mechanisms: ["SCRAM-SHA-256"] })],
        simple(),
        cb
      )
      assertFails(sasl.outcome, "AuthenticationError", "ChannelBinding")
      assert.deepStrictEqual(sasl.server.connections[0]!.messages.map((m) => m._tag), ["SSLRequest", "StartupMessage"])
      const none = yield* attack([...sslRefused(), ...trustStartup()], simple(), cb)
      assertFails(none.outcome, "AuthenticationError", "ChannelBinding")
    }))
})

// ------------------------------------------------------------------------------------------------
// Time
// ------------------------------------------------------------------------------------------------

describe("Robustness: time is bounded at every phase", () => {
  it.live("a server that never answers the startup packet times out (connect_timeout)", () =>
    Effect.gen(function*() {
      const { outcome: o, elapsedMs } = yield* attack([expectMessage("StartupMessage"), hang()], simple(), {
        connectTimeout: 2
      })
      assertFails(o, "TimeoutError", "Startup")
      assert.isBelow(elapsedMs, 3500)
    }))

  it.live("a server dripping one byte at a time cannot keep a connect pending past its timeout", () =>
    Effect.gen(function*() {
      const bytes = cat(...sessionStart().map((m) => encodeOne(m)))
      const chunks = Array.from(bytes, (b) => Uint8Array.of(b))
      const { outcome: o, elapsedMs } = yield* attack(
        [expectMessage("StartupMessage"), sendChunks(chunks, { intervalMs: 20 }), hang()],
        simple(),
        { connectTimeout: 2 }
      )
      assertFails(o, "TimeoutError", "Startup")
      assert.isBelow(elapsedMs, 3500)
    }))

  it.live("a server that accepts SSL and then never handshakes times out", () =>
    Effect.gen(function*() {
      const { outcome: o, elapsedMs } = yield* attack(
        [expectMessage("SSLRequest"), sendBytes(Uint8Array.of(0x53)), hang()],
        simple(),
        { sslMode: "require", connectTimeout: 2 }
      )
      assert.strictEqual(o._tag, "Failure", show(o))
      if (o._tag === "Failure") assert.include(["TimeoutError", "ConnectionError"], o.error._tag, show(o))
      assert.isBelow(elapsedMs, 3500)
    }))

  it.live("a server that never answers a query is bounded by the statement timeout (option and config default)", () =>
    Effect.gen(function*() {
      const script = (id: number): Script => (id === 1 ? [...trustStartup(), hang()] : [hang()])
      const explicit = yield* attack(script, (conn) => conn.simple("select", { timeout: "300 millis" }))
      assertFails(explicit.outcome, "TimeoutError", "Statement")
      assert.isBelow(explicit.elapsedMs, 2500)
      const fromConfig = yield* attack(script, (conn) => conn.query("select 1"), { statementTimeout: 300 })
      assertFails(fromConfig.outcome, "TimeoutError", "Statement")
      assert.isBelow(fromConfig.elapsedMs, 2500)
    }))
})

describe("Robustness: protocol state during streaming replication", () => {
  const copyBoth: BackendMessage = { _tag: "CopyBothResponse", format: 0, columnFormats: [] } as never
  const xlog = (body: Uint8Array) => frame("d", body)
  const validXLog = xlog(cat(text("w"), new Uint8Array(24), text("BEGIN")))
  const cases: ReadonlyArray<readonly [string, Uint8Array]> = [
    ["a CopyData with an unknown sub-message tag", xlog(cat(text("x"), new Uint8Array(8)))],
    ["a truncated XLogData header", xlog(cat(text("w"), new Uint8Array(5)))],
    ["a truncated keepalive", xlog(cat(text("k"), new Uint8Array(3)))],
    ["a DataRow in the middle of CopyBoth", dataRow("x")]
  ]
  for (const [name, bytes] of cases) {
    it.live(`${name} ends the stream with a ProtocolError`, () =>
      Effect.gen(function*() {
        const { outcome: o } = yield* attack(
          [...trustStartup(), expectMessage("Query"), send(copyBoth), sendBytes(validXLog), sendBytes(bytes), hang()],
          (conn) =>
            Effect.scoped(
              Effect.flatMap(
                startReplication(conn, "START_REPLICATION SLOT s LOGICAL 0/0", { mode: "logical", statusInterval: 0 }),
                (stream) => Stream.runDrain(stream.messages)
              )
            ),
          { replication: "database" }
        )
        assertFails(o, "ProtocolError")
      }))
  }
})

describe("Robustness: idle_timeout", () => {
  it.live("a session idle for idle_timeout is closed with Terminate; later requests fail typed", () =>
    Effect.gen(function*() {
      const { outcome: o, server, elapsedMs } = yield* attack(
        [...trustStartup(), expectMessage("Query"), sendBytes(cat(commandComplete("SELECT 0"), readyForQuery())), hang()],
        (conn) =>
          Effect.gen(function*() {
            yield* conn.simple("select")
            const closed = yield* conn.closed
            assert.strictEqual(closed._tag, "ConnectionError")
            assert.strictEqual((closed.cause as { _tag?: string; reason?: string } | undefined)?.reason, "Idle")
            return yield* conn.simple("select")
          }),
        { idleTimeout: 300 }
      )
      assertFails(o, "ConnectionError", "Closed", "idle_timeout")
      assert.isBelow(elapsedMs, 2000)
      yield* Effect.sleep("50 millis")
      assert.include(server.connections[0]!.messages.map((m) => m._tag), "Terminate")
    }))

  it.live("a busy session is never closed by idle_timeout (PostgreSQL 18)", () =>
    Effect.gen(function*() {
      const conn = yield* Connection.make(unixConfig(18, { idleTimeout: 300 }))
      const started = Date.now()
      // Short gaps, and one statement longer than the timeout: neither counts as idle.
      while (Date.now() - started < 900) {
        yield* conn.query("select 1")
        yield* Effect.sleep("100 millis")
      }
      yield* conn.query("select pg_sleep(0.5)")
      assert.isTrue(conn.isOpen())
      const closed = yield* conn.closed
      assert.strictEqual(closed._tag, "ConnectionError")
      assert.isFalse(conn.isOpen())
    }))
})

const encodeOne = (m: BackendMessage): Uint8Array => encodeMessages([m])

// ------------------------------------------------------------------------------------------------
// Memory
// ------------------------------------------------------------------------------------------------

/** A flood of `flood` bytes sent while the first Query waits, then its answer. */
const floodThenAnswer = (flood: Uint8Array): Script => [
  ...trustStartup(),
  expectMessage("Query"),
  sendBytes(flood),
  sendBytes(cat(rowDescription("a"), dataRow("ok"), commandComplete("SELECT 1"), readyForQuery())),
  hang()
]

describe("Robustness: memory is bounded whatever the server sends", () => {
  const floods: ReadonlyArray<readonly [string, Uint8Array]> = [
    ["notices", repeat(notice("you have been warned ".repeat(4)), 200_000)],
    ["notifications", repeat(notification(1, "channel", "payload ".repeat(8)), 200_000)],
    ["ParameterStatus (one name)", repeat(parameterStatus("TimeZone", "Europe/Somewhere".repeat(4)), 200_000)]
  ]
  for (const [name, flood] of floods) {
    it.live(`a flood of ${name} (${(flood.length / MB).toFixed(0)} MB) does not accumulate`, () =>
      Effect.gen(function*() {
        health.reset()
        let grew = 0
        const { outcome: o } = yield* attack(floodThenAnswer(flood), (conn) =>
          Effect.gen(function*() {
            const before = retainedHeap()
            const r = yield* conn.simple("select")
            grew = retainedHeap() - before
            return r
          }), {}, 30_000)
        assert.strictEqual(o._tag, "Success", show(o))
        if (o._tag === "Success") assert.deepStrictEqual(o.value[0]!.rows, [{ a: "ok" }])
        assert.isBelow(grew, 24 * MB, `retained ${(grew / MB).toFixed(1)} MB`)
        assert.isBelow(health.maxDelayMs(), 1000, `event loop stalled ${health.maxDelayMs()} ms`)
      }))
  }

  it.live("ParameterStatus with ever new names cannot grow the parameter map without bound", () =>
    Effect.gen(function*() {
      const flood = cat(...Array.from({ length: 50_000 }, (_, i) => parameterStatus(`custom.p${i}`, "v")))
      let size = 0
      const { outcome: o } = yield* attack(floodThenAnswer(flood), (conn) =>
        Effect.ensuring(conn.simple("select"), Effect.sync(() => (size = conn.parameters.size))), {}, 30_000)
      assertFails(o, "ProtocolError")
      assert.isBelow(size, 5000)
    }))

  it.live("a flood of notices during startup is bounded", () =>
    Effect.gen(function*() {
      const flood = repeat(notice("startup chatter ".repeat(8)), 200_000)
      const before = retainedHeap()
      let grew = 0
      const { outcome: o } = yield* attack(
        [expectMessage("StartupMessage"), sendBytes(flood), send(sessionStart()), expectMessage("Query"), sendBytes(cat(commandComplete("SELECT 0"), readyForQuery())), hang()],
        (conn) => Effect.map(conn.simple("select"), (r) => {
          grew = retainedHeap() - before
          return r
        }),
        {},
        30_000
      )
      assert.strictEqual(o._tag, "Success", show(o))
      assert.isBelow(grew, 24 * MB, `retained ${(grew / MB).toFixed(1)} MB`)
    }))
})

// ------------------------------------------------------------------------------------------------
// Generative: random and mutated server byte streams after a valid startup
// ------------------------------------------------------------------------------------------------

const VALID_REPLY = cat(
  rowDescription("a", "b"),
  dataRow("1", "one"),
  dataRow(null, "two"),
  commandComplete("SELECT 2"),
  readyForQuery()
)

const messagePool: ReadonlyArray<Uint8Array> = [
  rowDescription("a", "b"),
  rowDescription("a"),
  dataRow("1", "one"),
  dataRow("x"),
  dataRow(null, null),
  commandComplete("SELECT 1"),
  commandComplete("INSERT 0 5"),
  readyForQuery("I"),
  readyForQuery("T"),
  readyForQuery("E"),
  errorResponse("22012", "division by zero"),
  errorResponse("57P01", "terminating connection due to administrator command", "FATAL"),
  notice("hello"),
  notification(3, "ch", "pl"),
  parameterStatus("TimeZone", "UTC"),
  frame("I", new Uint8Array(0)),
  frame("1", new Uint8Array(0)),
  frame("2", new Uint8Array(0)),
  frame("n", new Uint8Array(0)),
  frame("s", new Uint8Array(0)),
  frame("H", cat(Uint8Array.of(0), i16(1), i16(0))),
  frame("G", cat(Uint8Array.of(0), i16(1), i16(0))),
  frame("d", text("1\n")),
  frame("c", new Uint8Array(0)),
  frame("K", cat(i32(1), i32(2))),
  frame("R", i32(0)),
  frame("t", cat(i16(1), i32(23)))
]

const arbPayload: fc.Arbitrary<{ readonly kind: string; readonly bytes: Uint8Array }> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ kind: "random", bytes })),
  fc.array(fc.tuple(fc.nat(VALID_REPLY.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }).map((flips) => {
    const bytes = VALID_REPLY.slice()
    for (const [at, x] of flips) bytes[at]! ^= x
    return { kind: "flipped", bytes }
  }),
  fc.nat(VALID_REPLY.length).map((n) => ({ kind: "truncated", bytes: VALID_REPLY.slice(0, n) })),
  fc.tuple(fc.nat(VALID_REPLY.length), fc.uint8Array({ minLength: 1, maxLength: 20 })).map(([at, junk]) => ({
    kind: "inserted",
    bytes: cat(VALID_REPLY.subarray(0, at), junk, VALID_REPLY.subarray(at))
  })),
  fc.array(fc.constantFrom(...messagePool), { maxLength: 12 }).map((ms) => ({ kind: "shuffled", bytes: cat(...ms) })),
  fc.constant({ kind: "valid", bytes: VALID_REPLY })
)

describe("Robustness: generative server byte streams", () => {
  it.live("every random or mutated reply ends in a typed error or a correct result, within a deadline", () =>
    Effect.gen(function*() {
      health.reset()
      let current: { readonly bytes: Uint8Array; readonly ending: "close" | "hang"; readonly chunked: boolean } = {
        bytes: VALID_REPLY,
        ending: "close",
        chunked: false
      }
      const server = yield* MockServer.scoped((): Script => {
        const c = current
        return [
          ...trustStartup(),
          expectMessage("Query"),
          c.chunked ? sendChunks(Array.from({ length: Math.ceil(c.bytes.length / 7) }, (_, i) => c.bytes.subarray(i * 7, i * 7 + 7)), { intervalMs: 1 }) : sendBytes(c.bytes),
          ...(c.ending === "close" ? [close()] : [hang()])
        ]
      })
      const tally: Record<string, number> = {}
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(arbPayload, fc.constantFrom("close" as const, "hang" as const), fc.boolean(), async (payload, ending, chunked) => {
            current = { bytes: payload.bytes, ending, chunked }
            const o = await Effect.runPromise(
              outcome(
                Effect.scoped(
                  Effect.flatMap(Connection.make(mockConfig(server.port, { statementTimeout: 400 })), (conn) => conn.simple("select"))
                ),
                5000
              )
            )
            const key = o._tag === "Failure" ? o.error._tag : o._tag
            tally[key] = (tally[key] ?? 0) + 1
            if (o._tag === "Hung" || o._tag === "Defect") throw new Error(`${payload.kind}: ${show(o)}`)
            if (o._tag === "Failure" && !TYPED_ERRORS.has(o.error._tag)) throw new Error(`${payload.kind}: untyped ${show(o)}`)
            if (payload.kind === "valid") {
              if (o._tag !== "Success") throw new Error(`the valid reply failed: ${show(o)}`)
              assert.deepStrictEqual(o.value[0]!.rows, [{ a: "1", b: "one" }, { a: null, b: "two" }])
            }
          }),
          { numRuns: 150, seed: 20240518 }
        )
      )
      // Every socket the runs opened is closed again.
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 200)))
      assert.strictEqual(server.openConnections, 0, `open mock connections: ${server.openConnections}; outcomes ${JSON.stringify(tally)}`)
      assert.isBelow(health.maxDelayMs(), 1000)
    }), 180_000)
})

describe("Robustness: the process stayed healthy", () => {
  it("no uncaught exception or unhandled rejection escaped a socket callback", () => {
    assert.deepStrictEqual(health.uncaught.map((e) => (e instanceof Error ? e.stack : String(e))), [])
  })
})
