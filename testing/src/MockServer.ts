/**
 * A scriptable mock PostgreSQL server, built from the codec's backend direction.
 *
 * NOT a stand-in for PostgreSQL: feature tests run against the real servers of the global setup.
 * This exists to play what a real server will not — broken, truncated, oversized, out-of-order
 * and malicious byte sequences, odd chunkings, hangs and abrupt closes — so the connection layer's
 * handling of them can be tested deterministically.
 *
 * Invariants:
 * - Each accepted connection runs its own copy of the script, one step at a time, in order.
 *   A step that fails (an `expect` that does not match, the client closing while a step waits)
 *   stops the script, destroys the socket and rejects the connection's `done`; `done` carries a
 *   no-op handler, so a test that does not await it sees no unhandled rejection.
 * - Everything the client sends is recorded, whether or not a step consumes it: each frame's
 *   exact bytes, and its decoding (`decodeStartupPacket` before startup, `decodeFrontend` after)
 *   or the ProtocolError that decoding raised. Framing starts "untyped" and switches to "typed"
 *   after a StartupMessage; a framing error is recorded and ends the framing of that connection.
 * - A 'p' message is decoded as the authentication exchange in progress implies (the last
 *   Authentication* message this connection sent: SASL → SASLInitialResponse, SASLContinue →
 *   SASLResponse, GSS → GSSResponse, otherwise PasswordMessage); `expect` may override it.
 * - When the script ends (or reaches `hang()`), the socket stays open and keeps recording until
 *   the client closes it or the server is closed. `close()` destroys every socket and the listener.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import type { BackendMessage } from "@pgfx/codec/BackendMessage"
import { encodeBackend } from "@pgfx/codec/BackendMessage"
import type { FrontendMessage, PasswordContext } from "@pgfx/codec/FrontendMessage"
import { decodeFrontend, decodeStartupPacket } from "@pgfx/codec/FrontendMessage"
import { Framer } from "@pgfx/codec/Frame"
import { isProtocolError, ProtocolError } from "@pgfx/codec/ProtocolError"
import { isScramError, ScramServer } from "@pgfx/codec/Scram"
import { Writer } from "@pgfx/codec/internal/Writer"

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/** One frame the client sent. */
export interface ReceivedFrame {
  /** The type byte as a character; "" for an untyped startup-phase packet. */
  readonly type: string
  /** The whole frame as received: type byte (if any), length and body. */
  readonly bytes: Uint8Array
  /** The decoded message, or undefined when decoding failed. */
  readonly message: FrontendMessage | undefined
  /** Why decoding failed. */
  readonly error: ProtocolError | undefined
}

type FrontendTag = FrontendMessage["_tag"]
type MessageOf<T extends FrontendTag> = Extract<FrontendMessage, { readonly _tag: T }>

/** What the script can do with a connection; custom steps receive it. */
export interface StepContext {
  readonly connection: MockConnection
  /** The next frame not yet consumed by a step (waits for it); rejects if the client closes first. */
  next(context?: PasswordContext): Promise<ReceivedFrame>
  /** Encodes and writes backend messages (in one write). */
  send(messages: BackendMessage | ReadonlyArray<BackendMessage>): void
  /** Writes bytes as they are. */
  write(bytes: Uint8Array): void
}

export interface Step {
  /** For error messages: "expect Query", "send [AuthenticationOk, …]". */
  readonly description: string
  run(context: StepContext): Promise<void> | void
  /** The script ends here (`hang()`), whatever follows. */
  readonly stops?: boolean
}

/** A script: steps, or arrays of steps (the opening helpers return arrays), run in order. */
export type Script = ReadonlyArray<Step | ReadonlyArray<Step>>

export interface MockConnection {
  /** 1, 2, 3… in order of acceptance. */
  readonly id: number
  /** Every frame received so far, in order. */
  readonly received: ReadonlyArray<ReceivedFrame>
  /** The decoded messages received so far (frames that failed to decode are left out). */
  readonly messages: ReadonlyArray<FrontendMessage>
  /** A framing error (bad length) in what the client sent; framing stops there. */
  readonly framingError: ProtocolError | undefined
  readonly bytesReceived: number
  readonly isOpen: boolean
  /** Resolves when the script has run to its end (or to `hang()`); rejects when a step fails. */
  readonly done: Promise<void>
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>
  /** Destroys the socket now. */
  destroy(): void
}

