import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { REPO, runCli } from "./helpers.ts"

describe("pgfx bench", () => {
  it("runs one benchmark of the suite and prints its comparison table", async () => {
    const result = await runCli(["bench", "codec", "--rounds", "1"], { timeoutMs: 300_000 })
    // The suite records every run; this one is a test, not a measurement worth keeping.
    const written = /results written to (\S+\.json)/.exec(result.stdout)?.[1]
    if (written !== undefined) Fs.rmSync(Path.join(REPO, written), { force: true })
    expect(result.code).toBe(0)
    expect(written).toBeDefined()
    expect(result.stdout).toMatch(/\| pgfx [^|]+\| [\d.]+ [kM]? ?\|/)
    expect(result.stdout).toMatch(/pg-protocol/)
  }, 300_000)

  it("a failing suite (unknown benchmark) is exit 1 with one pgfx line", async () => {
    const result = await runCli(["bench", "no-such-benchmark"], { timeoutMs: 120_000 })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/unknown benchmark no-such-benchmark/)
    expect(result.stderr.trim().split("\n").at(-1)).toBe("pgfx: the benchmark suite failed (exit 1)")
  }, 120_000)
})
