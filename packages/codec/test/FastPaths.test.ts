/**
 * The hot-path shortcuts agree with the general code they shortcut:
 * - float text: the byte-level parser (Clinger's fast path) gives exactly `Number()`'s double, and
 *   accepts exactly PostgreSQL's float syntax;
 * - timestamp text: the byte-level ISO parser never accepts what the regex parser refuses, never
 *   disagrees with it, and does take the server's usual output;
 * - timestamp binary encoding of a Date: the double path writes the bytes the bigint path writes;
 * - RowDecoder: the generated per-shape row function and the generic loop give the same rows and
 *   the same errors (reason, message, offset);
 * - DataRow: `decodeBackend`'s views hold exactly the column bytes; the framer's copy of only the
 *   frame that spans chunks gives the same frames at every chunk size.
 */
import { describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as NodeAssert from "node:assert/strict"
import { decodeBackend } from "../src/BackendMessage.ts"
import { Framer } from "../src/Frame.ts"
import { encodeUtf8 } from "../src/internal/utf8.ts"
import { Writer } from "../src/internal/Writer.ts"
import { ProtocolError } from "../src/ProtocolError.ts"
import { decodeDataRowBody, encodeDataRow } from "../src/Query.ts"
import { RowDecoder } from "../src/RowDecoder.ts"
import { TypeOid } from "../src/TypeOid.ts"
import { TypeRegistry } from "../src/TypeRegistry.ts"
import { float4, float8 } from "../src/values/Primitives.ts"
import { parseDateTimeFastForTest, parseDateTimeForTest, PgTimestamp } from "../src/values/Temporal.ts"

const FLOAT_SYNTAX = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

/** What float text decoded to before the fast path: the regex screen, then Number(). */
const floatOracle = (s: string): number | "invalid" => {
  if (s === "NaN") return NaN
  if (s === "Infinity") return Infinity
  if (s === "-Infinity") return -Infinity
  return FLOAT_SYNTAX.test(s) ? Number(s) : "invalid"
}

const decodeOrInvalid = (decode: (b: Uint8Array, s: number, e: number) => number, s: string): number | "invalid" => {
  // Decoded from the middle of a buffer, with digits around it that must not be read.
  const bytes = encodeUtf8(`9${s}9`)
  try {
    return decode(bytes, 1, bytes.length - 1)
  } catch (e) {
    if (e instanceof ProtocolError && e.reason === "InvalidValue") return "invalid"
    throw e
  }
}

const floatTexts = fc.oneof(
  fc.double().map(String),
  fc.double({ noDefaultInfinity: true, noNaN: true }).chain((d) => fc.integer({ min: 0, max: 20 }).map((p) => d.toExponential(p))),
  fc.double({ noDefaultInfinity: true, noNaN: true }).chain((d) => fc.integer({ min: 1, max: 21 }).map((p) => d.toPrecision(p))),
  fc.tuple(fc.integer({ min: -1e9, max: 1e9 }), fc.integer({ min: 0, max: 12 })).map(([n, k]) => (n / 10 ** k).toFixed(k)),
  fc.string({ unit: fc.constantFrom(..."0123456789.eE+-"), maxLength: 12 })
)

describe("float text fast path", () => {
  it("agrees with Number() and the syntax screen on every input", () => {
    fc.assert(
      fc.property(floatTexts, (s) => {
        const want = floatOracle(s)
        NodeAssert.ok(Object.is(decodeOrInvalid(float8.decodeText, s), want), `float8 ${JSON.stringify(s)}`)
        const want4 = want === "invalid" ? want : Math.fround(want)
        NodeAssert.ok(Object.is(decodeOrInvalid(float4.decodeText, s), want4), `float4 ${JSON.stringify(s)}`)
      }),
      { numRuns: 20000 }
    )
  })

  it("edge cases: signs, zeros, exponents, digits beyond 2^53, the specials", () => {
    const cases = [
      "-0", "-0.0", "+0", "0", "00012", "1.", ".5", "-.5", "1e22", "1e23", "1e-22", "1e-23", "123456789012345e22",
      "1234567890123456", "9007199254740993", "0.30000000000000004", "4.9406564584124654e-324",
      "1.7976931348623157e+308", "1e400", "-1e400", "1e-400", "1e99999999999", "NaN", "Infinity", "-Infinity",
      "+Infinity", "nan", "", ".", "-", "1e", "1e+", "--1", "1..2", " 1", "1 ", "0x10", "1_0"
    ]
    for (const s of cases) {
      NodeAssert.ok(Object.is(decodeOrInvalid(float8.decodeText, s), floatOracle(s)), JSON.stringify(s))
    }
  })
})

const pad = (n: number, w: number) => String(n).padStart(w, "0")

/** Strings in and around the ISO shape the server prints, with field values off by a little. */
const dateTimeTexts = fc
  .record({
    year: fc.integer({ min: 0, max: 10100 }),
    month: fc.integer({ min: 0, max: 13 }),
    day: fc.integer({ min: 0, max: 32 }),
    time: fc.option(
      fc.record({
        sep: fc.constantFrom(" ", "T", "t"),
        h: fc.integer({ min: 0, max: 25 }),
        m: fc.integer({ min: 0, max: 60 }),
        s: fc.integer({ min: 0, max: 61 }),
        fraction: fc.option(fc.stringMatching(/^[0-9]{1,8}$/), { nil: undefined }),
        zone: fc.option(
          fc.oneof(
            fc.constantFrom("Z", "+0530", " +05", "+5", "+05:3"),
            fc.tuple(fc.constantFrom("+", "-"), fc.integer({ min: 0, max: 16 }), fc.option(fc.integer({ min: 0, max: 60 })), fc.option(fc.integer({ min: 0, max: 60 })))
              .map(([sg, h, m, s]) => `${sg}${pad(h, 2)}${m === null ? "" : `:${pad(m, 2)}${s === null ? "" : `:${pad(s, 2)}`}`}`)
          ),
          { nil: undefined }
        )
      }),
      { nil: undefined }
    ),
    bc: fc.boolean(),
    yearWidth: fc.constantFrom(4, 4, 4, 5),
    monthWidth: fc.constantFrom(2, 2, 1)
  })
  .map(({ bc, day, month, monthWidth, time, year, yearWidth }) => {
    let s = `${pad(year, yearWidth)}-${pad(month, monthWidth)}-${pad(day, 2)}`
    if (time !== undefined) {
      s += `${time.sep}${pad(time.h, 2)}:${pad(time.m, 2)}:${pad(time.s, 2)}`
      if (time.fraction !== undefined) s += `.${time.fraction}`
      if (time.zone !== undefined) s += time.zone
    }
    return bc ? s + " BC" : s
  })

describe("timestamp text fast path", () => {
  it("never disagrees with the regex parser", () => {
    let taken = 0
    fc.assert(
      fc.property(dateTimeTexts, (s) => {
        const bytes = encodeUtf8(`x${s}x`)
        const fast = parseDateTimeFastForTest(bytes, 1, bytes.length - 1)
        if (fast === undefined) return
        taken++
        NodeAssert.deepStrictEqual(fast, parseDateTimeForTest(s), JSON.stringify(s))
      }),
      { numRuns: 20000 }
    )
    NodeAssert.ok(taken > 1000, `the fast path took only ${taken} inputs`)
  })

  it("takes what the server prints, and decodes it as before", () => {
    const registry = TypeRegistry.make()
    const lossless = TypeRegistry.make({ temporal: "lossless" })
    for (const s of ["2024-01-02 03:04:05+00", "2024-02-29 23:59:59.999999+05:30", "1999-12-31 00:00:00.5-03", "2024-01-02 03:04:05+00:09:21"]) {
      const bytes = encodeUtf8(s)
      NodeAssert.notStrictEqual(parseDateTimeFastForTest(bytes, 0, bytes.length), undefined, s)
      const iso = s.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00").replace(/:(\d\d):(\d\d)$/, ":$1")
      const date = registry.get(TypeOid.timestamptz).decodeText(bytes, 0, bytes.length) as Date
      if (!s.endsWith(":09:21")) NodeAssert.strictEqual(date.getTime(), Date.parse(iso), s)
      const exact = lossless.get(TypeOid.timestamptz).decodeText(bytes, 0, bytes.length) as { value: bigint }
      NodeAssert.strictEqual(exact.value / 1000n - (exact.value % 1000n < 0n ? 1n : 0n), BigInt(date.getTime()), s)
    }
    // timestamp (without time zone) still refuses an offset, through the regex path's error.
    const withOffset = encodeUtf8("2024-01-02 03:04:05+00")
    NodeAssert.throws(() => registry.get(TypeOid.timestamp).decodeText(withOffset, 0, withOffset.length), ProtocolError)
  })
})

describe("timestamp binary encoding of a Date without bigint", () => {
  it("writes the bytes the bigint path writes, across and beyond the exact range", () => {
    const registry = TypeRegistry.make()
    const bytesOf = (oid: number, v: unknown) => {
      const w = new Writer()
      registry.get(oid).encodeBinary!(w, v as never)
      return Array.from(w.take())
    }
    const ms = fc.oneof(fc.integer({ min: -8.64e15, max: 8.64e15 }), fc.integer({ min: -1e13, max: 1e13 }), fc.integer({ min: -1e6, max: 1e6 }))
    fc.assert(
      fc.property(ms, (t) => {
        const d = new Date(t)
        for (const oid of [TypeOid.timestamptz, TypeOid.timestamp]) {
          // PgTimestamp.fromDate goes through the bigint path.
          NodeAssert.deepStrictEqual(bytesOf(oid, d), bytesOf(oid, PgTimestamp.fromDate(d)), `${oid} ${t}`)
        }
      }),
      { numRuns: 5000 }
    )
    NodeAssert.throws(() => bytesOf(TypeOid.timestamptz, new Date(NaN)), ProtocolError)
  })
})

/** A DataRow body (Int16 count, then Int32 length + bytes per column; a number is a raw length). */
const rowBody = (cols: ReadonlyArray<Uint8Array | null | number>, count = cols.length): Uint8Array => {
  const w = new Writer()
  w.i16(count)
  for (const c of cols) {
    if (c === null) w.i32(-1)
    else if (typeof c === "number") w.i32(c)
    else w.i32(c.length).bytes(c)
  }
  return w.take()
}

const outcome = (f: () => unknown): unknown => {
  try {
    return { ok: f() }
  } catch (e) {
    if (e instanceof ProtocolError) return { reason: e.reason, message: e.message, offset: e.offset, messageType: e.messageType }
    throw e
  }
}

const columnTypes = [
  { typeOid: TypeOid.int4, format: 0 as const, value: fc.integer().map((n) => encodeUtf8(String(n))) },
  { typeOid: TypeOid.int4, format: 1 as const, value: fc.integer().map((n) => Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255)) },
  { typeOid: TypeOid.text, format: 0 as const, value: fc.string().map(encodeUtf8) },
  { typeOid: TypeOid.float8, format: 0 as const, value: fc.double().map((d) => encodeUtf8(String(d))) },
  { typeOid: TypeOid.timestamptz, format: 0 as const, value: fc.constantFrom("2024-01-02 03:04:05.5+01", "infinity", "bad").map(encodeUtf8) }
]