export interface MockServer {
  readonly host: string
  readonly port: number
  /** Every accepted connection, open or closed, in order. */
  readonly connections: ReadonlyArray<MockConnection>
  readonly openConnections: number
  /** The next accepted connection not yet returned by an earlier call (a cursor over `connections`). */
  nextConnection(): Promise<MockConnection>
  /** Destroys every socket and closes the listener. */
  close(): Promise<void>
}

// ---------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------

const describeMessage = (m: FrontendMessage | undefined): string => {
  if (m === undefined) return "an undecodable frame"
  return m._tag === "Query" ? `Query ${JSON.stringify(m.sql)}` : m._tag
}

/** Matches a frontend message: by tag, by tag and a predicate on it, or by a predicate alone. */
export function expect<T extends FrontendTag>(
  tag: T,
  predicate?: (message: MessageOf<T>) => boolean,
  options?: { readonly context?: PasswordContext }
): Step
export function expect(
  predicate: (message: FrontendMessage) => boolean,
  options?: { readonly context?: PasswordContext; readonly description?: string }
): Step
export function expect(
  what: FrontendTag | ((message: FrontendMessage) => boolean),
  second?: ((message: never) => boolean) | { readonly context?: PasswordContext; readonly description?: string },
  third?: { readonly context?: PasswordContext }
): Step {
  const byTag = typeof what === "string"
  const predicate = byTag ? (second as ((m: FrontendMessage) => boolean) | undefined) : what
  const options = (byTag ? third : second as { readonly context?: PasswordContext; readonly description?: string }) ?? {}
  const description = byTag
    ? `expect ${what}${predicate === undefined ? "" : " (with a predicate)"}`
    : `expect ${"description" in options && options.description !== undefined ? options.description : "a message matching a predicate"}`
  return {
    description,
    run: async (ctx) => {
      const frame = await ctx.next(options.context)
      const m = frame.message
      const ok = m !== undefined && (!byTag || m._tag === what) && (predicate === undefined || predicate(m))
      if (!ok) {
        const why = frame.error === undefined ? "" : ` (${frame.error.message})`
        throw new Error(`${description}, but received ${describeMessage(m)}${why}`)
      }
    }
  }
}

const tagsOf = (messages: ReadonlyArray<BackendMessage>): string => messages.map((m) => m._tag).join(", ")

/** Sends backend messages, encoded together in one write. */
export const send = (messages: BackendMessage | ReadonlyArray<BackendMessage>): Step => {
  const list: ReadonlyArray<BackendMessage> = Array.isArray(messages) ? messages : [messages as BackendMessage]
  return { description: `send [${tagsOf(list)}]`, run: (ctx) => ctx.send(list) }
}

/** Sends exact bytes (garbage included). */
export const sendBytes = (bytes: Uint8Array): Step => ({
  description: `send ${bytes.length} raw bytes`,
  run: (ctx) => ctx.write(bytes)
})

/**
 * Writes each chunk separately, `intervalMs` apart (default 10), so the client receives them
 * as separate reads: build the chunks with `encodeMessages` and `splitBytes` to split a message
 * across reads, or to merge the end of one message with the start of the next.
 */
export const sendChunks = (chunks: ReadonlyArray<Uint8Array>, options: { readonly intervalMs?: number } = {}): Step => ({
  description: `send ${chunks.length} chunks`,
  run: async (ctx) => {
    for (let i = 0; i < chunks.length; i++) {
      if (i > 0) await delay(options.intervalMs ?? 10)
      ctx.write(chunks[i]!)
    }
  }
})

export const sleep = (ms: number): Step => ({ description: `sleep ${ms} ms`, run: () => delay(ms) })

/** Ends the connection: a FIN after what was written (`reset: true`: a TCP RST instead). */
export const close = (options: { readonly reset?: boolean } = {}): Step => ({
  description: options.reset === true ? "reset" : "close",
  run: (ctx) => (ctx.connection as Connection).end(options.reset ?? false)
})

/** Stops the script here, leaving the socket open (and recording) until the client or the test closes it. */
export const hang = (): Step => ({ description: "hang", run: () => {}, stops: true })

/** A custom step. */
export const step = (description: string, run: (context: StepContext) => Promise<void> | void): Step => ({
  description,
  run
})

