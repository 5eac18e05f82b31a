/**
 * Session start and end: the untyped startup-phase packets (StartupMessage, SSLRequest,
 * GSSENCRequest, CancelRequest), the one-byte answers to the encryption requests, the
 * server's BackendKeyData and NegotiateProtocolVersion, and Terminate.
 *
 * Invariants:
 * - Startup packets have no type byte; `decodeStartupPacket` tells them apart by the Int32
 *   code after the length. Encoders refuse packets over MAX_STARTUP_PACKET_LENGTH, which the
 *   server (and our framer's "untyped" mode) would reject.
 * - Cancel keys are 4..256 bytes (3.2 made them variable; 3.0 keys are 4 bytes); any other
 *   length is a ProtocolError in both directions. A decoded BackendKeyData key is a copy (the
 *   connection keeps it for the whole session), not a view pinning the receive buffer.
 * - Startup parameter names are non-empty (an empty name ends the list) and are stored as own
 *   properties even when named like `__proto__`.
 */
import * as Schema from "effect/Schema"
import { MAX_STARTUP_PACKET_LENGTH } from "./Limits.ts"
import { fail } from "./ProtocolError.ts"
import { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"
import { copyRange } from "./internal/copyRange.ts"

export const PROTOCOL_3_0 = 196608
export const PROTOCOL_3_2 = 196610
export const CANCEL_REQUEST_CODE = 80877102
export const SSL_REQUEST_CODE = 80877103
export const GSSENC_REQUEST_CODE = 80877104

export const MIN_CANCEL_KEY_LENGTH = 4
export const MAX_CANCEL_KEY_LENGTH = 256

// ---------------------------------------------------------------------------------------------
// Frontend: untyped packets
// ---------------------------------------------------------------------------------------------

export const StartupMessage = Schema.TaggedStruct("StartupMessage", {
  majorVersion: Schema.Number,
  minorVersion: Schema.Number,
  /** `user` is required by the server; `_pq_.*` protocol options are ordinary entries here. */
  parameters: Schema.Record(Schema.String, Schema.String)
})
export type StartupMessage = typeof StartupMessage.Type
export const SSLRequest = Schema.TaggedStruct("SSLRequest", {})
export type SSLRequest = typeof SSLRequest.Type
export const GSSENCRequest = Schema.TaggedStruct("GSSENCRequest", {})
export type GSSENCRequest = typeof GSSENCRequest.Type
export const CancelRequest = Schema.TaggedStruct("CancelRequest", {
  processId: Schema.Number,
  secretKey: Schema.Uint8Array
})
export type CancelRequest = typeof CancelRequest.Type

export type StartupPacket = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest

const sslRequest: SSLRequest = { _tag: "SSLRequest" }
const gssEncRequest: GSSENCRequest = { _tag: "GSSENCRequest" }

const endStartupPacket = (w: Writer, at: number, what: string): void => {
  const len = w.pos - at
  if (len > MAX_STARTUP_PACKET_LENGTH) {
    w.rewind()
    fail("MessageTooLarge", `${what} of ${len} bytes exceeds the server's limit of ${MAX_STARTUP_PACKET_LENGTH}`)
  }
  w.end(at)
}

export const encodeStartupMessage = (w: Writer, m: StartupMessage): void => {
  // Major version 1234 is reserved for request codes (SSLRequest, CancelRequest, …).
  if (m.majorVersion === 1234) fail("EncodeInvalid", "protocol major version 1234 is reserved for request codes")
  const at = w.begin(undefined)
  w.u16(m.majorVersion)
  w.u16(m.minorVersion)
  for (const name in m.parameters) {
    if (!Object.hasOwn(m.parameters, name)) continue
    if (name.length === 0) fail("EncodeInvalid", "startup parameter name is empty")
    w.cstring(name)
    w.cstring(m.parameters[name]!)
  }
  w.u8(0)
  endStartupPacket(w, at, "StartupMessage")
}

export const decodeStartupMessage = (r: Reader, version: number): StartupMessage => {
  const parameters: Record<string, string> = {}
  while (true) {
    if (r.pos >= r.end) r.truncated(1)
    if (r.buf[r.pos] === 0) {
      r.pos++
      break
    }
    const name = r.cstring()
    const value = r.cstring()
    // defineProperty, not assignment: a parameter named "__proto__" must not set the prototype.
    Object.defineProperty(parameters, name, { value, enumerable: true, writable: true, configurable: true })
  }
  r.done()
  return { _tag: "StartupMessage", majorVersion: version >>> 16, minorVersion: version & 0xffff, parameters }
}

const encodeRequestCode = (w: Writer, code: number): void => {
  const at = w.begin(undefined)
  w.i32(code)
  w.end(at)
}

export const encodeSSLRequest = (w: Writer, _m: SSLRequest): void => encodeRequestCode(w, SSL_REQUEST_CODE)
export const encodeGSSENCRequest = (w: Writer, _m: GSSENCRequest): void => encodeRequestCode(w, GSSENC_REQUEST_CODE)

const checkKeyLength = (n: number, decoding: Reader | undefined, what: string): void => {
  if (n < MIN_CANCEL_KEY_LENGTH || n > MAX_CANCEL_KEY_LENGTH) {
    const message = `${what} secret key of ${n} bytes is outside ${MIN_CANCEL_KEY_LENGTH}..${MAX_CANCEL_KEY_LENGTH}`
    if (decoding === undefined) fail("EncodeInvalid", message)
    else fail("LengthOutOfRange", message, decoding.messageType, decoding.pos)
  }
}

export const encodeCancelRequest = (w: Writer, m: CancelRequest): void => {
  checkKeyLength(m.secretKey.length, undefined, "CancelRequest")
  const at = w.begin(undefined)
  w.i32(CANCEL_REQUEST_CODE)
  w.i32(m.processId)
  w.bytes(m.secretKey)
  w.end(at)
}

export const decodeCancelRequest = (r: Reader): CancelRequest => {
  const processId = r.i32()
  checkKeyLength(r.remaining, r, "CancelRequest")
  const secretKey = copyRange(r.rest())
  return { _tag: "CancelRequest", processId, secretKey }
}

/**
 * Decodes an untyped startup-phase packet: `buf[start, end)` is the body after the Int32
 * length, as the framer's "untyped" mode delivers it.
 */
export const decodeStartupPacket = (buf: Uint8Array, start: number, end: number): StartupPacket => {
  const r = new Reader(buf, start, end, "startup packet")
  const code = r.i32()
  switch (code) {
    case SSL_REQUEST_CODE:
      r.done()
      return sslRequest
    case GSSENC_REQUEST_CODE:
      r.done()
      return gssEncRequest
    case CANCEL_REQUEST_CODE:
      return decodeCancelRequest(r)
  }
  // 1234 in the upper half is reserved for request codes, never a protocol version.
  if (code >>> 16 === 1234) {
    fail("UnknownMessageType", `unknown startup request code ${code}`, "startup packet", start)
  }
  return decodeStartupMessage(r, code >>> 0)
}

// ---------------------------------------------------------------------------------------------
// Backend: the one-byte answers to SSLRequest / GSSENCRequest
// ---------------------------------------------------------------------------------------------

export const SslResponse = Schema.TaggedStruct("SslResponse", { accepted: Schema.Boolean })
export type SslResponse = typeof SslResponse.Type
export const GssEncResponse = Schema.TaggedStruct("GssEncResponse", { accepted: Schema.Boolean })
export type GssEncResponse = typeof GssEncResponse.Type

const sslAccepted: SslResponse = { _tag: "SslResponse", accepted: true }
const sslRefused: SslResponse = { _tag: "SslResponse", accepted: false }
const gssAccepted: GssEncResponse = { _tag: "GssEncResponse", accepted: true }
const gssRefused: GssEncResponse = { _tag: "GssEncResponse", accepted: false }

export const encodeSslResponse = (w: Writer, m: SslResponse): void => {
  w.u8(m.accepted ? 0x53 : 0x4e) // 'S' | 'N'
}

/**
 * The byte the server answered an SSLRequest with. 'E' (an ErrorResponse from a server that
 * predates SSL support) is not an answer here: the caller must switch to "typed" framing first.
 */
export const decodeSslResponse = (byte: number): SslResponse => {
  if (byte === 0x53) return sslAccepted
  if (byte === 0x4e) return sslRefused
  return fail("InvalidValue", `answer to SSLRequest is byte ${byte}, neither 'S' nor 'N'`, "SSLResponse")
}

export const encodeGssEncResponse = (w: Writer, m: GssEncResponse): void => {
  w.u8(m.accepted ? 0x47 : 0x4e) // 'G' | 'N'
}

export const decodeGssEncResponse = (byte: number): GssEncResponse => {
  if (byte === 0x47) return gssAccepted
  if (byte === 0x4e) return gssRefused
  return fail("InvalidValue", `answer to GSSENCRequest is byte ${byte}, neither 'G' nor 'N'`, "GSSENCResponse")
}

// ---------------------------------------------------------------------------------------------
// Backend: typed
// ---------------------------------------------------------------------------------------------

export const BackendKeyData = Schema.TaggedStruct("BackendKeyData", {
  processId: Schema.Number,
  /** 4 bytes before protocol 3.2; 4..256 bytes since. */
  secretKey: Schema.Uint8Array
})
export type BackendKeyData = typeof BackendKeyData.Type

export const encodeBackendKeyData = (w: Writer, m: BackendKeyData): void => {
  checkKeyLength(m.secretKey.length, undefined, "BackendKeyData")
  const at = w.begin(0x4b) // 'K'
  w.i32(m.processId)
  w.bytes(m.secretKey)
  w.end(at)
}

export const decodeBackendKeyData = (r: Reader): BackendKeyData => {
  const processId = r.i32()
  checkKeyLength(r.remaining, r, "BackendKeyData")
  return { _tag: "BackendKeyData", processId, secretKey: copyRange(r.rest()) }
}

export const NegotiateProtocolVersion = Schema.TaggedStruct("NegotiateProtocolVersion", {
  /** The newest minor version (0..65535) the server supports for major version 3. */
  newestMinorVersion: Schema.Number,
  /** `_pq_.*` options the server did not recognise. */
  unrecognizedOptions: Schema.Array(Schema.String)
})
export type NegotiateProtocolVersion = typeof NegotiateProtocolVersion.Type

/*
 * 54.7 calls the first field the "newest minor protocol version", but PostgreSQL (and libpq,
 * reading it) use the whole version number, 3 << 16 | minor (196610 for 3.2). We encode that form
 * and decode either: a value below 65536 is taken as a bare minor version, else the major must be 3.
 */
export const encodeNegotiateProtocolVersion = (w: Writer, m: NegotiateProtocolVersion): void => {
  const minor = m.newestMinorVersion
  if (!Number.isInteger(minor) || minor < 0 || minor > 0xffff) {
    fail("EncodeInvalid", `minor protocol version ${minor} is outside 0..65535`, "v")
  }
  const at = w.begin(0x76) // 'v'
  w.i32((3 << 16) | minor)
  w.i32(m.unrecognizedOptions.length)
  for (const option of m.unrecognizedOptions) w.cstring(option)
  w.end(at)
}

export const decodeNegotiateProtocolVersion = (r: Reader): NegotiateProtocolVersion => {
  const at = r.pos
  const version = r.i32()
  if (version < 0 || (version > 0xffff && version >>> 16 !== 3)) {
    r.invalid(`protocol version ${version >>> 16}.${version & 0xffff} is not 3.x`, at)
  }
  const newestMinorVersion = version & 0xffff
  const n = r.count32(1, "unrecognized option count")
  const unrecognizedOptions = new Array<string>(n)
  for (let i = 0; i < n; i++) unrecognizedOptions[i] = r.cstring()
  r.done()
  return { _tag: "NegotiateProtocolVersion", newestMinorVersion, unrecognizedOptions }
}

// ---------------------------------------------------------------------------------------------
// Frontend: typed
// ---------------------------------------------------------------------------------------------

export const Terminate = Schema.TaggedStruct("Terminate", {})
export type Terminate = typeof Terminate.Type
const terminate: Terminate = { _tag: "Terminate" }

export const encodeTerminate = (w: Writer, _m: Terminate): void => {
  w.end(w.begin(0x58)) // 'X'
}

export const decodeTerminate = (r: Reader): Terminate => {
  r.done()
  return terminate
}
