/**
 * The one error the codec raises.
 *
 * Invariants:
 * - Every decode or encode function in this package either returns a value or throws a
 *   `ProtocolError`; no `RangeError`, `TypeError` or other exception escapes for any input.
 * - `offset` is the byte offset within the buffer being read (or written) where the fault was found.
 */
import * as Schema from "effect/Schema"

export const ProtocolErrorReason = Schema.Literals([
  "LengthOutOfRange", // a length, count or size field is negative, below its minimum or above a limit
  "MessageTooLarge", // a whole message exceeds the configured maximum size
  "Truncated", // a field runs past the end of its message
  "TrailingBytes", // a message has bytes left after its last field
  "UnterminatedString", // a C string has no NUL before the end of its message
  "UnknownMessageType", // a type byte (or sub-message tag) the protocol does not define
  "InvalidValue", // a field holds a value outside its domain (status byte, format code, …)
  "UnexpectedMessage", // a well-formed message that is not legal in the current protocol state
  "EncodeInvalid" // a value to encode cannot be represented (NUL in a string, int16 overflow, …)
])
export type ProtocolErrorReason = typeof ProtocolErrorReason.Type

export class ProtocolError extends Schema.TaggedError<ProtocolError>()("ProtocolError", {
  reason: ProtocolErrorReason,
  message: Schema.String,
  /** The message type byte as a character (e.g. "D"), or a sub-message name, when known. */
  messageType: Schema.optional(Schema.String),
  offset: Schema.optional(Schema.Number)
}) {}

/** Throws a ProtocolError. Used by hand-written hot paths, where throwing is cheaper than allocating results. */
export const fail = (
  reason: ProtocolErrorReason,
  message: string,
  messageType?: string,
  offset?: number
): never => {
  throw new ProtocolError({
    reason,
    message,
    ...(messageType === undefined ? {} : { messageType }),
    ...(offset === undefined ? {} : { offset })
  })
}

export const isProtocolError = (u: unknown): u is ProtocolError => u instanceof ProtocolError
