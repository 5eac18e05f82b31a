/**
 * The (legacy) function call sub-protocol: FunctionCall (F) and FunctionCallResponse (B).
 *
 * Invariants:
 * - Argument counts are UInt16 on the wire (PostgreSQL reads them unsigned), each checked
 *   against the bytes left before an array is sized; encoding more than 65535 is "EncodeInvalid".
 * - A length of -1 is NULL; any other negative length is "LengthOutOfRange". Values are views.
 * - Format codes are 0 or 1, else "InvalidValue".
 */
import * as Schema from "effect/Schema"
import { FormatCode } from "./Query.ts"
import {
  readFormat,
  readFormats,
  readNullableBytes,
  readNullableValues,
  writeFormat,
  writeFormats,
  writeNullableBytes,
  writeNullableValues
} from "./internal/fields.ts"
import type { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"

export const FunctionCall = Schema.TaggedStruct("FunctionCall", {
  functionOid: Schema.Number,
  /** Empty (all text), one (applies to all), or one per argument. */
  argumentFormats: Schema.Array(FormatCode),
  arguments: Schema.Array(Schema.NullOr(Schema.Uint8Array)),
  resultFormat: FormatCode
})
export type FunctionCall = typeof FunctionCall.Type

export const encodeFunctionCall = (w: Writer, m: FunctionCall): void => {
  const at = w.begin(0x46) // 'F'
  w.u32(m.functionOid)
  writeFormats(w, m.argumentFormats, 65535, "argument")
  writeNullableValues(w, m.arguments, 65535, "argument")
  writeFormat(w, m.resultFormat, "result")
  w.end(at)
}

export const decodeFunctionCall = (r: Reader): FunctionCall => {
  const functionOid = r.u32()
  const argumentFormats = readFormats(r, true, "argument")
  const args = readNullableValues(r, true, "argument")
  const resultFormat = readFormat(r, "result")
  r.done()
  return { _tag: "FunctionCall", functionOid, argumentFormats, arguments: args, resultFormat }
}

export const FunctionCallResponse = Schema.TaggedStruct("FunctionCallResponse", {
  /** null: the function returned NULL. */
  result: Schema.NullOr(Schema.Uint8Array)
})
export type FunctionCallResponse = typeof FunctionCallResponse.Type

export const encodeFunctionCallResponse = (w: Writer, m: FunctionCallResponse): void => {
  const at = w.begin(0x56) // 'V'
  writeNullableBytes(w, m.result)
  w.end(at)
}

export const decodeFunctionCallResponse = (r: Reader): FunctionCallResponse => {
  const result = readNullableBytes(r, "function result")
  r.done()
  return { _tag: "FunctionCallResponse", result }
}
