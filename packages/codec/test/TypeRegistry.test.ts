import { describe, it } from "@effect/vitest"
import * as NodeAssert from "node:assert/strict"
import { encodeUtf8 } from "../src/internal/utf8.ts"
import { Writer } from "../src/internal/Writer.ts"
import { allTypes, arrayOidOf, elementOidOf, typeInfo, TypeOid } from "../src/TypeOid.ts"
import { TypeRegistry } from "../src/TypeRegistry.ts"
import { textLike } from "../src/values/Primitives.ts"

const decodeText = (r: TypeRegistry, oid: number, s: string) => {
  const b = encodeUtf8(s)
  return r.get(oid).decodeText(b, 0, b.length)
}

describe("TypeOid (generated)", () => {
  it("holds every built-in and derives arrays", () => {
    NodeAssert.equal(TypeOid.int4, 23)
    NodeAssert.equal(TypeOid._int4, 1007)
    NodeAssert.equal(arrayOidOf(TypeOid.int4), 1007)
    NodeAssert.equal(elementOidOf(1007), 23)
    NodeAssert.equal(elementOidOf(23), undefined)
    NodeAssert.equal(typeInfo(TypeOid._box)!.typdelim, ";")
    NodeAssert.deepStrictEqual(typeInfo(TypeOid.int4), { oid: 23, typname: "int4", typarray: 1007, typelem: 0, typcategory: "N", typlen: 4, typdelim: "," })
    NodeAssert.ok(allTypes.length > 180)
    for (const t of allTypes) if (t.typarray !== 0) NodeAssert.equal(elementOidOf(t.typarray), t.oid)
  })
})

describe("TypeRegistry", () => {
  it("registrations are per registry", () => {
    const a = TypeRegistry.make()
    const b = TypeRegistry.make()
    a.registerEnum(90001, "mood", 90002)
    NodeAssert.equal(a.has(90001), true)
    NodeAssert.equal(b.has(90001), false)
    NodeAssert.deepStrictEqual(decodeText(a, 90002, "{sad,ok}"), ["sad", "ok"])
    NodeAssert.equal(decodeText(b, 90002, "{sad,ok}"), "{sad,ok}")
    a.register({ ...textLike("int4", TypeOid.int4) })
    NodeAssert.equal(decodeText(a, TypeOid.int4, "5"), "5")
    NodeAssert.equal(decodeText(b, TypeOid.int4, "5"), 5)
    // arrays resolve their element through the registry, so the replacement applies to int4[] too
    NodeAssert.deepStrictEqual(decodeText(a, TypeOid._int4, "{5}"), ["5"])
    NodeAssert.deepStrictEqual(decodeText(b, TypeOid._int4, "{5}"), [5])
  })

  it("domains, ranges, composites resolve lazily; hasBinary follows their parts", () => {
    const r = TypeRegistry.make()
    r.registerComposite(90010, [{ name: "a", typeOid: TypeOid.int4 }, { name: "d", typeOid: 90011 }], "pair")
    NodeAssert.equal(r.hasBinary(90010), false) // 90011 unknown yet
    r.registerDomain(90011, TypeOid.date, "day")
    NodeAssert.equal(r.hasBinary(90010), true)
    const w = new Writer()
    r.get(90010).encodeBinary!(w, { a: 1, d: new Date("2020-01-02T00:00:00Z") })
    const bytes = w.take()
    NodeAssert.deepStrictEqual(r.get(90010).decodeBinary!(bytes, 0, bytes.length), { a: 1, d: new Date("2020-01-02T00:00:00Z") })
    NodeAssert.deepStrictEqual(decodeText(r, 90010, '(1,"2020-01-02")'), { a: 1, d: new Date("2020-01-02T00:00:00Z") })
    r.registerRange(90020, 90011, 90021)
    NodeAssert.equal(r.hasBinary(90021), true)
    NodeAssert.deepStrictEqual(decodeText(r, 90021, "{[2020-01-01,)}"), [
      { lower: new Date("2020-01-01T00:00:00Z"), upper: undefined, lowerInclusive: true, upperInclusive: false, empty: false }
    ])
    r.registerArray(90030, TypeOid.point)
    NodeAssert.equal(r.hasBinary(90030), false)
    NodeAssert.equal(r.hasBinary(TypeOid._int4), true)
    NodeAssert.equal(r.hasBinary(TypeOid.int2vector), false)
    NodeAssert.equal(r.hasBinary(123456), false)
    r.registerDomain(90040, 90040) // a cycle must not hang hasBinary
    NodeAssert.equal(r.hasBinary(90040), false)
  })

  it("options: temporal and json", () => {
    const lossless = TypeRegistry.make({ temporal: "lossless", json: "string" })
    NodeAssert.equal(String(decodeText(lossless, TypeOid.timestamptz, "2020-01-01 00:00:00.000001+00")), "2020-01-01T00:00:00.000001Z")
    NodeAssert.equal(decodeText(lossless, TypeOid.jsonb, '{"a": 1}'), '{"a": 1}')
    const dates = TypeRegistry.make()
    NodeAssert.equal(decodeText(dates, TypeOid.timestamptz, "infinity"), Infinity)
    NodeAssert.deepStrictEqual(decodeText(dates, TypeOid.jsonb, '{"a": 1}'), { a: 1 })
  })

  it("unknown OIDs: text as string, binary as bytes", () => {
    const r = TypeRegistry.make()
    NodeAssert.equal(decodeText(r, 999999, "anything"), "anything")
    NodeAssert.deepStrictEqual(r.get(999999).decodeBinary!(Uint8Array.of(1, 2), 0, 2), Uint8Array.of(1, 2))
  })
})
