/**
 * Field helpers shared by the message families: format codes, nullable values and the
 * counts that precede arrays.
 *
 * Invariants:
 * - Every count read here is checked against the bytes left before anything is sized from it.
 * - Every count written here is range-checked against its wire field (Int16 or UInt16), so an
 *   array too long to describe is ProtocolError "EncodeInvalid", never a silently wrapped count.
 * - Format codes are 0 (text) or 1 (binary); any other value is "InvalidValue" on decode and
 *   "EncodeInvalid" on encode.
 */
import { fail } from "../ProtocolError.ts"
import type { Reader } from "./Reader.ts"
import type { Writer } from "./Writer.ts"

export type FormatCode = 0 | 1

/** An Int16 format code. */
export const readFormat = (r: Reader, what: string): FormatCode => {
  const at = r.pos
  const v = r.i16()
  if (v !== 0 && v !== 1) r.invalid(`${what} format code ${v} is neither 0 (text) nor 1 (binary)`, at)
  return v as FormatCode
}

export const writeFormat = (w: Writer, v: number, what: string): void => {
  if (v !== 0 && v !== 1) fail("EncodeInvalid", `${what} format code ${v} is neither 0 (text) nor 1 (binary)`)
  w.u16(v)
}

/**
 * A UInt16 count. Parse, Bind, FunctionCall and ParameterDescription document Int16 counts, but
 * PostgreSQL reads and writes them unsigned (a statement may have up to 65535 parameters).
 */
export const readCountU16 = (r: Reader, minElementSize: number, what: string): number => {
  const at = r.pos
  const n = r.u16()
  if (n * minElementSize > r.end - r.pos) {
    fail(
      "LengthOutOfRange",
      `${what} ${n} needs at least ${n * minElementSize} bytes but only ${r.end - r.pos} remain`,
      r.messageType,
      at
    )
  }
  return n
}

/** Writes a count, refusing one over `max` (32767 for Int16 fields, 65535 for UInt16 ones). */
export const writeCount = (w: Writer, n: number, max: 32767 | 65535, what: string): void => {
  if (n > max) fail("EncodeInvalid", `${what} ${n} exceeds the protocol's maximum of ${max}`)
  w.u16(n)
}

/** An array of Int16 format codes preceded by its count. */
export const readFormats = (r: Reader, unsigned: boolean, what: string): Array<FormatCode> => {
  const n = unsigned ? readCountU16(r, 2, `${what} format count`) : r.count16(2, `${what} format count`)
  const out = new Array<FormatCode>(n)
  for (let i = 0; i < n; i++) out[i] = readFormat(r, what)
  return out
}

export const writeFormats = (w: Writer, formats: ReadonlyArray<number>, max: 32767 | 65535, what: string): void => {
  writeCount(w, formats.length, max, `${what} format count`)
  for (let i = 0; i < formats.length; i++) writeFormat(w, formats[i]!, what)
}

/** An Int32 length followed by that many bytes; -1 is NULL, any other negative length is an error. */
export const readNullableBytes = (r: Reader, what: string): Uint8Array | null => {
  const at = r.pos
  const n = r.i32()
  if (n === -1) return null
  if (n < 0) fail("LengthOutOfRange", `${what} has negative length ${n}`, r.messageType, at)
  return r.bytes(n)
}

export const writeNullableBytes = (w: Writer, v: Uint8Array | null): void => {
  if (v === null) {
    w.raw32(-1)
    return
  }
  w.raw32(v.length)
  w.bytes(v)
}

/** An array of nullable values preceded by its count. */
export const readNullableValues = (r: Reader, unsigned: boolean, what: string): Array<Uint8Array | null> => {
  const n = unsigned ? readCountU16(r, 4, `${what} count`) : r.count16(4, `${what} count`)
  const out = new Array<Uint8Array | null>(n)
  for (let i = 0; i < n; i++) out[i] = readNullableBytes(r, what)
  return out
}

export const writeNullableValues = (
  w: Writer,
  values: ReadonlyArray<Uint8Array | null>,
  max: 32767 | 65535,
  what: string
): void => {
  writeCount(w, values.length, max, `${what} count`)
  for (let i = 0; i < values.length; i++) writeNullableBytes(w, values[i]!)
}
