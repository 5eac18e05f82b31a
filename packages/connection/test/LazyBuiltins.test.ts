/**
 * node:tls and node:crypto are loaded only when a connection needs them (TLS; a password exchange):
 * together ~6 MB of resident memory a plain, trusted connection does not pay. Each case runs in a fresh
 * Node process, since this test process has loaded both long ago.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { type PgConfigInput } from "../src/PgConfig.ts"
import { tcpConfig, unixConfig } from "./helpers.ts"

const CONNECTION = Path.resolve(import.meta.dirname, "../src/Connection.ts")

/** Connects with `config` in a new process, runs SELECT 1 and returns which of tls and crypto it loaded. */
const loadedBy = (config: PgConfigInput): ReadonlyArray<string> => {
  const script = `
    import * as Effect from "effect/Effect"
    import * as Connection from ${JSON.stringify(CONNECTION)}
    const config = JSON.parse(process.argv[1])
    const r = await Effect.runPromise(Effect.scoped(Effect.flatMap(Connection.make(config), (conn) => conn.query("select 1 as one"))))
    if (r.rows[0].one !== 1) throw new Error("SELECT 1 returned " + JSON.stringify(r.rows))
    console.log(JSON.stringify(process.moduleLoadList.filter((m) => /^NativeModule (tls|crypto)$/.test(m)).map((m) => m.slice(13))))
  `
  const out = ChildProcess.execFileSync(process.execPath, ["--input-type=module", "-e", script, JSON.stringify(config)], {
    cwd: Path.resolve(import.meta.dirname, ".."),
    encoding: "utf8"
  })
  return JSON.parse(out.trim().split("\n").pop()!)
}

describe("node:tls and node:crypto load on first use", () => {
  it("a trusted connection without TLS loads neither", () => {
    assert.deepStrictEqual(loadedBy(unixConfig()), [])
  })

  it("SCRAM loads crypto only; TLS loads tls", () => {
    assert.deepStrictEqual(loadedBy(tcpConfig("scram")), ["crypto"])
    assert.include(loadedBy(tcpConfig("scram", { sslMode: "require" })), "tls")
  })
})
