/**
 * A PostgreSQL connection as a scoped Effect resource.
 *
 * Invariants:
 * - `make` is scoped: closing the Scope sends Terminate, ends the socket and interrupts the connection's
 *   two fibers (reader and writer, see Wire.ts); nothing outlives the Scope.
 * - Requests from concurrent fibers pipeline: each is encoded whole and submitted without waiting for the
 *   others, up to `pipelineDepth` in flight; replies are routed to them in FIFO order.
 * - Interrupting a query's fiber abandons the request (its replies are still consumed up to
 *   ReadyForQuery, so the connection stays in step) and, when it is safe, cancels it on the server:
 *   a CancelRequest is sent only if the interrupted request is the last one written to the socket; from
 *   that instant the writer holds every later request back until the cancel socket has closed and the
 *   interrupted request reached ReadyForQuery (Cancel.ts explains why the backend then cannot apply the
 *   cancel to anything else). A request with later requests already on the wire is not cancelled on the
 *   server (the cancel could hit one of them); its results are discarded.
 * - A failed query leaves the connection usable; a broken socket or a protocol violation fails every
 *   waiting request with the same ConnectionError/ProtocolError, promptly.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import type * as Tls from "node:tls"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import type * as Config from "effect/Config"
import type { ErrorFields } from "@pgfx/codec/Async"
import { decodeBackend } from "@pgfx/codec/BackendMessage"
import { Framer } from "@pgfx/codec/Frame"
import { encodeFrontend } from "@pgfx/codec/FrontendMessage"
import { Writer } from "@pgfx/codec/internal/Writer"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import type { FieldDescription } from "@pgfx/codec/Query"
import { TypeRegistry, type TypeRegistryOptions } from "@pgfx/codec/TypeRegistry"
import { sendCancel } from "./Cancel.ts"
import * as Notifications from "./Notifications.ts"
import type { AsyncMessageOverflowError } from "./Notifications.ts"
import { type HandshakeError, MAX_REPORTED_PARAMETERS, negotiateTls, type SessionInfo, startup } from "./Handshake.ts"
import { type PgConfig, type PgConfigError, type PgConfigInput, resolve as resolveConfig } from "./PgConfig.ts"
import {
  AuthenticationError,
  ConnectionError,
  InvalidRequestError,
  type PgError,
  PgServerError,
  serverError,
  TimeoutError
} from "./PgError.ts"
import {
  encodeBind,
  encodePrepare,
  encodeSimpleQuery,
  EXECUTE_SYNC,
  encodeExecute,
  makeDecoder,
  CursorRequest,
  decodeRawRows,
  FrameRangeCollector,
  rowDecodeError,
  PrepareRequest,
  QueryRequest,
  type QueryResult,
  type RawRows,
  type RowDecoderLike,
  type RequestContext,
  type Row,
  type RowMode,
  type RowSink,
  writePendingCloses
} from "./Query.ts"
import { type PreparedStatement, type ResultPlan, StatementCache } from "./StatementCache.ts"
import { connect, type Endpoint, Transport } from "./Transport.ts"
import { ReaderQueue, Wire, type WireError } from "./Wire.ts"

export interface Notification {
  readonly processId: number
  readonly channel: string
  readonly payload: string
}

export interface QueryOptions {
  /** "object" (default): rows as `{ column: value }`; "array": values in column order. */
  readonly rowMode?: RowMode | undefined
  /** false: run as an unnamed statement (no server-side statement cache entry). */
  readonly prepare?: boolean | undefined
  /** Cancel the statement on the server and fail with TimeoutError after this long. */
  readonly timeout?: Duration.Input | undefined
  /**
   * false: no `pgfx.query` / `pgfx.simple` client span for this statement — for callers that make their
   * own span per statement (the effect/sql driver: SqlClient already makes one). Default true.
   */
  readonly span?: boolean | undefined
}

export interface StreamOptions extends QueryOptions {
  /** Batches (of at most one socket chunk's rows each) buffered ahead of the consumer. Default 1: rows that wait
   * die old (promoted by the GC), so deeper buffers cost memory and time; raise it for bursty consumers. */
  readonly bufferBatches?: number | undefined
}

export interface PipelineStatement {
  readonly sql: string
  readonly params?: ReadonlyArray<unknown> | undefined
}

export type PipelineOutcome =
  | { readonly _tag: "Success"; readonly result: QueryResult }
  | { readonly _tag: "Failure"; readonly error: PgServerError }
  /** An earlier statement of the same segment failed, so the server skipped this one. */
  | { readonly _tag: "Skipped" }

export interface ConnectionInfo {
  readonly host: string
  readonly port: number
  readonly processId: number
  readonly protocolVersion: "3.0" | "3.2"
  readonly serverVersion: string
  readonly tls: boolean
  readonly authenticationMethod: SessionInfo["authenticationMethod"]
  readonly unrecognizedProtocolOptions: ReadonlyArray<string>
}

