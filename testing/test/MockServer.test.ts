/**
 * The mock server, driven by a raw node:net client that encodes with the codec's frontend
 * direction and decodes with its backend direction.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { afterEach } from "vitest"
import * as Net from "node:net"
import type { BackendMessage } from "@pgfx/codec/BackendMessage"
import { decodeBackend } from "@pgfx/codec/BackendMessage"
import type { FrontendMessage } from "@pgfx/codec/FrontendMessage"
import { encodeFrontend } from "@pgfx/codec/FrontendMessage"
import { Framer } from "@pgfx/codec/Frame"
import { ScramClient } from "@pgfx/codec/Scram"
import { Writer } from "@pgfx/codec/internal/Writer"
import {
  close,
  concatBytes,
  encodeMessages,
  expect,
  hang,
  MockServer,
  scramStartup,
  send,
  sendBytes,
  sendChunks,
  sessionStart,
  sleep,
  splitBytes,
  sslRefused,
  startMockServer,
  step,
  trustStartup
} from "../src/MockServer.ts"
import type { Script } from "../src/MockServer.ts"

interface Client {
  readonly socket: Net.Socket
  /** Each 'data' event's bytes, in order. */
  readonly chunks: Array<Uint8Array>
  readonly closed: Promise<{ readonly error: NodeJS.ErrnoException | undefined }>
  sendMessages(...messages: ReadonlyArray<FrontendMessage>): void
  /** Waits until `n` bytes in total have arrived. */
  bytes(n: number): Promise<Uint8Array>
  /** The next decoded backend message. */
  next(): Promise<BackendMessage>
  /** Decoded messages up to and including the next ReadyForQuery. */
  untilReady(): Promise<Array<BackendMessage>>
  /** Switches the framer to read the one-byte answer to SSLRequest next. */
  expectByte(): Promise<number>
}

const connect = async (port: number): Promise<Client> => {
  const socket = Net.connect({ host: "127.0.0.1", port })
  socket.setNoDelay(true)
  const chunks: Array<Uint8Array> = []
  const framer = new Framer()
  const inbox: Array<{ type: number; message: BackendMessage | undefined }> = []
  let wake: (() => void) | undefined
  let ended = false
  /** The next frame is the one-byte answer to SSLRequest, not a message. */
  let byteAnswer = false
  socket.on("data", (chunk: Buffer) => {
    const bytes = Uint8Array.from(chunk)
    chunks.push(bytes)
    framer.push(bytes, (type, buf, start, end) => {
      if (byteAnswer) {
        byteAnswer = false
        inbox.push({ type, message: undefined })
      } else {
        inbox.push({ type, message: decodeBackend(type, buf, start, end) })
      }
    })
    wake?.()
  })
  const closed = new Promise<{ error: NodeJS.ErrnoException | undefined }>((resolve) => {
    let error: NodeJS.ErrnoException | undefined
    socket.on("error", (e) => (error = e))
    socket.on("close", () => {
      ended = true
      wake?.()
      resolve({ error })
    })
  })
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve)
    socket.once("error", reject)
  })
  const waitFor = async <A>(ready: () => A | undefined): Promise<A> => {
    for (;;) {
      const a = ready()
      if (a !== undefined) return a
      if (ended) throw new Error("connection closed")
      await new Promise<void>((resolve) => (wake = resolve))
    }
  }
  const nextEntry = () => waitFor(() => inbox.shift())
  const w = new Writer()
  return {
    socket,
    chunks,
    closed,
    sendMessages: (...messages) => {
      for (const m of messages) encodeFrontend(w, m)
      socket.write(w.take().slice())
    },
    bytes: (n) =>
      waitFor(() => {
        const all = concatBytes(...chunks)
        return all.length >= n ? all : undefined
      }),
    next: async () => {
      const entry = await nextEntry()
      return entry.message!
    },
    untilReady: async () => {
      const out: Array<BackendMessage> = []
      for (;;) {
        const entry = await nextEntry()
        out.push(entry.message!)
        if (entry.message!._tag === "ReadyForQuery") return out
      }
    },
    expectByte: async () => {
      framer.mode = "byte"
      byteAnswer = true
      const entry = await nextEntry()
      return entry.type
    }
  }
}

const startup = (user = "alice"): FrontendMessage => ({
  _tag: "StartupMessage",
  majorVersion: 3,
  minorVersion: 0,
  parameters: { user, database: "db", client_encoding: "UTF8" }
})

