/**
 * COPY: CopyInResponse, CopyOutResponse, CopyBothResponse (B), CopyData and CopyDone (both
 * directions, one model each, in both unions), CopyFail (F).
 *
 * Invariants:
 * - The overall format is an Int8 and each column format an Int16, all 0 or 1 ("InvalidValue"
 *   otherwise); the column count is checked against the bytes left before the array is sized.
 * - CopyData's payload is a view of the frame (no copy): COPY OUT and replication streams
 *   carry most of their bytes in it.
 */
import * as Schema from "effect/Schema"
import { fail } from "./ProtocolError.ts"
import { FormatCode } from "./Query.ts"
import { readFormats, writeFormats } from "./internal/fields.ts"
import type { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"

const copyResponseFields = {
  /** 0: textual COPY (columnFormats all 0); 1: binary. */
  format: FormatCode,
  columnFormats: Schema.Array(FormatCode)
}

export const CopyInResponse = Schema.TaggedStruct("CopyInResponse", copyResponseFields)
export type CopyInResponse = typeof CopyInResponse.Type
export const CopyOutResponse = Schema.TaggedStruct("CopyOutResponse", copyResponseFields)
export type CopyOutResponse = typeof CopyOutResponse.Type
/** Only used by streaming replication. */
export const CopyBothResponse = Schema.TaggedStruct("CopyBothResponse", copyResponseFields)
export type CopyBothResponse = typeof CopyBothResponse.Type

type CopyResponse = CopyInResponse | CopyOutResponse | CopyBothResponse

const encodeCopyResponse = (w: Writer, type: number, m: CopyResponse): void => {
  if (m.format !== 0 && m.format !== 1) {
    fail("EncodeInvalid", `COPY format ${m.format} is neither 0 (text) nor 1 (binary)`, String.fromCharCode(type))
  }
  const at = w.begin(type)
  w.u8(m.format)
  writeFormats(w, m.columnFormats, 32767, "column")
  w.end(at)
}

const readCopyFormat = (r: Reader): FormatCode => {
  const at = r.pos
  const format = r.u8()
  if (format !== 0 && format !== 1) r.invalid(`COPY format ${format} is neither 0 (text) nor 1 (binary)`, at)
  return format as FormatCode
}

export const encodeCopyInResponse = (w: Writer, m: CopyInResponse): void => encodeCopyResponse(w, 0x47, m) // 'G'
export const encodeCopyOutResponse = (w: Writer, m: CopyOutResponse): void => encodeCopyResponse(w, 0x48, m) // 'H'
export const encodeCopyBothResponse = (w: Writer, m: CopyBothResponse): void => encodeCopyResponse(w, 0x57, m) // 'W'

export const decodeCopyInResponse = (r: Reader): CopyInResponse => {
  const format = readCopyFormat(r)
  const columnFormats = readFormats(r, false, "column")
  r.done()
  return { _tag: "CopyInResponse", format, columnFormats }
}

export const decodeCopyOutResponse = (r: Reader): CopyOutResponse => {
  const format = readCopyFormat(r)
  const columnFormats = readFormats(r, false, "column")
  r.done()
  return { _tag: "CopyOutResponse", format, columnFormats }
}

export const decodeCopyBothResponse = (r: Reader): CopyBothResponse => {
  const format = readCopyFormat(r)
  const columnFormats = readFormats(r, false, "column")
  r.done()
  return { _tag: "CopyBothResponse", format, columnFormats }
}

export const CopyData = Schema.TaggedStruct("CopyData", { data: Schema.Uint8Array })
export type CopyData = typeof CopyData.Type

export const encodeCopyData = (w: Writer, m: CopyData): void => {
  const at = w.begin(0x64) // 'd'
  w.bytes(m.data)
  w.end(at)
}

export const decodeCopyData = (r: Reader): CopyData => ({ _tag: "CopyData", data: r.rest() })

export const CopyDone = Schema.TaggedStruct("CopyDone", {})
export type CopyDone = typeof CopyDone.Type
const copyDone: CopyDone = { _tag: "CopyDone" }

export const encodeCopyDone = (w: Writer, _m: CopyDone): void => {
  w.end(w.begin(0x63)) // 'c'
}

export const decodeCopyDone = (r: Reader): CopyDone => {
  r.done()
  return copyDone
}

export const CopyFail = Schema.TaggedStruct("CopyFail", {
  /** Reported by the server as the cause of the COPY's failure. */
  message: Schema.String
})
export type CopyFail = typeof CopyFail.Type

export const encodeCopyFail = (w: Writer, m: CopyFail): void => {
  const at = w.begin(0x66) // 'f'
  w.cstring(m.message)
  w.end(at)
}

export const decodeCopyFail = (r: Reader): CopyFail => {
  const message = r.cstring()
  r.done()
  return { _tag: "CopyFail", message }
}
