/**
 * fast-check Arbitraries for every protocol message model, both directions, and helpers that
 * run messages through encoder → framer → decoder. Shared by Messages, Frame and Fuzz tests.
 *
 * The arbitraries generate exactly the values the wire can carry (Int16/Int32/UInt32 ranges,
 * NUL-free well-formed text, 4..256-byte cancel keys), so every generated model must round-trip.
 */
import * as fc from "fast-check"
import type { BackendMessage } from "../src/BackendMessage.ts"
import { decodeBackend, encodeBackend } from "../src/BackendMessage.ts"
import { Framer } from "../src/Frame.ts"
import type { FrontendMessage } from "../src/FrontendMessage.ts"
import { decodeFrontend, decodeStartupPacket, encodeFrontend } from "../src/FrontendMessage.ts"
import type { PasswordContext } from "../src/Auth.ts"
import type { ErrorFields } from "../src/Async.ts"
import { Writer } from "../src/internal/Writer.ts"

const utf8 = new TextEncoder()
const utf8Decoder = new TextDecoder()

/** Text a C string can carry: no NUL, and well-formed UTF-16 (lone surrogates do not survive UTF-8). */
export const text = (maxLength = 24): fc.Arbitrary<string> =>
  fc
    .oneof(
      { weight: 3, arbitrary: fc.string({ unit: "grapheme-ascii", maxLength }) },
      { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength }) }
    )
    .map((s) => s.replace(/\u0000/g, ""))
    .filter((s) => utf8Decoder.decode(utf8.encode(s)) === s)

export const nonEmptyText = (maxLength = 24) => text(maxLength).filter((s) => s.length > 0)
export const bytes = (maxLength = 64) => fc.uint8Array({ maxLength })
export const nullableBytes = (maxLength = 64) => fc.option(bytes(maxLength), { nil: null, freq: 4 })
export const int16 = fc.integer({ min: -32768, max: 32767 })
export const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff })
export const uint32 = fc.tuple(fc.nat(0xffff), fc.nat(0xffff)).map(([hi, lo]) => hi * 0x10000 + lo)
export const format = fc.constantFrom(0 as const, 1 as const)
export const formats = (maxLength = 8) => fc.array(format, { maxLength })
export const cancelKey = fc.uint8Array({ minLength: 4, maxLength: 256 })

const errorFieldNames = [
  "severityLocalized",
  "severity",
  "code",
  "message",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schemaName",
  "tableName",
  "columnName",
  "dataTypeName",
  "constraintName",
  "file",
  "line",
  "routine"
] as const

const KNOWN_CODES = "SVCMDHPpqWstcdnFLR"
/** Single-byte field codes that 54.8 leaves undefined. */
const unknownCode = fc
  .integer({ min: 1, max: 255 })
  .map((c) => String.fromCharCode(c))
  .filter((c) => !KNOWN_CODES.includes(c))

export const errorFields: fc.Arbitrary<ErrorFields> = fc
  .tuple(
    fc.record(Object.fromEntries(errorFieldNames.map((n) => [n, text(40)])) as Record<
      (typeof errorFieldNames)[number],
      fc.Arbitrary<string>
    >, { requiredKeys: [] }),
    fc.option(fc.dictionary(unknownCode, text(), { minKeys: 1, maxKeys: 3 }), { nil: undefined })
  )
  .map(([known, unknown]) => (unknown === undefined ? known : { ...known, unknown }))

const fieldDescription = fc.record({
  name: text(),
  tableOid: uint32,
  columnAttributeNumber: int16,
  typeOid: uint32,
  typeSize: int16,
  typeModifier: int32,
  format
})

const copyResponse = <T extends "CopyInResponse" | "CopyOutResponse" | "CopyBothResponse">(tag: T) =>
  fc.record({ _tag: fc.constant(tag), format, columnFormats: formats() })

const authCodes = new Set([0, 2, 3, 5, 7, 8, 9, 10, 11, 12])

