/**
 * Every message a client sends, as one union, with dispatch on the type byte (typed messages)
 * or on the request code (untyped startup-phase packets, `decodeStartupPacket`).
 *
 * Invariants:
 * - `decodeFrontend` switches on the numeric type byte and calls the family's hand-written
 *   decoder; no Schema runs per message. An undefined type byte is ProtocolError
 *   "UnknownMessageType". Type 'p' is ambiguous on the wire: the caller says which message
 *   the exchange expects (`context`, default "password").
 * - `encodeFrontend(w, m)` writes exactly the bytes that `decodeFrontend` (or, for the four
 *   startup-phase packets, `decodeStartupPacket`) reads back as `m`.
 */
import * as Schema from "effect/Schema"
import * as Auth from "./Auth.ts"
import { describeByte } from "./BackendMessage.ts"
import * as Copy from "./Copy.ts"
import * as Extended from "./Extended.ts"
import * as FunctionCall from "./FunctionCall.ts"
import { fail } from "./ProtocolError.ts"
import * as Query from "./Query.ts"
import * as Startup from "./Startup.ts"
import { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"

export { decodeStartupPacket } from "./Startup.ts"
export type { PasswordContext } from "./Auth.ts"

export const FrontendMessage = Schema.Union([
  Startup.StartupMessage,
  Startup.SSLRequest,
  Startup.GSSENCRequest,
  Startup.CancelRequest,
  Startup.Terminate,
  Auth.PasswordMessage,
  Auth.SASLInitialResponse,
  Auth.SASLResponse,
  Auth.GSSResponse,
  Query.Query,
  Extended.Parse,
  Extended.Bind,
  Extended.Describe,
  Extended.Execute,
  Extended.Close,
  Extended.Sync,
  Extended.Flush,
  Copy.CopyData,
  Copy.CopyDone,
  Copy.CopyFail,
  FunctionCall.FunctionCall
])
export type FrontendMessage = typeof FrontendMessage.Type

/** The type byte of each typed frontend message, by tag (startup-phase packets have none). */
export const FrontendType = {
  Terminate: 0x58, // X
  PasswordMessage: 0x70, // p
  SASLInitialResponse: 0x70, // p
  SASLResponse: 0x70, // p
  GSSResponse: 0x70, // p
  Query: 0x51, // Q
  Parse: 0x50, // P
  Bind: 0x42, // B
  Describe: 0x44, // D
  Execute: 0x45, // E
  Close: 0x43, // C
  Sync: 0x53, // S
  Flush: 0x48, // H
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  FunctionCall: 0x46 // F
} as const satisfies Record<
  Exclude<FrontendMessage["_tag"], "StartupMessage" | "SSLRequest" | "GSSENCRequest" | "CancelRequest">,
  number
>

/** Reused by every decode: decoding is synchronous and never re-entrant, so one cursor suffices. */
const reader = new Reader(new Uint8Array(0))

/** Decodes one typed frontend message body `buf[start, end)` (after type byte and length). */
export const decodeFrontend = (
  type: number,
  buf: Uint8Array,
  start: number,
  end: number,
  context: Auth.PasswordContext = "password"
): FrontendMessage => {
  const r = reader
  r.buf = buf
  r.pos = start
  r.end = end
  r.messageType = String.fromCharCode(type)
  switch (type) {
    case 0x64:
      return Copy.decodeCopyData(r)
    case 0x42:
      return Extended.decodeBind(r)
    case 0x45:
      return Extended.decodeExecute(r)
    case 0x53:
      return Extended.decodeSync(r)
    case 0x50:
      return Extended.decodeParse(r)
    case 0x44:
      return Extended.decodeDescribe(r)
    case 0x43:
      return Extended.decodeClose(r)
    case 0x48:
      return Extended.decodeFlush(r)
    case 0x51:
      return Query.decodeQuery(r)
    case 0x63:
      return Copy.decodeCopyDone(r)
    case 0x66:
      return Copy.decodeCopyFail(r)
    case 0x70:
      return Auth.decodePasswordFamily(r, context)
    case 0x46:
      return FunctionCall.decodeFunctionCall(r)
    case 0x58:
      return Startup.decodeTerminate(r)
  }
  return fail(
    "UnknownMessageType",
    `unknown frontend message type ${describeByte(type)}`,
    String.fromCharCode(type),
    start
  )
}

/** Encodes any frontend message, type byte (if any) and length included. */
export const encodeFrontend = (w: Writer, m: FrontendMessage): void => {
  switch (m._tag) {
    case "StartupMessage":
      return Startup.encodeStartupMessage(w, m)
    case "SSLRequest":
      return Startup.encodeSSLRequest(w, m)
    case "GSSENCRequest":
      return Startup.encodeGSSENCRequest(w, m)
    case "CancelRequest":
      return Startup.encodeCancelRequest(w, m)
    case "Terminate":
      return Startup.encodeTerminate(w, m)
    case "PasswordMessage":
      return Auth.encodePasswordMessage(w, m)
    case "SASLInitialResponse":
      return Auth.encodeSASLInitialResponse(w, m)
    case "SASLResponse":
      return Auth.encodeSASLResponse(w, m)
    case "GSSResponse":
      return Auth.encodeGSSResponse(w, m)
    case "Query":
      return Query.encodeQuery(w, m)
    case "Parse":
      return Extended.encodeParse(w, m)
    case "Bind":
      return Extended.encodeBind(w, m)
    case "Describe":
      return Extended.encodeDescribe(w, m)
    case "Execute":
      return Extended.encodeExecute(w, m)
    case "Close":
      return Extended.encodeClose(w, m)
    case "Sync":
      return Extended.encodeSync(w, m)
    case "Flush":
      return Extended.encodeFlush(w, m)
    case "CopyData":
      return Copy.encodeCopyData(w, m)
    case "CopyDone":
      return Copy.encodeCopyDone(w, m)
    case "CopyFail":
      return Copy.encodeCopyFail(w, m)
    case "FunctionCall":
      return FunctionCall.encodeFunctionCall(w, m)
  }
  // Reached only by untyped callers.
  return fail("EncodeInvalid", `not a frontend message: ${String((m as { _tag?: unknown })._tag)}`)
}
