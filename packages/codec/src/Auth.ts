/**
 * Authentication: the server's Authentication* requests ('R', dispatched on an Int32 code) and
 * the client's answers, which all share type 'p' (PasswordMessage, SASLInitialResponse,
 * SASLResponse, GSSResponse) and are told apart only by the state of the exchange.
 *
 * Invariants:
 * - An authentication code the protocol does not define decodes to `AuthenticationUnknown`
 *   (not an error), so the connection can say which method it does not support; its body is
 *   not interpreted.
 * - The MD5 salt is exactly 4 bytes; the SASL mechanism list is non-empty names ending with an
 *   empty one. Byte payloads are views of the frame, except the salt, which is copied (it is kept).
 */
import * as Schema from "effect/Schema"
import { fail } from "./ProtocolError.ts"
import type { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"
import { copyRange } from "./internal/copyRange.ts"

const R = 0x52 // 'R'
const p = 0x70 // 'p'

/** The Int32 code that follows 'R', by message. */
export const AuthenticationCode = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12
} as const

// ---------------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------------

export const AuthenticationOk = Schema.TaggedStruct("AuthenticationOk", {})
export type AuthenticationOk = typeof AuthenticationOk.Type
export const AuthenticationKerberosV5 = Schema.TaggedStruct("AuthenticationKerberosV5", {})
export type AuthenticationKerberosV5 = typeof AuthenticationKerberosV5.Type
export const AuthenticationCleartextPassword = Schema.TaggedStruct("AuthenticationCleartextPassword", {})
export type AuthenticationCleartextPassword = typeof AuthenticationCleartextPassword.Type
export const AuthenticationMD5Password = Schema.TaggedStruct("AuthenticationMD5Password", {
  /** Always 4 bytes. */
  salt: Schema.Uint8Array
})
export type AuthenticationMD5Password = typeof AuthenticationMD5Password.Type
export const AuthenticationGSS = Schema.TaggedStruct("AuthenticationGSS", {})
export type AuthenticationGSS = typeof AuthenticationGSS.Type
export const AuthenticationGSSContinue = Schema.TaggedStruct("AuthenticationGSSContinue", { data: Schema.Uint8Array })
export type AuthenticationGSSContinue = typeof AuthenticationGSSContinue.Type
export const AuthenticationSSPI = Schema.TaggedStruct("AuthenticationSSPI", {})
export type AuthenticationSSPI = typeof AuthenticationSSPI.Type
export const AuthenticationSASL = Schema.TaggedStruct("AuthenticationSASL", {
  /** In the server's order of preference. */
  mechanisms: Schema.Array(Schema.String)
})
export type AuthenticationSASL = typeof AuthenticationSASL.Type
export const AuthenticationSASLContinue = Schema.TaggedStruct("AuthenticationSASLContinue", { data: Schema.Uint8Array })
export type AuthenticationSASLContinue = typeof AuthenticationSASLContinue.Type
export const AuthenticationSASLFinal = Schema.TaggedStruct("AuthenticationSASLFinal", { data: Schema.Uint8Array })
export type AuthenticationSASLFinal = typeof AuthenticationSASLFinal.Type
/** An authentication code 54.7 does not define (e.g. 6, SCM credentials): reported, not failed. */
export const AuthenticationUnknown = Schema.TaggedStruct("AuthenticationUnknown", { code: Schema.Number })
export type AuthenticationUnknown = typeof AuthenticationUnknown.Type

export const Authentication = Schema.Union([
  AuthenticationOk,
  AuthenticationKerberosV5,
  AuthenticationCleartextPassword,
  AuthenticationMD5Password,
  AuthenticationGSS,
  AuthenticationGSSContinue,
  AuthenticationSSPI,
  AuthenticationSASL,
  AuthenticationSASLContinue,
  AuthenticationSASLFinal,
  AuthenticationUnknown
])
export type Authentication = typeof Authentication.Type