/** One arbitrary per backend message tag. */
export const backendArbitraries: { [K in BackendMessage["_tag"]]: fc.Arbitrary<Extract<BackendMessage, { _tag: K }>> } = {
  AuthenticationOk: fc.constant({ _tag: "AuthenticationOk" }),
  AuthenticationKerberosV5: fc.constant({ _tag: "AuthenticationKerberosV5" }),
  AuthenticationCleartextPassword: fc.constant({ _tag: "AuthenticationCleartextPassword" }),
  AuthenticationMD5Password: fc.record({
    _tag: fc.constant("AuthenticationMD5Password"),
    salt: fc.uint8Array({ minLength: 4, maxLength: 4 })
  }),
  AuthenticationGSS: fc.constant({ _tag: "AuthenticationGSS" }),
  AuthenticationGSSContinue: fc.record({ _tag: fc.constant("AuthenticationGSSContinue"), data: bytes() }),
  AuthenticationSSPI: fc.constant({ _tag: "AuthenticationSSPI" }),
  AuthenticationSASL: fc.record({
    _tag: fc.constant("AuthenticationSASL"),
    mechanisms: fc.array(nonEmptyText(), { maxLength: 4 })
  }),
  AuthenticationSASLContinue: fc.record({ _tag: fc.constant("AuthenticationSASLContinue"), data: bytes() }),
  AuthenticationSASLFinal: fc.record({ _tag: fc.constant("AuthenticationSASLFinal"), data: bytes() }),
  AuthenticationUnknown: fc.record({
    _tag: fc.constant("AuthenticationUnknown"),
    code: int32.filter((c) => !authCodes.has(c))
  }),
  BackendKeyData: fc.record({ _tag: fc.constant("BackendKeyData"), processId: int32, secretKey: cancelKey }),
  NegotiateProtocolVersion: fc.record({
    _tag: fc.constant("NegotiateProtocolVersion"),
    newestMinorVersion: fc.nat(0xffff),
    unrecognizedOptions: fc.array(text(), { maxLength: 4 })
  }),
  ParameterStatus: fc.record({ _tag: fc.constant("ParameterStatus"), name: text(), value: text() }),
  ErrorResponse: fc.record({ _tag: fc.constant("ErrorResponse"), fields: errorFields }),
  NoticeResponse: fc.record({ _tag: fc.constant("NoticeResponse"), fields: errorFields }),
  NotificationResponse: fc.record({
    _tag: fc.constant("NotificationResponse"),
    processId: int32,
    channel: text(),
    payload: text(60)
  }),
  ParseComplete: fc.constant({ _tag: "ParseComplete" }),
  BindComplete: fc.constant({ _tag: "BindComplete" }),
  CloseComplete: fc.constant({ _tag: "CloseComplete" }),
  NoData: fc.constant({ _tag: "NoData" }),
  PortalSuspended: fc.constant({ _tag: "PortalSuspended" }),
  ParameterDescription: fc.record({
    _tag: fc.constant("ParameterDescription"),
    parameterTypes: fc.array(uint32, { maxLength: 8 })
  }),
  EmptyQueryResponse: fc.constant({ _tag: "EmptyQueryResponse" }),
  CommandComplete: fc.record({ _tag: fc.constant("CommandComplete"), tag: text() }),
  ReadyForQuery: fc.record({ _tag: fc.constant("ReadyForQuery"), status: fc.constantFrom("I", "T", "E") }),
  RowDescription: fc.record({
    _tag: fc.constant("RowDescription"),
    fields: fc.array(fieldDescription, { maxLength: 6 })
  }),
  DataRow: fc.record({ _tag: fc.constant("DataRow"), values: fc.array(nullableBytes(), { maxLength: 8 }) }),
  CopyInResponse: copyResponse("CopyInResponse"),
  CopyOutResponse: copyResponse("CopyOutResponse"),
  CopyBothResponse: copyResponse("CopyBothResponse"),
  CopyData: fc.record({ _tag: fc.constant("CopyData"), data: bytes(128) }),
  CopyDone: fc.constant({ _tag: "CopyDone" }),
  FunctionCallResponse: fc.record({ _tag: fc.constant("FunctionCallResponse"), result: nullableBytes() })
}

/** Startup parameters: non-empty, distinct names (duplicates would collapse on decode). */
const startupParameters = fc.dictionary(nonEmptyText(16), text(32), { maxKeys: 6 })

