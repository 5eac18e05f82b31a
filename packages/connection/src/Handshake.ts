/**
 * The start of a session on an open transport: TLS negotiation, the startup packet, protocol version
 * negotiation and the authentication exchange, up to the first ReadyForQuery.
 *
 * Invariants:
 * - Authentication is mutual where the method allows it: after SASL the server must have proved it
 *   knows the password (SCRAM server signature verified) before AuthenticationOk is accepted; a server
 *   asking for a method that `require_auth` or `channel_binding` forbids is refused before any secret
 *   is sent.
 * - After the server accepts SSLRequest, any byte already received is refused (a man-in-the-middle
 *   could have injected it in clear text: CVE-2021-23222).
 * - Nothing here contains or logs the password; errors carry the server's message only.
 * - Every message is checked against the startup phase: anything else is a ProtocolError.
 */
import type * as Tls from "node:tls"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { ErrorFields } from "@pgfx/codec/Async"
import { type BackendMessage, decodeBackend } from "@pgfx/codec/BackendMessage"
import type { Framer } from "@pgfx/codec/Frame"
import { encodeFrontend } from "@pgfx/codec/FrontendMessage"
import { md5Password } from "@pgfx/codec/Md5Password"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import {
  chooseMechanism,
  DEFAULT_MAX_ITERATIONS,
  defaultSaltedPasswordCache,
  isScramError,
  ScramClient,
  type ScramClientAwaitingServerFinal,
  tlsServerEndPoint
} from "@pgfx/codec/Scram"
import { PROTOCOL_3_0, PROTOCOL_3_2 } from "@pgfx/codec/Startup"
import type { Writer } from "@pgfx/codec/internal/Writer"
import { isAuthMethodAllowed } from "./PgConfig.ts"
import { AuthenticationError, ConnectionError, serverError, TimeoutError } from "./PgError.ts"
import type { Transport } from "./Transport.ts"

export type HandshakeError = ConnectionError | AuthenticationError | ProtocolError | TimeoutError

/** What the handshake needs from the configuration (a subset of PgConfig). */
export interface HandshakeConfig {
  readonly user: string
  readonly password: Redacted.Redacted<string> | undefined
  readonly database: string
  readonly applicationName: string | undefined
  readonly options: string | undefined
  readonly replication: "true" | "database" | undefined
  readonly sslMode: "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
  readonly channelBinding: "disable" | "prefer" | "require"
  readonly requireAuth: ReadonlyArray<string> | undefined
  readonly minProtocolVersion: "3.0" | "3.2"
  readonly maxProtocolVersion: "3.0" | "3.2"
  readonly runtimeParameters: Readonly<Record<string, string>>
  readonly scramMinIterations: number
}

export interface SessionInfo {
  readonly processId: number
  readonly secretKey: Uint8Array
  readonly protocolVersion: "3.0" | "3.2"
  readonly parameters: Map<string, string>
  /** `_pq_.` options the server did not recognise (from NegotiateProtocolVersion). */
  readonly unrecognizedOptions: ReadonlyArray<string>
  readonly notices: ReadonlyArray<ErrorFields>
  readonly authenticationMethod: "none" | "password" | "md5" | "scram-sha-256" | "scram-sha-256-plus"
}

type Item = BackendMessage | { readonly _tag: "Byte"; readonly byte: number }

/** Distinct ParameterStatus names a session may report (PostgreSQL 18 reports about 20); more is a ProtocolError. */
export const MAX_REPORTED_PARAMETERS = 1024

/** NoticeResponses kept from the startup phase; later ones are dropped. */
export const MAX_STARTUP_NOTICES = 64

