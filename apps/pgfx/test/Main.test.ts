import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { runCli, runCliOnTty, spawnCli, tempDir } from "./helpers.ts"

const dir = tempDir()
afterAll(() => dir.remove())
const dataDir = Path.join(dir.path, "data")
const stateFile = Path.join(dir.path, "state.json")

const serverRunning = () => {
  const pid = Path.join(dataDir, "postmaster.pid")
  return Fs.existsSync(pid)
}

describe("the main job (npm start)", () => {
  it("runs the embedded server, snapshot + CDC pipeline and verifies the aggregate; --keep-slot lets the next run resume", async () => {
    const first = await runCli(["--duration", "5s", "--data-dir", dataDir, "--keep-slot", "--rate", "40"], { timeoutMs: 120_000 })
    expect(first.stderr).toBe("")
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/initialising PostgreSQL 18/)
    expect(first.stdout).toMatch(/snapshot: \d+ rows copied with COPY in the slot's exported snapshot/)
    // Plain line output (stdout is not a TTY): at least a few live lines with the numbers.
    const live = first.stdout.split("\n").filter((l) => /^\[\d\d:\d\d\] changes\/s=\d+ tx\/s=\d+ transactions=\d+ changes=\d+ lag=\d+B\/\d+ms acked=[0-9A-F]+\/[0-9A-F]+ copied=\d+$/.test(l))
    expect(live.length).toBeGreaterThanOrEqual(3)
    expect(first.stdout).toMatch(/verified: the CDC aggregate matches the database \(\d+ orders, \d+ customers with orders\)/)
    expect(first.stdout).toMatch(/slot pgfx_demo kept/)
    expect(first.stdout).toMatch(/server stopped/)
    expect(serverRunning()).toBe(false)
    const saved = JSON.parse(Fs.readFileSync(stateFile, "utf8"))
    expect(saved.slotKept).toBe(true)
    expect(Fs.existsSync(Path.join(dir.path, "snapshot", "orders.tsv"))).toBe(true)

    const second = await runCli(["--duration", "3s", "--data-dir", dataDir], { timeoutMs: 120_000 })
    expect(second.code).toBe(0)
    expect(second.stdout).toMatch(/starting PostgreSQL 18/)
    expect(second.stdout).toContain(`resuming: slot pgfx_demo kept by the last run, acknowledged position ${saved.acked}`)
    expect(second.stdout).not.toMatch(/snapshot: /)
    expect(second.stdout).toMatch(/verified: the CDC aggregate matches the database/)
    expect(second.stdout).toMatch(/slot pgfx_demo dropped/)
  }, 180_000)

  it("Ctrl-C ends it cleanly: state saved, slot dropped, server stopped, exit 0", async () => {
    const run = spawnCli(["--data-dir", dataDir], { timeoutMs: 120_000 })
    await run.waitFor(/changes\/s=/, 60_000)
    run.child.kill("SIGINT")
    const result = await run.exited
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/acknowledged position [0-9A-F]+\/[0-9A-F]+ saved/)
    expect(result.stdout).toMatch(/slot pgfx_demo dropped/)
    expect(result.stdout).toMatch(/server stopped/)
    expect(serverRunning()).toBe(false)
    const saved = JSON.parse(Fs.readFileSync(stateFile, "utf8"))
    expect(saved.slotKept).toBe(false)
  }, 180_000)

  it("on a terminal, redraws a live view in place (changes/s, sparkline, lag, aggregate)", async () => {
    const result = await runCliOnTty(["--duration", "4s", "--data-dir", dataDir])
    expect(result.code).toBe(0)
    const out = result.stdout
    expect(out).toMatch(/\x1b\[7A/) // cursor up over the previous frame
    expect(out).toMatch(/changes\/s +\d+ +[▁▂▃▄▅▆▇█]+/)
    expect(out).toMatch(/lag [\d.]+ (B|kB) \/ \d+ ms/)
    expect(out).toMatch(/orders  new \d+  paid \d+/)
    expect(out).toMatch(/top revenue  .+ [\d,]+\.\d\d/)
    expect(out).toContain("Ctrl-C to stop")
    expect(out).toMatch(/verified: the CDC aggregate matches the database/)
  }, 180_000)
})