/** One arbitrary per frontend message tag. */
export const frontendArbitraries: { [K in FrontendMessage["_tag"]]: fc.Arbitrary<Extract<FrontendMessage, { _tag: K }>> } =
  {
    StartupMessage: fc.record({
      _tag: fc.constant("StartupMessage"),
      majorVersion: fc.constant(3),
      minorVersion: fc.nat(0xffff),
      parameters: startupParameters
    }),
    SSLRequest: fc.constant({ _tag: "SSLRequest" }),
    GSSENCRequest: fc.constant({ _tag: "GSSENCRequest" }),
    CancelRequest: fc.record({ _tag: fc.constant("CancelRequest"), processId: int32, secretKey: cancelKey }),
    Terminate: fc.constant({ _tag: "Terminate" }),
    PasswordMessage: fc.record({ _tag: fc.constant("PasswordMessage"), password: text() }),
    SASLInitialResponse: fc.record({
      _tag: fc.constant("SASLInitialResponse"),
      mechanism: text(),
      data: nullableBytes()
    }),
    SASLResponse: fc.record({ _tag: fc.constant("SASLResponse"), data: bytes() }),
    GSSResponse: fc.record({ _tag: fc.constant("GSSResponse"), data: bytes() }),
    Query: fc.record({ _tag: fc.constant("Query"), sql: text(80) }),
    Parse: fc.record({
      _tag: fc.constant("Parse"),
      name: text(),
      query: text(80),
      parameterTypes: fc.array(uint32, { maxLength: 8 })
    }),
    Bind: fc.record({
      _tag: fc.constant("Bind"),
      portal: text(),
      statement: text(),
      parameterFormats: formats(),
      parameters: fc.array(nullableBytes(), { maxLength: 8 }),
      resultFormats: formats()
    }),
    Describe: fc.record({ _tag: fc.constant("Describe"), kind: fc.constantFrom("S", "P"), name: text() }),
    Execute: fc.record({ _tag: fc.constant("Execute"), portal: text(), maxRows: int32 }),
    Close: fc.record({ _tag: fc.constant("Close"), kind: fc.constantFrom("S", "P"), name: text() }),
    Sync: fc.constant({ _tag: "Sync" }),
    Flush: fc.constant({ _tag: "Flush" }),
    CopyData: fc.record({ _tag: fc.constant("CopyData"), data: bytes(128) }),
    CopyDone: fc.constant({ _tag: "CopyDone" }),
    CopyFail: fc.record({ _tag: fc.constant("CopyFail"), message: text() }),
    FunctionCall: fc.record({
      _tag: fc.constant("FunctionCall"),
      functionOid: uint32,
      argumentFormats: formats(),
      arguments: fc.array(nullableBytes(), { maxLength: 8 }),
      resultFormat: format
    })
  }

export const anyBackend: fc.Arbitrary<BackendMessage> = fc.oneof(
  ...(Object.values(backendArbitraries) as Array<fc.Arbitrary<BackendMessage>>)
)

/** The typed frontend messages (everything a client sends after startup). */
export const STARTUP_TAGS = new Set(["StartupMessage", "SSLRequest", "GSSENCRequest", "CancelRequest"])
export const anyTypedFrontend: fc.Arbitrary<FrontendMessage> = fc.oneof(
  ...(Object.entries(frontendArbitraries)
    .filter(([tag]) => !STARTUP_TAGS.has(tag))
    .map(([, a]) => a) as Array<fc.Arbitrary<FrontendMessage>>)
)

/** Which 'p' message a frontend message is, for decodeFrontend. */
export const passwordContextOf = (m: FrontendMessage): PasswordContext =>
  m._tag === "SASLInitialResponse" ? "sasl-initial" : m._tag === "SASLResponse" ? "sasl" : m._tag === "GSSResponse" ? "gss" : "password"

export const encodeBackendAll = (messages: ReadonlyArray<BackendMessage>): Uint8Array => {
  const w = new Writer(64)
  for (const m of messages) encodeBackend(w, m)
  return w.take().slice()
}

export const encodeFrontendAll = (messages: ReadonlyArray<FrontendMessage>): Uint8Array => {
  const w = new Writer(64)
  for (const m of messages) encodeFrontend(w, m)
  return w.take().slice()
}

export interface RawFrame {
  readonly type: number
  readonly body: Uint8Array
}

/** Frames `chunks` (typed mode), copying each body so later assertions do not depend on buffer reuse. */
export const frameAll = (chunks: ReadonlyArray<Uint8Array>, framer = new Framer()): Array<RawFrame> => {
  const out: Array<RawFrame> = []
  for (const c of chunks) framer.push(c, (type, buf, start, end) => out.push({ type, body: buf.slice(start, end) }))
  return out
}

/** Encodes, frames and decodes backend messages: the whole receive path of a client. */
export const roundTripBackend = (messages: ReadonlyArray<BackendMessage>): Array<BackendMessage> => {
  const out: Array<BackendMessage> = []
  new Framer().push(encodeBackendAll(messages), (type, buf, start, end) => out.push(decodeBackend(type, buf, start, end)))
  return out
}

/** Encodes, frames and decodes frontend messages: the whole receive path of a (mock) server. */
export const roundTripFrontend = (messages: ReadonlyArray<FrontendMessage>): Array<FrontendMessage> => {
  const out: Array<FrontendMessage> = []
  let i = 0
  const framer = new Framer({ mode: STARTUP_TAGS.has(messages[0]?._tag ?? "") ? "untyped" : "typed" })
  framer.push(encodeFrontendAll(messages), (type, buf, start, end) => {
    const m = messages[i]!
    out.push(
      STARTUP_TAGS.has(m._tag)
        ? decodeStartupPacket(buf, start, end)
        : decodeFrontend(type, buf, start, end, passwordContextOf(m))
    )
    i++
    const next = messages[i]
    if (next !== undefined) framer.mode = STARTUP_TAGS.has(next._tag) ? "untyped" : "typed"
  })
  return out
}
