import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rows, runCli, runCliOnTty, spawnCli, sql, tempDir, uniqueName, uriFor } from "./helpers.ts"

const dir = tempDir()
const table = uniqueName("copy_src")
const SEED = 1000

beforeAll(async () => {
  await sql(`
    CREATE TABLE ${table} (id int PRIMARY KEY, name text, price numeric(10,2), tags text[], doc jsonb, at timestamptz, big bigint);
    INSERT INTO ${table}
      SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'name, "quoted"' || E'\\t' || i END, i * 1.25, ARRAY['a' || i, 'b'],
             jsonb_build_object('i', i, 'nested', jsonb_build_array(i, 'x')), '2024-01-01T00:00:00Z'::timestamptz + i * interval '1 minute',
             9007199254740993 + i
      FROM generate_series(1, ${SEED}) i;`)
})

afterAll(() => dir.remove())

const cloneTable = async (name: string) => {
  await sql(`CREATE TABLE ${name} (LIKE ${table})`)
}

const sameRows = async (a: string, b: string) => {
  const [diff] = await rows(`SELECT count(*)::int AS n FROM ((TABLE ${a} EXCEPT ALL TABLE ${b}) UNION ALL (TABLE ${b} EXCEPT ALL TABLE ${a})) d`)
  const [count] = await rows(`SELECT count(*)::int AS n FROM ${b}`)
  expect(diff!["n"]).toBe(0)
  expect(count!["n"]).toBe(SEED)
}

