/**
 * Messages the server may send at any time or about any statement: ErrorResponse,
 * NoticeResponse (with their fields, 54.8), NotificationResponse and ParameterStatus.
 *
 * Invariants:
 * - Error/notice fields are named after 54.8; a field code 54.8 does not define is kept in
 *   `unknown` under its one-character code (frontends must ignore, not reject, such fields).
 *   When a code repeats, the last value wins.
 * - Fields are encoded in the order PostgreSQL's elog.c sends them (S V C M D H W s t c d n
 *   P p q F L R, then unknown codes), so re-encoding a server's message reproduces its bytes.
 * - An `unknown` key must be a single character with code 1..255 that is not a 54.8 code,
 *   else "EncodeInvalid" (it would decode back into a different field).
 */
import * as Schema from "effect/Schema"
import { fail } from "./ProtocolError.ts"
import type { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"

const optionalString = Schema.optionalKey(Schema.String)

export const ErrorFields = Schema.Struct({
  /** S: ERROR, FATAL, PANIC, WARNING, NOTICE, DEBUG, INFO or LOG, possibly localized. */
  severityLocalized: optionalString,
  /** V: as S, never localized (9.6+). */
  severity: optionalString,
  /** C: the SQLSTATE code. */
  code: optionalString,
  /** M: the primary message. */
  message: optionalString,
  /** D: detail. */
  detail: optionalString,
  /** H: hint. */
  hint: optionalString,
  /** P: 1-based character index into the query string. */
  position: optionalString,
  /** p: as P, into `internalQuery`. */
  internalPosition: optionalString,
  /** q: the text of an internally generated command that failed. */
  internalQuery: optionalString,
  /** W: the context (call stack traceback), one entry per line. */
  where: optionalString,
  /** s */
  schemaName: optionalString,
  /** t */
  tableName: optionalString,
  /** c */
  columnName: optionalString,
  /** d */
  dataTypeName: optionalString,
  /** n */
  constraintName: optionalString,
  /** F: the server source file. */
  file: optionalString,
  /** L: the server source line. */
  line: optionalString,
  /** R: the server source routine. */
  routine: optionalString,
  /** Fields with codes 54.8 does not define, by code character. */
  unknown: Schema.optionalKey(Schema.Record(Schema.String, Schema.String))
})
export type ErrorFields = typeof ErrorFields.Type

type KnownField = Exclude<keyof ErrorFields, "unknown">

/** Field name by code, in the order elog.c sends them. */
const FIELD_ORDER: ReadonlyArray<readonly [number, KnownField]> = [
  [0x53, "severityLocalized"], // S
  [0x56, "severity"], // V
  [0x43, "code"], // C
  [0x4d, "message"], // M
  [0x44, "detail"], // D
  [0x48, "hint"], // H
  [0x57, "where"], // W
  [0x73, "schemaName"], // s
  [0x74, "tableName"], // t
  [0x63, "columnName"], // c
  [0x64, "dataTypeName"], // d
  [0x6e, "constraintName"], // n
  [0x50, "position"], // P
  [0x70, "internalPosition"], // p
  [0x71, "internalQuery"], // q
  [0x46, "file"], // F
  [0x4c, "line"], // L
  [0x52, "routine"] // R
]

const FIELD_BY_CODE: ReadonlyArray<KnownField | undefined> = (() => {
  const table = new Array<KnownField | undefined>(256).fill(undefined)
  for (const [code, name] of FIELD_ORDER) table[code] = name
  return table
})()

/** Reads fields up to the terminating zero byte, which must end the message. */
export const decodeErrorFields = (r: Reader): ErrorFields => {
  const fields: { -readonly [K in keyof ErrorFields]: ErrorFields[K] } = {}
  while (true) {
    const code = r.u8()
    if (code === 0) break
    const value = r.cstring()
    const name = FIELD_BY_CODE[code]
    if (name !== undefined) fields[name] = value
    else {
      const unknown = (fields.unknown ??= {}) as Record<string, string>
      unknown[String.fromCharCode(code)] = value
    }
  }
  r.done()
  return fields
}

export const encodeErrorFields = (w: Writer, fields: ErrorFields): void => {
  for (let i = 0; i < FIELD_ORDER.length; i++) {
    const [code, name] = FIELD_ORDER[i]!
    const value = fields[name]
    if (value !== undefined) {
      w.u8(code)
      w.cstring(value)
    }
  }
  const unknown = fields.unknown
  if (unknown !== undefined) {
    for (const key in unknown) {
      if (!Object.hasOwn(unknown, key)) continue
      const code = key.charCodeAt(0)
      if (key.length !== 1 || code === 0 || code > 255 || FIELD_BY_CODE[code] !== undefined) {
        fail("EncodeInvalid", `unknown error field code ${JSON.stringify(key)} is not a single unused byte`)
      }
      w.u8(code)
      w.cstring(unknown[key]!)
    }
  }
  w.u8(0)
}

export const ErrorResponse = Schema.TaggedStruct("ErrorResponse", { fields: ErrorFields })
export type ErrorResponse = typeof ErrorResponse.Type

export const encodeErrorResponse = (w: Writer, m: ErrorResponse): void => {
  const at = w.begin(0x45) // 'E'
  encodeErrorFields(w, m.fields)
  w.end(at)
}

export const decodeErrorResponse = (r: Reader): ErrorResponse => ({
  _tag: "ErrorResponse",
  fields: decodeErrorFields(r)
})

export const NoticeResponse = Schema.TaggedStruct("NoticeResponse", { fields: ErrorFields })
export type NoticeResponse = typeof NoticeResponse.Type

export const encodeNoticeResponse = (w: Writer, m: NoticeResponse): void => {
  const at = w.begin(0x4e) // 'N'
  encodeErrorFields(w, m.fields)
  w.end(at)
}

export const decodeNoticeResponse = (r: Reader): NoticeResponse => ({
  _tag: "NoticeResponse",
  fields: decodeErrorFields(r)
})

export const NotificationResponse = Schema.TaggedStruct("NotificationResponse", {
  /** The notifying backend's process ID. */
  processId: Schema.Number,
  channel: Schema.String,
  payload: Schema.String
})
export type NotificationResponse = typeof NotificationResponse.Type

export const encodeNotificationResponse = (w: Writer, m: NotificationResponse): void => {
  const at = w.begin(0x41) // 'A'
  w.i32(m.processId)
  w.cstring(m.channel)
  w.cstring(m.payload)
  w.end(at)
}

export const decodeNotificationResponse = (r: Reader): NotificationResponse => {
  const processId = r.i32()
  const channel = r.cstring()
  const payload = r.cstring()
  r.done()
  return { _tag: "NotificationResponse", processId, channel, payload }
}

export const ParameterStatus = Schema.TaggedStruct("ParameterStatus", { name: Schema.String, value: Schema.String })
export type ParameterStatus = typeof ParameterStatus.Type

export const encodeParameterStatus = (w: Writer, m: ParameterStatus): void => {
  const at = w.begin(0x53) // 'S'
  w.cstring(m.name)
  w.cstring(m.value)
  w.end(at)
}

export const decodeParameterStatus = (r: Reader): ParameterStatus => {
  const name = r.cstring()
  const value = r.cstring()
  r.done()
  return { _tag: "ParameterStatus", name, value }
}