const rowCases = fc
  .array(
    fc.record({
      name: fc.constantFrom("a", "b", "c", "id", "1", "0", "x y", "\"q\"", "constructor", "toString"),
      type: fc.integer({ min: 0, max: columnTypes.length - 1 })
    }),
    { maxLength: 7 }
  )
  .chain((cols) =>
    fc.record({
      cols: fc.constant(cols),
      values: fc.tuple(...cols.map((c) => fc.option(columnTypes[c.type]!.value, { freq: 5 }))),
      damage: fc.constantFrom("none", "none", "count", "truncate", "trailing", "length")
    })
  )

describe("RowDecoder generated row functions", () => {
  const registry = TypeRegistry.make()

  it("give the generic loop's rows and errors, in both modes", () => {
    fc.assert(
      fc.property(rowCases, ({ cols, damage, values }) => {
        const fields = cols.map((c) => ({ name: c.name, typeOid: columnTypes[c.type]!.typeOid, format: columnTypes[c.type]!.format }))
        let body: Uint8Array = rowBody(values as Array<Uint8Array | null>)
        if (damage === "count") body = rowBody(values as Array<Uint8Array | null>, values.length + 1)
        if (damage === "truncate" && body.length > 2) body = body.subarray(0, body.length - 1)
        if (damage === "trailing") body = Uint8Array.from([...body, 0])
        if (damage === "length" && values.length > 0) body = rowBody([...(values as Array<Uint8Array | null>).slice(1), -2])
        const padded = new Uint8Array(body.length + 6)
        padded.set(body, 3)
        for (const mode of ["object", "array"] as const) {
          const compiled = RowDecoder.make(fields, registry, { mode })
          const generic = RowDecoder.make(fields, registry, { mode, compiled: false })
          const a = outcome(() => compiled.decode(padded, 3, 3 + body.length))
          const b = outcome(() => generic.decode(padded, 3, 3 + body.length))
          NodeAssert.deepStrictEqual(a, b)
          const ok = (a as { ok?: object }).ok
          if (ok !== undefined) NodeAssert.deepStrictEqual(Object.keys(ok), Object.keys((b as { ok: object }).ok))
        }
      }),
      { numRuns: 3000 }
    )
  })

  it("rows wider than the compiled limit and __proto__ columns use the generic loop, with the same results", () => {
    const wide = Array.from({ length: 70 }, (_, i) => ({ name: `c${i % 65}`, typeOid: TypeOid.int4, format: 0 as const }))
    const body = rowBody(wide.map((_, i) => (i % 9 === 0 ? null : encodeUtf8(String(i)))))
    const a = RowDecoder.make(wide, registry).decode(body, 0, body.length) as Record<string, unknown>
    NodeAssert.strictEqual(Object.keys(a).length, 65)
    NodeAssert.strictEqual(a.c0, 65)
    NodeAssert.strictEqual(a.c1, 66)
    NodeAssert.strictEqual(a.c9, null)
    const proto = [{ name: "__proto__", typeOid: TypeOid.int4, format: 0 as const }]
    const p = RowDecoder.make(proto, registry).decode(rowBody([encodeUtf8("5")]), 0, 7) as Record<string, unknown>
    NodeAssert.ok(Object.prototype.hasOwnProperty.call(p, "__proto__"))
    NodeAssert.strictEqual(Object.getPrototypeOf(p), Object.prototype)
  })

  it("two decoders of one shape share the generated function and keep their own codecs", () => {
    const fields = [
      { name: "id", typeOid: TypeOid.int4, format: 0 as const },
      { name: "t", typeOid: TypeOid.text, format: 0 as const }
    ]
    const d1 = RowDecoder.make(fields, registry)
    const d2 = RowDecoder.make(fields, registry)
    const b1 = rowBody([encodeUtf8("1"), null])
    const b2 = rowBody([null, encodeUtf8("x")])
    const r1 = d1.decode(b1, 0, b1.length) as Record<string, unknown>
    const r2 = d2.decode(b2, 0, b2.length) as Record<string, unknown>
    NodeAssert.deepStrictEqual(r1, { id: 1, t: null })
    NodeAssert.deepStrictEqual(r2, { id: null, t: "x" })
    // Same names, other types: the shared function calls each decoder's own codecs.
    const d3 = RowDecoder.make([{ ...fields[0]!, typeOid: TypeOid.text }, fields[1]!], registry)
    NodeAssert.deepStrictEqual(d3.decode(b1, 0, b1.length), { id: "1", t: null })
  })
})

