import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { pg18, runCli, tempDir } from "./helpers.ts"

const dir = tempDir()
afterAll(() => dir.remove())

const COMMANDS = ["copy", "cdc", "receivewal", "basebackup", "trace", "bench"]

/** A loopback port nothing listens on. */
const closedPort = () =>
  new Promise<number>((resolve) => {
    const srv = Net.createServer()
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as Net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })

describe("pgfx command line", () => {
  it("--help on the root and on every command, with examples, exit 0", async () => {
    const root = await runCli(["--help"])
    expect(root.code).toBe(0)
    for (const c of COMMANDS) expect(root.stdout).toContain(c)
    expect(root.stdout).toContain("--duration")
    const helps = await Promise.all(COMMANDS.map((c) => runCli([c, "--help"])))
    helps.forEach((h, i) => {
      expect(h.code, COMMANDS[i]).toBe(0)
      expect(h.stdout, COMMANDS[i]).toContain("EXAMPLES")
      expect(h.stdout, COMMANDS[i]).toContain(`pgfx ${COMMANDS[i]}`)
    })
    const copy = helps[0]!.stdout
    for (const f of ["--host, -h", "--port, -p", "--username, -U", "--dbname, -d"]) expect(copy).toContain(f)
  })

  it("usage errors exit 2: unknown flags, bad values, bad connection strings", async () => {
    const [unknownRoot, unknownCopy, badFormat, badString, badDuration] = await Promise.all([
      runCli(["--no-such-flag"]),
      runCli(["copy", "--bogus"]),
      runCli(["copy", "-t", "x", "-f", "xml"]),
      runCli(["copy", "host=localhost nonsense_keyword=1", "-t", "x"]),
      runCli(["--duration", "soon"])
    ])
    expect(unknownRoot.code).toBe(2)
    expect(unknownRoot.stderr).toMatch(/Unrecognized flag: --no-such-flag/)
    expect(unknownCopy.code).toBe(2)
    expect(badFormat.code).toBe(2)
    expect(badString.code).toBe(2)
    expect(badString.stderr.trim()).toMatch(/^pgfx: bad connection settings: .*nonsense_keyword/)
    expect(badDuration.code).toBe(2)
    expect(badDuration.stderr.trim()).toBe('pgfx: --duration: cannot read "soon" (try 30s, 2m)')
  })

  it("an unreachable host is one readable line and exit 1", async () => {
    const port = await closedPort()
    const result = await runCli(["copy", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-t", "x"])
    expect(result.code).toBe(1)
    const lines = result.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^pgfx: connection failed: .*127\.0\.0\.1.*ECONNREFUSED|^pgfx: connection failed: .*refused/i)
    expect(result.stderr).not.toMatch(/\n\s+at /)
  })

  it("a wrong password names the failure and the SQLSTATE, never the password; --verbose adds a trace", async () => {
    const info = pg18()
    const uri = `postgresql://${info.users.scram.user}:wrong-secret-xyz@127.0.0.1:${info.port}/${info.database}?sslmode=disable`
    const result = await runCli(["copy", uri, "-t", "x"])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toMatch(/^pgfx: authentication failed: .*password authentication failed for user "pgfx_scram" \(SQLSTATE 28P01\)$/)
    expect(result.stderr).not.toContain("wrong-secret-xyz")
    const verbose = await runCli(["copy", uri, "-t", "x", "--verbose"])
    expect(verbose.code).toBe(1)
    expect(verbose.stderr.split("\n").length).toBeGreaterThan(2)
    expect(verbose.stderr).not.toContain("wrong-secret-xyz")
  })

  it("takes settings from PG* variables and the password from ~/.pgpass, like psql", async () => {
    const info = pg18()
    const home = Path.join(dir.path, "home")
    Fs.mkdirSync(home, { recursive: true })
    Fs.writeFileSync(Path.join(home, ".pgpass"), `127.0.0.1:${info.port}:*:${info.users.scram.user}:${info.users.scram.password}\n`, { mode: 0o600 })
    const env = {
      HOME: home,
      PGHOST: "127.0.0.1",
      PGPORT: String(info.port),
      PGUSER: info.users.scram.user,
      PGDATABASE: info.database,
      PGSSLMODE: "disable"
    }
    const result = await runCli(["copy", "-c", "select current_user as u, 6 * 7 as answer", "-f", "csv", "-q"], { env })
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${info.users.scram.user},42\n`)
    // Explicit flags beat the environment.
    const flags = await runCli(["copy", "-U", info.superuser, "-c", "select current_user", "-q"], { env })
    expect(flags.stdout).toBe(`${info.superuser}\n`)
    // A keyword/value string works as the positional argument.
    const keywords = await runCli(["copy", `host=127.0.0.1 port=${info.port} user=${info.superuser} dbname=${info.database} sslmode=disable`, "-c", "select 1", "-q"])
    expect(keywords.stdout).toBe("1\n")
  })
})