// ---------------------------------------------------------------------------------------------
// Openings
// ---------------------------------------------------------------------------------------------

/** The parameters PostgreSQL 18 reports at startup (values of a default UTF8 cluster). */
export const defaultParameters: Readonly<Record<string, string>> = {
  application_name: "",
  client_encoding: "UTF8",
  DateStyle: "ISO, MDY",
  default_transaction_read_only: "off",
  in_hot_standby: "off",
  integer_datetimes: "on",
  IntervalStyle: "postgres",
  is_superuser: "on",
  scram_iterations: "4096",
  search_path: "\"$user\", public",
  server_encoding: "UTF8",
  server_version: "18.3",
  session_authorization: "postgres",
  standard_conforming_strings: "on",
  TimeZone: "UTC"
}

export interface SessionOptions {
  /** Merged over `defaultParameters`. */
  readonly parameters?: Readonly<Record<string, string>>
  readonly processId?: number
  /** 4 bytes (default 1, 2, 3, 4). */
  readonly secretKey?: Uint8Array
}

/** AuthenticationOk, ParameterStatus for each parameter, BackendKeyData, ReadyForQuery (idle). */
export const sessionStart = (options: SessionOptions = {}): ReadonlyArray<BackendMessage> => {
  const parameters = { ...defaultParameters, ...options.parameters }
  return [
    { _tag: "AuthenticationOk" },
    ...Object.entries(parameters).map(([name, value]): BackendMessage => ({ _tag: "ParameterStatus", name, value })),
    {
      _tag: "BackendKeyData",
      processId: options.processId ?? 4242,
      secretKey: options.secretKey ?? Uint8Array.of(1, 2, 3, 4)
    },
    { _tag: "ReadyForQuery", status: "I" }
  ]
}

/** Expects a StartupMessage and answers as a trust-authenticated PostgreSQL does. */
export const trustStartup = (options: SessionOptions = {}): ReadonlyArray<Step> => [
  expect("StartupMessage"),
  send(sessionStart(options))
]

/** Expects an SSLRequest and refuses it ('N'); the client then sends its StartupMessage in the clear. */
export const sslRefused = (): ReadonlyArray<Step> => [expect("SSLRequest"), sendBytes(Uint8Array.of(0x4e))]

/**
 * Expects a StartupMessage and runs SCRAM-SHA-256 with the codec's ScramServer for `password`,
 * then the session start. A wrong proof gets PostgreSQL's FATAL 28P01 and a close (and the
 * step fails, so `done` rejects).
 */
export const scramStartup = (password: string, options: SessionOptions & { readonly iterations?: number } = {}): Step =>
  step("SCRAM-SHA-256 startup", async (ctx) => {
    const startup = await ctx.next()
    if (startup.message?._tag !== "StartupMessage") throw new Error(`expected StartupMessage, received ${describeMessage(startup.message)}`)
    const server = ScramServer.fromPassword(password, { iterations: options.iterations ?? 4096 })
    ctx.send({ _tag: "AuthenticationSASL", mechanisms: [...server.mechanisms] })
    const initial = (await ctx.next()).message
    if (initial?._tag !== "SASLInitialResponse") throw new Error(`expected SASLInitialResponse, received ${describeMessage(initial)}`)
    try {
      const first = server.onClientFirst(initial.mechanism, initial.data ?? new Uint8Array(0))
      ctx.send({ _tag: "AuthenticationSASLContinue", data: first.serverFirstMessage })
      const response = (await ctx.next()).message
      if (response?._tag !== "SASLResponse") throw new Error(`expected SASLResponse, received ${describeMessage(response)}`)
      const final = first.next.onClientFinal(response.data)
      ctx.send([{ _tag: "AuthenticationSASLFinal", data: final.serverFinalMessage }, ...sessionStart(options)])
    } catch (e) {
      if (!isScramError(e)) throw e
      ctx.send({
        _tag: "ErrorResponse",
        fields: {
          severityLocalized: "FATAL",
          severity: "FATAL",
          code: "28P01",
          message: `password authentication failed for user "${String(startup.message.parameters["user"])}"`
        }
      })
      ;(ctx.connection as Connection).end(false)
      throw new Error(`SCRAM exchange failed: ${e.message}`)
    }
  })

// ---------------------------------------------------------------------------------------------
// Byte helpers
// ---------------------------------------------------------------------------------------------

