/**
 * How the CLI reports failures: one readable line on stderr, the exit code that goes with it.
 *
 * Invariants:
 * - Every failure of a command becomes exactly one line (`pgfx: …`), with the SQLSTATE, detail and hint
 *   when the server gave them; a stack trace only with `--verbose`.
 * - Exit codes: 0 ok, 1 runtime error, 2 usage error (bad flags, bad arguments, bad connection string),
 *   130 when a one-shot command was interrupted (Ctrl-C) before it finished.
 * - Messages never contain a password (PgConfig and PgError guarantee it for theirs; ours never print
 *   a connection string).
 */
import * as Cause from "effect/Cause"
import * as Schema from "effect/Schema"

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2
export const EXIT_INTERRUPTED = 130

/** A mistake in how the command was called (exit 2). */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", {
  message: Schema.String
}) {}

/** A failure of the CLI itself (file I/O, a child process…), exit 1. */
export class CliFailure extends Schema.TaggedError<CliFailure>()("CliFailure", {
  message: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {}

const field = (e: Record<string, unknown>, key: string): string | undefined => {
  const v = e[key]
  return typeof v === "string" && v.length > 0 ? v : undefined
}

/** The one line describing `error`. */
export const describeError = (error: unknown): string => {
  if (typeof error !== "object" || error === null) return String(error)
  const e = error as Record<string, unknown>
  const tag = typeof e["_tag"] === "string" ? e["_tag"] : undefined
  const message = field(e, "message") ?? (error instanceof Error ? error.message : String(error))
  switch (tag) {
    case "PgServerError": {
      const parts = [`${field(e, "severity") ?? "ERROR"}: ${message} (SQLSTATE ${field(e, "code") ?? "?????"})`]
      const detail = field(e, "detail")
      const hint = field(e, "hint")
      if (detail !== undefined) parts.push(`detail: ${detail}`)
      if (hint !== undefined) parts.push(`hint: ${hint}`)
      return parts.join("; ")
    }
    case "AuthenticationError": {
      const code = field(e, "code")
      return `authentication failed: ${message}${code === undefined ? "" : ` (SQLSTATE ${code})`}`
    }
    case "ConnectionError":
      return `connection failed: ${message}`
    case "TimeoutError":
      return `timed out: ${message}`
    case "PgConfigError":
      return `bad connection settings: ${message}`
    default:
      return message
  }
}

export const exitCodeOf = (error: unknown): number => {
  if (typeof error === "object" && error !== null) {
    const tag = (error as { _tag?: unknown })._tag
    if (tag === "UsageError" || tag === "PgConfigError") return EXIT_USAGE
  }
  return EXIT_FAILURE
}

/** The first failure of a cause (or its defect), for reporting. */
export const causeError = <E>(cause: Cause.Cause<E>): unknown => {
  for (const reason of cause.reasons) {
    if (Cause.isFailReason(reason)) return reason.error
    if (Cause.isDieReason(reason)) return reason.defect
  }
  return undefined
}
