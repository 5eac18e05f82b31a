/**
 * The shape every value codec has, and the small helpers the codecs share.
 *
 * Invariants:
 * - A codec decodes one column value from `buf[start, end)` (its bytes, without the Int32 length) and
 *   never reads outside that range; malformed input throws `ProtocolError` "InvalidValue" (or
 *   "Truncated"), never anything else.
 * - Encoders write the value's bytes only (the caller writes the Int32 length). A value that cannot be
 *   represented throws `ProtocolError` "EncodeInvalid".
 * - `decodeBinary`/`encodeBinary` are undefined when the codec has no binary format; the connection
 *   then asks for text (see `TypeRegistry.hasBinary`).
 * - Codecs are immutable and hold no per-connection state, so built-ins can be shared; anything that
 *   depends on a registry (arrays, ranges, composites, domains) resolves through that registry.
 */
import { fail } from "../ProtocolError.ts"
import type { Writer } from "../internal/Writer.ts"
import { decodeUtf8 } from "../internal/utf8.ts"

export interface ValueCodec<A> {
  readonly name: string
  readonly oid: number
  readonly decodeText: (buf: Uint8Array, start: number, end: number) => A
  /** undefined: no binary format. */
  readonly decodeBinary: ((buf: Uint8Array, start: number, end: number) => A) | undefined
  readonly encodeText: (value: A) => string
  /** Value bytes only; the caller writes the Int32 length. */
  readonly encodeBinary: ((w: Writer, value: A) => void) | undefined
}

/** Throws ProtocolError "InvalidValue" for a malformed value of type `type`. */
export const invalidValue = (type: string, message: string, at?: number): never =>
  fail("InvalidValue", `invalid ${type} value: ${message}`, undefined, at)

/** Throws ProtocolError "EncodeInvalid" for a value that cannot be encoded as `type`. */
export const encodeInvalid = (type: string, message: string): never =>
  fail("EncodeInvalid", `cannot encode ${type}: ${message}`)

/** Fails unless the value is exactly `size` bytes (fixed-size binary formats). */
export const expectSize = (type: string, start: number, end: number, size: number): void => {
  if (end - start !== size) invalidValue(type, `binary value is ${end - start} byte(s), expected ${size}`, start)
}

export const text = decodeUtf8

/** Shows a value in an error message without flooding it. */
export const show = (buf: Uint8Array, start: number, end: number): string => {
  const s = decodeUtf8(buf, start, Math.min(end, start + 64))
  return JSON.stringify(end - start > 64 ? s + "…" : s)
}

/** Writes an Int32 length placeholder, runs `body`, then back-patches the length of what it wrote. */
export const writeLengthPrefixed = (w: Writer, body: () => void): void => {
  w.ensure(4)
  // Positions are kept relative to `w.start`: growing the writer moves pending bytes to offset 0.
  const at = w.pos - w.start
  w.pos += 4
  body()
  const len = w.pos - w.start - at - 4
  const b = w.buf
  const p = w.start + at
  b[p] = (len >>> 24) & 0xff
  b[p + 1] = (len >>> 16) & 0xff
  b[p + 2] = (len >>> 8) & 0xff
  b[p + 3] = len & 0xff
}

/** Reads a big-endian Int32 at `p` (the caller has checked bounds). */
export const readI32 = (b: Uint8Array, p: number): number => (b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!

/** Reads a big-endian Int64 at `p` as bigint. */
export const readI64 = (b: Uint8Array, p: number): bigint =>
  (BigInt(readI32(b, p)) << 32n) | BigInt(readI32(b, p + 4) >>> 0)

/** Reads a big-endian Int64 at `p` as a number when it is a safe integer, else undefined. */
export const readI64Safe = (b: Uint8Array, p: number): number | undefined => {
  const hi = readI32(b, p)
  if (hi > 0x1fffff || hi < -0x200000) return undefined
  return hi * 4294967296 + (readI32(b, p + 4) >>> 0)
}