/** Pulls decoded startup-phase messages off the transport, one at a time. */
class StartupReader {
  private readonly items: Array<Item> = []
  private readonly transport: Transport
  private readonly framer: Framer
  constructor(transport: Transport, framer: Framer) {
    this.transport = transport
    this.framer = framer
  }
  private readonly onFrame = (type: number, buf: Uint8Array, start: number, end: number): void => {
    if (start === end && this.byteMode) {
      this.byteMode = false
      this.items.push({ _tag: "Byte", byte: type })
      return
    }
    this.items.push(decodeBackend(type, buf, start, end))
  }
  byteMode = false

  get pendingBytes(): number {
    return this.framer.buffered + this.items.length
  }

  readonly next: Effect.Effect<Item, HandshakeError> = Effect.suspend(() => {
    const item = this.items.shift()
    if (item !== undefined) return Effect.succeed(item)
    return Effect.flatMap(this.transport.take, (events) => {
      for (const ev of events) {
        if (ev._tag === "Data") {
          try {
            this.framer.push(ev.chunk, this.onFrame)
          } catch (e) {
            return Effect.fail(
              e instanceof ProtocolError
                ? e
                : new ProtocolError({ reason: "InvalidValue", message: String(e) })
            )
          }
        } else if (ev._tag === "End") {
          if (this.items.length > 0) break
          return Effect.fail(
            new ConnectionError({
              reason: "Closed",
              message: "the server closed the connection during startup",
              host: this.transport.endpoint.host,
              port: this.transport.endpoint.port
            })
          )
        } else return Effect.fail(ev.error)
      }
      return this.next
    })
  })
}

const unexpected = (m: Item, phase: string): ProtocolError =>
  new ProtocolError({
    reason: "UnexpectedMessage",
    message: `unexpected ${m._tag === "Byte" ? `byte 0x${m.byte.toString(16)}` : m._tag} during ${phase}`,
    ...(m._tag === "Byte" ? {} : { messageType: m._tag })
  })

const sendAll = (transport: Transport, w: Writer) => transport.write(w.take())

/**
 * Negotiates TLS over the PostgreSQL SSLRequest. Returns whether TLS is now on. `sslmode=allow` never
 * asks (the caller retries with TLS when the plain attempt is rejected).
 */
export const negotiateTls = (
  transport: Transport,
  framer: Framer,
  w: Writer,
  sslMode: HandshakeConfig["sslMode"],
  tlsOptions: Tls.ConnectionOptions,
  timeoutMs: number | undefined
): Effect.Effect<boolean, HandshakeError> =>
  Effect.gen(function*() {
    encodeFrontend(w, { _tag: "SSLRequest" })
    yield* sendAll(transport, w)
    const reader = new StartupReader(transport, framer)
    framer.mode = "byte"
    reader.byteMode = true
    const answer = yield* reader.next
    if (answer._tag !== "Byte") return yield* Effect.fail(unexpected(answer, "SSL negotiation"))
    if (answer.byte === 0x53 /* S */) {
      if (reader.pendingBytes > 0) {
        return yield* Effect.fail(
          new ProtocolError({
            reason: "UnexpectedMessage",
            message: "received unencrypted data after the server accepted SSL (possible man-in-the-middle)"
          })
        )
      }
      yield* transport.upgradeTls(tlsOptions, timeoutMs)
      return true
    }
    if (answer.byte === 0x4e /* N */) {
      if (sslMode === "require" || sslMode === "verify-ca" || sslMode === "verify-full") {
        return yield* Effect.fail(
          new ConnectionError({
            reason: "TlsRequired",
            message: `the server does not support SSL, but sslmode=${sslMode} requires it`,
            host: transport.endpoint.host,
            port: transport.endpoint.port
          })
        )
      }
      return false
    }
    if (answer.byte === 0x45 /* E: a server too old to know SSLRequest */) {
      return yield* Effect.fail(
        new ConnectionError({
          reason: "ServerRejected",
          message: "the server answered SSLRequest with an error (it predates protocol 3.0's SSL negotiation)",
          host: transport.endpoint.host,
          port: transport.endpoint.port
        })
      )
    }
    return yield* Effect.fail(
      new ProtocolError({
        reason: "InvalidValue",
        message: `invalid answer 0x${answer.byte.toString(16)} to SSLRequest (expected 'S' or 'N')`
      })
    )
  })

