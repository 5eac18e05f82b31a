/**
 * The errors a connection can fail with. Every one is a `Schema.TaggedError` with a `reason`.
 *
 * Invariants:
 * - No error message, field or cause ever contains a password (config errors name keywords, never values
 *   of secrets; authentication errors carry the server's message, which never includes the password).
 * - `PgServerError` carries every field of the server's ErrorResponse (54.8) by name, plus the SQLSTATE's
 *   condition name and class from PostgreSQL's own table.
 */
import * as Schema from "effect/Schema"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import type { ErrorFields } from "@pgfx/codec/Async"
import { isRetryable as sqlStateIsRetryable, sqlStateInfo } from "@pgfx/codec/SqlState"

export { ProtocolError }

const ServerFields = {
  severity: Schema.String,
  code: Schema.String,
  message: Schema.String,
  detail: Schema.optional(Schema.String),
  hint: Schema.optional(Schema.String),
  position: Schema.optional(Schema.Number),
  internalPosition: Schema.optional(Schema.Number),
  internalQuery: Schema.optional(Schema.String),
  where: Schema.optional(Schema.String),
  schemaName: Schema.optional(Schema.String),
  tableName: Schema.optional(Schema.String),
  columnName: Schema.optional(Schema.String),
  dataTypeName: Schema.optional(Schema.String),
  constraintName: Schema.optional(Schema.String),
  file: Schema.optional(Schema.String),
  line: Schema.optional(Schema.Number),
  routine: Schema.optional(Schema.String),
  /** The SQLSTATE's condition name (e.g. "unique_violation") from errcodes.txt. */
  conditionName: Schema.optional(Schema.String),
  /** The SQLSTATE class (first two characters) and its name. */
  classCode: Schema.String,
  className: Schema.optional(Schema.String),
  /** The statement that failed, when known (never parameters). */
  query: Schema.optional(Schema.String)
}

/** An ErrorResponse from the server. */
export class PgServerError extends Schema.TaggedError<PgServerError>()("PgServerError", ServerFields) {
  /** Serialization failures, deadlocks and transient connection states are worth retrying. */
  get isRetryable(): boolean {
    return sqlStateIsRetryable(this.code)
  }
}

const toInt = (s: string | undefined): number | undefined => {
  if (s === undefined) return undefined
  const n = Number.parseInt(s, 10)
  return Number.isFinite(n) ? n : undefined
}

/** Builds a PgServerError from the decoded fields of an ErrorResponse. */
export const serverError = (fields: ErrorFields, query?: string): PgServerError => {
  const code = fields.code ?? "XX000"
  const info = sqlStateInfo(code)
  const out: Record<string, unknown> = {
    severity: fields.severity ?? fields.severityLocalized ?? "ERROR",
    code,
    message: fields.message ?? "(no message)",
    classCode: code.slice(0, 2)
  }
  const copy = (k: string, v: unknown) => {
    if (v !== undefined) out[k] = v
  }
  copy("detail", fields.detail)
  copy("hint", fields.hint)
  copy("position", toInt(fields.position))
  copy("internalPosition", toInt(fields.internalPosition))
  copy("internalQuery", fields.internalQuery)
  copy("where", fields.where)
  copy("schemaName", fields.schemaName)
  copy("tableName", fields.tableName)
  copy("columnName", fields.columnName)
  copy("dataTypeName", fields.dataTypeName)
  copy("constraintName", fields.constraintName)
  copy("file", fields.file)
  copy("line", toInt(fields.line))
  copy("routine", fields.routine)
  copy("conditionName", info?.name)
  copy("className", info?.className)
  copy("query", query)
  return new PgServerError(out as any)
}

/** The socket failed, closed, or could not be opened. Every request waiting on the connection fails with it. */
export class ConnectionError extends Schema.TaggedError<ConnectionError>()("ConnectionError", {
  reason: Schema.Literals([
    "ConnectFailed", // no host accepted the connection
    "Closed", // the socket closed (server restart, network cut, or our own close)
    "SocketError", // an error on an open socket
    "TlsFailed", // TLS negotiation or certificate verification failed
    "TlsRequired", // sslmode demands TLS and the server refused it
    "ServerRejected", // the server refused the session during startup (too many connections, shutting down, …)
    "NoSuitableHost", // every host was reachable but none matched target_session_attrs
    "ProtocolVersion", // the server cannot speak a protocol version in [min, max]
    "Unusable" // the connection was already failed or closed when the request was made
  ]),
  message: Schema.String,
  host: Schema.optional(Schema.String),
  port: Schema.optional(Schema.Number),
  cause: Schema.optional(Schema.Unknown)
}) {}

export class AuthenticationError extends Schema.TaggedError<AuthenticationError>()("AuthenticationError", {
  reason: Schema.Literals([
    "Rejected", // the server said no (wrong password, no pg_hba entry…): its message is in `message`
    "UnsupportedMethod", // GSSAPI, SSPI, Kerberos, or an unknown method
    "MethodNotAllowed", // the server asked for a method that require_auth / channel_binding forbids
    "PasswordMissing", // the server asked for a password and none was configured
    "ServerVerificationFailed", // SCRAM: the server could not prove it knows the password (forged or broken server)
    "ChannelBinding" // channel binding required but not possible
  ]),
  message: Schema.String,
  code: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Unknown)
}) {}

export class TimeoutError extends Schema.TaggedError<TimeoutError>()("TimeoutError", {
  reason: Schema.Literals(["Connect", "Tls", "Startup", "Statement", "Idle", "Cancel", "Acquire"]),
  message: Schema.String,
  timeoutMillis: Schema.Number
}) {}

/** A bad argument from the caller (unencodable parameter, wrong parameter count…), detected before anything is sent. */
export class InvalidRequestError extends Schema.TaggedError<InvalidRequestError>()("InvalidRequestError", {
  reason: Schema.Literals(["ParameterCount", "ParameterValue", "UnsupportedType", "Other"]),
  message: Schema.String
}) {}

export type PgError =
  | PgServerError
  | ConnectionError
  | ProtocolError
  | AuthenticationError
  | TimeoutError
  | InvalidRequestError
