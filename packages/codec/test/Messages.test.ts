import { assert, describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import * as fc from "fast-check"
import { BackendMessage, BackendType, decodeBackend, encodeBackend } from "../src/BackendMessage.ts"
import { Framer } from "../src/Frame.ts"
import { decodeFrontend, decodeStartupPacket, encodeFrontend, FrontendMessage, FrontendType } from "../src/FrontendMessage.ts"
import { ProtocolError } from "../src/ProtocolError.ts"
import { scanDataRow } from "../src/Query.ts"
import {
  decodeGssEncResponse,
  decodeSslResponse,
  encodeGssEncResponse,
  encodeSslResponse,
  PROTOCOL_3_0,
  PROTOCOL_3_2
} from "../src/Startup.ts"
import { Writer } from "../src/internal/Writer.ts"
import {
  anyBackend,
  anyTypedFrontend,
  backendArbitraries,
  encodeBackendAll,
  encodeFrontendAll,
  frameAll,
  frontendArbitraries,
  passwordContextOf,
  roundTripBackend,
  roundTripFrontend,
  STARTUP_TAGS
} from "./arbitraries.ts"

const RUNS = 200

/** Runs `f` and returns the ProtocolError it throws (fails the test if it throws anything else or nothing). */
const protocolError = (f: () => unknown): ProtocolError => {
  try {
    f()
  } catch (e) {
    if (e instanceof ProtocolError) return e
    throw new Error(`expected a ProtocolError, got ${String(e)}`)
  }
  throw new Error("expected a ProtocolError, but nothing was thrown")
}

const u8 = (...parts: ReadonlyArray<number | string | ReadonlyArray<number>>): Uint8Array => {
  const out: Array<number> = []
  for (const p of parts) {
    if (typeof p === "number") out.push(p)
    else if (typeof p === "string") for (const c of p) out.push(c.charCodeAt(0))
    else out.push(...p)
  }
  return Uint8Array.from(out)
}
const i16 = (v: number) => [(v >> 8) & 0xff, v & 0xff]
const i32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]

/** Decodes a backend message body given as bytes. */
const backend = (type: string, body: Uint8Array) => decodeBackend(type.charCodeAt(0), body, 0, body.length)
const frontend = (type: string, body: Uint8Array, context?: "password" | "sasl-initial" | "sasl" | "gss") =>
  decodeFrontend(type.charCodeAt(0), body, 0, body.length, context)

describe("backend messages round-trip (encode → frame → decode)", () => {
  for (const [tag, arbitrary] of Object.entries(backendArbitraries) as Array<[string, fc.Arbitrary<BackendMessage>]>) {
    it(tag, () => {
      fc.assert(
        fc.property(arbitrary, (m) => {
          const bytes = encodeBackendAll([m])
          const frames = frameAll([bytes])
          assert.strictEqual(frames.length, 1)
          assert.strictEqual(frames[0]!.type, BackendType[m._tag])
          expect(roundTripBackend([m])).toEqual([m])
          // Re-encoding the decoded message reproduces the bytes exactly.
          const again = encodeBackendAll(roundTripBackend([m]))
          expect(again).toEqual(bytes)
        }),
        { numRuns: RUNS }
      )
    })
  }

  it("a stream of many messages", () => {
    fc.assert(
      fc.property(fc.array(anyBackend, { maxLength: 30 }), (messages) => {
        expect(roundTripBackend(messages)).toEqual(messages)
      }),
      { numRuns: RUNS }
    )
  })
})