const text = (s: string): Uint8Array => new TextEncoder().encode(s)

const resultOf = (value: string): ReadonlyArray<BackendMessage> => [
  {
    _tag: "RowDescription",
    fields: [{ name: "x", tableOid: 0, columnAttributeNumber: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 }]
  },
  { _tag: "DataRow", values: [text(value)] },
  { _tag: "CommandComplete", tag: "SELECT 1" },
  { _tag: "ReadyForQuery", status: "I" }
]

const servers: Array<MockServer> = []
const clients: Array<Client> = []
const serve = async (script: Script | ((id: number) => Script)) => {
  const server = await startMockServer(script)
  servers.push(server)
  return server
}
const open = async (server: MockServer) => {
  const client = await connect(server.port)
  clients.push(client)
  return client
}
afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy()
  await Promise.all(servers.splice(0).map((s) => s.close()))
})

const failureOf = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => {
      throw new Error("expected a failure")
    },
    (e: Error) => e.message
  )

describe("MockServer", () => {
  it("plays a trust startup and a scripted query, and records what the client sent", async () => {
    const server = await serve([
      trustStartup({ processId: 77, parameters: { server_version: "18.3 (mock)" } }),
      expect("Query", (q) => q.sql === "SELECT 'hi'"),
      send(resultOf("hi"))
    ])
    const client = await open(server)
    client.sendMessages(startup())
    const opening = await client.untilReady()
    assert.strictEqual(opening[0]!._tag, "AuthenticationOk")
    assert.deepInclude(opening, { _tag: "ParameterStatus", name: "server_version", value: "18.3 (mock)" })
    assert.deepInclude(opening, { _tag: "ParameterStatus", name: "client_encoding", value: "UTF8" })
    const key = opening.find((m) => m._tag === "BackendKeyData")
    assert.strictEqual(key?._tag === "BackendKeyData" ? key.processId : -1, 77)
    client.sendMessages({ _tag: "Query", sql: "SELECT 'hi'" })
    const result = await client.untilReady()
    assert.deepStrictEqual(result.map((m) => m._tag), ["RowDescription", "DataRow", "CommandComplete", "ReadyForQuery"])
    assert.deepStrictEqual(result[1], { _tag: "DataRow", values: [text("hi")] })

    const connection = await server.nextConnection()
    await connection.done
    assert.deepStrictEqual(connection.messages, [startup(), { _tag: "Query", sql: "SELECT 'hi'" }])
    assert.strictEqual(connection.received[0]!.type, "")
    assert.strictEqual(connection.received[1]!.type, "Q")
    // The recorded bytes are the frame exactly as sent.
    const w = new Writer()
    encodeFrontend(w, { _tag: "Query", sql: "SELECT 'hi'" })
    assert.deepStrictEqual(connection.received[1]!.bytes, w.take().slice())
    assert.strictEqual(connection.bytesReceived, connection.received.reduce((n, f) => n + f.bytes.length, 0))
  })

  it("refuses SSL with 'N', then accepts the StartupMessage in the clear", async () => {
    const server = await serve([sslRefused(), trustStartup()])
    const client = await open(server)
    client.sendMessages({ _tag: "SSLRequest" })
    assert.strictEqual(String.fromCharCode(await client.expectByte()), "N")
    client.sendMessages(startup())
    const opening = await client.untilReady()
    assert.strictEqual(opening.at(-1)!._tag, "ReadyForQuery")
    const connection = await server.nextConnection()
    await connection.done
    assert.deepStrictEqual(connection.messages.map((m) => m._tag), ["SSLRequest", "StartupMessage"])
  })

  it("sends exact bytes, garbage included", async () => {
    const garbage = Uint8Array.of(0x51, 0xff, 0xff, 0xff, 0xff, 0x00, 0x7f)
    const server = await serve([expect("StartupMessage"), sendBytes(garbage)])
    const client = await open(server)
    client.sendMessages(startup())
    // Read raw: the framer would (rightly) refuse that length.
    const got = await new Promise<Uint8Array>((resolve) => {
      client.socket.removeAllListeners("data")
      client.socket.on("data", (d: Buffer) => resolve(Uint8Array.from(d)))
    })
    assert.deepStrictEqual(got, garbage)
  })

  it("sendChunks splits a message across reads and merges the end of one with the start of the next", async () => {
    const bytes = encodeMessages([...sessionStart(), ...resultOf("chunked")])
    // Split inside AuthenticationOk's header, and at a point that straddles two later messages.
    const chunks = splitBytes(bytes, 3, 11, 100, bytes.length - 4)
    const server = await serve([expect("StartupMessage"), sendChunks(chunks, { intervalMs: 30 })])
    const client = await open(server)
    client.sendMessages(startup())
    await client.untilReady()
    const result = await client.untilReady()
    assert.deepStrictEqual(result[1], { _tag: "DataRow", values: [text("chunked")] })
    assert.deepStrictEqual(client.chunks.map((c) => c.length), chunks.map((c) => c.length))
    assert.deepStrictEqual(concatBytes(...client.chunks), bytes)
  })

  it("a mismatched expect fails the script, names the step, and closes the socket", async () => {
    const server = await serve([trustStartup(), expect("Parse"), send(resultOf("never"))])
    const client = await open(server)
    client.sendMessages(startup())
    await client.untilReady()
    client.sendMessages({ _tag: "Query", sql: "SELECT 1" })
    const connection = await server.nextConnection()
    const message = await failureOf(connection.done)
    assert.include(message, "step 3 (expect Parse)")
    assert.include(message, 'received Query "SELECT 1"')
    await client.closed
    assert.isFalse(connection.isOpen)
  })

  it("close() ends the connection with a FIN; close({ reset: true }) with a RST", async () => {
    const server = await serve((id) => [expect("StartupMessage"), close({ reset: id === 2 })])
    const first = await open(server)
    first.sendMessages(startup())
    assert.isUndefined((await first.closed).error)
    const second = await open(server)
    second.sendMessages(startup())
    assert.strictEqual((await second.closed).error?.code, "ECONNRESET")
  })

  it("hang() keeps the socket open without answering, recording what arrives; sleep() delays", async () => {
    const server = await serve([trustStartup(), sleep(200), send(resultOf("late")), hang(), send(resultOf("never"))])
    const client = await open(server)
    client.sendMessages(startup())
    await client.untilReady()
    const started = performance.now()
    const late = await client.untilReady()
    assert.isAtLeast(performance.now() - started, 150)
    assert.deepStrictEqual(late[1], { _tag: "DataRow", values: [text("late")] })
    const connection = await server.nextConnection()
    await connection.done
    client.sendMessages({ _tag: "Query", sql: "SELECT 'anyone?'" })
    const before = client.chunks.length
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.strictEqual(client.chunks.length, before)
    assert.isTrue(connection.isOpen)
    assert.deepStrictEqual(connection.messages.at(-1), { _tag: "Query", sql: "SELECT 'anyone?'" })
  })

  it("scramStartup authenticates a client that knows the password, with the codec's ScramClient", async () => {
    const server = await serve([scramStartup("s3cret"), expect("Terminate")])
    const client = await open(server)
    client.sendMessages(startup())
    const sasl = await client.next()
    assert.strictEqual(sasl._tag, "AuthenticationSASL")
    const first = ScramClient.start({ password: "s3cret", channelBinding: "client-unsupported" })
    client.sendMessages({ _tag: "SASLInitialResponse", mechanism: first.mechanism, data: first.clientFirstMessage })
    const cont = await client.next()
    assert.strictEqual(cont._tag, "AuthenticationSASLContinue")
    const final = first.next.onServerFirst((cont as { data: Uint8Array }).data)
    client.sendMessages({ _tag: "SASLResponse", data: final.clientFinalMessage })
    const rest = await client.untilReady()
    assert.strictEqual(rest[0]!._tag, "AuthenticationSASLFinal")
    final.next.onServerFinal((rest[0] as { data: Uint8Array }).data)
    assert.isTrue(final.next.verified)
    assert.strictEqual(rest[1]!._tag, "AuthenticationOk")
    client.sendMessages({ _tag: "Terminate" })
    const connection = await server.nextConnection()
    await connection.done
    // The 'p' messages were decoded as the exchange implied.
    assert.deepStrictEqual(
      connection.messages.map((m) => m._tag),
      ["StartupMessage", "SASLInitialResponse", "SASLResponse", "Terminate"]
    )
  })

  it("scramStartup answers a wrong password with FATAL 28P01 and closes", async () => {
    const server = await serve([scramStartup("s3cret")])
    const client = await open(server)
    client.sendMessages(startup("mallory"))
    await client.next()
    const first = ScramClient.start({ password: "guess", channelBinding: "client-unsupported" })
    client.sendMessages({ _tag: "SASLInitialResponse", mechanism: first.mechanism, data: first.clientFirstMessage })
    const cont = (await client.next()) as { data: Uint8Array }
    client.sendMessages({ _tag: "SASLResponse", data: first.next.onServerFirst(cont.data).clientFinalMessage })
    const error = await client.next()
    assert.strictEqual(error._tag, "ErrorResponse")
    assert.strictEqual(error._tag === "ErrorResponse" ? error.fields.code : "", "28P01")
    assert.include(error._tag === "ErrorResponse" ? error.fields.message : "", '"mallory"')
    await client.closed
    const connection = await server.nextConnection()
    const failure = await failureOf(connection.done)
    assert.include(failure, "SCRAM exchange failed")
    assert.include(failure, "wrong client proof")
  })

  it("decodes a cleartext PasswordMessage after AuthenticationCleartextPassword; custom steps see the context", async () => {
    let seenPassword = ""
    const server = await serve([
      expect("StartupMessage"),
      send({ _tag: "AuthenticationCleartextPassword" }),
      step("check the password", async (ctx) => {
        const frame = await ctx.next()
        if (frame.message?._tag !== "PasswordMessage") throw new Error("no password")
        seenPassword = frame.message.password
        ctx.send(sessionStart())
      })
    ])
    const client = await open(server)
    client.sendMessages(startup())
    assert.strictEqual((await client.next())._tag, "AuthenticationCleartextPassword")
    client.sendMessages({ _tag: "PasswordMessage", password: "hunter2" })
    await client.untilReady()
    await (await server.nextConnection()).done
    assert.strictEqual(seenPassword, "hunter2")
  })

  it("records undecodable frames and framing errors from a misbehaving client", async () => {
    const server = await serve([trustStartup(), hang()])
    const client = await open(server)
    client.sendMessages(startup())
    await client.untilReady()
    const connection = await server.nextConnection()
    // An unknown type byte (well framed), then a length below the minimum.
    client.socket.write(Uint8Array.of(0x21, 0, 0, 0, 4))
    client.socket.write(Uint8Array.of(0x51, 0, 0, 0, 2))
    while (connection.framingError === undefined) await new Promise((resolve) => setTimeout(resolve, 5))
    assert.strictEqual(connection.framingError.reason, "LengthOutOfRange")
    const unknown = connection.received.at(-1)!
    assert.strictEqual(unknown.type, "!")
    assert.isUndefined(unknown.message)
    assert.strictEqual(unknown.error?.reason, "UnknownMessageType")
    assert.strictEqual(connection.bytesReceived, connection.received.reduce((n, f) => n + f.bytes.length, 0) + 5)
  })

  it("runs a script per connection and hands each connection out once", async () => {
    const server = await serve((id) => [trustStartup({ processId: 1000 + id })])
    const a = await open(server)
    const b = await open(server)
    a.sendMessages(startup())
    b.sendMessages(startup())
    const keyOf = (ms: ReadonlyArray<BackendMessage>) => {
      const k = ms.find((m) => m._tag === "BackendKeyData")
      return k?._tag === "BackendKeyData" ? k.processId : -1
    }
    assert.deepStrictEqual([keyOf(await a.untilReady()), keyOf(await b.untilReady())], [1001, 1002])
    const ids = [(await server.nextConnection()).id, (await server.nextConnection()).id]
    assert.deepStrictEqual(ids, [1, 2])
    assert.strictEqual(server.openConnections, 2)
    a.socket.destroy()
    await server.connections[0]!.closed
    assert.strictEqual(server.openConnections, 1)
  })

  it("a step waiting for a message fails when the client closes", async () => {
    const server = await serve([trustStartup()])
    const client = await open(server)
    client.socket.end()
    const connection = await server.nextConnection()
    assert.include(await failureOf(connection.done), "the client closed the connection")
  })

  it.live("MockServer.scoped closes every connection with its scope", () =>
    Effect.gen(function*() {
      const { client, server } = yield* Effect.scoped(
        Effect.gen(function*() {
          const server = yield* MockServer.scoped([trustStartup(), hang()])
          const client = yield* Effect.promise(() => connect(server.port))
          client.sendMessages(startup())
          yield* Effect.promise(() => client.untilReady())
          return { client, server }
        })
      )
      yield* Effect.promise(() => client.closed)
      assert.strictEqual(server.openConnections, 0)
    }))
})