export interface ConnectionApi {
  readonly info: ConnectionInfo
  readonly config: PgConfig
  /** The server's reported parameters (server_version, TimeZone, …), kept current as ParameterStatus arrives. */
  readonly parameters: ReadonlyMap<string, string>
  readonly registry: TypeRegistry
  /** Extended-protocol query with parameters; named prepared statements are cached per connection. */
  readonly query: <A = Row>(
    sql: string,
    params?: ReadonlyArray<unknown>,
    options?: QueryOptions
  ) => Effect.Effect<QueryResult<A>, PgError>
  /** Simple-protocol query: several statements, no parameters; every statement's result. */
  readonly simple: (sql: string, options?: QueryOptions) => Effect.Effect<ReadonlyArray<QueryResult>, PgError>
  /** Rows as a stream with backpressure: while the consumer is slow, the socket is paused. */
  readonly stream: <A = Row>(sql: string, params?: ReadonlyArray<unknown>, options?: StreamOptions) => Stream.Stream<A, PgError>
  /**
   * Hands every row to `f` as it is decoded, on the connection's reader (postgres.js' `.forEach`): no
   * queue, no effect per row, each row garbage once `f` returns, so memory stays at a socket chunk however
   * large the result. `f` runs synchronously and sets the pace (the socket is read no faster than it
   * returns); for work that waits, use `stream`. If `f` throws, no further row is decoded, the statement is
   * cancelled on the server as an interrupted query is, and the effect dies with what `f` threw; a row that
   * cannot be decoded fails it with a ProtocolError the same way. Succeeds with the command's result (its
   * tag and row count; `rows` is empty).
   */
  readonly forEach: <A = Row>(
    sql: string,
    f: (row: A) => void,
    params?: ReadonlyArray<unknown>,
    options?: QueryOptions
  ) => Effect.Effect<QueryResult<never>, PgError>
  /**
   * An explicit pipeline: every statement of every segment is written at once; each segment ends with a
   * Sync. PostgreSQL's semantics: an error skips the rest of its segment (and rolls back the segment's
   * implicit transaction); other segments are unaffected. Fails only if the connection fails.
   */
  readonly pipeline: (
    segments: ReadonlyArray<ReadonlyArray<PipelineStatement>>,
    options?: QueryOptions
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<PipelineOutcome>>, PgError>
  /**
   * A cursor: rows fetched `batchSize` at a time (Execute with a row limit, PortalSuspended), each batch
   * only when the consumer pulls. While it is open the cursor has the wire to itself (an exclusive
   * request): later requests wait, since one written between two of its Executes would end its portal.
   */
  readonly cursor: <A = Row>(
    sql: string,
    params?: ReadonlyArray<unknown>,
    options?: { readonly batchSize?: number | undefined; readonly rowMode?: RowMode | undefined }
  ) => Stream.Stream<A, PgError>
  /** Prepares (or finds in the cache) a named statement; returns its parameter types and fields. */
  readonly prepare: (sql: string) => Effect.Effect<PreparedStatement, PgError>
  /** Asynchronous server messages. */
  /**
   * Asynchronous server messages from the moment a stream starts, each buffered up to 1024 for a slow
   * consumer, then the oldest dropped (see Notifications.ts for other bounds, failing instead, and `listen`).
   */
  readonly notices: Stream.Stream<ErrorFields, AsyncMessageOverflowError>
  readonly parameterChanges: Stream.Stream<{ readonly name: string; readonly value: string }, AsyncMessageOverflowError>
  readonly notifications: Stream.Stream<Notification, AsyncMessageOverflowError>
  /** Sends a CancelRequest for whatever the session is running now (prefer interrupting the query's fiber). */
  readonly cancel: Effect.Effect<void>
  /** The transaction status of the last ReadyForQuery: "I" idle, "T" in a transaction, "E" failed transaction. */
  readonly transactionStatus: () => "I" | "T" | "E"
  /** Fails when the connection fails (socket closed, protocol error); useful for pools and supervisors. */
  readonly closed: Effect.Effect<WireError>
  readonly isOpen: () => boolean
  /** Low level: the wire and encoding context, for COPY, replication and pipelines built on this connection. */
  readonly internal: ConnectionInternal
}

export interface ConnectionInternal {
  readonly wire: Wire
  readonly writer: Writer
  readonly context: RequestContext
  readonly cancelTarget: () => import("./Cancel.ts").CancelTarget
  /** CancelRequests sent for interrupted requests whose outcome is not settled yet (a pool retires such a session). */
  readonly cancelsInFlight: () => number
  /** Registers a synchronous handler for every NotificationResponse; returns its removal. Handlers must not block. */
  readonly addNotificationListener: (f: (n: Notification) => void) => () => void
  /** Registers a synchronous handler for every NoticeResponse; returns its removal. Handlers must not block. */
  readonly addNoticeListener: (f: (fields: ErrorFields) => void) => () => void
  /** Registers a synchronous handler for every ParameterStatus; returns its removal. Handlers must not block. */
  readonly addParameterStatusListener: (f: (change: { readonly name: string; readonly value: string }) => void) => () => void
  /**
   * `effect` beside a client span named `name` with OpenTelemetry's database attributes for `sql` (as
   * `query` makes one); nothing is made when no tracing backend is installed. For COPY and other requests
   * built on the wire.
   */
  readonly traced: <A, E, R>(effect: Effect.Effect<A, E, R>, name: string, sql: string) => Effect.Effect<A, E, R>
  /** `stream` inside such a span, over its whole lifetime (none without a tracing backend). */
  readonly tracedStream: <A, E, R>(stream: Stream.Stream<A, E, R>, name: string, sql: string) => Stream.Stream<A, E, R>
  /** Runs a request with the pipeline-depth permit held and the safe-cancel protocol on interruption. */
  readonly run: <A>(
    build: (resume: (effect: Effect.Effect<A, PgError>) => void) => { request: import("./Wire.ts").Pending & { abandoned: boolean }; bytes: Uint8Array | undefined }
  ) => Effect.Effect<A, PgError>
}

export class Connection extends Context.Service<Connection, ConnectionApi>()("@pgfx/connection/Connection") {}

const DEFAULT_CONNECT_TIMEOUT_MS = 30_000

const hostOrder = (config: PgConfig): ReadonlyArray<PgConfig["hosts"][number]> => {
  if (config.loadBalanceHosts !== "random" || config.hosts.length < 2) return config.hosts
  const hosts = [...config.hosts]
  for (let i = hosts.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[hosts[i], hosts[j]] = [hosts[j]!, hosts[i]!]
  }
  return hosts
}

/** TLS options per sslmode; files are read here so a bad path is a clear ConnectionError. */
const tlsOptionsFor = (config: PgConfig, host: string): Effect.Effect<Tls.ConnectionOptions, ConnectionError> =>
  Effect.try({
    try: () => {
      const read = (p: string) => Fs.readFileSync(p)
      const verify = config.sslMode === "verify-full" || config.sslMode === "verify-ca" ||
        (config.sslMode === "require" && config.sslRootCert !== undefined)
      const options: Tls.ConnectionOptions = {
        rejectUnauthorized: verify,
        ...(config.sslRootCert !== undefined && config.sslRootCert !== "system" ? { ca: read(config.sslRootCert) } : {}),
        ...(config.sslCert !== undefined ? { cert: read(config.sslCert) } : {}),
        ...(config.sslKey !== undefined ? { key: read(config.sslKey) } : {}),
        ...(config.sslPassword !== undefined ? { passphrase: redactedValue(config.sslPassword) } : {}),
        ...(config.sslCrl !== undefined ? { crl: read(config.sslCrl) } : {}),
        ...(config.sslMinProtocolVersion !== undefined ? { minVersion: config.sslMinProtocolVersion } : {}),
        ...(config.sslMaxProtocolVersion !== undefined ? { maxVersion: config.sslMaxProtocolVersion } : {}),
        ...(config.sslSni && Net.isIP(host) === 0 ? { servername: host } : {})
      }
      if (config.sslMode === "verify-full") {
        // Node checks the certificate's names against `servername`, or against `host` for an IP address.
        return { ...options, host, ...(Net.isIP(host) === 0 ? { servername: host } : {}) }
      }
      // verify-ca checks the chain only; below it nothing is verified (libpq's sslmode semantics).
      return { ...options, checkServerIdentity: () => undefined }
    },
    catch: (e) =>
      new ConnectionError({
        reason: "TlsFailed",
        message: `cannot read a TLS file: ${e instanceof Error ? e.message : String(e)}`
      })
  })

const redactedValue = (r: Redacted.Redacted<string>): string => Redacted.value(r)

interface Opened {
  readonly transport: Transport
  readonly framer: Framer
  readonly session: SessionInfo
  readonly endpoint: Endpoint
  readonly tls: Tls.ConnectionOptions | undefined
}

/** One attempt at one host with one TLS choice. */
const attempt = (
  config: PgConfig,
  endpoint: Endpoint,
  useTls: boolean,
  writer: Writer,
  /** The host name for SNI and certificate checks (hostaddr may be what we connect to). */
  serverName: string
): Effect.Effect<Opened, HandshakeError> =>
  Effect.gen(function*() {
    const timeoutMs = config.connectTimeout !== undefined
      ? Duration.toMillis(config.connectTimeout)
      : DEFAULT_CONNECT_TIMEOUT_MS
    const tlsOptions = useTls ? yield* tlsOptionsFor(config, serverName) : undefined
    const direct = useTls && config.sslNegotiation === "direct"
    const transport = yield* connect({
      endpoint,
      timeoutMs,
      directTls: direct ? tlsOptions : undefined,
      keepAlive: endpoint.kind === "tcp" && config.keepAlives
        ? { initialDelayMs: config.keepAlivesIdle !== undefined ? Duration.toMillis(config.keepAlivesIdle) : 0 }
        : undefined
    })
    const framer = new Framer({ maxMessageSize: config.maxMessageSize })
    const run = Effect.gen(function*() {
      if (useTls && !direct) yield* negotiateTls(transport, framer, writer, config.sslMode, tlsOptions!, timeoutMs)
      const session = yield* startup(transport, framer, writer, config)
      return { transport, framer, session, endpoint, tls: transport.tls ? tlsOptions : undefined } satisfies Opened
    })
    return yield* run.pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(timeoutMs),
        orElse: () =>
          Effect.fail(
            new TimeoutError({
              reason: "Startup",
              message: `no session with ${endpoint.host}:${endpoint.port} within ${timeoutMs} ms (connect_timeout)`,
              timeoutMillis: timeoutMs
            })
          )
      }),
      Effect.onError(() => Effect.sync(() => transport.destroy()))
    )
  })

