import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { cleanEnv, pg18, spawnCli, tempDir, type RunningCli } from "./helpers.ts"

const PSQL = "/usr/lib/postgresql/15/bin/psql"
const PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
const dir = tempDir()
afterAll(() => dir.remove())

const runTool = (file: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    ChildProcess.execFile(file, [...args], { env: cleanEnv(env), timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error as { code?: number }).code ?? 1, stdout, stderr })
    })
  })

const startTrace = async (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<{ run: RunningCli; port: number }> => {
  const run = spawnCli(["trace", ...args], { env })
  await run.waitFor(/listening on 127\.0\.0\.1:\d+/)
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(run.stderr())![1])
  return { run, port }
}

const stop = async (run: RunningCli) => {
  run.child.kill("SIGINT")
  const result = await run.exited
  expect(result.code).toBe(0)
  return result
}

describe("pgfx trace", () => {
  it("proxies psql to a TLS-only link and prints every message decoded, both directions", async () => {
    const info = pg18()
    const { run, port } = await startTrace([`host=127.0.0.1 port=${info.port} sslmode=require`])
    const psql = await runTool(PSQL, ["-h", "127.0.0.1", "-p", String(port), "-U", info.superuser, "-d", info.database, "-X", "-A", "-t", "-c", "select 40 + 2 as answer"], { PGSSLMODE: "prefer" })
    expect(psql.stderr).toBe("")
    expect(psql.stdout.trim()).toBe("42")
    await run.waitFor(/session closed/)
    const { stdout } = await stop(run)
    const lines = stdout.split("\n")
    const has = (re: RegExp) => expect(lines.some((l) => re.test(l)), `${re} in\n${stdout}`).toBe(true)
    has(/F→B SSLRequest/)
    has(/answered SSLRequest with 'N'/)
    has(/connected to 127\.0\.0\.1:\d+ over TLS/)
    has(/F→B StartupMessage .*"user":"postgres"/)
    has(/B→F AuthenticationOk/)
    has(/B→F ParameterStatus name="server_version"/)
    has(/B→F BackendKeyData/)
    has(/F→B Query sql="select 40 \+ 2 as answer"/)
    has(/B→F RowDescription .*"name":"answer"/)
    has(/B→F DataRow .*"42"/)
    has(/B→F CommandComplete tag="SELECT 1"/)
    has(/B→F ReadyForQuery status=/)
    has(/F→B Terminate/)
    // Every message line carries the session and a time.
    for (const l of lines.filter((l) => /→/.test(l))) expect(l).toMatch(/^#1 +\d+\.\d{3} ms/)
  })

  it("works with pgbench (extended protocol, several clients) and writes NDJSON to a file", async () => {
    const info = pg18()
    const file = Path.join(dir.path, "trace.ndjson")
    const script = Path.join(dir.path, "bench.sql")
    Fs.writeFileSync(script, "\\set x random(1, 1000)\nselect :x::int * 2;\n")
    const { run, port } = await startTrace(["-h", "127.0.0.1", "-p", String(info.port), "--format", "ndjson", "-o", file])
    const bench = await runTool(PGBENCH, ["-h", "127.0.0.1", "-p", String(port), "-U", info.superuser, "-n", "-M", "extended", "-c", "2", "-t", "25", "-f", script, info.database], { PGSSLMODE: "disable" })
    expect(bench.stdout).toMatch(/number of transactions actually processed: 50\/50/)
    await stop(run)
    const events = Fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
    const messages = events.filter((e) => e["type"] !== undefined)
    const count = (type: string, dir: string) => messages.filter((m) => m["type"] === type && m["dir"] === dir).length
    // pgbench's two clients (and its own first connection).
    expect(new Set(messages.map((m) => m["session"])).size).toBeGreaterThanOrEqual(2)
    expect(count("Parse", "frontend")).toBe(50)
    expect(count("Bind", "frontend")).toBe(50)
    expect(count("Execute", "frontend")).toBe(50)
    expect(count("DataRow", "backend")).toBe(50)
    const bind = messages.find((m) => m["type"] === "Bind")!
    expect(bind["fields"]).toMatchObject({ portal: "" })
    for (const m of messages.filter((m) => m["dir"] === "backend")) expect(typeof m["since_request_ms"]).toBe("number")
  })

  it("never prints a password: SCRAM through the proxy shows SASL messages by size only", async () => {
    const info = pg18()
    // TLS to the server: the proxy must hide SCRAM-SHA-256-PLUS from the plain-TCP client.
    const { run, port } = await startTrace(["-h", "127.0.0.1", "-p", String(info.port), "--format", "ndjson"], { PGSSLMODE: "require" })
    const psql = await runTool(PSQL, ["-h", "127.0.0.1", "-p", String(port), "-U", info.users.scram.user, "-d", info.database, "-X", "-A", "-t", "-c", "select current_user"], {
      PGPASSWORD: info.users.scram.password,
      PGSSLMODE: "disable"
    })
    expect(psql.stdout.trim()).toBe(info.users.scram.user)
    await run.waitFor(/session closed/)
    const { stdout } = await stop(run)
    expect(stdout).not.toContain(info.users.scram.password)
    expect(stdout).toMatch(/"type":"AuthenticationSASL"/)
    expect(stdout).toMatch(/"type":"SASLInitialResponse".*"data":"<\d+ bytes>"/)
    expect(stdout).toMatch(/"type":"SASLResponse"/)
    expect(stdout).toMatch(/"type":"AuthenticationOk"/)
    expect(stdout).toMatch(/over TLS/)
    expect(stdout).toMatch(/removed the -PLUS SASL mechanisms/)
  })

  it("reports an unreachable server per session and keeps serving", async () => {
    const { run, port } = await startTrace(["-h", "127.0.0.1", "-p", "1", "--format", "text"])
    const psql = await runTool(PSQL, ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-X", "-c", "select 1"], { PGSSLMODE: "disable", PGCONNECT_TIMEOUT: "5" })
    expect(psql.code).not.toBe(0)
    await run.waitFor(/session closed \(server error: connect ECONNREFUSED/)
    expect(run.child.exitCode).toBeNull()
    await stop(run)
  })
})