describe("pgfx copy", () => {
  it("exports a table as CSV with a header to a file, and imports it back", async () => {
    const file = Path.join(dir.path, "out.csv")
    const out = await runCli(["copy", uriFor(), "-t", table, "-o", file, "--header"])
    expect(out.code).toBe(0)
    expect(out.stderr).toMatch(new RegExp(`pgfx copy: ${SEED} rows`))
    const text = Fs.readFileSync(file, "utf8")
    expect(text.split("\n")[0]).toBe("id,name,price,tags,doc,at,big")
    expect(text.trimEnd().split("\n")).toHaveLength(SEED + 1)
    expect(Fs.existsSync(`${file}.partial`)).toBe(false)

    const target = uniqueName("copy_csv")
    await cloneTable(target)
    const back = await runCli(["copy", uriFor(), "-t", target, "-i", file, "--header"])
    expect(back.code).toBe(0)
    expect(back.stderr).toMatch(new RegExp(`${SEED} rows`))
    await sameRows(table, target)
  })

  it("exports TSV to stdout and imports it from stdin", async () => {
    const out = await runCli(["copy", uriFor(), "-t", table, "-f", "tsv", "-q"])
    expect(out.code).toBe(0)
    expect(out.stderr).toBe("")
    expect(out.stdout.trimEnd().split("\n")).toHaveLength(SEED)
    const target = uniqueName("copy_tsv")
    await cloneTable(target)
    const back = await runCli(["copy", uriFor(), "-t", target, "-f", "tsv", "-i", "-"], { stdin: out.stdout })
    expect(back.code).toBe(0)
    await sameRows(table, target)
  })

  it("writes typed NDJSON (exact bigints, arrays, jsonb, ISO times) and reads it back", async () => {
    const out = await runCli(["copy", uriFor(), "-c", `SELECT * FROM ${table} ORDER BY id`, "-f", "ndjson"])
    expect(out.code).toBe(0)
    const lines = out.stdout.trimEnd().split("\n")
    expect(lines).toHaveLength(SEED)
    expect(lines[0]).toContain('"big":9007199254740994')
    const first = JSON.parse(lines[0]!)
    expect(first).toMatchObject({ id: 1, name: 'name, "quoted"\t1', price: "1.25", tags: ["a1", "b"], doc: { i: 1, nested: [1, "x"] }, at: "2024-01-01T00:01:00.000Z" })
    expect(JSON.parse(lines[6]!).name).toBeNull()

    const file = Path.join(dir.path, "rows.ndjson")
    Fs.writeFileSync(file, out.stdout)
    const target = uniqueName("copy_ndjson")
    await cloneTable(target)
    const back = await runCli(["copy", uriFor(), "-t", target, "-f", "ndjson", "-i", file])
    expect(back.code).toBe(0)
    await sameRows(table, target)
  })

  it("round-trips COPY binary through a file", async () => {
    const file = Path.join(dir.path, "rows.bin")
    const out = await runCli(["copy", uriFor(), "-t", table, "-f", "binary", "-o", file])
    expect(out.code).toBe(0)
    expect(Fs.readFileSync(file).subarray(0, 11).toString("latin1")).toBe("PGCOPY\n\xff\r\n\0")
    const target = uniqueName("copy_bin")
    await cloneTable(target)
    const back = await runCli(["copy", uriFor(), "-t", target, "-f", "binary", "-i", file])
    expect(back.code).toBe(0)
    await sameRows(table, target)
  })

  it("copies database to database (--from/--to), a table and a query", async () => {
    const target = uniqueName("copy_db")
    await cloneTable(target)
    const out = await runCli(["copy", "--from", uriFor(), "--to", uriFor(), "-t", table, "--target-table", target])
    expect(out.code).toBe(0)
    expect(out.stderr).toMatch(new RegExp(`${SEED} rows`))
    await sameRows(table, target)
    const half = uniqueName("copy_q")
    await cloneTable(half)
    const q = await runCli(["copy", "--from", uriFor(), "--to", uriFor(), "-c", `SELECT * FROM ${table} WHERE id <= 10`, "--target-table", half, "-q"])
    expect(q.code).toBe(0)
    const [n] = await rows(`SELECT count(*)::int AS n FROM ${half}`)
    expect(n!["n"]).toBe(10)
  })

  it("exports the same bytes to -o FILE and to stdout redirected to a file (both written straight from the socket)", async () => {
    const viaOutput = Path.join(dir.path, "via-output.csv")
    const viaStdout = Path.join(dir.path, "via-stdout.csv")
    const a = await runCli(["copy", uriFor(), "-c", `SELECT * FROM ${table} ORDER BY id`, "--header", "-o", viaOutput])
    const b = await runCli(["copy", uriFor(), "-c", `SELECT * FROM ${table} ORDER BY id`, "--header", "-q"], { stdoutFile: viaStdout })
    expect([a.code, b.code]).toEqual([0, 0])
    expect(a.stderr).toMatch(new RegExp(`${SEED} rows`))
    const written = Fs.readFileSync(viaStdout)
    expect(written.equals(Fs.readFileSync(viaOutput))).toBe(true)
    expect(written.toString("utf8").split("\n")[0]).toMatch(/^id,/)
    const target = uniqueName("copy_stdout")
    await cloneTable(target)
    const back = await runCli(["copy", uriFor(), "-t", target, "--header", "-i", viaStdout])
    expect(back.code).toBe(0)
    await sameRows(table, target)
  })

  it("fails with exit 1 and one line on a full disk (/dev/full), as file and as stdout", async () => {
    const out = await runCli(["copy", uriFor(), "-t", table, "-o", "/dev/full"])
    expect(out.code).toBe(1)
    expect(out.stderr.trim()).toMatch(/^pgfx: cannot write \/dev\/full: .*no space left on device/i)
    expect(out.stderr.trim().split("\n")).toHaveLength(1)
    const viaStdout = await runCli(["copy", uriFor(), "-t", table, "-q"], { stdoutFile: "/dev/full" })
    expect(viaStdout.code).toBe(1)
    expect(viaStdout.stderr).toMatch(/cannot write stdout: .*no space left on device/i)
  })

  it("reports a missing table with its SQLSTATE, and leaves no output file", async () => {
    const file = Path.join(dir.path, "missing.csv")
    const out = await runCli(["copy", uriFor(), "-t", "no_such_table_here", "-o", file])
    expect(out.code).toBe(1)
    expect(out.stderr.trim()).toBe('pgfx: ERROR: relation "no_such_table_here" does not exist (SQLSTATE 42P01)')
    expect(Fs.existsSync(file)).toBe(false)
    expect(Fs.existsSync(`${file}.partial`)).toBe(false)
  })

  it("an import that fails on a bad row leaves the table unchanged", async () => {
    const target = uniqueName("copy_bad")
    await cloneTable(target)
    const out = await runCli(["copy", uriFor(), "-t", target, "-i", "-"], { stdin: "1,a,1.0,{x},{},2024-01-01,1\nnot-a-number,b,2,{y},{},2024-01-01,2\n" })
    expect(out.code).toBe(1)
    expect(out.stderr).toMatch(/invalid input syntax for type integer.*SQLSTATE 22P02/)
    const [n] = await rows(`SELECT count(*)::int AS n FROM ${target}`)
    expect(n!["n"]).toBe(0)
  })

  it("Ctrl-C during a long export exits 130 and leaves neither the file nor a partial file", async () => {
    const file = Path.join(dir.path, "huge.csv")
    const run = spawnCli(["copy", uriFor(), "-c", "SELECT i, repeat('x', 100) FROM generate_series(1, 50000000) i", "-o", file])
    // Wait until data is flowing into the partial file.
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline) {
      if (Fs.existsSync(`${file}.partial`) && Fs.statSync(`${file}.partial`).size > 1_000_000) break
      await new Promise((r) => setTimeout(r, 50))
    }
    run.child.kill("SIGINT")
    const result = await run.exited
    expect(result.code).toBe(130)
    expect(result.stderr.trim()).toBe(`pgfx: interrupted: the export was not written (${file} untouched, its .partial file removed)`)
    expect(Fs.existsSync(file)).toBe(false)
    expect(Fs.existsSync(`${file}.partial`)).toBe(false)
    // The server-side COPY was cancelled, not left running.
    const active = await rows(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%generate_series(1, 50000000)%' AND pid <> pg_backend_pid()`)
    expect(active[0]!["n"]).toBe(0)
  })

  it("refuses contradictory directions with exit 2", async () => {
    const both = await runCli(["copy", uriFor(), "-t", table, "-i", "x.csv", "-o", "y.csv"])
    expect(both.code).toBe(2)
    expect(both.stderr).toMatch(/--input or --output/)
    const half = await runCli(["copy", "--from", uriFor(), "-t", table])
    expect(half.code).toBe(2)
    const nothing = await runCli(["copy", uriFor()])
    expect(nothing.code).toBe(2)
    expect(nothing.stderr).toMatch(/nothing to copy/)
  })

  it("draws a progress bar (rows, bytes, bytes/s, ETA when the size is known) on a terminal only", async () => {
    const big = Path.join(dir.path, "big.csv")
    const out = await runCliOnTty(["copy", uriFor(), "-c", "SELECT i, repeat('y', 200) FROM generate_series(1, 300000) i", "-o", big])
    expect(out.code).toBe(0)
    expect(out.stdout).toMatch(/\r\x1b\[2Kexport: [\d,]+ rows {2}[\d.]+ (kB|MB) {2}[\d.]+ (kB|MB)\/s/)
    const target = uniqueName("copy_eta")
    await sql(`CREATE TABLE ${target} (i int, s text)`)
    const back = await runCliOnTty(["copy", uriFor(), "-t", target, "-i", big])
    expect(back.code).toBe(0)
    expect(back.stdout).toMatch(/\[#+-*\] +\d+%  import: [\d,]+ rows .* ETA \d\d:\d\d/)
    expect(back.stdout).toMatch(/300000 rows/)
    // Not a terminal: no drawing at all, only the summary.
    const plain = await runCli(["copy", uriFor(), "-t", target, "-o", Path.join(dir.path, "again.csv")])
    expect(plain.stderr).not.toContain("\r")
    expect(plain.stderr.trim().split("\n")).toHaveLength(1)
  })
})