/** sslmode decides which attempts are made and in which order (libpq's fallbacks). */
const connectHost = (
  config: PgConfig,
  endpoint: Endpoint,
  writer: Writer,
  serverName: string
): Effect.Effect<Opened, HandshakeError> => {
  const attempt_ = (c: PgConfig, e: Endpoint, tls: boolean, w: Writer) => attempt(c, e, tls, w, serverName)
  if (endpoint.kind === "unix" || config.sslMode === "disable") return attempt_(config, endpoint, false, writer)
  switch (config.sslMode) {
    case "allow":
      return attempt_(config, endpoint, false, writer).pipe(
        Effect.catchTag("AuthenticationError", (e) =>
          e.reason === "Rejected" ? attempt_(config, endpoint, true, writer) : Effect.fail(e)),
        Effect.catchTag("ConnectionError", (e) =>
          e.reason === "ServerRejected" ? attempt_(config, endpoint, true, writer) : Effect.fail(e))
      )
    case "prefer":
      return attempt_(config, endpoint, true, writer).pipe(
        Effect.catchTag("ConnectionError", (e) =>
          e.reason === "TlsFailed" ? attempt_(config, endpoint, false, writer) : Effect.fail(e))
      )
    default:
      return attempt_(config, endpoint, true, writer)
  }
}

/** Whether a session matches target_session_attrs (PG14+ reports the two parameters it needs). */
const sessionMatches = (attrs: PgConfig["targetSessionAttrs"], params: ReadonlyMap<string, string>): boolean => {
  if (attrs === "any" || attrs === "prefer-standby") return true
  const hotStandby = params.get("in_hot_standby") === "on"
  const readOnly = params.get("default_transaction_read_only") === "on" || hotStandby
  switch (attrs) {
    case "read-write":
      return !readOnly
    case "read-only":
      return readOnly
    case "primary":
      return !hotStandby
    case "standby":
      return hotStandby
  }
}