/** The bytes of backend messages, as `send` would write them. */
export const encodeMessages = (messages: ReadonlyArray<BackendMessage>): Uint8Array => {
  const w = new Writer()
  for (const m of messages) encodeBackend(w, m)
  return w.take().slice()
}

/** Splits `bytes` at the given offsets (ascending, within the bytes). */
export const splitBytes = (bytes: Uint8Array, ...offsets: ReadonlyArray<number>): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let from = 0
  for (const at of offsets) {
    if (at < from || at > bytes.length) throw new RangeError(`split offset ${at} is outside ${from}..${bytes.length}`)
    out.push(bytes.subarray(from, at))
    from = at
  }
  out.push(bytes.subarray(from))
  return out
}

/** Concatenates byte arrays. */
export const concatBytes = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let size = 0
  for (const p of parts) size += p.length
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

const flatten = (script: Script): ReadonlyArray<Step> =>
  script.flatMap((s) => (Array.isArray(s) ? (s as ReadonlyArray<Step>) : [s as Step]))

/** The 'p' context implied by the last Authentication* message sent. */
const contextAfter = (m: BackendMessage, current: PasswordContext): PasswordContext => {
  switch (m._tag) {
    case "AuthenticationSASL":
      return "sasl-initial"
    case "AuthenticationSASLContinue":
      return "sasl"
    case "AuthenticationGSS":
    case "AuthenticationSSPI":
    case "AuthenticationGSSContinue":
      return "gss"
    case "AuthenticationCleartextPassword":
    case "AuthenticationMD5Password":
      return "password"
    default:
      return current
  }
}

interface MutableFrame {
  type: string
  bytes: Uint8Array
  message: FrontendMessage | undefined
  error: ProtocolError | undefined
}

class Connection implements MockConnection {
  readonly id: number
  readonly received: Array<MutableFrame> = []
  readonly done: Promise<void>
  readonly closed: Promise<void>
  framingError: ProtocolError | undefined
  bytesReceived = 0
  isOpen = true
  private readonly socket: Net.Socket
  private readonly framer = new Framer({ mode: "untyped" })
  private readonly writer = new Writer()
  private passwordContext: PasswordContext = "password"
  /** Index of the next frame a step may consume. */
  private cursor = 0
  private wake: (() => void) | undefined

  constructor(id: number, socket: Net.Socket, steps: ReadonlyArray<Step>) {
    this.id = id
    this.socket = socket
    socket.setNoDelay(true)
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()))
    socket.on("data", (chunk: Uint8Array) => this.onData(chunk))
    socket.on("error", () => {}) // an abrupt client close: seen as 'close'
    socket.on("close", () => {
      this.isOpen = false
      this.wake?.()
    })
    this.done = this.run(steps)
    this.done.catch(() => {})
  }

  get messages(): ReadonlyArray<FrontendMessage> {
    return this.received.flatMap((f) => (f.message === undefined ? [] : [f.message]))
  }

  private onData(chunk: Uint8Array): void {
    this.bytesReceived += chunk.length
    if (this.framingError !== undefined) return
    try {
      this.framer.push(chunk, (type, buf, start, end) => this.onFrame(type, buf, start, end))
    } catch (e) {
      this.framingError = isProtocolError(e)
        ? e
        : new ProtocolError({ reason: "InvalidValue", message: String(e) })
    }
    this.wake?.()
  }

  private onFrame(type: number, buf: Uint8Array, start: number, end: number): void {
    const header = type === 0 ? 4 : 5
    const frame: MutableFrame = {
      type: type === 0 ? "" : String.fromCharCode(type),
      bytes: buf.slice(start - header, end),
      message: undefined,
      error: undefined
    }
    this.decode(frame, this.passwordContext)
    // After a StartupMessage every frame is typed; SSLRequest/GSSENCRequest are followed by another startup packet.
    if (type === 0 && frame.message?._tag === "StartupMessage") this.framer.mode = "typed"
    this.received.push(frame)
  }

  private decode(frame: MutableFrame, context: PasswordContext): void {
    const bytes = frame.bytes
    try {
      frame.message = frame.type === ""
        ? decodeStartupPacket(bytes, 4, bytes.length)
        : decodeFrontend(bytes[0]!, bytes, 5, bytes.length, context)
      frame.error = undefined
    } catch (e) {
      frame.message = undefined
      frame.error = isProtocolError(e) ? e : new ProtocolError({ reason: "InvalidValue", message: String(e) })
    }
  }

  private next = async (context?: PasswordContext): Promise<ReceivedFrame> => {
    for (;;) {
      if (this.cursor < this.received.length) {
        const frame = this.received[this.cursor++]!
        if (context !== undefined && frame.type === "p") this.decode(frame, context)
        return frame
      }
      if (this.framingError !== undefined) throw new Error(`the client's bytes cannot be framed: ${this.framingError.message}`)
      if (!this.isOpen) throw new Error("the client closed the connection")
      await new Promise<void>((resolve) => {
        this.wake = resolve
      })
      this.wake = undefined
    }
  }

  private write(bytes: Uint8Array): void {
    if (this.socket.destroyed) throw new Error("the connection is closed")
    this.socket.write(bytes)
  }

  private sendMessages(messages: BackendMessage | ReadonlyArray<BackendMessage>): void {
    const list: ReadonlyArray<BackendMessage> = Array.isArray(messages) ? messages : [messages as BackendMessage]
    for (const m of list) {
      encodeBackend(this.writer, m)
      this.passwordContext = contextAfter(m, this.passwordContext)
    }
    // A copy: the writer reuses its buffer once the socket is done with it.
    this.write(this.writer.take().slice())
  }

  private async run(steps: ReadonlyArray<Step>): Promise<void> {
    const context: StepContext = {
      connection: this,
      next: this.next,
      send: (messages) => this.sendMessages(messages),
      write: (bytes) => this.write(bytes)
    }
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i]!
      if (s.stops === true) return
      try {
        await s.run(context)
      } catch (e) {
        this.socket.destroy()
        throw new Error(`mock connection ${this.id}, step ${i + 1} (${s.description}): ${(e as Error).message}`, {
          cause: e
        })
      }
    }
  }

  end(reset: boolean): void {
    if (reset) this.socket.resetAndDestroy()
    else this.socket.end()
  }

  destroy(): void {
    this.socket.destroy()
  }
}

