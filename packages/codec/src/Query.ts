/**
 * The simple query cycle and the result messages every query shares: Query, RowDescription,
 * DataRow, CommandComplete, EmptyQueryResponse, ReadyForQuery.
 *
 * Invariants:
 * - DataRow: the column count and every column length are checked against the message before
 *   anything is read or allocated; -1 is NULL, any other negative length is "LengthOutOfRange".
 *   Values are views of the frame (no copy), plain Uint8Arrays also when the frame is a Node Buffer.
 *   `decodeBackend` reads DataRow with `decodeDataRowBody` (no Reader): same checks, same errors.
 * - `scanDataRow` performs the same validation as `decodeDataRow` without allocating: a row it
 *   accepts decodes, and a row it rejects fails to decode with the same reason.
 * - Format codes are 0 or 1 and ReadyForQuery's status is 'I', 'T' or 'E'; anything else is
 *   "InvalidValue". OIDs are UInt32, read into a non-negative number.
 */
import * as Schema from "effect/Schema"
import { fail } from "./ProtocolError.ts"
import { readFormat, writeCount, writeFormat } from "./internal/fields.ts"
import type { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"

export const FormatCode = Schema.Literals([0, 1])
export type FormatCode = typeof FormatCode.Type

// ---------------------------------------------------------------------------------------------
// Query (F)
// ---------------------------------------------------------------------------------------------

export const Query = Schema.TaggedStruct("Query", { sql: Schema.String })
export type Query = typeof Query.Type

export const encodeQuery = (w: Writer, m: Query): void => {
  const at = w.begin(0x51) // 'Q'
  w.cstring(m.sql)
  w.end(at)
}

export const decodeQuery = (r: Reader): Query => {
  const sql = r.cstring()
  r.done()
  return { _tag: "Query", sql }
}

// ---------------------------------------------------------------------------------------------
// RowDescription (B)
// ---------------------------------------------------------------------------------------------

export const FieldDescription = Schema.Struct({
  name: Schema.String,
  /** The table's OID when the field is a table column, else 0. */
  tableOid: Schema.Number,
  /** The column's attribute number when the field is a table column, else 0. */
  columnAttributeNumber: Schema.Number,
  typeOid: Schema.Number,
  /** pg_type.typlen: negative for variable-width types. */
  typeSize: Schema.Number,
  /** pg_attribute.atttypmod; -1 when none. */
  typeModifier: Schema.Number,
  /** Always 0 in the answer to Describe of a statement (the format is not known yet). */
  format: FormatCode
})
export type FieldDescription = typeof FieldDescription.Type

export const RowDescription = Schema.TaggedStruct("RowDescription", { fields: Schema.Array(FieldDescription) })
export type RowDescription = typeof RowDescription.Type

/** Smallest encoded field: empty name (1) + 4 + 2 + 4 + 2 + 4 + 2. */
const MIN_FIELD_DESCRIPTION_SIZE = 19

export const encodeRowDescription = (w: Writer, m: RowDescription): void => {
  const at = w.begin(0x54) // 'T'
  const fields = m.fields
  writeCount(w, fields.length, 32767, "field count")
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!
    w.cstring(f.name)
    w.u32(f.tableOid)
    w.i16(f.columnAttributeNumber)
    w.u32(f.typeOid)
    w.i16(f.typeSize)
    w.i32(f.typeModifier)
    writeFormat(w, f.format, "field")
  }
  w.end(at)
}

export const decodeRowDescription = (r: Reader): RowDescription => {
  const n = r.count16(MIN_FIELD_DESCRIPTION_SIZE, "field count")
  const fields = new Array<FieldDescription>(n)
  for (let i = 0; i < n; i++) {
    const name = r.cstring()
    const tableOid = r.u32()
    const columnAttributeNumber = r.i16()
    const typeOid = r.u32()
    const typeSize = r.i16()
    const typeModifier = r.i32()
    const format = readFormat(r, "field")
    fields[i] = { name, tableOid, columnAttributeNumber, typeOid, typeSize, typeModifier, format }
  }
  r.done()
  return { _tag: "RowDescription", fields }
}

// ---------------------------------------------------------------------------------------------
// DataRow (B)
// ---------------------------------------------------------------------------------------------