/** Startup packet, protocol negotiation and authentication, up to the first ReadyForQuery. */
export const startup = (
  transport: Transport,
  framer: Framer,
  w: Writer,
  config: HandshakeConfig
): Effect.Effect<SessionInfo, HandshakeError> =>
  Effect.gen(function*() {
    const parameters: Record<string, string> = {
      user: config.user,
      database: config.database,
      client_encoding: "UTF8",
      DateStyle: "ISO, MDY"
    }
    if (config.applicationName !== undefined) parameters.application_name = config.applicationName
    if (config.options !== undefined) parameters.options = config.options
    if (config.replication !== undefined) parameters.replication = config.replication
    for (const [k, v] of Object.entries(config.runtimeParameters)) parameters[k] = v
    const requested = config.maxProtocolVersion === "3.2" ? PROTOCOL_3_2 : PROTOCOL_3_0
    encodeFrontend(w, {
      _tag: "StartupMessage",
      majorVersion: requested >>> 16,
      minorVersion: requested & 0xffff,
      parameters
    } as never)
    yield* sendAll(transport, w)

    const reader = new StartupReader(transport, framer)
    let protocolVersion: "3.0" | "3.2" = config.maxProtocolVersion
    let unrecognizedOptions: ReadonlyArray<string> = []
    let processId = 0
    let secretKey: Uint8Array | undefined
    const params = new Map<string, string>()
    const notices: Array<ErrorFields> = []
    let method: SessionInfo["authenticationMethod"] = "none"
    let scram: { readonly awaitingFirst?: ReturnType<typeof ScramClient.start>["next"]; awaitingFinal?: ScramClientAwaitingServerFinal } | undefined
    let authenticated = false
    const password = (): Effect.Effect<string, AuthenticationError> =>
      config.password === undefined
        ? Effect.fail(
          new AuthenticationError({
            reason: "PasswordMissing",
            message: `the server requested password authentication for user "${config.user}", but no password was supplied`
          })
        )
        : Effect.succeed(Redacted.value(config.password))
    const refuse = (name: string, why: string) =>
      Effect.fail(
        new AuthenticationError({
          reason: "MethodNotAllowed",
          message: `the server requested ${name} authentication, but ${why}`
        })
      )
    const checkAllowed = (m: "password" | "md5" | "scram-sha-256", label: string) => {
      if (!isAuthMethodAllowed(config.requireAuth, m)) {
        return refuse(label, `require_auth=${config.requireAuth!.join(",")} does not allow it`)
      }
      if (config.channelBinding === "require" && !m.startsWith("scram")) {
        return refuse(label, "channel_binding=require demands SCRAM with channel binding")
      }
      return Effect.void
    }

    while (true) {
      const m = yield* reader.next
      switch (m._tag) {
        case "NegotiateProtocolVersion": {
          // The docs say "newest minor version", but servers send the whole version code
          // (major << 16 | minor), as libpq reads it; accept both.
          const v = m.newestMinorVersion
          const minor = v >= 0x10000 ? v & 0xffff : v
          const got: "3.0" | "3.2" | undefined = minor >= 2 ? "3.2" : minor === 0 ? "3.0" : undefined
          if (got === undefined || (config.minProtocolVersion === "3.2" && got === "3.0")) {
            return yield* Effect.fail(
              new ConnectionError({
                reason: "ProtocolVersion",
                message: `the server supports protocol 3.${minor} at most, but min_protocol_version is ${config.minProtocolVersion}`,
                host: transport.endpoint.host,
                port: transport.endpoint.port
              })
            )
          }
          protocolVersion = got
          unrecognizedOptions = m.unrecognizedOptions
          break
        }
        case "AuthenticationOk": {
          if (scram !== undefined && !(scram.awaitingFinal?.verified ?? false)) {
            return yield* Effect.fail(
              new AuthenticationError({
                reason: "ServerVerificationFailed",
                message: "the server ended SCRAM authentication without proving it knows the password"
              })
            )
          }
          if (method === "none") {
            if (!isAuthMethodAllowed(config.requireAuth, "none")) {
              return yield* Effect.fail(
                new AuthenticationError({
                  reason: "MethodNotAllowed",
                  message: `the server did not request authentication, but require_auth=${config.requireAuth!.join(",")} demands it`
                })
              )
            }
            if (config.channelBinding === "require") {
              return yield* Effect.fail(
                new AuthenticationError({
                  reason: "ChannelBinding",
                  message: "channel binding required, but the server authenticated the client without it"
                })
              )
            }
          }
          authenticated = true
          break
        }
        case "AuthenticationCleartextPassword": {
          yield* checkAllowed("password", "cleartext password")
          const pw = yield* password()
          method = "password"
          encodeFrontend(w, { _tag: "PasswordMessage", password: pw } as never)
          yield* sendAll(transport, w)
          break
        }
        case "AuthenticationMD5Password": {
          yield* checkAllowed("md5", "MD5 password")
          const pw = yield* password()
          method = "md5"
          encodeFrontend(w, { _tag: "PasswordMessage", password: md5Password(config.user, pw, m.salt) } as never)
          yield* sendAll(transport, w)
          break
        }
        case "AuthenticationSASL": {
          yield* checkAllowed("scram-sha-256", "SASL")
          const pw = yield* password()
          const started = yield* Effect.try({
            try: () => {
              const choice = chooseMechanism(m.mechanisms, config.channelBinding, transport.tls)
              const binding = choice.channelBinding === "tls-server-end-point"
                ? {
                  type: "tls-server-end-point" as const,
                  data: tlsServerEndPoint(transport.peerCertificate ?? new Uint8Array(0))
                }
                : choice.channelBinding
              return ScramClient.start({
                password: pw,
                channelBinding: binding,
                minIterations: config.scramMinIterations
              })
            },
            catch: scramFailure
          })
          method = started.mechanism === "SCRAM-SHA-256-PLUS" ? "scram-sha-256-plus" : "scram-sha-256"
          scram = { awaitingFirst: started.next }
          encodeFrontend(w, {
            _tag: "SASLInitialResponse",
            mechanism: started.mechanism,
            data: started.clientFirstMessage
          } as never)
          yield* sendAll(transport, w)
          break
        }
        case "AuthenticationSASLContinue": {
          if (scram?.awaitingFirst === undefined || scram.awaitingFinal !== undefined) {
            return yield* Effect.fail(unexpected(m, "authentication"))
          }
          const first = scram.awaitingFirst
          yield* prefetchSaltedPassword(yield* password(), m.data, config.scramMinIterations)
          const final = yield* Effect.try({ try: () => first.onServerFirst(m.data), catch: scramFailure })
          scram.awaitingFinal = final.next
          encodeFrontend(w, { _tag: "SASLResponse", data: final.clientFinalMessage } as never)
          yield* sendAll(transport, w)
          break
        }
        case "AuthenticationSASLFinal": {
          const awaiting = scram?.awaitingFinal
          if (awaiting === undefined || awaiting.verified) return yield* Effect.fail(unexpected(m, "authentication"))
          yield* Effect.try({ try: () => awaiting.onServerFinal(m.data), catch: scramFailure })
          break
        }
        case "AuthenticationKerberosV5":
        case "AuthenticationGSS":
        case "AuthenticationGSSContinue":
        case "AuthenticationSSPI":
        case "AuthenticationUnknown": {
          const name = m._tag === "AuthenticationUnknown"
            ? `an unknown method (code ${(m as { code: number }).code})`
            : m._tag.replace("Authentication", "")
          return yield* Effect.fail(
            new AuthenticationError({
              reason: "UnsupportedMethod",
              message: `authentication method not supported: the server requested ${name}`
            })
          )
        }
        case "ErrorResponse": {
          const err = serverError(m.fields)
          if (err.classCode === "28") {
            return yield* Effect.fail(
              new AuthenticationError({ reason: "Rejected", message: err.message, code: err.code, cause: err })
            )
          }
          return yield* Effect.fail(
            new ConnectionError({
              reason: "ServerRejected",
              message: `the server refused the session: ${err.message} (SQLSTATE ${err.code})`,
              host: transport.endpoint.host,
              port: transport.endpoint.port,
              cause: err
            })
          )
        }
        case "NoticeResponse":
          // Kept up to a bound: a server flooding notices during startup cannot grow memory.
          if (notices.length < MAX_STARTUP_NOTICES) notices.push(m.fields)
          break
        case "ParameterStatus":
          if (!authenticated) return yield* Effect.fail(unexpected(m, "authentication"))
          if (params.size >= MAX_REPORTED_PARAMETERS && !params.has(m.name)) {
            return yield* Effect.fail(
              new ProtocolError({
                reason: "LengthOutOfRange",
                message: `the server reported more than ${MAX_REPORTED_PARAMETERS} distinct parameters`,
                messageType: "S"
              })
            )
          }
          params.set(m.name, m.value)
          break
        case "BackendKeyData":
          if (!authenticated) return yield* Effect.fail(unexpected(m, "authentication"))
          processId = m.processId
          secretKey = m.secretKey
          break
        case "ReadyForQuery":
          if (!authenticated) return yield* Effect.fail(unexpected(m, "authentication"))
          return {
            processId,
            secretKey: secretKey ?? new Uint8Array(0),
            protocolVersion,
            parameters: params,
            unrecognizedOptions,
            notices,
            authenticationMethod: method
          } satisfies SessionInfo
        default:
          return yield* Effect.fail(unexpected(m, "startup"))
      }
    }
  })

