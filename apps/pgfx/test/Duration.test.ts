import { describe, expect, it } from "vitest"
import { parseDurationMs } from "../src/Duration.ts"

describe("parseDurationMs", () => {
  it("reads the units the commands document, in milliseconds", () => {
    expect(parseDurationMs("30s")).toBe(30_000)
    expect(parseDurationMs("2m")).toBe(120_000)
    expect(parseDurationMs("1h")).toBe(3_600_000)
    expect(parseDurationMs("500ms")).toBe(500)
    expect(parseDurationMs("100us")).toBe(0.1)
    expect(parseDurationMs("250µs")).toBe(0.25)
    expect(parseDurationMs("1.5")).toBe(1500)
  })

  it("refuses what it cannot read", () => {
    for (const bad of ["", "s", "-1s", "10 parsecs", "1e3s", "ms100"]) expect(parseDurationMs(bad)).toBeUndefined()
  })
})