const authOk: AuthenticationOk = { _tag: "AuthenticationOk" }
const authKerberosV5: AuthenticationKerberosV5 = { _tag: "AuthenticationKerberosV5" }
const authCleartext: AuthenticationCleartextPassword = { _tag: "AuthenticationCleartextPassword" }
const authGss: AuthenticationGSS = { _tag: "AuthenticationGSS" }
const authSspi: AuthenticationSSPI = { _tag: "AuthenticationSSPI" }

/** Decodes any 'R' message body. */
export const decodeAuthentication = (r: Reader): Authentication => {
  const code = r.i32()
  switch (code) {
    case 0:
      r.done()
      return authOk
    case 2:
      r.done()
      return authKerberosV5
    case 3:
      r.done()
      return authCleartext
    case 5: {
      const salt = copyRange(r.bytes(4))
      r.done()
      return { _tag: "AuthenticationMD5Password", salt }
    }
    case 7:
      r.done()
      return authGss
    case 8:
      return { _tag: "AuthenticationGSSContinue", data: r.rest() }
    case 9:
      r.done()
      return authSspi
    case 10: {
      const mechanisms: Array<string> = []
      // The list ends with an empty name (a lone NUL); a name is never empty.
      while (true) {
        if (r.pos >= r.end) r.truncated(1)
        if (r.buf[r.pos] === 0) {
          r.pos++
          break
        }
        mechanisms.push(r.cstring())
      }
      r.done()
      return { _tag: "AuthenticationSASL", mechanisms }
    }
    case 11:
      return { _tag: "AuthenticationSASLContinue", data: r.rest() }
    case 12:
      return { _tag: "AuthenticationSASLFinal", data: r.rest() }
    default:
      // The body of an unknown method cannot be validated; it is not needed to report it.
      r.rest()
      return { _tag: "AuthenticationUnknown", code }
  }
}

const encodeCodeOnly = (w: Writer, code: number): void => {
  const at = w.begin(R)
  w.i32(code)
  w.end(at)
}

const encodeCodeAndData = (w: Writer, code: number, data: Uint8Array): void => {
  const at = w.begin(R)
  w.i32(code)
  w.bytes(data)
  w.end(at)
}

export const encodeAuthenticationOk = (w: Writer, _m: AuthenticationOk): void => encodeCodeOnly(w, 0)
export const encodeAuthenticationKerberosV5 = (w: Writer, _m: AuthenticationKerberosV5): void => encodeCodeOnly(w, 2)
export const encodeAuthenticationCleartextPassword = (w: Writer, _m: AuthenticationCleartextPassword): void =>
  encodeCodeOnly(w, 3)
export const encodeAuthenticationMD5Password = (w: Writer, m: AuthenticationMD5Password): void => {
  if (m.salt.length !== 4) fail("EncodeInvalid", `MD5 salt must be 4 bytes, got ${m.salt.length}`, "R")
  encodeCodeAndData(w, 5, m.salt)
}
export const encodeAuthenticationGSS = (w: Writer, _m: AuthenticationGSS): void => encodeCodeOnly(w, 7)
export const encodeAuthenticationGSSContinue = (w: Writer, m: AuthenticationGSSContinue): void =>
  encodeCodeAndData(w, 8, m.data)
export const encodeAuthenticationSSPI = (w: Writer, _m: AuthenticationSSPI): void => encodeCodeOnly(w, 9)
export const encodeAuthenticationSASL = (w: Writer, m: AuthenticationSASL): void => {
  const at = w.begin(R)
  w.i32(10)
  for (const name of m.mechanisms) {
    // An empty name would read back as the end of the list.
    if (name.length === 0) fail("EncodeInvalid", "SASL mechanism name is empty", "R")
    w.cstring(name)
  }
  w.u8(0)
  w.end(at)
}
export const encodeAuthenticationSASLContinue = (w: Writer, m: AuthenticationSASLContinue): void =>
  encodeCodeAndData(w, 11, m.data)