const openSession = (config: PgConfig, writer: Writer): Effect.Effect<Opened, HandshakeError> =>
  Effect.gen(function*() {
    const hosts = hostOrder(config)
    const failures: Array<string> = []
    let lastError: HandshakeError | undefined
    const passes: ReadonlyArray<PgConfig["targetSessionAttrs"]> = config.targetSessionAttrs === "prefer-standby"
      ? ["standby", "any"]
      : [config.targetSessionAttrs]
    for (const attrs of passes) {
      for (const h of hosts) {
        const endpoint: Endpoint = { kind: h.kind, host: h.hostaddr ?? h.host, port: h.port }
        const hostConfig = h.password !== undefined ? { ...config, password: h.password } : config
        const result = yield* Effect.result(connectHost(hostConfig, endpoint, writer, h.host))
        if (result._tag === "Failure") {
          lastError = result.failure
          failures.push(`${h.host}:${h.port}: ${result.failure.message}`)
          // A wrong password is the same on every host: do not hammer the others.
          if (result.failure._tag === "AuthenticationError") return yield* Effect.fail(result.failure)
          continue
        }
        const opened = result.success
        if (sessionMatches(attrs, opened.session.parameters)) return opened
        failures.push(`${h.host}:${h.port}: session does not match target_session_attrs=${attrs}`)
        opened.transport.destroy()
      }
    }
    if (hosts.length === 1 && lastError !== undefined) return yield* Effect.fail(lastError)
    return yield* Effect.fail(
      new ConnectionError({
        reason: lastError === undefined ? "NoSuitableHost" : "ConnectFailed",
        message: `could not open a session on any host: ${failures.join("; ")}`
      })
    )
  })

/** A resolved PgConfig, explicit options (resolved with libpq's rules: env vars, .pgpass…), or a connection string. */
export type ConnectionInput = PgConfig | PgConfigInput | string

const isPgConfig = (u: unknown): u is PgConfig =>
  typeof u === "object" && u !== null && Array.isArray((u as PgConfig).hosts) && "sslMode" in (u as object)

export interface MakeOptions {
  /** How values decode (e.g. `temporal: "lossless"`, `json: "string"`); see the codec's TypeRegistry. */
  readonly types?: TypeRegistryOptions | undefined
}

