import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { startTestServer } from "@pgfx/testing/TestServer"
import { rows, runCli, spawnCli, sql, tempDir, uniqueName, uriFor } from "./helpers.ts"

const dir = tempDir()
afterAll(() => dir.remove())

const readLines = (file: string): Array<Record<string, any>> =>
  Fs.existsSync(file) ? Fs.readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l)) : []

const waitUntil = async (check: () => boolean, what: string, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const slotExists = async (slot: string) => (await rows(`SELECT 1 FROM pg_replication_slots WHERE slot_name = '${slot}'`)).length > 0

describe("pgfx cdc", () => {
  it("streams typed change events to NDJSON, checkpoints, and resumes after a restart without losing a change", async () => {
    const table = uniqueName("cdc_t")
    const slot = uniqueName("cdc_slot")
    const pub = uniqueName("cdc_pub")
    await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, name text, amount numeric(10,2), tags text[], doc jsonb, big bigint, at timestamptz)`)
    const out = Path.join(dir.path, `${slot}.ndjson`)
    const checkpoint = Path.join(dir.path, `${slot}.lsn`)
    const args = ["cdc", uriFor(), "--slot", slot, "--publication", pub, "--tables", table, "--checkpoint", checkpoint, "-o", out, "--transactions"]

    const first = spawnCli(args)
    await first.waitFor(/streaming slot/)
    await sql(`INSERT INTO ${table} VALUES (1, 'one', 1.50, ARRAY['a','b'], '{"k": [1, 2]}', 9007199254740993, '2024-05-01T12:00:00Z')`)
    await sql(`UPDATE ${table} SET name = 'uno', amount = 2.25 WHERE id = 1`)
    await sql(`BEGIN; INSERT INTO ${table} (id, name) VALUES (2, 'two'); DELETE FROM ${table} WHERE id = 1; COMMIT`)
    await waitUntil(() => readLines(out).some((l) => l.op === "delete"), "the delete")
    await waitUntil(() => Fs.existsSync(checkpoint), "the checkpoint")
    first.child.kill("SIGINT")
    const stopped = await first.exited
    expect(stopped.code).toBe(0)
    expect(stopped.stderr).toMatch(/stopped: \d+ lines, 3 transactions, acknowledged \d+\/[0-9A-F]+/)

    const lines = readLines(out)
    const changes = lines.filter((l) => l.op !== "begin" && l.op !== "commit")
    expect(changes.map((l) => l.op)).toEqual(["insert", "update", "insert", "delete"])
    expect(changes[0]).toMatchObject({
      table: `public.${table}`,
      new: { id: 1, name: "one", amount: "1.50", tags: ["a", "b"], doc: { k: [1, 2] }, big: 9007199254740993, at: "2024-05-01T12:00:00.000Z" }
    })
    expect(Fs.readFileSync(out, "utf8")).toContain('"big":9007199254740993')
    expect(changes[1]).toMatchObject({ op: "update", new: { id: 1, name: "uno", amount: "2.25" } })
    expect(changes[3]).toMatchObject({ op: "delete", key: { id: 1 } })
    expect(lines.filter((l) => l.op === "begin")).toHaveLength(3)
    expect(lines.filter((l) => l.op === "commit")).toHaveLength(3)
    const lastCommit = lines.filter((l) => l.op === "commit").at(-1)!
    expect(Fs.readFileSync(checkpoint, "utf8").trim()).toBe(lastCommit.end_lsn)
    expect(await slotExists(slot)).toBe(true)

    // Changes made while nothing streams are delivered on the next run, after the checkpoint.
    await sql(`INSERT INTO ${table} (id, name) SELECT i, 'later ' || i FROM generate_series(10, 59) i`)
    const second = spawnCli([...args, "--drop-slot"])
    await second.waitFor(/reusing slot .* resuming at checkpoint/)
    await waitUntil(() => readLines(out).filter((l) => l.op === "insert" && l.new.id >= 10).length >= 50, "the 50 later rows")
    second.child.kill("SIGINT")
    const again = await second.exited
    expect(again.code).toBe(0)
    const after = readLines(out)
    // The first run's lines were kept (append) and nothing acknowledged came again.
    expect(after.slice(0, lines.length)).toEqual(lines)
    const later = after.slice(lines.length).filter((l) => l.op === "insert")
    expect(later.map((l) => l.new.id).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 10))
    expect(again.stderr).toMatch(/dropped slot/)
    expect(await slotExists(slot)).toBe(false)
  })

  it("--snapshot copies existing rows in the slot's snapshot, then streams: every row exactly once", async () => {
    const table = uniqueName("cdc_snap")
    const slot = uniqueName("cdc_snap_slot")
    const pub = uniqueName("cdc_snap_pub")
    await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, v text, n numeric, at timestamptz); INSERT INTO ${table} SELECT i, 'v' || i, i / 4.0, '2024-01-01Z' FROM generate_series(1, 300) i`)
    const run = spawnCli(["cdc", uriFor(), "--slot", slot, "--publication", pub, "--tables", table, "--snapshot", "--drop-slot", "--read-batching", "10ms"])
    await run.waitFor(/streaming slot/)
    await sql(`INSERT INTO ${table} SELECT i, 'v' || i FROM generate_series(301, 400) i`)
    await waitUntil(() => run.stdout().split("\n").filter((l) => l.includes('"op":"insert"')).length >= 100, "the streamed inserts")
    run.child.kill("SIGINT")
    const result = await run.exited
    expect(result.code).toBe(0)
    expect(result.stderr).toMatch(/snapshot of 1 table\(s\), 300 rows/)
    const lines = result.stdout.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l))
    expect(lines.filter((l) => l.op === "snapshot")).toHaveLength(300)
    expect(lines.find((l) => l.op === "snapshot" && l.new.id === 2)).toMatchObject({ table: `public.${table}`, new: { id: 2, v: "v2", n: "0.50000000000000000000", at: "2024-01-01T00:00:00.000Z" } })
    const ids = lines.map((l) => l.new.id).sort((a: number, b: number) => a - b)
    expect(ids).toEqual(Array.from({ length: 400 }, (_, i) => i + 1))
    expect(await slotExists(slot)).toBe(false)
  })

  it("refuses a slot that is active in another session, at once, with exit 1", async () => {
    const slot = uniqueName("cdc_busy")
    const pub = uniqueName("cdc_busy_pub")
    const holder = spawnCli(["cdc", uriFor(), "--slot", slot, "--publication", pub, "--drop-slot", "-o", "/dev/null"])
    await holder.waitFor(/streaming slot/)
    // The walsender may need a moment to mark the slot active.
    const deadline = Date.now() + 10_000
    while ((await rows(`SELECT 1 FROM pg_replication_slots WHERE slot_name = '${slot}' AND active`)).length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50))
    }
    const started = Date.now()
    const second = await runCli(["cdc", uriFor(), "--slot", slot, "--publication", pub])
    expect(second.code).toBe(1)
    expect(second.stderr.trim()).toMatch(new RegExp(`^pgfx: replication slot ${slot} is active for PID \\d+`))
    expect(Date.now() - started).toBeLessThan(15_000)
    holder.child.kill("SIGINT")
    expect((await holder.exited).code).toBe(0)
  })

  it("reconnects and resumes when the server restarts mid-stream (private server)", async () => {
    const server = await startTestServer({ version: 18 })
    try {
      const uri = uriFor(server.info)
      const table = "restart_t"
      await sql(`CREATE TABLE ${table} (id int PRIMARY KEY)`, server.info)
      const out = Path.join(dir.path, "restart.ndjson")
      const checkpoint = Path.join(dir.path, "restart.lsn")
      const run = spawnCli(["cdc", uri, "--slot", "restart_slot", "--checkpoint", checkpoint, "-o", out], { timeoutMs: 120_000 })
      await run.waitFor(/streaming slot/)
      await sql(`INSERT INTO ${table} SELECT generate_series(1, 20)`, server.info)
      await waitUntil(() => readLines(out).length >= 20, "rows before the restart")
      await server.restart("fast")
      await sql(`INSERT INTO ${table} SELECT generate_series(21, 40)`, server.info)
      await waitUntil(() => readLines(out).filter((l) => l.new?.id > 20).length >= 20, "rows after the restart", 60_000)
      run.child.kill("SIGINT")
      const result = await run.exited
      expect(result.code).toBe(0)
      expect(result.stderr).toMatch(/reconnected/)
      const ids = new Set(readLines(out).map((l) => l.new.id))
      for (let i = 1; i <= 40; i++) expect(ids.has(i)).toBe(true)
    } finally {
      await server.stop()
    }
  }, 120_000)

  it("rejects bad arguments with exit 2", async () => {
    const bad = await runCli(["cdc", uriFor(), "--start-lsn", "nope"])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--start-lsn/)
    const proto = await runCli(["cdc", uriFor(), "--proto-version", "9"])
    expect(proto.code).toBe(2)
    const batching = await runCli(["cdc", uriFor(), "--read-batching", "500ms"])
    expect(batching.code).toBe(2)
    expect(batching.stderr).toMatch(/--read-batching: "500ms" is neither off nor a duration above 0 and at most 100ms/)
  })

  it("asks pgoutput for binary values and an older protocol version, with a temporary slot", async () => {
    const table = uniqueName("cdc_bin")
    const pub = uniqueName("cdc_bin_pub")
    await sql(`CREATE TABLE ${table} (id int PRIMARY KEY, amount numeric(10,2), at timestamptz, tags int[], doc jsonb)`)
    const slot = uniqueName("cdc_bin_slot")
    const run = spawnCli(["cdc", uriFor(), "--slot", slot, "--publication", pub, "--tables", table, "--binary", "--proto-version", "2", "--temporary", "--read-batching", "off"])
    // A temporary slot is listed, and active, while its creation still waits for running transactions;
    // it decodes only commits after its consistent point, which the command reports.
    await run.waitFor(/created temporary slot .* at [0-9A-F]+\/[0-9A-F]+/)
    await sql(`INSERT INTO ${table} VALUES (7, 12.34, '2024-02-29T23:59:59.5Z', ARRAY[1,2,3], '{"a": true}')`)
    await run.waitFor(/"op":"insert"/)
    run.child.kill("SIGINT")
    const result = await run.exited
    expect(result.code).toBe(0)
    const line = JSON.parse(result.stdout.trim().split("\n")[0]!)
    expect(line).toMatchObject({ op: "insert", table: `public.${table}`, new: { id: 7, amount: "12.34", at: "2024-02-29T23:59:59.500Z", tags: [1, 2, 3], doc: { a: true } } })
    // Temporary: gone with its session.
    expect(await slotExists(slot)).toBe(false)
  })
})
