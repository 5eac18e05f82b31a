import { describe, it } from "@effect/vitest"
import * as NodeAssert from "node:assert/strict"
import { encodeUtf8 } from "../src/internal/utf8.ts"
import { Writer } from "../src/internal/Writer.ts"
import { ProtocolError } from "../src/ProtocolError.ts"
import { RowDecoder } from "../src/RowDecoder.ts"
import { TypeOid } from "../src/TypeOid.ts"
import { TypeRegistry } from "../src/TypeRegistry.ts"

const registry = TypeRegistry.make()

/** A DataRow body: Int16 count, then Int32 length + bytes per column (null → -1). */
const body = (cols: ReadonlyArray<Uint8Array | null | number>, count = cols.length): Uint8Array => {
  const w = new Writer()
  w.i16(count)
  for (const c of cols) {
    if (c === null) w.i32(-1)
    else if (typeof c === "number") w.i32(c) // a raw length, for malformed rows
    else w.i32(c.length).bytes(c)
  }
  return w.take()
}

const int4Binary = (v: number) => Uint8Array.from([(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff])

const fields = [
  { name: "id", typeOid: TypeOid.int4, format: 1 },
  { name: "name", typeOid: TypeOid.text, format: 0 },
  { name: "tags", typeOid: TypeOid._text, format: 0 }
] as const

const protocolError = (f: () => unknown): ProtocolError => {
  try {
    f()
  } catch (e) {
    if (e instanceof ProtocolError) return e
    throw e
  }
  throw new Error("expected a ProtocolError")
}

describe("RowDecoder", () => {
  const row = body([int4Binary(7), encodeUtf8("é😀"), encodeUtf8('{a,"b c",NULL}')])

  it("object mode: one shape, values by column", () => {
    const d = RowDecoder.make(fields, registry)
    const a = d.decode(row, 0, row.length)
    NodeAssert.deepStrictEqual(a, { id: 7, name: "é😀", tags: ["a", "b c", null] })
    const b = d.decode(body([null, null, null]), 0, 14)
    NodeAssert.deepStrictEqual(b, { id: null, name: null, tags: null })
    NodeAssert.deepStrictEqual(Object.keys(a), Object.keys(b))
    NodeAssert.notEqual(a, b)
  })

  it("array mode, and decoding from the middle of a buffer", () => {
    const d = RowDecoder.make(fields, registry, { mode: "array" })
    const padded = new Uint8Array(row.length + 10)
    padded.set(row, 5)
    NodeAssert.deepStrictEqual(d.decode(padded, 5, 5 + row.length), [7, "é😀", ["a", "b c", null]])
  })

  it("duplicate column names: the later wins in object mode; __proto__ is an own property", () => {
    const d = RowDecoder.make(
      [
        { name: "x", typeOid: TypeOid.int4, format: 0 },
        { name: "x", typeOid: TypeOid.int4, format: 0 },
        { name: "__proto__", typeOid: TypeOid.text, format: 0 }
      ],
      registry
    )
    const b = body([encodeUtf8("1"), encodeUtf8("2"), encodeUtf8("p")])
    const r = d.decode(b, 0, b.length) as Record<string, unknown>
    NodeAssert.equal(r["x"], 2)
    NodeAssert.equal(Object.getPrototypeOf(r), Object.prototype)
    NodeAssert.equal(Object.getOwnPropertyDescriptor(r, "__proto__")?.value, "p")
  })

  it("column count mismatch names both counts", () => {
    const d = RowDecoder.make(fields, registry)
    const bad = body([int4Binary(1), null])
    const e = protocolError(() => d.decode(bad, 0, bad.length))
    NodeAssert.equal(e.reason, "InvalidValue")
    NodeAssert.match(e.message, /2 column\(s\).*3/)
  })

  it("a column length past the end, a negative length other than -1, trailing bytes", () => {
    const d = RowDecoder.make(fields.slice(0, 1), registry)
    const past = body([100])
    NodeAssert.equal(protocolError(() => d.decode(past, 0, past.length)).reason, "Truncated")
    const negative = body([-2])
    NodeAssert.equal(protocolError(() => d.decode(negative, 0, negative.length)).reason, "LengthOutOfRange")
    const trailing = new Uint8Array([...body([null]), 0])
    NodeAssert.equal(protocolError(() => d.decode(trailing, 0, trailing.length)).reason, "TrailingBytes")
    const cut = body([int4Binary(1)])
    NodeAssert.equal(protocolError(() => d.decode(cut, 0, cut.length - 1)).reason, "Truncated")
    NodeAssert.equal(protocolError(() => d.decode(cut, 0, 1)).reason, "Truncated")
    // a column's own length bound holds the codec to it: 3 bytes are not an int4
    const short = body([Uint8Array.of(0, 0, 1)])
    const e = protocolError(() => d.decode(short, 0, short.length))
    NodeAssert.equal(e.reason, "InvalidValue")
    NodeAssert.match(e.message, /column 0 "id"/)
  })

  it("RawRow: validates eagerly, decodes on demand", () => {
    const d = RowDecoder.make(fields, registry)
    const raw = d.raw(row, 0, row.length)
    NodeAssert.equal(raw.length, 3)
    NodeAssert.equal(raw.get(0), 7)
    NodeAssert.deepStrictEqual(raw.getByName("tags"), ["a", "b c", null])
    NodeAssert.equal(raw.getByName("missing"), undefined)
    NodeAssert.deepStrictEqual(raw.bytes(1), encodeUtf8("é😀"))
    const withNull = d.raw(body([null, null, null]), 0, 14)
    NodeAssert.equal(withNull.isNull(2), true)
    NodeAssert.equal(withNull.get(2), null)
    // a malformed value only fails when read
    const lazy = d.raw(body([int4Binary(1), encodeUtf8("x"), encodeUtf8("{unterminated")]), 0, 2 + 8 + 5 + 17)
    NodeAssert.equal(lazy.get(1), "x")
    NodeAssert.equal(protocolError(() => lazy.get(2)).reason, "InvalidValue")
    const bad = body([int4Binary(1), -5, null])
    NodeAssert.equal(protocolError(() => d.raw(bad, 0, bad.length)).reason, "LengthOutOfRange")
  })

  it("a binary column without a binary codec yields bytes", () => {
    const d = RowDecoder.make([{ name: "p", typeOid: TypeOid.point, format: 1 }], registry, { mode: "array" })
    const r = d.decode(body([Uint8Array.of(1, 2, 3)]), 0, 9) as Array<unknown>
    NodeAssert.deepStrictEqual(r[0], Uint8Array.of(1, 2, 3))
  })
})
