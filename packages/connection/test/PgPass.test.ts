import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as PgPass from "../src/PgPass.ts"

const key = (host: string, port = "5432", database = "db", user = "alice"): PgPass.PassfileKey => ({ host, port, database, user })

const tempFile = (content: string, mode: number): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgfx-pgpass-"))
  const file = Path.join(dir, "pgpass")
  Fs.writeFileSync(file, content)
  Fs.chmodSync(file, mode)
  return file
}

describe("PgPass.matchLine", () => {
  it("matches all four fields exactly and returns the rest as the password", () => {
    assert.strictEqual(PgPass.matchLine("db.example:5432:db:alice:s3cret", key("db.example")), "s3cret")
    assert.isUndefined(PgPass.matchLine("db.example:5433:db:alice:s3cret", key("db.example")))
    assert.isUndefined(PgPass.matchLine("db.example:5432:other:alice:s3cret", key("db.example")))
    assert.isUndefined(PgPass.matchLine("db.example:5432:db:bob:s3cret", key("db.example")))
    assert.isUndefined(PgPass.matchLine("other:5432:db:alice:s3cret", key("db.example")))
  })

  it("requires whole-field matches, not prefixes", () => {
    assert.isUndefined(PgPass.matchLine("db:5432:db:alice:pw", key("db.example")))
    assert.isUndefined(PgPass.matchLine("db.example.org:5432:db:alice:pw", key("db.example")))
    assert.isUndefined(PgPass.matchLine("db.example:54321:db:alice:pw", key("db.example")))
  })

  it("treats a field of exactly * as a wildcard, and * elsewhere literally", () => {
    assert.strictEqual(PgPass.matchLine("*:*:*:*:pw", key("anything", "1", "x", "y")), "pw")
    assert.strictEqual(PgPass.matchLine("h:*:db:alice:pw", key("h", "6000")), "pw")
    assert.isUndefined(PgPass.matchLine("h*:5432:db:alice:pw", key("host")))
    assert.strictEqual(PgPass.matchLine("h*:5432:db:alice:pw", key("h*")), "pw")
  })

  it("honours \\: and \\\\ escapes in fields and in the password", () => {
    assert.strictEqual(PgPass.matchLine("h:5432:my\\:db:alice:pw", key("h", "5432", "my:db")), "pw")
    assert.strictEqual(PgPass.matchLine("h:5432:db:do\\\\main:pw", key("h", "5432", "db", "do\\main")), "pw")
    assert.strictEqual(PgPass.matchLine("h:5432:db:alice:a\\:b\\\\c", key("h")), "a:b\\c")
    // the password ends at the first unescaped colon
    assert.strictEqual(PgPass.matchLine("h:5432:db:alice:first:ignored", key("h")), "first")
    // an escaped ordinary character is that character
    assert.strictEqual(PgPass.matchLine("h:5432:db:alice:\\x", key("h")), "x")
    // an escaped colon does not end a field
    assert.isUndefined(PgPass.matchLine("h\\:5432:db:alice:pw", key("h")))
  })

  it("skips comments and empty lines, strips CR/LF, trims nothing else", () => {
    assert.isUndefined(PgPass.matchLine("#h:5432:db:alice:pw", key("#h")))
    assert.isUndefined(PgPass.matchLine("", key("")))
    assert.strictEqual(PgPass.matchLine("h:5432:db:alice:pw\r\n", key("h")), "pw")
    assert.isUndefined(PgPass.matchLine(" h:5432:db:alice:pw", key("h")))
    assert.strictEqual(PgPass.matchLine("h:5432:db:alice: pw ", key("h")), " pw ")
  })

  it("returns an empty password for a matching line that has none", () => {
    assert.strictEqual(PgPass.matchLine("h:5432:db:alice:", key("h")), "")
    assert.isUndefined(PgPass.matchLine("h:5432:db:alice", key("h")))
  })

  it("escapeField round-trips any field value through matching", () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), fc.string(), (host, db, password) => {
        const line = `${PgPass.escapeField(host)}:5432:${PgPass.escapeField(db)}:alice:${PgPass.escapeField(password)}`
        if (host === "*" || db === "*" || line.includes("\n") || line.includes("\r")) return
        if (line.startsWith("#") || host === "") return
        assert.strictEqual(PgPass.matchLine(line, key(host, "5432", db)), password)
      })
    )
  })
})

describe("PgPass.lookup", () => {
  it("returns the first matching line", () => {
    const content = ["# comment", "h:5432:db:bob:bobs", "h:5432:*:alice:first", "*:*:*:*:second", ""].join("\n")
    assert.strictEqual(PgPass.lookup(content, key("h")), "first")
    assert.strictEqual(PgPass.lookup(content, key("other")), "second")
    assert.strictEqual(PgPass.lookup(content, key("h", "5432", "db", "bob")), "bobs")
  })

  it("never matches an empty database or user (libpq)", () => {
    assert.isUndefined(PgPass.lookup("*:*:*:*:pw", key("h", "5432", "", "alice")))
    assert.isUndefined(PgPass.lookup("*:*:*:*:pw", key("h", "5432", "db", "")))
  })

  it("hostForLookup maps the default socket directory and an empty host to localhost", () => {
    assert.strictEqual(PgPass.hostForLookup("/var/run/postgresql", "/var/run/postgresql"), "localhost")
    assert.strictEqual(PgPass.hostForLookup("", "/tmp"), "localhost")
    assert.strictEqual(PgPass.hostForLookup("/other/dir", "/var/run/postgresql"), "/other/dir")
    assert.strictEqual(PgPass.hostForLookup("/tmp", undefined), "/tmp")
  })
})

describe("PgPass.read", () => {
  it("loads a 0600 file", () => {
    const file = tempFile("h:5432:db:alice:pw\n", 0o600)
    const read = PgPass.read(file)
    assert.strictEqual(read._tag, "Loaded")
    if (read._tag === "Loaded") assert.strictEqual(PgPass.lookup(read.content, key("h")), "pw")
  })

  it("loads a 0400 file", () => {
    assert.strictEqual(PgPass.read(tempFile("x", 0o400))._tag, "Loaded")
  })

  it("ignores a group- or world-accessible file with libpq's warning, which holds no password", () => {
    for (const mode of [0o640, 0o604, 0o660, 0o644, 0o610, 0o601]) {
      const file = tempFile("h:5432:db:alice:topsecret\n", mode)
      const read = PgPass.read(file)
      assert.strictEqual(read._tag, "Ignored", `mode ${mode.toString(8)}`)
      if (read._tag === "Ignored") {
        assert.include(read.warning, file)
        assert.include(read.warning, "has group or world access")
        assert.notInclude(read.warning, "topsecret")
      }
    }
  })

  it("ignores a directory with a warning", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgfx-pgpass-dir-"))
    const read = PgPass.read(dir)
    assert.strictEqual(read._tag, "Ignored")
    if (read._tag === "Ignored") assert.include(read.warning, "is not a plain file")
  })

  it("reports a missing file as Missing", () => {
    assert.strictEqual(PgPass.read(Path.join(Os.tmpdir(), "pgfx-does-not-exist", "pgpass"))._tag, "Missing")
  })
})