describe("frontend messages round-trip (encode → frame → decode, the mock-server direction)", () => {
  for (const [tag, arbitrary] of Object.entries(frontendArbitraries) as Array<[string, fc.Arbitrary<FrontendMessage>]>) {
    it(tag, () => {
      fc.assert(
        fc.property(arbitrary, (m) => {
          const bytes = encodeFrontendAll([m])
          if (!STARTUP_TAGS.has(m._tag)) {
            assert.strictEqual(bytes[0], FrontendType[m._tag as keyof typeof FrontendType])
          }
          const decoded = roundTripFrontend([m])
          expect(decoded).toEqual([m])
          expect(encodeFrontendAll(decoded)).toEqual(bytes)
        }),
        { numRuns: RUNS }
      )
    })
  }

  it("a startup packet followed by many typed messages", () => {
    fc.assert(
      fc.property(frontendArbitraries.StartupMessage, fc.array(anyTypedFrontend, { maxLength: 30 }), (s, rest) => {
        const messages = [s, ...rest]
        expect(roundTripFrontend(messages)).toEqual(messages)
      }),
      { numRuns: RUNS }
    )
  })

  it("protocol versions 3.0 and 3.2 encode as 196608 and 196610", () => {
    for (const [minor, code] of [[0, PROTOCOL_3_0], [2, PROTOCOL_3_2]] as const) {
      const bytes = encodeFrontendAll([
        { _tag: "StartupMessage", majorVersion: 3, minorVersion: minor, parameters: { user: "u", "_pq_.x": "y" } }
      ])
      expect(Array.from(bytes.subarray(4, 8))).toEqual(i32(code))
      expect(decodeStartupPacket(bytes, 4, bytes.length)).toEqual({
        _tag: "StartupMessage",
        majorVersion: 3,
        minorVersion: minor,
        parameters: { user: "u", "_pq_.x": "y" }
      })
    }
  })

  it("request codes: SSLRequest 80877103, GSSENCRequest 80877104, CancelRequest 80877102", () => {
    const ssl = encodeFrontendAll([{ _tag: "SSLRequest" }])
    expect(Array.from(ssl)).toEqual([...i32(8), ...i32(80877103)])
    const gss = encodeFrontendAll([{ _tag: "GSSENCRequest" }])
    expect(Array.from(gss)).toEqual([...i32(8), ...i32(80877104)])
    const cancel = encodeFrontendAll([{ _tag: "CancelRequest", processId: 7, secretKey: u8(1, 2, 3, 4) }])
    expect(Array.from(cancel)).toEqual([...i32(16), ...i32(80877102), ...i32(7), 1, 2, 3, 4])
  })

  it("a startup parameter named __proto__ is an own property, not the prototype", () => {
    const body = u8(i32(PROTOCOL_3_0), "__proto__", 0, "x", 0, 0)
    const m = decodeStartupPacket(body, 0, body.length)
    assert(m._tag === "StartupMessage")
    assert.strictEqual(Object.getPrototypeOf(m.parameters), Object.prototype)
    assert.strictEqual(Object.getOwnPropertyDescriptor(m.parameters, "__proto__")?.value, "x")
  })
})

describe("Schema models agree with the hand-written decoders", () => {
  const isBackend = Schema.is(BackendMessage)
  const isFrontend = Schema.is(FrontendMessage)

  it("every decoded backend message is an instance of the BackendMessage schema", () => {
    fc.assert(
      fc.property(anyBackend, (m) => {
        assert.isTrue(isBackend(m))
        for (const d of roundTripBackend([m])) assert.isTrue(isBackend(d))
      }),
      { numRuns: RUNS }
    )
  })

  it("every decoded frontend message is an instance of the FrontendMessage schema", () => {
    fc.assert(
      fc.property(fc.oneof(...Object.values(frontendArbitraries) as Array<fc.Arbitrary<FrontendMessage>>), (m) => {
        assert.isTrue(isFrontend(m))
        for (const d of roundTripFrontend([m])) assert.isTrue(isFrontend(d))
      }),
      { numRuns: RUNS }
    )
  })

  it("the schemas reject what the wire cannot carry", () => {
    assert.isFalse(isBackend({ _tag: "ReadyForQuery", status: "X" }))
    assert.isFalse(isBackend({ _tag: "DataRow", values: ["text"] }))
    assert.isFalse(isFrontend({ _tag: "Describe", kind: "Q", name: "" }))
  })
})

describe("SSL / GSSENC one-byte answers", () => {
  it("round-trip through the framer's byte mode", () => {
    for (const accepted of [true, false]) {
      const w = new Writer()
      encodeSslResponse(w, { _tag: "SslResponse", accepted })
      encodeGssEncResponse(w, { _tag: "GssEncResponse", accepted })
      const bytes = w.take()
      const got: Array<unknown> = []
      const framer = new Framer({ mode: "byte" })
      framer.push(bytes, (type) => {
        got.push(got.length === 0 ? decodeSslResponse(type) : decodeGssEncResponse(type))
        framer.mode = "byte"
      })
      expect(got).toEqual([
        { _tag: "SslResponse", accepted },
        { _tag: "GssEncResponse", accepted }
      ])
    }
  })

  it("refuse any other byte", () => {
    expect(protocolError(() => decodeSslResponse(0x45)).reason).toBe("InvalidValue")
    expect(protocolError(() => decodeSslResponse(0x47)).reason).toBe("InvalidValue")
    expect(protocolError(() => decodeGssEncResponse(0x53)).reason).toBe("InvalidValue")
  })
})

