import { assert, describe, it } from "@effect/vitest"
import { Option, Schema } from "effect"
import * as fc from "fast-check"
import * as Lsn from "../src/Lsn.ts"

const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn })

describe("Lsn", () => {
  it("formats like the server: upper-case hex halves without leading zeros", () => {
    assert.strictEqual(Lsn.format(Lsn.make(0n)), "0/0")
    assert.strictEqual(Lsn.format(Lsn.make(0x16b3748n)), "0/16B3748")
    assert.strictEqual(Lsn.format(Lsn.make(0x1_0000_0000n)), "1/0")
    assert.strictEqual(Lsn.format(Lsn.maxValue), "FFFFFFFF/FFFFFFFF")
  })

  it("parses either case and refuses anything else", () => {
    assert.strictEqual(Lsn.fromStringUnsafe("0/16b3748"), 0x16b3748n)
    assert.strictEqual(Lsn.fromStringUnsafe("A/0"), 0xa_0000_0000n)
    for (const bad of ["", "0", "0/", "/0", "1/2/3", "123456789/0", "0/123456789", "g/0", " 0/0", "-1/0"]) {
      assert.isTrue(Option.isNone(Lsn.fromString(bad)), bad)
      assert.throws(() => Lsn.fromStringUnsafe(bad))
    }
  })

  it("format and parse are inverse for every 64-bit value", () => {
    fc.assert(fc.property(u64, (n) => {
      const lsn = Lsn.make(n)
      return Lsn.fromStringUnsafe(Lsn.format(lsn)) === n
    }))
  })

  it("orders, adds and subtracts as bigints, refusing results outside 64 bits", () => {
    fc.assert(fc.property(u64, u64, (a, b) => {
      const x = Lsn.make(a)
      const y = Lsn.make(b)
      return Lsn.compare(x, y) === (a < b ? -1 : a > b ? 1 : 0) &&
        Lsn.diff(x, y) === a - b &&
        Lsn.add(y, Lsn.diff(x, y)) === x &&
        Lsn.max(x, y) === (a > b ? a : b) &&
        Lsn.min(x, y) === (a < b ? a : b)
    }))
    assert.throws(() => Lsn.add(Lsn.maxValue, 1), RangeError)
    assert.throws(() => Lsn.add(Lsn.zero, -1), RangeError)
    assert.throws(() => Lsn.make(-1n), RangeError)
    assert.strictEqual(Lsn.add(Lsn.fromStringUnsafe("0/FFFFFFFF"), 1), 0x1_0000_0000n)
  })

  it("invalid is InvalidXLogRecPtr (0/0), the same as zero", () => {
    assert.strictEqual(Lsn.invalid, Lsn.zero)
    assert.isFalse(Lsn.isValid(Lsn.invalid))
    assert.isTrue(Lsn.isValid(Lsn.make(1n)))
  })

  it("computes segment numbers, offsets and file names like XLogFileName", () => {
    const lsn = Lsn.fromStringUnsafe("1/2345678")
    // 16 MiB: 256 segments per 4 GiB "log id".
    assert.strictEqual(Lsn.segmentNumber(lsn), 0x102n)
    assert.strictEqual(Lsn.segmentOffset(lsn), 0x345678)
    assert.strictEqual(Lsn.segmentStart(0x102n), 0x1_0200_0000n)
    assert.strictEqual(Lsn.segmentFloor(lsn), 0x1_0200_0000n)
    assert.strictEqual(Lsn.walFileName(1, 0x102n), "000000010000000100000002")
    assert.strictEqual(Lsn.walFileName(0xab, 1n, 1 << 20), "000000AB0000000000000001")
    // 64 MiB segments: 64 per log id.
    assert.strictEqual(Lsn.walFileName(2, Lsn.segmentNumber(lsn, 64 << 20), 64 << 20), "000000020000000100000000")
    assert.throws(() => Lsn.segmentNumber(lsn, 3 << 20), RangeError)
    assert.throws(() => Lsn.walFileName(0, 1n), RangeError)
    fc.assert(fc.property(fc.integer({ min: 1, max: 0xffff_ffff }), fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }), (tli, segno) => {
      const parsed = Lsn.parseWalFileName(Lsn.walFileName(tli, segno))
      return Option.isSome(parsed) && parsed.value.timeline === tli && parsed.value.segno === segno
    }))
    assert.isTrue(Option.isNone(Lsn.parseWalFileName("000000010000000100000023.partial")))
    assert.isTrue(Option.isNone(Lsn.parseWalFileName("000000010000000100000100"))) // seg 0x100 ≥ 256
  })

  it("Schema: decodes X/X to the branded bigint and encodes it back", () => {
    const lsn = Schema.decodeUnknownSync(Lsn.Lsn)("16/B374D848")
    assert.strictEqual(lsn, 0x16_b374_d848n)
    assert.strictEqual(Schema.encodeSync(Lsn.Lsn)(lsn), "16/B374D848")
    assert.throws(() => Schema.decodeUnknownSync(Lsn.Lsn)("nope"))
    assert.throws(() => Schema.decodeUnknownSync(Lsn.Lsn)(12))
    assert.throws(() => Schema.decodeUnknownSync(Lsn.LsnFromBigInt)(-1n))
    assert.strictEqual(Schema.decodeUnknownSync(Lsn.LsnFromBigInt)(5n), 5n)
  })
})