/**
 * Runs the server's PBKDF2 (salt, iteration count) off the event loop before the synchronous SCRAM step
 * reads it from the cache: a server asking for millions of iterations then cannot stall the process,
 * and the connect timeout still interrupts the wait. Anything malformed or out of range is left for
 * the SCRAM state machine to refuse.
 */
const prefetchSaltedPassword = (password: string, serverFirst: Uint8Array, minIterations: number): Effect.Effect<void> => {
  const text = new TextDecoder().decode(serverFirst)
  const salt = /(?:^|,)s=([A-Za-z0-9+/]+={0,2})(?:,|$)/.exec(text)
  const iterations = /(?:^|,)i=([1-9][0-9]{0,14})(?:,|$)/.exec(text)
  if (salt === null || iterations === null) return Effect.void
  const n = Number(iterations[1])
  const saltBytes = new Uint8Array(Buffer.from(salt[1]!, "base64"))
  if (n < minIterations || n > DEFAULT_MAX_ITERATIONS || saltBytes.length === 0) return Effect.void
  return Effect.ignore(Effect.tryPromise(() => defaultSaltedPasswordCache.prefetch(password, saltBytes, n)))
}

const scramFailure = (e: unknown): AuthenticationError | ProtocolError => {
  if (isScramError(e)) {
    const reason = e.reason === "ChannelBindingRequired" || e.reason === "PlusWithoutTls"
      ? "ChannelBinding"
      : e.reason === "UnsupportedMechanism"
      ? "UnsupportedMethod"
      : e.reason === "ServerError"
      ? "Rejected"
      : "ServerVerificationFailed"
    return new AuthenticationError({ reason, message: `SCRAM: ${e.message}`, cause: e })
  }
  if (e instanceof ProtocolError) return e
  return new AuthenticationError({ reason: "ServerVerificationFailed", message: `SCRAM: ${String(e)}` })
}

export { TimeoutError }