class Server implements MockServer {
  readonly host = "127.0.0.1"
  port = 0
  readonly connections: Array<Connection> = []
  private readonly server: Net.Server
  private readonly script: (id: number) => Script
  private handedOut = 0
  private closing = false
  private waiters: Array<{ resolve: (c: MockConnection) => void; reject: (e: Error) => void }> = []

  constructor(script: Script | ((id: number) => Script)) {
    this.script = typeof script === "function" ? script : () => script
    this.server = Net.createServer((socket) => this.accept(socket))
  }

  get openConnections(): number {
    return this.connections.filter((c) => c.isOpen).length
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject)
      this.server.listen(0, this.host, () => {
        this.server.off("error", reject)
        this.port = (this.server.address() as Net.AddressInfo).port
        resolve()
      })
    })
  }

  private accept(socket: Net.Socket): void {
    if (this.closing) {
      socket.destroy()
      return
    }
    const id = this.connections.length + 1
    const connection = new Connection(id, socket, flatten(this.script(id)))
    this.connections.push(connection)
    const waiter = this.waiters.shift()
    if (waiter !== undefined) {
      this.handedOut++
      waiter.resolve(connection)
    }
  }

  nextConnection(): Promise<MockConnection> {
    if (this.handedOut < this.connections.length) return Promise.resolve(this.connections[this.handedOut++]!)
    if (this.closing) return Promise.reject(new Error("mock server is closed"))
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true
      for (const w of this.waiters) w.reject(new Error("mock server closed"))
      this.waiters = []
      for (const c of this.connections) c.destroy()
    }
    await new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve()
      this.server.close(() => resolve())
    })
    await Promise.all(this.connections.map((c) => c.closed))
  }
}

/**
 * Starts a mock server on 127.0.0.1 (a free port). `script` is run for every connection; a
 * function receives the connection's id (1, 2, …) to script each one differently.
 */
export const startMockServer = async (script: Script | ((id: number) => Script)): Promise<MockServer> => {
  const server = new Server(script)
  await server.listen()
  return server
}

/** A mock server for the life of the current Scope (for `@effect/vitest`). */
const scoped = (script: Script | ((id: number) => Script)): Effect.Effect<MockServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => startMockServer(script)),
    (server) => Effect.promise(() => server.close())
  )

export const MockServer = { start: startMockServer, scoped } as const