describe("negative cases", () => {
  it("unknown type bytes name the byte", () => {
    const e = protocolError(() => backend("?", u8()))
    expect(e.reason).toBe("UnknownMessageType")
    expect(e.message).toContain("'?'")
    expect(protocolError(() => decodeBackend(0x00, u8(), 0, 0)).message).toContain("0x00")
    expect(protocolError(() => frontend("Z", u8())).reason).toBe("UnknownMessageType")
  })

  it("unknown authentication codes decode as AuthenticationUnknown", () => {
    expect(backend("R", u8(i32(6)))).toEqual({ _tag: "AuthenticationUnknown", code: 6 })
    expect(backend("R", u8(i32(99), 1, 2, 3))).toEqual({ _tag: "AuthenticationUnknown", code: 99 })
    expect(protocolError(() => encodeBackendAll([{ _tag: "AuthenticationUnknown", code: 10 }])).reason).toBe(
      "EncodeInvalid"
    )
  })

  it("fixed-size messages refuse short and trailing bytes", () => {
    expect(protocolError(() => backend("R", u8(0, 0, 0))).reason).toBe("Truncated")
    expect(protocolError(() => backend("R", u8(i32(0), 0))).reason).toBe("TrailingBytes")
    expect(protocolError(() => backend("R", u8(i32(5), 1, 2, 3))).reason).toBe("Truncated")
    expect(protocolError(() => backend("1", u8(0))).reason).toBe("TrailingBytes")
    expect(protocolError(() => backend("Z", u8())).reason).toBe("Truncated")
    expect(protocolError(() => backend("Z", u8("II"))).reason).toBe("TrailingBytes")
    expect(protocolError(() => frontend("S", u8(1))).reason).toBe("TrailingBytes")
  })

  it("ReadyForQuery refuses a status other than I, T, E", () => {
    for (const b of [0, 0x41, 0x69, 0xff]) {
      const e = protocolError(() => backend("Z", u8(b)))
      expect(e.reason).toBe("InvalidValue")
      expect(e.messageType).toBe("Z")
    }
    expect(protocolError(() => encodeBackendAll([{ _tag: "ReadyForQuery", status: "X" as "I" }])).reason).toBe(
      "EncodeInvalid"
    )
  })

  it("unterminated strings", () => {
    expect(protocolError(() => backend("C", u8("SELECT 1"))).reason).toBe("UnterminatedString")
    expect(protocolError(() => backend("S", u8("a", 0, "b"))).reason).toBe("UnterminatedString")
    expect(protocolError(() => backend("E", u8("S", "ERROR"))).reason).toBe("UnterminatedString")
    expect(protocolError(() => backend("E", u8("SERROR", 0))).reason).toBe("Truncated") // no terminator byte
    expect(protocolError(() => backend("R", u8(i32(10), "SCRAM-SHA-256", 0))).reason).toBe("Truncated")
    expect(protocolError(() => frontend("Q", u8("select"))).reason).toBe("UnterminatedString")
    const startup = u8(i32(PROTOCOL_3_0), "user", 0, "bob")
    expect(protocolError(() => decodeStartupPacket(startup, 0, startup.length)).reason).toBe("UnterminatedString")
  })

  it("error fields: unknown codes are kept, duplicate codes keep the last", () => {
    const m = backend("N", u8("SNOTICE", 0, "Mhi", 0, "Zzed", 0, "Mbye", 0, 0))
    expect(m).toEqual({ _tag: "NoticeResponse", fields: { severityLocalized: "NOTICE", message: "bye", unknown: { Z: "zed" } } })
    expect(backend("E", u8(0))).toEqual({ _tag: "ErrorResponse", fields: {} })
    expect(protocolError(() => backend("E", u8(0, 0))).reason).toBe("TrailingBytes")
    expect(
      protocolError(() => encodeBackendAll([{ _tag: "ErrorResponse", fields: { unknown: { M: "clash" } } }])).reason
    ).toBe("EncodeInvalid")
    expect(
      protocolError(() => encodeBackendAll([{ _tag: "ErrorResponse", fields: { unknown: { ab: "x" } } }])).reason
    ).toBe("EncodeInvalid")
  })

  it("counts larger than the bytes are refused before anything is allocated", () => {
    // RowDescription claiming 32767 fields in 2 bytes.
    expect(protocolError(() => backend("T", u8(i16(32767)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => backend("T", u8(i16(-1)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => backend("D", u8(i16(3), i32(-1), i32(-1)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => backend("t", u8(i16(65535)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => backend("G", u8(0, i16(2), i16(0)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => backend("v", u8(i32(2), i32(0x7fffffff)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => backend("v", u8(i32(2), i32(-1)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => frontend("P", u8(0, "q", 0, i16(2), i32(23)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => frontend("B", u8(0, 0, i16(0), i16(4000)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => frontend("F", u8(i32(1), i16(9)))).reason).toBe("LengthOutOfRange")
  })

  it("negative and over-long value lengths", () => {
    // DataRow column length -2, and a column that runs past the message.
    expect(protocolError(() => backend("D", u8(i16(1), i32(-2)))).reason).toBe("LengthOutOfRange")
    const pastEnd = protocolError(() => backend("D", u8(i16(2), i32(1), 7, i32(5), 1, 2)))
    expect(pastEnd.reason).toBe("Truncated")
    expect(pastEnd.messageType).toBe("D")
    expect(protocolError(() => backend("D", u8(i16(1), i32(0x7fffffff)))).reason).toBe("Truncated")
    expect(protocolError(() => backend("D", u8(i16(1), i32(0), 9))).reason).toBe("TrailingBytes")
    expect(protocolError(() => backend("V", u8(i32(-5)))).reason).toBe("LengthOutOfRange")
    expect(protocolError(() => backend("V", u8(i32(3), 1))).reason).toBe("Truncated")
    expect(protocolError(() => frontend("B", u8(0, 0, i16(0), i16(1), i32(-3), i16(0)))).reason).toBe(
      "LengthOutOfRange"
    )
    expect(protocolError(() => frontend("p", u8("SCRAM", 0, i32(-2)), "sasl-initial")).reason).toBe(
      "LengthOutOfRange"
    )
    expect(protocolError(() => frontend("p", u8("SCRAM", 0, i32(10), 1), "sasl-initial")).reason).toBe("Truncated")
  })

  it("bad format codes", () => {
    const field = (formatCode: number) => u8(i16(1), "a", 0, i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(formatCode))
    expect(backend("T", field(1))).toMatchObject({ fields: [{ name: "a", typeOid: 25, format: 1 }] })
    expect(protocolError(() => backend("T", field(2))).reason).toBe("InvalidValue")
    expect(protocolError(() => backend("T", field(-1))).reason).toBe("InvalidValue")
    expect(protocolError(() => backend("H", u8(2, i16(0)))).reason).toBe("InvalidValue")
    expect(protocolError(() => backend("H", u8(0, i16(1), i16(7)))).reason).toBe("InvalidValue")
    expect(protocolError(() => frontend("B", u8(0, 0, i16(1), i16(3), i16(0), i16(0)))).reason).toBe("InvalidValue")
    expect(protocolError(() => frontend("F", u8(i32(1), i16(0), i16(0), i16(2)))).reason).toBe("InvalidValue")
    expect(protocolError(() => frontend("D", u8("X", 0))).reason).toBe("InvalidValue")
    expect(protocolError(() => frontend("C", u8("s", 0))).reason).toBe("InvalidValue")
    const encodeBadFormat = () =>
      encodeFrontendAll([
        { _tag: "Bind", portal: "", statement: "", parameterFormats: [2 as 0], parameters: [], resultFormats: [] }
      ])
    expect(protocolError(encodeBadFormat).reason).toBe("EncodeInvalid")
  })

  it("cancel keys must be 4..256 bytes (3-byte and 257-byte keys are refused both ways)", () => {
    for (const n of [0, 3, 257]) {
      const key = new Uint8Array(n)
      expect(protocolError(() => backend("K", u8(i32(1), Array.from(key)))).reason).toBe("LengthOutOfRange")
      const cancel = u8(i32(80877102), i32(1), Array.from(key))
      expect(protocolError(() => decodeStartupPacket(cancel, 0, cancel.length)).reason).toBe("LengthOutOfRange")
      expect(
        protocolError(() => encodeBackendAll([{ _tag: "BackendKeyData", processId: 1, secretKey: key }])).reason
      ).toBe("EncodeInvalid")
      expect(
        protocolError(() => encodeFrontendAll([{ _tag: "CancelRequest", processId: 1, secretKey: key }])).reason
      ).toBe("EncodeInvalid")
    }
    for (const n of [4, 32, 256]) {
      const key = Uint8Array.from({ length: n }, (_, i) => i)
      expect(backend("K", u8(i32(42), Array.from(key)))).toEqual({ _tag: "BackendKeyData", processId: 42, secretKey: key })
    }
  })

  it("NegotiateProtocolVersion carries the whole version number (3 << 16 | minor), as PostgreSQL sends it", () => {
    const m = { _tag: "NegotiateProtocolVersion" as const, newestMinorVersion: 2, unrecognizedOptions: ["_pq_.x"] }
    const bytes = encodeBackendAll([m])
    expect(Array.from(bytes.subarray(5, 9))).toEqual(i32(PROTOCOL_3_2))
    expect(backend("v", u8(i32(PROTOCOL_3_2), i32(0)))).toEqual({ ...m, unrecognizedOptions: [] })
    // A bare minor version (the spec's wording) is accepted too.
    expect(backend("v", u8(i32(1), i32(0)))).toMatchObject({ newestMinorVersion: 1 })
    expect(protocolError(() => backend("v", u8(i32(4 << 16), i32(0)))).reason).toBe("InvalidValue")
    expect(protocolError(() => backend("v", u8(i32(-1), i32(0)))).reason).toBe("InvalidValue")
    expect(protocolError(() => encodeBackendAll([{ ...m, newestMinorVersion: 65536 }])).reason).toBe("EncodeInvalid")
  })

  it("startup packets: unknown request codes, truncated codes", () => {
    const unknown = u8(i32(80877199))
    expect(protocolError(() => decodeStartupPacket(unknown, 0, 4)).reason).toBe("UnknownMessageType")
    expect(protocolError(() => decodeStartupPacket(u8(1, 2), 0, 2)).reason).toBe("Truncated")
    const ssl = u8(i32(80877103), 0)
    expect(protocolError(() => decodeStartupPacket(ssl, 0, ssl.length)).reason).toBe("TrailingBytes")
  })

  it("encoders refuse counts the field cannot carry", () => {
    const tooManyColumns = { _tag: "DataRow" as const, values: new Array<null>(32768).fill(null) }
    const e = protocolError(() => encodeBackendAll([tooManyColumns]))
    expect(e.reason).toBe("EncodeInvalid")
    expect(e.message).toContain("32767")
    // UInt16 counts allow up to 65535 (PostgreSQL's parameter limit) but no more.
    const bind = (n: number): FrontendMessage => ({
      _tag: "Bind",
      portal: "",
      statement: "",
      parameterFormats: [],
      parameters: new Array<null>(n).fill(null),
      resultFormats: []
    })
    expect(roundTripFrontend([bind(65535)])).toEqual([bind(65535)])
    expect(protocolError(() => encodeFrontendAll([bind(65536)])).reason).toBe("EncodeInvalid")
    const parse = { _tag: "Parse" as const, name: "", query: "", parameterTypes: new Array<number>(65536).fill(0) }
    expect(protocolError(() => encodeFrontendAll([parse])).reason).toBe("EncodeInvalid")
    expect(protocolError(() => encodeFrontendAll([{ _tag: "Query", sql: "a\u0000b" }])).reason).toBe("EncodeInvalid")
    expect(protocolError(() => encodeBackendAll([{ _tag: "AuthenticationSASL", mechanisms: [""] }])).reason).toBe(
      "EncodeInvalid"
    )
    expect(
      protocolError(() => encodeBackendAll([{ _tag: "AuthenticationMD5Password", salt: new Uint8Array(3) }])).reason
    ).toBe("EncodeInvalid")
  })

  it("encoders refuse messages over maxMessageSize, writing nothing", () => {
    const w = new Writer(16, 100)
    encodeBackend(w, { _tag: "CopyData", data: new Uint8Array(96) })
    const e = protocolError(() => encodeBackend(w, { _tag: "CopyData", data: new Uint8Array(97) }))
    expect(e.reason).toBe("MessageTooLarge")
    expect(w.length).toBe(0)
    const big = { _tag: "StartupMessage" as const, majorVersion: 3, minorVersion: 0, parameters: { user: "x".repeat(10000) } }
    expect(protocolError(() => encodeFrontend(new Writer(), big)).reason).toBe("MessageTooLarge")
  })
})

describe("scanDataRow", () => {
  it("agrees with decodeDataRow on valid rows and fills offsets", () => {
    fc.assert(
      fc.property(backendArbitraries.DataRow, (m) => {
        const bytes = encodeBackendAll([m])
        const n = m.values.length
        const offsets = new Int32Array(2 * n)
        assert.strictEqual(scanDataRow(bytes, 5, bytes.length, n, offsets), n)
        assert.strictEqual(scanDataRow(bytes, 5, bytes.length, -1), n)
        for (let i = 0; i < n; i++) {
          const v = m.values[i]!
          if (v === null) assert.strictEqual(offsets[2 * i + 1], -1)
          else expect(bytes.subarray(offsets[2 * i]!, offsets[2 * i]! + offsets[2 * i + 1]!)).toEqual(v)
        }
      }),
      { numRuns: RUNS }
    )
  })

  it("fails exactly when decodeDataRow fails, with the same reason", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (body) => {
        let decodeReason: string | undefined
        let scanReason: string | undefined
        try {
          decodeBackend(0x44, body, 0, body.length)
        } catch (e) {
          decodeReason = (e as ProtocolError).reason
        }
        try {
          scanDataRow(body, 0, body.length, -1)
        } catch (e) {
          scanReason = (e as ProtocolError).reason
        }
        assert.strictEqual(scanReason, decodeReason)
      }),
      { numRuns: 2000 }
    )
  })

  it("refuses a column count other than the expected one, a short offsets array, a column past the end", () => {
    const row = u8(i16(2), i32(1), 9, i32(-1))
    expect(scanDataRow(row, 0, row.length, 2)).toBe(2)
    expect(protocolError(() => scanDataRow(row, 0, row.length, 3)).reason).toBe("InvalidValue")
    expect(protocolError(() => scanDataRow(row, 0, row.length, 2, new Int32Array(3))).reason).toBe("InvalidValue")
    expect(protocolError(() => scanDataRow(row, 0, row.length - 1, 2)).reason).toBe("Truncated")
    const past = u8(i16(1), i32(100), 1, 2, 3)
    expect(protocolError(() => scanDataRow(past, 0, past.length, 1)).reason).toBe("Truncated")
  })
})

describe("decodeFrontend's 'p' context", () => {
  it("the same bytes decode as each of the four messages", () => {
    const body = u8("SCRAM-SHA-256", 0, i32(3), 1, 2, 3)
    expect(frontend("p", body, "sasl-initial")).toEqual({
      _tag: "SASLInitialResponse",
      mechanism: "SCRAM-SHA-256",
      data: u8(1, 2, 3)
    })
    expect(frontend("p", body, "sasl")).toEqual({ _tag: "SASLResponse", data: body })
    expect(frontend("p", body, "gss")).toEqual({ _tag: "GSSResponse", data: body })
    expect(protocolError(() => frontend("p", body)).reason).toBe("TrailingBytes")
    expect(frontend("p", u8("secret", 0))).toEqual({ _tag: "PasswordMessage", password: "secret" })
    expect(frontend("p", u8("M", 0, i32(-1)), "sasl-initial")).toEqual({
      _tag: "SASLInitialResponse",
      mechanism: "M",
      data: null
    })
  })

  it("passwordContextOf picks the context the round-trip needs", () => {
    fc.assert(
      fc.property(anyTypedFrontend, (m) => {
        const bytes = encodeFrontendAll([m])
        const frames = frameAll([bytes])
        const f = frames[0]!
        expect(decodeFrontend(f.type, f.body, 0, f.body.length, passwordContextOf(m))).toEqual(m)
      }),
      { numRuns: RUNS }
    )
  })
})
