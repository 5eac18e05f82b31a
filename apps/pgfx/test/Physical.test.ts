import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { startTestServer } from "@pgfx/testing/TestServer"
import { pg18, rows, runCli, spawnCli, sql, tempDir, uniqueName, uriFor } from "./helpers.ts"

const dir = tempDir()
afterAll(() => dir.remove())

/** Hands a directory tree to the postgres OS user (servers run as postgres when we are root). */
const chownToPostgres = (root: string) => {
  if (process.getuid?.() !== 0) return
  const line = Fs.readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postgres:"))!
  const [, , uid, gid] = line.split(":")
  const walk = (p: string) => {
    Fs.lchownSync(p, Number(uid), Number(gid))
    if (Fs.lstatSync(p).isDirectory()) for (const e of Fs.readdirSync(p)) walk(Path.join(p, e))
  }
  walk(root)
}

describe("pgfx receivewal", () => {
  it("streams WAL into complete segment files identical to the server's, through a slot, and resumes", async () => {
    const slot = uniqueName("wal_slot")
    const wal = Path.join(dir.path, "wal")
    const run = spawnCli(["receivewal", "-D", wal, uriFor(), "--slot", slot, "--create-slot"])
    await run.waitFor(/streaming timeline \d+ from [0-9A-F]+\/[0-9A-F]+ \((slot|server)\)/)
    await sql("CREATE TABLE IF NOT EXISTS wal_fill (v text); INSERT INTO wal_fill SELECT repeat('x', 100) FROM generate_series(1, 1000); SELECT pg_switch_wal()")
    await run.waitFor(/segment [0-9A-F]{24} complete/)
    run.child.kill("SIGINT")
    const result = await run.exited
    expect(result.code).toBe(0)
    expect(result.stderr).toMatch(/created physical slot/)
    const complete = Fs.readdirSync(wal).filter((f) => /^[0-9A-F]{24}$/.test(f))
    expect(complete.length).toBeGreaterThanOrEqual(1)
    for (const f of complete) {
      expect(Fs.statSync(Path.join(wal, f)).size).toBe(16 * 1024 * 1024)
      const serverCopy = Path.join(pg18().dataDir, "pg_wal", f)
      if (Fs.existsSync(serverCopy)) expect(Fs.readFileSync(Path.join(wal, f)).equals(Fs.readFileSync(serverCopy))).toBe(true)
    }
    // The slot was acknowledged up to the completed segments.
    const [s] = await rows(`SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`)
    expect(s!["lsn"]).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)

    const again = spawnCli(["receivewal", "-D", wal, uriFor(), "--slot", slot, "--duration", "2s"])
    await again.waitFor(/\(resume\)/)
    const second = await again.exited
    expect(second.code).toBe(0)
    await sql(`SELECT pg_drop_replication_slot('${slot}')`)
  })

  it("fails with exit 1 for a missing slot without --create-slot", async () => {
    const result = await runCli(["receivewal", "-D", Path.join(dir.path, "nowal"), uriFor(), "--slot", uniqueName("absent")])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/does not exist \(use --create-slot\)/)
  })
})

describe("pgfx basebackup", () => {
  it("takes a plain backup with a manifest that starts as a server with the data", async () => {
    const table = uniqueName("bb")
    await sql(`CREATE TABLE ${table} AS SELECT i FROM generate_series(1, 1234) i`)
    const target = Path.join(dir.path, "plain")
    const result = await runCli(["basebackup", "-D", target, uriFor()], { timeoutMs: 120_000 })
    expect(result.code).toBe(0)
    expect(result.stderr).toMatch(/plain backup of .* \(base, backup_manifest\); start [0-9A-F]+\/[0-9A-F]+, end [0-9A-F]+\/[0-9A-F]+, timeline 1/)
    expect(Fs.existsSync(Path.join(target, "PG_VERSION"))).toBe(true)
    expect(Fs.existsSync(Path.join(target, "backup_label"))).toBe(true)
    const manifest = JSON.parse(Fs.readFileSync(Path.join(target, "backup_manifest"), "utf8"))
    expect(manifest["PostgreSQL-Backup-Manifest-Version"]).toBeDefined()
    expect(manifest.Files.some((f: { Path: string }) => f.Path === "PG_VERSION")).toBe(true)

    chownToPostgres(target)
    Fs.chmodSync(target, 0o700)
    const restored = await startTestServer({ version: 18, dataDir: target, keep: false })
    try {
      const [n] = await rows(`SELECT count(*)::int AS n FROM ${table}`, restored.info)
      expect(n!["n"]).toBe(1234)
    } finally {
      await restored.stop()
    }
  }, 120_000)

  it("writes tar format (base.tar and backup_manifest) and refuses a non-empty directory", async () => {
    const target = Path.join(dir.path, "tar")
    const result = await runCli(["basebackup", "-D", target, "-F", "tar", uriFor(), "-q"], { timeoutMs: 120_000 })
    expect(result.code).toBe(0)
    expect(result.stderr).toBe("")
    const files = Fs.readdirSync(target).sort()
    expect(files).toEqual(["backup_manifest", "base.tar"])
    const tar = Fs.readFileSync(Path.join(target, "base.tar"))
    expect(tar.subarray(257, 262).toString("latin1")).toBe("ustar")
    const refused = await runCli(["basebackup", "-D", target, uriFor()])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/exists and is not empty/)
    const badRate = await runCli(["basebackup", "-D", Path.join(dir.path, "rate"), "--max-rate", "8", uriFor()])
    expect(badRate.code).toBe(2)
    expect(badRate.stderr).toMatch(/--max-rate 8 is out of range/)
  }, 120_000)

  it("Ctrl-C during the backup exits 130 and says the backup is incomplete", async () => {
    const target = Path.join(dir.path, "interrupted")
    // Throttled to 32 kB/s, the ~30 MB cluster takes minutes: the interrupt lands mid-backup for sure.
    const run = spawnCli(["basebackup", "-D", target, uriFor(), "--max-rate", "32"], { timeoutMs: 120_000 })
    const deadline = Date.now() + 30_000
    while (!Fs.existsSync(target) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    await new Promise((r) => setTimeout(r, 500))
    run.child.kill("SIGINT")
    const result = await run.exited
    expect(result.code).toBe(130)
    expect(result.stderr.trim().split("\n").at(-1)).toBe(`pgfx: interrupted: the backup in ${target} is incomplete; delete it`)
  }, 120_000)
})
