/**
 * MD5 password authentication: known answers (computed independently with Python's hashlib),
 * the pg_authid verifier of the live PostgreSQL 18's md5 user, and a real login as that user.
 */
import { assert, describe, inject, it } from "@effect/vitest"
import { openRawSession, rowsOf } from "@pgfx/testing"
import { md5Password, md5PasswordFromVerifier, md5Verifier } from "../src/Md5Password.ts"
import { login } from "./fixtures/scram/liveLogin.ts"

describe("md5Password", () => {
  it("matches known answers", () => {
    assert.strictEqual(md5Verifier("postgres", "postgres"), "md53175bce1d3201d16594cebf9d7eb3f9d")
    assert.strictEqual(md5Password("postgres", "postgres", new Uint8Array([1, 2, 3, 4])), "md568be9ed08db75f318087ab337aaea044")
    // Non-ASCII user and password are hashed as UTF-8, without SASLprep.
    assert.strictEqual(
      md5Password("jürgen", "pässwörd", new Uint8Array([0xde, 0xad, 0xbe, 0xef])),
      "md5aae7104c69c2981684fe7d3a7c824ea0"
    )
  })

  it("answers the same from the stored verifier as from the password, and differs per salt", () => {
    const salt = new Uint8Array([9, 8, 7, 6])
    assert.strictEqual(md5PasswordFromVerifier(md5Verifier("u", "p"), salt), md5Password("u", "p", salt))
    assert.notStrictEqual(md5Password("u", "p", new Uint8Array([9, 8, 7, 5])), md5Password("u", "p", salt))
    assert.strictEqual(md5Password(new TextEncoder().encode("u"), new TextEncoder().encode("p"), salt), md5Password("u", "p", salt))
  })
})

describe("md5 against the live PostgreSQL 18", () => {
  it("computes the verifier stored in pg_authid", async () => {
    const info = inject("pg18")
    const session = await openRawSession(info)
    try {
      const rows = rowsOf(await session.query(`SELECT rolpassword FROM pg_authid WHERE rolname = '${info.users.md5.user}'`))
      assert.strictEqual(rows[0]![0], md5Verifier(info.users.md5.user, info.users.md5.password))
    } finally {
      await session.close()
    }
  })

  it("logs in as the md5 user, and fails with 28P01 for a wrong password", async () => {
    const { host, port, users } = inject("pg18")
    const ok = await login({ host, port, user: users.md5.user, password: users.md5.password })
    assert.strictEqual(ok.outcome, "ok")
    const bad = await login({ host, port, user: users.md5.user, password: "nope" })
    assert.notStrictEqual(bad.outcome, "ok")
    if (bad.outcome !== "ok") assert.strictEqual(bad.outcome.code, "28P01")
  })
})
