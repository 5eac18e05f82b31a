/**
 * The extended query protocol: Parse, Bind, Describe, Execute, Close, Sync, Flush (F) and
 * ParseComplete, BindComplete, CloseComplete, NoData, PortalSuspended, ParameterDescription (B).
 *
 * Invariants:
 * - Parameter counts (Parse, Bind, ParameterDescription) are UInt16 on the wire, as PostgreSQL
 *   reads and writes them (up to 65535 parameters); the result-format count too. Encoding more
 *   is "EncodeInvalid"; decoding checks every count against the bytes left first.
 * - A Bind parameter length of -1 is NULL; any other negative length is "LengthOutOfRange".
 *   Parameter values decode as views of the frame.
 * - Describe/Close kinds are 'S' or 'P'; format codes 0 or 1; anything else is "InvalidValue".
 * - Messages without fields decode to shared constant objects (no allocation).
 */
import * as Schema from "effect/Schema"
import { fail } from "./ProtocolError.ts"
import { FormatCode } from "./Query.ts"
import {
  readCountU16,
  readFormats,
  readNullableValues,
  writeCount,
  writeFormats,
  writeNullableValues
} from "./internal/fields.ts"
import type { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"

// ---------------------------------------------------------------------------------------------
// Frontend
// ---------------------------------------------------------------------------------------------

export const Parse = Schema.TaggedStruct("Parse", {
  /** The prepared statement's name; "" is the unnamed statement. */
  name: Schema.String,
  query: Schema.String,
  /** Parameter type OIDs the client prespecifies; 0 leaves one unspecified. */
  parameterTypes: Schema.Array(Schema.Number)
})
export type Parse = typeof Parse.Type

export const encodeParse = (w: Writer, m: Parse): void => {
  const at = w.begin(0x50) // 'P'
  w.cstring(m.name)
  w.cstring(m.query)
  const types = m.parameterTypes
  writeCount(w, types.length, 65535, "parameter type count")
  for (let i = 0; i < types.length; i++) w.u32(types[i]!)
  w.end(at)
}

export const decodeParse = (r: Reader): Parse => {
  const name = r.cstring()
  const query = r.cstring()
  const n = readCountU16(r, 4, "parameter type count")
  const parameterTypes = new Array<number>(n)
  for (let i = 0; i < n; i++) parameterTypes[i] = r.u32()
  r.done()
  return { _tag: "Parse", name, query, parameterTypes }
}

export const Bind = Schema.TaggedStruct("Bind", {
  /** The destination portal; "" is the unnamed portal. */
  portal: Schema.String,
  /** The source prepared statement; "" is the unnamed statement. */
  statement: Schema.String,
  /** Empty (all text), one (applies to all), or one per parameter. */
  parameterFormats: Schema.Array(FormatCode),
  parameters: Schema.Array(Schema.NullOr(Schema.Uint8Array)),
  /** Empty (all text), one (applies to all), or one per result column. */
  resultFormats: Schema.Array(FormatCode)
})
export type Bind = typeof Bind.Type

export const encodeBind = (w: Writer, m: Bind): void => {
  const at = w.begin(0x42) // 'B'
  w.cstring(m.portal)
  w.cstring(m.statement)
  writeFormats(w, m.parameterFormats, 65535, "parameter")
  writeNullableValues(w, m.parameters, 65535, "parameter")
  writeFormats(w, m.resultFormats, 65535, "result")
  w.end(at)
}

export const decodeBind = (r: Reader): Bind => {
  const portal = r.cstring()
  const statement = r.cstring()
  const parameterFormats = readFormats(r, true, "parameter")
  const parameters = readNullableValues(r, true, "parameter")
  const resultFormats = readFormats(r, true, "result")
  r.done()
  return { _tag: "Bind", portal, statement, parameterFormats, parameters, resultFormats }
}

/** 'S': a prepared statement; 'P': a portal. */
export const TargetKind = Schema.Literals(["S", "P"])
export type TargetKind = typeof TargetKind.Type

const writeKind = (w: Writer, kind: string, type: string): void => {
  if (kind !== "S" && kind !== "P") fail("EncodeInvalid", `${type} kind ${kind} is neither 'S' nor 'P'`, type)
  w.u8(kind.charCodeAt(0))
}

const readKind = (r: Reader): TargetKind => {
  const at = r.pos
  const b = r.u8()
  if (b === 0x53) return "S"
  if (b === 0x50) return "P"
  return r.invalid(`kind byte ${b} is neither 'S' nor 'P'`, at)
}

export const Describe = Schema.TaggedStruct("Describe", { kind: TargetKind, name: Schema.String })
export type Describe = typeof Describe.Type

export const encodeDescribe = (w: Writer, m: Describe): void => {
  const at = w.begin(0x44) // 'D'
  writeKind(w, m.kind, "D")
  w.cstring(m.name)
  w.end(at)
}

export const decodeDescribe = (r: Reader): Describe => {
  const kind = readKind(r)
  const name = r.cstring()
  r.done()
  return { _tag: "Describe", kind, name }
}

export const Execute = Schema.TaggedStruct("Execute", {
  portal: Schema.String,
  /** 0: no limit. */
  maxRows: Schema.Number
})
export type Execute = typeof Execute.Type

export const encodeExecute = (w: Writer, m: Execute): void => {
  const at = w.begin(0x45) // 'E'
  w.cstring(m.portal)
  w.i32(m.maxRows)
  w.end(at)
}

export const decodeExecute = (r: Reader): Execute => {
  const portal = r.cstring()
  const maxRows = r.i32()
  r.done()
  return { _tag: "Execute", portal, maxRows }
}

export const Close = Schema.TaggedStruct("Close", { kind: TargetKind, name: Schema.String })
export type Close = typeof Close.Type

export const encodeClose = (w: Writer, m: Close): void => {
  const at = w.begin(0x43) // 'C'
  writeKind(w, m.kind, "C")
  w.cstring(m.name)
  w.end(at)
}

export const decodeClose = (r: Reader): Close => {
  const kind = readKind(r)
  const name = r.cstring()
  r.done()
  return { _tag: "Close", kind, name }
}

export const Sync = Schema.TaggedStruct("Sync", {})
export type Sync = typeof Sync.Type
const sync: Sync = { _tag: "Sync" }
export const encodeSync = (w: Writer, _m: Sync): void => {
  w.end(w.begin(0x53)) // 'S'
}
export const decodeSync = (r: Reader): Sync => {
  r.done()
  return sync
}

export const Flush = Schema.TaggedStruct("Flush", {})
export type Flush = typeof Flush.Type
const flush: Flush = { _tag: "Flush" }
export const encodeFlush = (w: Writer, _m: Flush): void => {
  w.end(w.begin(0x48)) // 'H'
}
export const decodeFlush = (r: Reader): Flush => {
  r.done()
  return flush
}

// ---------------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------------

export const ParseComplete = Schema.TaggedStruct("ParseComplete", {})
export type ParseComplete = typeof ParseComplete.Type
const parseComplete: ParseComplete = { _tag: "ParseComplete" }
export const encodeParseComplete = (w: Writer, _m: ParseComplete): void => {
  w.end(w.begin(0x31)) // '1'
}
export const decodeParseComplete = (r: Reader): ParseComplete => {
  r.done()
  return parseComplete
}

export const BindComplete = Schema.TaggedStruct("BindComplete", {})
export type BindComplete = typeof BindComplete.Type
const bindComplete: BindComplete = { _tag: "BindComplete" }
export const encodeBindComplete = (w: Writer, _m: BindComplete): void => {
  w.end(w.begin(0x32)) // '2'
}
export const decodeBindComplete = (r: Reader): BindComplete => {
  r.done()
  return bindComplete
}

export const CloseComplete = Schema.TaggedStruct("CloseComplete", {})
export type CloseComplete = typeof CloseComplete.Type
const closeComplete: CloseComplete = { _tag: "CloseComplete" }
export const encodeCloseComplete = (w: Writer, _m: CloseComplete): void => {
  w.end(w.begin(0x33)) // '3'
}
export const decodeCloseComplete = (r: Reader): CloseComplete => {
  r.done()
  return closeComplete
}

export const NoData = Schema.TaggedStruct("NoData", {})
export type NoData = typeof NoData.Type
const noData: NoData = { _tag: "NoData" }
export const encodeNoData = (w: Writer, _m: NoData): void => {
  w.end(w.begin(0x6e)) // 'n'
}
export const decodeNoData = (r: Reader): NoData => {
  r.done()
  return noData
}

export const PortalSuspended = Schema.TaggedStruct("PortalSuspended", {})
export type PortalSuspended = typeof PortalSuspended.Type
const portalSuspended: PortalSuspended = { _tag: "PortalSuspended" }
export const encodePortalSuspended = (w: Writer, _m: PortalSuspended): void => {
  w.end(w.begin(0x73)) // 's'
}
export const decodePortalSuspended = (r: Reader): PortalSuspended => {
  r.done()
  return portalSuspended
}

export const ParameterDescription = Schema.TaggedStruct("ParameterDescription", {
  /** One type OID per parameter of the statement. */
  parameterTypes: Schema.Array(Schema.Number)
})
export type ParameterDescription = typeof ParameterDescription.Type

export const encodeParameterDescription = (w: Writer, m: ParameterDescription): void => {
  const at = w.begin(0x74) // 't'
  const types = m.parameterTypes
  writeCount(w, types.length, 65535, "parameter count")
  for (let i = 0; i < types.length; i++) w.u32(types[i]!)
  w.end(at)
}

export const decodeParameterDescription = (r: Reader): ParameterDescription => {
  const n = readCountU16(r, 4, "parameter count")
  const parameterTypes = new Array<number>(n)
  for (let i = 0; i < n; i++) parameterTypes[i] = r.u32()
  r.done()
  return { _tag: "ParameterDescription", parameterTypes }
}
