/**
 * Every typed message a server sends, as one union, with dispatch on the type byte.
 *
 * Invariants:
 * - `decodeBackend` switches on the numeric type byte and calls the family's hand-written
 *   decoder; no Schema runs per message. An undefined type byte is ProtocolError
 *   "UnknownMessageType" naming the byte. Any other input either decodes or throws ProtocolError.
 * - `encodeBackend(w, m)` writes exactly the bytes `decodeBackend` reads back as `m`.
 * - The one-byte answers to SSLRequest/GSSENCRequest are not typed messages and so are not
 *   in this union: see `decodeSslResponse` / `decodeGssEncResponse` in Startup.ts.
 */
import * as Schema from "effect/Schema"
import * as Async from "./Async.ts"
import * as Auth from "./Auth.ts"
import * as Copy from "./Copy.ts"
import * as Extended from "./Extended.ts"
import * as FunctionCall from "./FunctionCall.ts"
import { fail } from "./ProtocolError.ts"
import * as Query from "./Query.ts"
import * as Startup from "./Startup.ts"
import { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"

export const BackendMessage = Schema.Union([
  Auth.AuthenticationOk,
  Auth.AuthenticationKerberosV5,
  Auth.AuthenticationCleartextPassword,
  Auth.AuthenticationMD5Password,
  Auth.AuthenticationGSS,
  Auth.AuthenticationGSSContinue,
  Auth.AuthenticationSSPI,
  Auth.AuthenticationSASL,
  Auth.AuthenticationSASLContinue,
  Auth.AuthenticationSASLFinal,
  Auth.AuthenticationUnknown,
  Startup.BackendKeyData,
  Startup.NegotiateProtocolVersion,
  Async.ParameterStatus,
  Async.ErrorResponse,
  Async.NoticeResponse,
  Async.NotificationResponse,
  Extended.ParseComplete,
  Extended.BindComplete,
  Extended.CloseComplete,
  Extended.NoData,
  Extended.PortalSuspended,
  Extended.ParameterDescription,
  Query.EmptyQueryResponse,
  Query.CommandComplete,
  Query.ReadyForQuery,
  Query.RowDescription,
  Query.DataRow,
  Copy.CopyInResponse,
  Copy.CopyOutResponse,
  Copy.CopyBothResponse,
  Copy.CopyData,
  Copy.CopyDone,
  FunctionCall.FunctionCallResponse
])
export type BackendMessage = typeof BackendMessage.Type

/** The type byte of each backend message, by tag (every Authentication* message is 'R'). */
export const BackendType = {
  AuthenticationOk: 0x52,
  AuthenticationKerberosV5: 0x52,
  AuthenticationCleartextPassword: 0x52,
  AuthenticationMD5Password: 0x52,
  AuthenticationGSS: 0x52,
  AuthenticationGSSContinue: 0x52,
  AuthenticationSSPI: 0x52,
  AuthenticationSASL: 0x52,
  AuthenticationSASLContinue: 0x52,
  AuthenticationSASLFinal: 0x52,
  AuthenticationUnknown: 0x52,
  BackendKeyData: 0x4b, // K
  NegotiateProtocolVersion: 0x76, // v
  ParameterStatus: 0x53, // S
  ErrorResponse: 0x45, // E
  NoticeResponse: 0x4e, // N
  NotificationResponse: 0x41, // A
  ParseComplete: 0x31, // 1
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  NoData: 0x6e, // n
  PortalSuspended: 0x73, // s
  ParameterDescription: 0x74, // t
  EmptyQueryResponse: 0x49, // I
  CommandComplete: 0x43, // C
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
  DataRow: 0x44, // D
  CopyInResponse: 0x47, // G
  CopyOutResponse: 0x48, // H
  CopyBothResponse: 0x57, // W
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  FunctionCallResponse: 0x56 // V
} as const satisfies Record<BackendMessage["_tag"], number>

/** Reused by every decode: decoding is synchronous and never re-entrant, so one cursor suffices. */
const reader = new Reader(new Uint8Array(0))

/** The one-character name of every type byte, made once rather than per message. */
const typeNames: ReadonlyArray<string> = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b))