describe("DataRow views and the spanning-frame copy", () => {
  it("decodeBackend's DataRow views hold the column bytes, from a Buffer or a Uint8Array", () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.uint8Array({ maxLength: 20 })), { maxLength: 8 }), fc.nat(7), (values, offset) => {
        const w = new Writer()
        encodeDataRow(w, { _tag: "DataRow", values })
        const frame = w.take()
        for (const make of [(n: number) => new Uint8Array(n), (n: number) => Buffer.alloc(n)]) {
          const buf = make(frame.length + offset + 3)
          buf.set(frame, offset)
          const m = decodeBackend(0x44, buf, offset + 5, offset + frame.length)
          NodeAssert.strictEqual(m._tag, "DataRow")
          const got = (m as { values: ReadonlyArray<Uint8Array | null> }).values
          NodeAssert.deepStrictEqual(got.map((v) => (v === null ? null : Array.from(v))), values.map((v) => (v === null ? null : Array.from(v))))
          NodeAssert.deepStrictEqual(decodeDataRowBody(buf, offset + 5, offset + frame.length), m)
        }
      })
    )
  })

  it("the same frames at every chunk size, including frames that span many chunks", () => {
    const w = new Writer()
    const rows: Array<ReadonlyArray<Uint8Array | null>> = []
    for (let i = 0; i < 60; i++) {
      const values = [encodeUtf8(`row ${i}`), i % 7 === 0 ? null : new Uint8Array(i * 13).fill(i)]
      rows.push(values)
      encodeDataRow(w, { _tag: "DataRow", values })
    }
    const stream = w.take()
    const expected = rows.map((r) => r.map((v) => (v === null ? null : Array.from(v))))
    for (const size of [1, 2, 3, 5, 7, 16, 64, 100, 257, 1000, stream.length]) {
      const framer = new Framer()
      const got: Array<unknown> = []
      for (let p = 0; p < stream.length; p += size) {
        framer.push(stream.subarray(p, Math.min(p + size, stream.length)), (type, buf, start, end) => {
          const m = decodeBackend(type, buf, start, end) as { values: ReadonlyArray<Uint8Array | null> }
          got.push(m.values.map((v) => (v === null ? null : Array.from(v))))
        })
      }
      NodeAssert.deepStrictEqual(got, expected, `chunk size ${size}`)
      NodeAssert.strictEqual(framer.buffered, 0)
    }
  })
})
