/**
 * pgfx errors as `effect/sql` `SqlError`s.
 *
 * Invariants:
 * - Every pgfx error becomes exactly one `SqlError` whose `reason` is chosen from the SQLSTATE (server
 *   errors) or from the pgfx error's tag and reason (client-side errors); the reason's `cause` is the
 *   pgfx error itself, unchanged, so every ErrorResponse field (detail, constraint, position, …) stays
 *   reachable: `error.reason.cause`.
 * - The reason's `message` is the pgfx message; `operation` names the SqlConnection method.
 */
import {
  AuthenticationError,
  AuthorizationError,
  ConnectionError,
  ConstraintError,
  DeadlockError,
  LockTimeoutError,
  SerializationError,
  SqlError,
  type SqlErrorReason,
  SqlSyntaxError,
  StatementTimeoutError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"

interface Props {
  readonly cause: unknown
  readonly message: string
  readonly operation: string
}

/** The reason for a SQLSTATE (PostgreSQL's errcodes). */
export const reasonForSqlState = (code: string, constraint: string | undefined, props: Props): SqlErrorReason => {
  switch (code) {
    case "23505":
      return new UniqueViolation({ ...props, constraint: constraint === undefined || constraint === "" ? "unknown" : constraint })
    case "40P01":
      return new DeadlockError(props)
    case "40001":
      return new SerializationError(props)
    case "55P03": // lock_not_available (lock_timeout, NOWAIT)
      return new LockTimeoutError(props)
    case "57014": // query_canceled (statement_timeout, or a cancel)
      return new StatementTimeoutError(props)
    case "42501": // insufficient_privilege
      return new AuthorizationError(props)
    case "57P01": // admin_shutdown
    case "57P02": // crash_shutdown
    case "57P03": // cannot_connect_now
    case "53300": // too_many_connections
      return new ConnectionError(props)
  }
  switch (code.slice(0, 2)) {
    case "08":
      return new ConnectionError(props)
    case "28":
      return new AuthenticationError(props)
    case "42":
      return new SqlSyntaxError(props)
    case "23":
      return new ConstraintError(props)
  }
  return new UnknownError(props)
}

interface TaggedError {
  readonly _tag: string
  readonly message: string
  readonly reason?: unknown
  readonly code?: unknown
  readonly constraintName?: unknown
}

/** The reason for a pgfx error (PgServerError, ConnectionError, TimeoutError, …). */
export const reasonFor = (error: unknown, operation: string): SqlErrorReason => {
  const e = error as TaggedError
  const message = typeof e?.message === "string" ? e.message : String(error)
  const props: Props = { cause: error, message, operation }
  switch (e?._tag) {
    case "PgServerError":
      return reasonForSqlState(String(e.code), typeof e.constraintName === "string" ? e.constraintName : undefined, props)
    case "ConnectionError":
    case "ProtocolError":
      return new ConnectionError(props)
    case "AuthenticationError":
      return new AuthenticationError(props)
    case "TimeoutError":
      return e.reason === "Statement" ? new StatementTimeoutError(props) : new ConnectionError(props)
    default:
      return new UnknownError(props)
  }
}

/** Wraps a pgfx error (or anything else) as a SqlError. */
export const toSqlError = (error: unknown, operation: string): SqlError =>
  error instanceof SqlError ? error : new SqlError({ reason: reasonFor(error, operation) })

/** The pgfx error a SqlError was made from (the reason's cause), if it was made by this module. */
export const pgfxCause = (error: SqlError): unknown => error.reason.cause
