/**
 * SASLprep: the RFC 4013 §3 examples, each stringprep table (mapping, prohibited output,
 * unassigned in Unicode 3.2, bidi), PostgreSQL's raw-password fallbacks, and agreement with the
 * live PostgreSQL 18: the SCRAM verifier it stores for a non-ASCII password equals ours.
 */
import { assert, describe, inject, it } from "@effect/vitest"
import * as fc from "fast-check"
import { openRawSession, rowsOf } from "@pgfx/testing"
import { preparePassword, saslPrep } from "../src/SaslPrep.ts"
import { parseVerifier, scramVerifier } from "../src/Scram.ts"

const utf8 = (s: string) => new TextEncoder().encode(s)

describe("saslPrep", () => {
  it("reproduces the RFC 4013 §3 examples", () => {
    assert.strictEqual(saslPrep("I\u00ADX"), "IX") // SOFT HYPHEN mapped to nothing
    assert.strictEqual(saslPrep("user"), "user")
    assert.strictEqual(saslPrep("USER"), "USER") // case preserved
    assert.strictEqual(saslPrep("\u00AA"), "a") // NFKC
    assert.strictEqual(saslPrep("\u2168"), "IX") // NFKC
    assert.isUndefined(saslPrep("\u0007")) // prohibited character
    assert.isUndefined(saslPrep("\u0627\u0031")) // bidi: must end with RandALCat
  })

  it("maps non-ASCII spaces to SPACE and B.1 characters to nothing", () => {
    assert.strictEqual(saslPrep("a\u00A0b\u3000c\u2003d"), "a b c d")
    assert.strictEqual(saslPrep("a\u200Cb\uFEFFc\uFE0Fd\u034Fe"), "abcde")
    // U+200B is in both C.1.2 and B.1; PostgreSQL maps it to SPACE, and so must we.
    assert.strictEqual(saslPrep("a\u200Bb"), "a b")
    assert.strictEqual(saslPrep("A\u030A"), "\u00C5") // composed by NFKC
    assert.strictEqual(saslPrep("\uFB01"), "fi")
    assert.strictEqual(saslPrep(""), "")
    assert.isUndefined(saslPrep("\u00AD\u200C")) // nothing left: PostgreSQL refuses an empty password
  })

  it("refuses prohibited output (C.2–C.9) and code points unassigned in Unicode 3.2 (A.1)", () => {
    for (const s of [
      "a\u0000b", // C.2.1
      "a\u007Fb", // C.2.1
      "a\u0085b", // C.2.2
      "a\u2028b", // C.2.2
      "a\uE000b", // C.3 private use
      "a\u{F0000}b", // C.3 plane 15
      "a\uFDD0b", // C.4 non-character
      "a\uFFFFb", // C.4
      "a\uD800b", // C.5 lone surrogate
      "a\uFFFDb\uFFF9", // C.6
      "a\u2FF0b", // C.7
      "a\u200Eb", // C.8 LEFT-TO-RIGHT MARK
      "a\u0340b", // C.8
      "a\u{E0001}b", // C.9 language tag
      "a\u0221b", // A.1
      "a\u{1F600}b" // A.1: emoji were not assigned in Unicode 3.2
    ]) {
      assert.isUndefined(saslPrep(s), JSON.stringify(s))
    }
  })

  it("applies the bidi rules", () => {
    assert.strictEqual(saslPrep("\u0627\u0628"), "\u0627\u0628")
    assert.strictEqual(saslPrep("\u06271\u0628"), "\u06271\u0628") // EN digits are not LCat
    assert.isUndefined(saslPrep("\u0627a\u0628")) // RandALCat with LCat
    assert.isUndefined(saslPrep("1\u0627")) // does not start with RandALCat
    assert.strictEqual(saslPrep("abc1"), "abc1") // no RandALCat: no bidi constraint
  })

  it("handles long passwords", () => {
    assert.strictEqual(saslPrep("\u00E9".repeat(300_000)), "\u00E9".repeat(300_000))
  })

  it("is total: any string gives a string or undefined, and the result is stable", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (s) => {
        const out = saslPrep(s)
        if (out !== undefined) assert.strictEqual(out, out.normalize("NFKC"))
      }),
      { numRuns: 300 }
    )
  })
})

describe("preparePassword (PostgreSQL's fallbacks)", () => {
  it("uses ASCII as it is, even control characters", () => {
    assert.deepStrictEqual(preparePassword("pencil"), utf8("pencil"))
    assert.deepStrictEqual(preparePassword("a\u0007b"), new Uint8Array([0x61, 7, 0x62]))
    assert.deepStrictEqual(preparePassword(new Uint8Array([0x61, 7])), new Uint8Array([0x61, 7]))
  })

  it("SASLpreps valid UTF-8, text or bytes", () => {
    assert.deepStrictEqual(preparePassword("\u2168\u00ADx\u00A0y"), utf8("IXx y"))
    assert.deepStrictEqual(preparePassword(utf8("I\u00ADX")), utf8("IX"))
  })

  it("uses the raw bytes when they are not UTF-8 or SASLprep refuses them", () => {
    const latin1 = new Uint8Array([0x70, 0xe4, 0x73, 0x73]) // "päss" in Latin-1
    assert.deepStrictEqual(preparePassword(latin1), latin1)
    assert.deepStrictEqual(preparePassword("pass\uE000"), utf8("pass\uE000"))
    assert.deepStrictEqual(preparePassword("\u0627a"), utf8("\u0627a"))
    assert.deepStrictEqual(preparePassword("\u00AD"), utf8("\u00AD"))
  })
})

describe("SASLprep agrees with the live PostgreSQL 18", () => {
  it("stores the verifier we compute for non-ASCII passwords (prepared and raw fallbacks)", async () => {
    const info = inject("pg18")
    const session = await openRawSession(info)
    const role = `pgfx_saslprep_${process.pid}`
    const passwords = [
      "\u2168\u00ADx\u00A0y", // mapping + NFKC
      "A\u030Angstr\u00F6m\uFB01", // composition, ligature
      "pass\uE000word", // prohibited → raw
      "\u0627abc", // bidi failure → raw
      "smile\u{1F600}", // unassigned in 3.2 → raw
      "\u05D0\u05D1\u05D2" // valid RTL
    ]
    try {
      await session.query(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role}; SET password_encryption = 'scram-sha-256'`)
      for (const password of passwords) {
        const literal = password.replace(/'/g, "''")
        await session.query(`ALTER ROLE ${role} PASSWORD '${literal}'`)
        const rows = rowsOf(await session.query(`SELECT rolpassword FROM pg_authid WHERE rolname = '${role}'`))
        const stored = rows[0]![0]!
        const { salt, iterations } = parseVerifier(stored)
        assert.strictEqual(scramVerifier(password, salt, iterations), stored, JSON.stringify(password))
      }
    } finally {
      await session.query(`DROP ROLE IF EXISTS ${role}`)
      await session.close()
    }
  })
})