/** Opens a connection in the current Scope. */
export const make = Effect.fnUntraced(function*(input: ConnectionInput, options?: MakeOptions) {
  const config: PgConfig = isPgConfig(input)
    ? input
    : yield* resolveConfig(typeof input === "string" ? { connectionString: input } : input)
  const writer = new Writer(16 * 1024, config.maxMessageSize)
  const opened = yield* openSession(config, writer)
  const { transport, framer, session, endpoint } = opened
  const scope = yield* Effect.scope

  const registry = TypeRegistry.make(options?.types)
  const statements = new StatementCache(config.statementCacheSize)
  const preparing = new Map<string, Effect.Effect<PreparedStatement, PgError>>()
  const parameters = session.parameters
  const notificationListeners = new Set<(n: Notification) => void>()
  const noticeListeners = new Set<(fields: ErrorFields) => void>()
  const parameterListeners = new Set<(change: { readonly name: string; readonly value: string }) => void>()
  let cancelsInFlight = 0

  const wire: Wire = new Wire(transport, framer, {
    onNotice: (buf, start, end) => {
      const m = decodeBackend(0x4e, buf, start, end) as { fields: ErrorFields }
      for (const f of noticeListeners) f(m.fields)
    },
    onNotification: (buf, start, end) => {
      const m = decodeBackend(0x41, buf, start, end) as unknown as Notification
      const n: Notification = { processId: m.processId, channel: m.channel, payload: m.payload }
      for (const f of notificationListeners) f(n)
    },
    onParameterStatus: (buf, start, end) => {
      const m = decodeBackend(0x53, buf, start, end) as { name: string; value: string }
      if (parameters.size >= MAX_REPORTED_PARAMETERS && !parameters.has(m.name)) {
        // Only GUC_REPORT settings are reported: a server inventing names without end is hostile.
        throw new ProtocolError({
          reason: "LengthOutOfRange",
          message: `the server reported more than ${MAX_REPORTED_PARAMETERS} distinct parameters`,
          messageType: "S"
        })
      }
      parameters.set(m.name, m.value)
      const change = { name: m.name, value: m.value }
      for (const f of parameterListeners) f(change)
    }
  })
  wire.onUnsolicitedError = (buf, start, end) => {
    const err = serverError((decodeBackend(0x45, buf, start, end) as { fields: ErrorFields }).fields)
    wire.fail(
      new ConnectionError({
        reason: "Closed",
        message: `the server ended the session: ${err.message} (SQLSTATE ${err.code})`,
        host: endpoint.host,
        port: endpoint.port,
        cause: err
      })
    )
  }
  const closedSignal = Effect.callback<WireError>((resume) => {
    if (wire.failure !== undefined) return resume(Effect.succeed(wire.failure))
    wire.onFail((e) => resume(Effect.succeed(e)))
  })

  yield* Effect.forkIn(wire.readLoop, scope)
  yield* Effect.forkIn(wire.writeLoop, scope)
  if (config.idleTimeout !== undefined) {
    // idle_timeout: a session with no request in flight (and no notification listener) for this long is
    // closed with Terminate; `closed` and later requests report ConnectionError("Closed") whose cause is
    // TimeoutError("Idle"). Polled (a quarter of the timeout, 10 ms..1 s) so the hot path is untouched.
    const idleMs = Duration.toMillis(config.idleTimeout)
    const every = Duration.millis(Math.min(1000, Math.max(10, Math.floor(idleMs / 4))))
    yield* Effect.forkIn(
      Effect.gen(function*() {
        let seen = wire.submittedCount
        let idleSince = Date.now()
        while (wire.failure === undefined) {
          yield* Effect.sleep(every)
          if (wire.inFlight > 0 || wire.submittedCount !== seen || notificationListeners.size > 0) {
            seen = wire.submittedCount
            idleSince = Date.now()
          } else if (Date.now() - idleSince >= idleMs) {
            encodeFrontend(writer, { _tag: "Terminate" })
            transport.writeNow(writer.take())
            wire.fail(
              new ConnectionError({
                reason: "Closed",
                message: `the session was closed after ${idleMs} ms idle (idle_timeout)`,
                host: endpoint.host,
                port: endpoint.port,
                cause: new TimeoutError({ reason: "Idle", message: "idle_timeout", timeoutMillis: idleMs })
              })
            )
          }
        }
      }),
      scope
    )
  }
  yield* Scope.addFinalizer(
    scope,
    Effect.suspend(() => {
      if (wire.failure !== undefined) return Effect.void
      encodeFrontend(writer, { _tag: "Terminate" })
      const bytes = writer.take()
      return transport.write(bytes).pipe(
        Effect.timeout(Duration.seconds(1)),
        Effect.ignore,
        Effect.andThen(Effect.sync(() => {
          wire.fail(transport.closedError())
          transport.close()
        }))
      )
    })
  )

  const rowModeDefault: RowMode = "object"
  const contexts = {
    object: { wire, writer, registry, rowMode: "object" } satisfies RequestContext,
    array: { wire, writer, registry, rowMode: "array" } satisfies RequestContext
  }
  const contextFor = (mode: RowMode | undefined) => contexts[mode ?? rowModeDefault]

  const cancelTarget = () => ({
    endpoint,
    tls: opened.tls,
    processId: session.processId,
    secretKey: session.secretKey
  })

  /**
   * Pipeline depth: at most `pipelineDepth` requests in flight; later ones wait, in order, for a slot.
   * Counted by hand (not a Semaphore) because this runs once per query.
   */
  let inFlight = 0
  const slotWaiters: Array<() => void> = []
  const releaseSlot = () => {
    const next = slotWaiters.shift()
    if (next !== undefined) next() // the slot passes on; inFlight unchanged
    else inFlight--
  }

  /**
   * Runs one request: takes a pipeline slot, submits, and on interruption abandons it and — only when
   * it is the last request on the wire — cancels it on the server (see the module header).
   */
  const run = <A>(
    build: (resume: (effect: Effect.Effect<A, PgError>) => void) => {
      request: import("./Wire.ts").Pending & { abandoned: boolean }
      bytes: Uint8Array | undefined
    }
  ): Effect.Effect<A, PgError> =>
    Effect.callback<A, PgError>((resume) => {
      let finished = false
      let started = false
      let seq = -1
      let built: ReturnType<typeof build> | undefined
      let waitDone: (() => void) | undefined
      const complete = (effect: Effect.Effect<A, PgError>) => {
        if (finished) return
        finished = true
        releaseSlot()
        const w = waitDone
        waitDone = undefined
        w?.()
        resume(effect)
      }
      const start = () => {
        started = true
        try {
          built = build(complete)
        } catch (e) {
          writer.rewind()
          finished = true
          releaseSlot()
          resume(Effect.fail(toRequestError(e)))
          return
        }
        seq = wire.submit(built.request, built.bytes)
      }
      if (inFlight < config.pipelineDepth) {
        inFlight++
        start()
      } else slotWaiters.push(start)
      return Effect.suspend(() => {
        if (!started) {
          // Still waiting for a slot: nothing was sent.
          const i = slotWaiters.indexOf(start)
          if (i >= 0) slotWaiters.splice(i, 1)
          return Effect.void
        }
        if (finished || built === undefined) return Effect.void
        built.request.abandoned = true
        if (!wire.isLastWritten(seq)) return Effect.void
        // Safe to cancel: hold later requests until the cancel is delivered and this request is done.
        wire.hold()
        cancelsInFlight++
        const requestDone = Effect.callback<void>((r) => {
          if (finished) return r(Effect.void)
          waitDone = () => r(Effect.void)
        })
        let released = false
        const release = Effect.sync(() => {
          if (released) return
          released = true
          cancelsInFlight--
          wire.release()
        })
        // The cancel runs in the background, so the interrupted fiber (a statement timeout) returns at
        // once even when the server or the network does not answer the cancel socket promptly. It is
        // detached: closing the connection meanwhile (a pool retiring it) must not stop the cancel from
        // reaching the backend. Bounded: sendCancel has its own timeout, and requestDone completes when
        // the request does or the wire fails.
        return Effect.asVoid(Effect.forkDetach(
          sendCancel(cancelTarget()).pipe(
            Effect.andThen(requestDone.pipe(Effect.timeout(Duration.seconds(30)), Effect.ignore)),
            Effect.ensuring(release)
          )
        ))
      })
    })

  const withTimeout = <A>(effect: Effect.Effect<A, PgError>, options: QueryOptions | undefined) => {
    // The per-call timeout, else the configured statement_timeout: a client-side deadline that holds
    // even when the server stops answering.
    const timeout = options?.timeout ?? config.statementTimeout
    if (timeout === undefined) return effect
    const d = Duration.fromInputUnsafe(timeout)
    return Effect.timeoutOrElse(effect, {
      duration: d,
      orElse: () =>
        Effect.fail(
          new TimeoutError({
            reason: "Statement",
            message: `statement cancelled after ${Duration.toMillis(d)} ms`,
            timeoutMillis: Duration.toMillis(d)
          })
        )
    })
  }

  const resultFormatsFor = (fields: ReadonlyArray<FieldDescription> | undefined): ReadonlyArray<0 | 1> =>
    fields === undefined ? [] : fields.map((f) => (registry.hasBinary(f.typeOid) ? 1 : 0))

  const prepareUncached = (sql: string): Effect.Effect<PreparedStatement, PgError> => {
    const name = statements.nextName()
    return run<{ parameterTypes: ReadonlyArray<number>; fields: ReadonlyArray<FieldDescription> | undefined }>(
      (resume) => {
        writePendingCloses(writer, statements.toClose)
        encodePrepare(writer, name, sql, [])
        return { request: Object.assign(new PrepareRequest(sql, resume), { abandoned: false }), bytes: writer.take() }
      }
    ).pipe(
      Effect.map(({ fields, parameterTypes }) => {
        const resultFormats = resultFormatsFor(fields)
        const statement: PreparedStatement = {
          name,
          sql,
          parameterTypes,
          fields,
          resultFormats,
          plans: {
            object: [{ fields: fields ?? [], decoder: fields === undefined ? undefined : makeDecoder(registry, fields, resultFormats, "object") }],
            array: [{ fields: fields ?? [], decoder: fields === undefined ? undefined : makeDecoder(registry, fields, resultFormats, "array") }]
          }
        }
        statements.set(statement)
        return statement
      })
    )
  }

  const prepare = (sql: string): Effect.Effect<PreparedStatement, PgError> =>
    Effect.suspend(() => {
      const cached = statements.get(sql)
      if (cached !== undefined) return Effect.succeed(cached)
      const inFlight = preparing.get(sql)
      if (inFlight !== undefined) return inFlight
      const once = Effect.cached(prepareUncached(sql).pipe(Effect.ensuring(Effect.sync(() => preparing.delete(sql)))))
      return Effect.flatMap(once, (eff) => {
        preparing.set(sql, eff)
        return eff
      })
    })

  const plansFor = (statement: PreparedStatement, mode: RowMode | undefined) => statement.plans[mode ?? rowModeDefault]


  const executePrepared = <A>(
    statement: PreparedStatement,
    params: ReadonlyArray<unknown>,
    options: QueryOptions | undefined,
    sink?: RowSink
  ): Effect.Effect<QueryResult<A>, PgError> =>
    run<QueryResult<A>>((resume) => {
      writePendingCloses(writer, statements.toClose)
      encodeBind(writer, registry, "", statement.name, statement.parameterTypes, params, statement.resultFormats)
      writer.bytes(EXECUTE_SYNC)
      const request = new QueryRequest(
        contextFor(options?.rowMode),
        statement.sql,
        resume as never,
        plansFor(statement, options?.rowMode),
        sink
      )
      request.single = true
      return { request, bytes: writer.take() }
    })

  const executeUnnamed = <A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    options: QueryOptions | undefined,
    sink?: RowSink
  ): Effect.Effect<QueryResult<A>, PgError> =>
    run<QueryResult<A>>((resume) => {
      writePendingCloses(writer, statements.toClose)
      encodeFrontend(writer, { _tag: "Parse", name: "", query: sql, parameterTypes: params.map(() => 0) })
      encodeBind(writer, registry, "", "", params.map(() => 0), params, [])
      encodeFrontend(writer, { _tag: "Describe", kind: "P", name: "" })
      writer.bytes(EXECUTE_SYNC)
      const request = new QueryRequest(contextFor(options?.rowMode), sql, resume as never, undefined, sink)
      request.single = true
      return { request, bytes: writer.take() }
    })

  /** Statements the server dropped or whose result type changed are prepared again, once. */
  const isStale = (e: PgError) => e._tag === "PgServerError" && (e.code === "26000" || (e.code === "0A000" && e.message.includes("cached plan")))

  const runQuery = <A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    options: QueryOptions | undefined,
    sink?: RowSink
  ): Effect.Effect<QueryResult<A>, PgError> => {
    if (options?.prepare === false || statements.capacity === 0) return executeUnnamed<A>(sql, params, options, sink)
    const cached = statements.get(sql)
    const once = cached !== undefined
      ? executePrepared<A>(cached, params, options, sink)
      : Effect.flatMap(prepare(sql), (s) => executePrepared<A>(s, params, options, sink))
    return Effect.catchIf(once, isStale, () =>
      Effect.suspend(() => {
        statements.invalidate(sql)
        return Effect.flatMap(prepare(sql), (s) => executePrepared<A>(s, params, options, sink))
      }))
  }

  /**
   * A client span per statement, with OpenTelemetry's database attributes (never parameters). The
   * statement runs beside its span (`useSpan`), not inside it: nothing under a statement makes spans, so
   * providing the span as the parent of its effect (what `withSpan` adds) would only cost a context copy
   * per statement.
   */
  const spanAttributes = (sql: string) => ({
    "db.system.name": "postgresql",
    "db.namespace": config.database,
    "db.query.text": sql,
    "server.address": endpoint.host,
    "server.port": endpoint.port
  })
  // With no tracing backend installed (effect's native tracer) a span is made for nobody: it is not the
  // statement's parent, so nothing could read it. Effect documents this comparison for skipping such work.
  const tracing = (fiber: Fiber.Fiber<unknown, unknown>) => fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer
  const tracedAlways = <A, E, R>(effect: Effect.Effect<A, E, R>, name: string, sql: string): Effect.Effect<A, E, R> =>
    Effect.withFiber((fiber) =>
      tracing(fiber) ? Effect.useSpan(name, { attributes: spanAttributes(sql), kind: "client" }, () => effect) : effect
    )
  const tracedStream = <A, E, R>(stream: Stream.Stream<A, E, R>, name: string, sql: string): Stream.Stream<A, E, R> =>
    Stream.unwrap(Effect.withFiber((fiber) =>
      Effect.succeed(tracing(fiber) ? Stream.withSpan(stream, name, { attributes: spanAttributes(sql), kind: "client" }) : stream)
    ))
  const traced = <A, E>(effect: Effect.Effect<A, E>, name: string, sql: string, options: QueryOptions | undefined) =>
    options?.span === false ? effect : tracedAlways(effect, name, sql)

  const query = <A = Row>(sql: string, params: ReadonlyArray<unknown> = [], options?: QueryOptions) =>
    traced(withTimeout(runQuery<A>(sql, params, options), options), "pgfx.query", sql, options)

  const simple = (sql: string, options?: QueryOptions) =>
    traced(
      withTimeout(
        run<ReadonlyArray<QueryResult>>((resume) => {
          writePendingCloses(writer, statements.toClose)
          const bytes = encodeSimpleQuery(writer, sql)
          return { request: new QueryRequest(contextFor(options?.rowMode), sql, resume as never), bytes }
        }),
        options
      ),
      "pgfx.simple",
      sql,
      options
    )

  /**
   * Rows stream with backpressure: the reader hands on where each socket chunk's DataRows are (no row is
   * decoded ahead of the consumer), the consumer decodes a batch when it takes it — rows are made just
   * before they are used, so they die young instead of surviving scavenges in a queue. A row that cannot be
   * decoded fails the stream with its ProtocolError; the connection stays usable (the rest is discarded).
   */
  const stream = <A = Row>(sql: string, params: ReadonlyArray<unknown> = [], options?: StreamOptions): Stream.Stream<A, PgError> =>
    Stream.unwrap(
      Effect.gen(function*() {
        const queue = yield* Queue.bounded<RawRows, PgError | import("effect/Cause").Done>(options?.bufferBatches ?? 1)
        const toConsumer = new ReaderQueue<RawRows, PgError>(wire, queue)
        let decoder: RowDecoderLike | undefined
        const rows = new FrameRangeCollector()
        let ended = false
        const endOfBatch = () => {
          if (rows.isEmpty) return
          toConsumer.offer({ ...rows.take(), decoder: decoder! })
        }
        const sink: RowSink = {
          push: () => {},
          pushRaw: (d, buf, start, end) => {
            // A new result shape (another statement's rows) starts a new batch.
            if (d !== decoder) {
              endOfBatch()
              decoder = d
            }
            rows.add(buf, start, end)
          },
          endOfBatch,
          // Ends the queue from the reader, after the offers of the last rows (never ahead of them).
          end: (error) => {
            ended = true
            toConsumer.end(error)
          }
        }
        yield* Effect.forkScoped(
          runQuery<A>(sql, params, options, sink).pipe(
            Effect.catch((e) => (ended ? Effect.void : Queue.fail(queue, e)))
          )
        )
        // The consumer went away: stop the reader from waiting on this queue (pending offers return).
        yield* Effect.addFinalizer(() => Queue.shutdown(queue))
        // Only non-empty batches are offered, so each take is a non-empty chunk of the stream.
        // Rows before an undecodable one are delivered first; the error ends the stream at the next pull.
        let failure: ProtocolError | undefined
        const pull = Effect.suspend(() =>
          failure !== undefined ? Effect.fail(failure) : Effect.flatMap(Queue.take(queue), (b) => {
            const rows: Array<unknown> = []
            failure = decodeRawRows(b, rows)
            return rows.length > 0 ? Effect.succeed(rows) : Effect.fail(failure!)
          })
        )
        return Stream.fromPull(Effect.succeed(pull as any)) as Stream.Stream<A, PgError>
      })
    )

  const forEach = <A = Row>(
    sql: string,
    f: (row: A) => void,
    params: ReadonlyArray<unknown> = [],
    options?: QueryOptions
  ): Effect.Effect<QueryResult<never>, PgError> =>
    traced(
      withTimeout(
        Effect.suspend(() => {
          // Set in the reader when `f` throws or a row cannot be decoded; from then on rows are skipped.
          let stopped: Exit.Exit<never, PgError> | undefined
          const stop = Deferred.makeUnsafe<never, PgError>()
          const sink: RowSink = {
            push: () => {},
            pushRaw: (decoder, buf, start, end) => {
              if (stopped !== undefined) return
              let row: unknown
              try {
                row = decoder.decode(buf, start, end)
              } catch (e) {
                stopped = Exit.fail(rowDecodeError(e))
                Deferred.doneUnsafe(stop, stopped)
                return
              }
              try {
                f(row as A)
              } catch (e) {
                stopped = Exit.die(e)
                Deferred.doneUnsafe(stop, stopped)
              }
            }
          }
          // The stop wins the race (the statement is interrupted: abandoned, and cancelled on the server when
          // it is the last one on the wire); whatever the race returns, a stop is the outcome.
          return Effect.flatMap(
            Effect.exit(Effect.raceFirst(runQuery<never>(sql, params, options, sink), Deferred.await(stop))),
            (exit) => stopped ?? exit
          )
        }),
        options
      ),
      "pgfx.forEach",
      sql,
      options
    )

  const pipeline = (segments: ReadonlyArray<ReadonlyArray<PipelineStatement>>, options?: QueryOptions) =>
    Effect.gen(function*() {
      // Prepare every distinct statement first (these pipeline too), then write all segments at once.
      const distinct = [...new Set(segments.flat().map((s) => s.sql))]
      const prepared = new Map<string, PreparedStatement>()
      yield* Effect.forEach(distinct, (sql) => Effect.map(prepare(sql), (p) => prepared.set(sql, p)), {
        concurrency: "unbounded",
        discard: true
      })
      // Every segment is encoded before anything is submitted (a bad parameter sends nothing), then all
      // are submitted at once: one request per segment, their bytes in one write. Explicit pipelines
      // choose their own depth, so they take no pipeline slots; interrupting one abandons its requests
      // (their replies are drained) without cancelling on the server.
      return yield* Effect.callback<ReadonlyArray<ReadonlyArray<PipelineOutcome>>, PgError>((resume) => {
        const outcomes: Array<ReadonlyArray<PipelineOutcome>> = new Array(segments.length)
        let remaining = segments.length
        if (remaining === 0) return resume(Effect.succeed(outcomes))
        let settled = false
        const requests: Array<QueryRequest> = []
        try {
          writePendingCloses(writer, statements.toClose)
          segments.forEach((segment, k) => {
            const presets: Array<ResultPlan> = []
            for (const st of segment) {
              const p = prepared.get(st.sql)!
              encodeBind(writer, registry, "", p.name, p.parameterTypes, st.params ?? [], p.resultFormats)
              encodeExecute(writer, 0)
              presets.push(plansFor(p, options?.rowMode)[0]!)
            }
            encodeFrontend(writer, { _tag: "Sync" })
            const request: QueryRequest = new QueryRequest(
              contextFor(options?.rowMode),
              segment.length === 1 ? segment[0]!.sql : segment.map((s) => s.sql).join("; "),
              (effect) => {
                if (settled) return
                const exit = effect as unknown as Exit.Exit<ReadonlyArray<QueryResult<unknown>>, PgError>
                if (Exit.isFailure(exit)) {
                  settled = true
                  return resume(Effect.failCause(exit.cause))
                }
                outcomes[k] = outcomesOf(segment.length, exit.value, request.error)
                if (--remaining === 0) {
                  settled = true
                  resume(Effect.succeed(outcomes))
                }
              },
              presets
            )
            request.partial = true
            requests.push(request)
          })
        } catch (e) {
          writer.rewind()
          return resume(Effect.fail(toRequestError(e)))
        }
        const bytes = writer.take()
        requests.forEach((r, i) => wire.submit(r, i === requests.length - 1 ? bytes : undefined))
        return Effect.sync(() => {
          settled = true
          for (const r of requests) r.abandoned = true
        })
      })
    })

  const cursor = <A = Row>(
    sql: string,
    params: ReadonlyArray<unknown> = [],
    options?: { readonly batchSize?: number | undefined; readonly rowMode?: RowMode | undefined }
  ): Stream.Stream<A, PgError> =>
    Stream.unwrap(
      Effect.gen(function*() {
        const statement = yield* prepare(sql)
        const decoder = plansFor(statement, options?.rowMode)[0]!.decoder
        const request = new CursorRequest(contextFor(options?.rowMode), decoder, sql, Math.max(1, options?.batchSize ?? 1000))
        writePendingCloses(writer, statements.toClose)
        encodeBind(writer, registry, "", statement.name, statement.parameterTypes, params, statement.resultFormats)
        request.writeFetch()
        wire.submit(request, writer.take())
        yield* Effect.addFinalizer(() => Effect.sync(() => request.close()))
        let first = true
        const pull: Effect.Effect<ReadonlyArray<A>, PgError | Cause.Done> = Effect.suspend(() => {
          const fetch = request.fetch(first)
          first = false
          return Effect.flatMap(fetch, (rows) =>
            rows === undefined ? Cause.done() : rows.length > 0 ? Effect.succeed(rows as Array<A>) : pull)
        })
        return Stream.fromPull(Effect.succeed(pull as any)) as Stream.Stream<A, PgError>
      })
    )

  const api: ConnectionApi = {
    info: {
      host: endpoint.host,
      port: endpoint.port,
      processId: session.processId,
      protocolVersion: session.protocolVersion,
      serverVersion: parameters.get("server_version") ?? "",
      tls: transport.tls,
      authenticationMethod: session.authenticationMethod,
      unrecognizedProtocolOptions: session.unrecognizedOptions
    },
    config,
    parameters,
    registry,
    query,
    simple,
    stream,
    forEach,
    pipeline,
    cursor,
    prepare,
    notices: Stream.suspend(() => Notifications.notices(api)),
    parameterChanges: Stream.suspend(() => Notifications.parameterChanges(api)),
    notifications: Stream.suspend(() => Notifications.allNotifications(api)),
    cancel: sendCancel(cancelTarget()),
    transactionStatus: () => (wire.transactionStatus === 0x54 ? "T" : wire.transactionStatus === 0x45 ? "E" : "I"),
    closed: closedSignal,
    isOpen: () => wire.failure === undefined,
    internal: {
      wire,
      writer,
      context: contexts.object,
      cancelTarget,
      traced: tracedAlways,
      tracedStream,
      run: run as never,
      cancelsInFlight: () => cancelsInFlight,
      addNotificationListener: (f) => {
        notificationListeners.add(f)
        return () => notificationListeners.delete(f)
      },
      addNoticeListener: (f) => {
        noticeListeners.add(f)
        return () => noticeListeners.delete(f)
      },
      addParameterStatusListener: (f) => {
        parameterListeners.add(f)
        return () => parameterListeners.delete(f)
      }
    }
  }
  return api
})