export const encodeAuthenticationSASLFinal = (w: Writer, m: AuthenticationSASLFinal): void =>
  encodeCodeAndData(w, 12, m.data)
export const encodeAuthenticationUnknown = (w: Writer, m: AuthenticationUnknown): void => {
  switch (m.code) {
    case 0:
    case 2:
    case 3:
    case 5:
    case 7:
    case 8:
    case 9:
    case 10:
    case 11:
    case 12:
      fail("EncodeInvalid", `authentication code ${m.code} is a known method, not AuthenticationUnknown`, "R")
  }
  encodeCodeOnly(w, m.code)
}

// ---------------------------------------------------------------------------------------------
// Frontend (all type 'p')
// ---------------------------------------------------------------------------------------------

export const PasswordMessage = Schema.TaggedStruct("PasswordMessage", { password: Schema.String })
export type PasswordMessage = typeof PasswordMessage.Type
export const SASLInitialResponse = Schema.TaggedStruct("SASLInitialResponse", {
  mechanism: Schema.String,
  /** null: no initial response (length -1). */
  data: Schema.NullOr(Schema.Uint8Array)
})
export type SASLInitialResponse = typeof SASLInitialResponse.Type
export const SASLResponse = Schema.TaggedStruct("SASLResponse", { data: Schema.Uint8Array })
export type SASLResponse = typeof SASLResponse.Type
export const GSSResponse = Schema.TaggedStruct("GSSResponse", { data: Schema.Uint8Array })
export type GSSResponse = typeof GSSResponse.Type

/** Which 'p' message the server expects; the bytes alone cannot tell. */
export type PasswordContext = "password" | "sasl-initial" | "sasl" | "gss"

export const encodePasswordMessage = (w: Writer, m: PasswordMessage): void => {
  const at = w.begin(p)
  w.cstring(m.password)
  w.end(at)
}
export const decodePasswordMessage = (r: Reader): PasswordMessage => {
  const password = r.cstring()
  r.done()
  return { _tag: "PasswordMessage", password }
}

export const encodeSASLInitialResponse = (w: Writer, m: SASLInitialResponse): void => {
  const at = w.begin(p)
  w.cstring(m.mechanism)
  if (m.data === null) w.raw32(-1)
  else {
    w.raw32(m.data.length)
    w.bytes(m.data)
  }
  w.end(at)
}
export const decodeSASLInitialResponse = (r: Reader): SASLInitialResponse => {
  const mechanism = r.cstring()
  const at = r.pos
  const n = r.i32()
  let data: Uint8Array | null = null
  if (n !== -1) {
    if (n < 0) fail("LengthOutOfRange", `SASL initial response has negative length ${n}`, r.messageType, at)
    data = r.bytes(n)
  }
  r.done()
  return { _tag: "SASLInitialResponse", mechanism, data }
}

export const encodeSASLResponse = (w: Writer, m: SASLResponse): void => {
  const at = w.begin(p)
  w.bytes(m.data)
  w.end(at)
}
export const decodeSASLResponse = (r: Reader): SASLResponse => ({ _tag: "SASLResponse", data: r.rest() })

export const encodeGSSResponse = (w: Writer, m: GSSResponse): void => {
  const at = w.begin(p)
  w.bytes(m.data)
  w.end(at)
}
export const decodeGSSResponse = (r: Reader): GSSResponse => ({ _tag: "GSSResponse", data: r.rest() })

/** Decodes a 'p' body as the message `context` says the server is waiting for. */
export const decodePasswordFamily = (
  r: Reader,
  context: PasswordContext
): PasswordMessage | SASLInitialResponse | SASLResponse | GSSResponse => {
  switch (context) {
    case "password":
      return decodePasswordMessage(r)
    case "sasl-initial":
      return decodeSASLInitialResponse(r)
    case "sasl":
      return decodeSASLResponse(r)
    case "gss":
      return decodeGSSResponse(r)
  }
}