export const DataRow = Schema.TaggedStruct("DataRow", {
  /** One entry per column: the value's bytes in the column's format, or null for SQL NULL. */
  values: Schema.Array(Schema.NullOr(Schema.Uint8Array))
})
export type DataRow = typeof DataRow.Type

export const encodeDataRow = (w: Writer, m: DataRow): void => {
  const at = w.begin(0x44) // 'D'
  const values = m.values
  writeCount(w, values.length, 32767, "column count")
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    if (v === null) w.raw32(-1)
    else {
      w.raw32(v.length)
      w.bytes(v)
    }
  }
  w.end(at)
}

export const decodeDataRow = (r: Reader): DataRow => {
  const m = decodeDataRowBody(r.buf, r.pos, r.end)
  r.pos = r.end
  return m
}

/**
 * `decodeDataRow` on the body `buf[start, end)` without a Reader (the per-row path of
 * `decodeBackend`): the same checks, in the same order, with the same errors.
 */
export const decodeDataRowBody = (buf: Uint8Array, start: number, end: number): DataRow => {
  if (end - start < 2) truncatedRow(2, start, end)
  const n = (((buf[start]! << 8) | buf[start + 1]!) << 16) >> 16
  if (n < 0) fail("LengthOutOfRange", `negative column count ${n}`, "D", start)
  if (n * 4 > end - start - 2) {
    fail("LengthOutOfRange", `column count ${n} needs at least ${n * 4} bytes but only ${end - start - 2} remain`, "D", start)
  }
  const values = new Array<Uint8Array | null>(n)
  // Views are built on the ArrayBuffer directly: `subarray` on a Node Buffer goes through the
  // species constructor and Buffer's own subarray, several times the cost of a plain view.
  if (buf !== lastBuf) {
    lastBuf = buf
    lastStore = buf.buffer
    lastBase = buf.byteOffset
  }
  const store = lastStore
  const base = lastBase
  let pos = start + 2
  for (let i = 0; i < n; i++) {
    if (end - pos < 4) truncatedRow(4, pos, end)
    const len = (buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!
    pos += 4
    if (len < 0) {
      if (len !== -1) fail("LengthOutOfRange", `column ${i} has negative length ${len}`, "D", pos - 4)
      values[i] = null
      continue
    }
    if (len > end - pos) truncatedRow(len, pos, end)
    values[i] = new Uint8Array(store, base + pos, len)
    pos += len
  }
  if (pos !== end) fail("TrailingBytes", `${end - pos} unread byte(s) at the end of the message`, "D", pos)
  return { _tag: "DataRow", values }
}

/**
 * The ArrayBuffer and offset of the buffer the last row came from: reading `buffer` and `byteOffset`
 * costs about a tenth of a row, and consecutive rows come from the same chunk. Like the shared Reader
 * of `decodeBackend`, this holds the last buffer decoded from until the next one.
 */
let lastBuf: Uint8Array | undefined
let lastStore: ArrayBufferLike = new ArrayBuffer(0)
let lastBase = 0

/** Reader.truncated's error, for the Reader-free DataRow paths. */
const truncatedRow = (need: number, pos: number, end: number): never =>
  fail("Truncated", `needed ${need} more byte(s) at offset ${pos}, but the message has ${end - pos} left`, "D", pos)

/**
 * Validates a DataRow body `buf[start, end)` without allocating and returns its column count.
 *
 * Fails (ProtocolError, messageType "D") unless the Int16 count is non-negative and, when
 * `expectedColumns >= 0`, equal to it ("InvalidValue"); every length is -1 or non-negative and
 * fits in the message; and the last value ends exactly at `end`.
 *
 * When `offsets` is given (at least 2 × columns long) it receives, for column i,
 * `offsets[2i]` = the absolute offset in `buf` of the value's first byte and
 * `offsets[2i + 1]` = its length, or -1 for NULL.
 */
export const scanDataRow = (
  buf: Uint8Array,
  start: number,
  end: number,
  expectedColumns: number,
  offsets?: Int32Array
): number => {
  if (end - start < 2) fail("Truncated", "DataRow has no column count", "D", start)
  const n = (((buf[start]! << 8) | buf[start + 1]!) << 16) >> 16
  if (n < 0) fail("LengthOutOfRange", `negative column count ${n}`, "D", start)
  if (expectedColumns >= 0 && n !== expectedColumns) {
    fail("InvalidValue", `DataRow has ${n} column(s) but the row description has ${expectedColumns}`, "D", start)
  }
  if (n * 4 > end - start - 2) {
    fail("LengthOutOfRange", `column count ${n} needs at least ${n * 4} bytes but only ${end - start - 2} remain`, "D", start)
  }
  if (offsets !== undefined && offsets.length < 2 * n) {
    fail("InvalidValue", `offsets array of ${offsets.length} entries cannot hold ${n} column(s)`, "D", start)
  }
  let pos = start + 2
  for (let i = 0; i < n; i++) {
    if (end - pos < 4) fail("Truncated", `column ${i} length runs past the message`, "D", pos)
    const len = (buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!
    if (len < 0) {
      if (len !== -1) fail("LengthOutOfRange", `column ${i} has negative length ${len}`, "D", pos)
      pos += 4
      if (offsets !== undefined) {
        offsets[2 * i] = pos
        offsets[2 * i + 1] = -1
      }
      continue
    }
    pos += 4
    if (len > end - pos) {
      fail("Truncated", `column ${i} of ${len} bytes runs past the message (${end - pos} left)`, "D", pos)
    }
    if (offsets !== undefined) {
      offsets[2 * i] = pos
      offsets[2 * i + 1] = len
    }
    pos += len
  }
  if (pos !== end) fail("TrailingBytes", `${end - pos} unread byte(s) at the end of the message`, "D", pos)
  return n
}

// ---------------------------------------------------------------------------------------------
// CommandComplete, EmptyQueryResponse, ReadyForQuery (B)
// ---------------------------------------------------------------------------------------------

export const CommandComplete = Schema.TaggedStruct("CommandComplete", {
  /** E.g. "SELECT 3", "INSERT 0 1", "CREATE TABLE". */
  tag: Schema.String
})
export type CommandComplete = typeof CommandComplete.Type

export const encodeCommandComplete = (w: Writer, m: CommandComplete): void => {
  const at = w.begin(0x43) // 'C'
  w.cstring(m.tag)
  w.end(at)
}

export const decodeCommandComplete = (r: Reader): CommandComplete => {
  const tag = r.cstring()
  r.done()
  return { _tag: "CommandComplete", tag }
}

export const EmptyQueryResponse = Schema.TaggedStruct("EmptyQueryResponse", {})
export type EmptyQueryResponse = typeof EmptyQueryResponse.Type
const emptyQueryResponse: EmptyQueryResponse = { _tag: "EmptyQueryResponse" }

export const encodeEmptyQueryResponse = (w: Writer, _m: EmptyQueryResponse): void => {
  w.end(w.begin(0x49)) // 'I'
}

export const decodeEmptyQueryResponse = (r: Reader): EmptyQueryResponse => {
  r.done()
  return emptyQueryResponse
}

export const TransactionStatus = Schema.Literals(["I", "T", "E"])
export type TransactionStatus = typeof TransactionStatus.Type

export const ReadyForQuery = Schema.TaggedStruct("ReadyForQuery", {
  /** 'I' idle, 'T' in a transaction block, 'E' in a failed transaction block. */
  status: TransactionStatus
})
export type ReadyForQuery = typeof ReadyForQuery.Type

const readyIdle: ReadyForQuery = { _tag: "ReadyForQuery", status: "I" }
const readyInTransaction: ReadyForQuery = { _tag: "ReadyForQuery", status: "T" }
const readyFailed: ReadyForQuery = { _tag: "ReadyForQuery", status: "E" }

export const encodeReadyForQuery = (w: Writer, m: ReadyForQuery): void => {
  const s = m.status
  if (s !== "I" && s !== "T" && s !== "E") fail("EncodeInvalid", `transaction status ${String(s)} is not I, T or E`, "Z")
  const at = w.begin(0x5a) // 'Z'
  w.u8(s.charCodeAt(0))
  w.end(at)
}

export const decodeReadyForQuery = (r: Reader): ReadyForQuery => {
  const at = r.pos
  const b = r.u8()
  r.done()
  switch (b) {
    case 0x49:
      return readyIdle
    case 0x54:
      return readyInTransaction
    case 0x45:
      return readyFailed
  }
  return r.invalid(`transaction status byte ${b} is not 'I', 'T' or 'E'`, at)
}