/** A segment's outcomes: results up to the failing statement, that statement's error, the rest skipped. */
const outcomesOf = (
  count: number,
  results: ReadonlyArray<QueryResult<unknown>>,
  error: PgServerError | undefined
): ReadonlyArray<PipelineOutcome> => {
  const out: Array<PipelineOutcome> = new Array(count)
  for (let i = 0; i < count; i++) {
    out[i] = i < results.length
      ? { _tag: "Success", result: results[i] as QueryResult }
      : i === results.length && error !== undefined
      ? { _tag: "Failure", error }
      : { _tag: "Skipped" }
  }
  return out
}

const toRequestError = (e: unknown): PgError => {
  if (e instanceof InvalidRequestError || e instanceof ProtocolError) {
    return e instanceof ProtocolError
      ? new InvalidRequestError({ reason: "Other", message: e.message })
      : e
  }
  return new InvalidRequestError({ reason: "Other", message: e instanceof Error ? e.message : String(e) })
}

export const layer = (input: ConnectionInput, options?: MakeOptions): Layer.Layer<Connection, PgError | PgConfigError> =>
  Layer.effect(Connection, make(input, options))

export const layerConfig = (
  config: Config.Config<PgConfig>
): Layer.Layer<Connection, PgError | PgConfigError | Config.ConfigError> =>
  Layer.effect(Connection, Effect.flatMap(config, (c) => make(c)))

export { AuthenticationError, ConnectionError, Exit, PgServerError }