/** Decodes one backend message body `buf[start, end)` (after type byte and length). */
export const decodeBackend = (type: number, buf: Uint8Array, start: number, end: number): BackendMessage => {
  // The per-row message reads the frame directly, without the shared cursor.
  if (type === 0x44) return Query.decodeDataRowBody(buf, start, end)
  const r = reader
  r.buf = buf
  r.pos = start
  r.end = end
  r.messageType = typeNames[type & 0xff]
  switch (type) {
    case 0x64:
      return Copy.decodeCopyData(r)
    case 0x43:
      return Query.decodeCommandComplete(r)
    case 0x5a:
      return Query.decodeReadyForQuery(r)
    case 0x54:
      return Query.decodeRowDescription(r)
    case 0x31:
      return Extended.decodeParseComplete(r)
    case 0x32:
      return Extended.decodeBindComplete(r)
    case 0x33:
      return Extended.decodeCloseComplete(r)
    case 0x6e:
      return Extended.decodeNoData(r)
    case 0x73:
      return Extended.decodePortalSuspended(r)
    case 0x74:
      return Extended.decodeParameterDescription(r)
    case 0x49:
      return Query.decodeEmptyQueryResponse(r)
    case 0x45:
      return Async.decodeErrorResponse(r)
    case 0x4e:
      return Async.decodeNoticeResponse(r)
    case 0x41:
      return Async.decodeNotificationResponse(r)
    case 0x53:
      return Async.decodeParameterStatus(r)
    case 0x52:
      return Auth.decodeAuthentication(r)
    case 0x4b:
      return Startup.decodeBackendKeyData(r)
    case 0x76:
      return Startup.decodeNegotiateProtocolVersion(r)
    case 0x47:
      return Copy.decodeCopyInResponse(r)
    case 0x48:
      return Copy.decodeCopyOutResponse(r)
    case 0x57:
      return Copy.decodeCopyBothResponse(r)
    case 0x63:
      return Copy.decodeCopyDone(r)
    case 0x56:
      return FunctionCall.decodeFunctionCallResponse(r)
  }
  return fail(
    "UnknownMessageType",
    `unknown backend message type ${describeByte(type)}`,
    String.fromCharCode(type),
    start
  )
}

/** `'x' (0x78)` for printable bytes, `0x07` otherwise. */
export const describeByte = (b: number): string => {
  const hex = "0x" + b.toString(16).padStart(2, "0")
  return b >= 0x20 && b < 0x7f ? `'${String.fromCharCode(b)}' (${hex})` : hex
}

/** Encodes any backend message, type byte and length included. */
export const encodeBackend = (w: Writer, m: BackendMessage): void => {
  switch (m._tag) {
    case "AuthenticationOk":
      return Auth.encodeAuthenticationOk(w, m)
    case "AuthenticationKerberosV5":
      return Auth.encodeAuthenticationKerberosV5(w, m)
    case "AuthenticationCleartextPassword":
      return Auth.encodeAuthenticationCleartextPassword(w, m)
    case "AuthenticationMD5Password":
      return Auth.encodeAuthenticationMD5Password(w, m)
    case "AuthenticationGSS":
      return Auth.encodeAuthenticationGSS(w, m)
    case "AuthenticationGSSContinue":
      return Auth.encodeAuthenticationGSSContinue(w, m)
    case "AuthenticationSSPI":
      return Auth.encodeAuthenticationSSPI(w, m)
    case "AuthenticationSASL":
      return Auth.encodeAuthenticationSASL(w, m)
    case "AuthenticationSASLContinue":
      return Auth.encodeAuthenticationSASLContinue(w, m)
    case "AuthenticationSASLFinal":
      return Auth.encodeAuthenticationSASLFinal(w, m)
    case "AuthenticationUnknown":
      return Auth.encodeAuthenticationUnknown(w, m)
    case "BackendKeyData":
      return Startup.encodeBackendKeyData(w, m)
    case "NegotiateProtocolVersion":
      return Startup.encodeNegotiateProtocolVersion(w, m)
    case "ParameterStatus":
      return Async.encodeParameterStatus(w, m)
    case "ErrorResponse":
      return Async.encodeErrorResponse(w, m)
    case "NoticeResponse":
      return Async.encodeNoticeResponse(w, m)
    case "NotificationResponse":
      return Async.encodeNotificationResponse(w, m)
    case "ParseComplete":
      return Extended.encodeParseComplete(w, m)
    case "BindComplete":
      return Extended.encodeBindComplete(w, m)
    case "CloseComplete":
      return Extended.encodeCloseComplete(w, m)
    case "NoData":
      return Extended.encodeNoData(w, m)
    case "PortalSuspended":
      return Extended.encodePortalSuspended(w, m)
    case "ParameterDescription":
      return Extended.encodeParameterDescription(w, m)
    case "EmptyQueryResponse":
      return Query.encodeEmptyQueryResponse(w, m)
    case "CommandComplete":
      return Query.encodeCommandComplete(w, m)
    case "ReadyForQuery":
      return Query.encodeReadyForQuery(w, m)
    case "RowDescription":
      return Query.encodeRowDescription(w, m)
    case "DataRow":
      return Query.encodeDataRow(w, m)
    case "CopyInResponse":
      return Copy.encodeCopyInResponse(w, m)
    case "CopyOutResponse":
      return Copy.encodeCopyOutResponse(w, m)
    case "CopyBothResponse":
      return Copy.encodeCopyBothResponse(w, m)
    case "CopyData":
      return Copy.encodeCopyData(w, m)
    case "CopyDone":
      return Copy.encodeCopyDone(w, m)
    case "FunctionCallResponse":
      return FunctionCall.encodeFunctionCallResponse(w, m)
  }
  // Reached only by untyped callers.
  return fail("EncodeInvalid", `not a backend message: ${String((m as { _tag?: unknown })._tag)}`)
}
