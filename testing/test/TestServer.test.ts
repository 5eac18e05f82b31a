/**
 * The test servers started by the global setup, checked against what the tests of every other
 * package rely on: versions, settings, users and their authentication methods, TLS material,
 * and the raw session itself; plus the clear failures of a bad setup.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Tls from "node:tls"
import { describe, expect, inject, it } from "vitest"
import { dataRowText, errorFields, openRawSession, rowsOf } from "../src/RawSession.ts"
import type { RawResult } from "../src/RawSession.ts"
import { startTestServer } from "../src/TestServer.ts"
import type { TestServerInfo } from "../src/TestServer.ts"

// PGFX_TEST_PG15=0 (local runs only; CI always runs 15) leaves PostgreSQL 15 out of the run.
const servers: Array<[string, 15 | 18, TestServerInfo | undefined]> = [
  ["pg18", 18, inject("pg18")],
  ...(process.env["PGFX_TEST_PG15"] === "0" ? [] : [["pg15", 15, inject("pg15")] as [string, 15 | 18, TestServerInfo | undefined]])
]

const types = (r: RawResult) => r.frames.map((f) => String.fromCharCode(f.type)).join("")

const withSession = async <A>(info: TestServerInfo, f: (query: (sql: string) => Promise<Array<Array<string | null>>>) => Promise<A>) => {
  const session = await openRawSession(info)
  try {
    return await f(async (sql) => rowsOf(await session.query(sql)))
  } finally {
    await session.close()
  }
}

/** SSLRequest on a plain TCP socket, then TLS on the same socket; resolves with the TLS socket. */
const tlsConnect = (info: TestServerInfo, options: Tls.ConnectionOptions): Promise<Tls.TLSSocket> =>
  new Promise((resolve, reject) => {
    const socket = Net.createConnection({ host: info.host, port: info.port })
    socket.once("error", reject)
    socket.once("connect", () => socket.write(new Uint8Array([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])))
    socket.once("data", (answer) => {
      if (answer[0] !== 0x53) return reject(new Error(`server refused SSL: ${answer[0]}`))
      const tls = Tls.connect({ socket, ...options })
      tls.once("secureConnect", () => resolve(tls))
      tls.once("error", reject)
    })
  })

describe.each(servers)("%s", (_name, version, info) => {
  it("was provided by the global setup", () => {
    expect(info, `inject("pg${version}") is missing (PGFX_TEST_PG15=0?)`).toBeDefined()
  })
  if (info === undefined) return

  it("accepts a raw session whose startup ends in ReadyForQuery, with the exact bytes", async () => {
    const session = await openRawSession(info)
    try {
      const { frames, bytes } = session.startup
      expect(frames[0]!.type).toBe(0x52) // AuthenticationOk
      expect(dataView(frames[0]!.body).getInt32(0)).toBe(0)
      expect(frames.at(-1)!.type).toBe(0x5a)
      expect(String.fromCharCode(frames.at(-1)!.body[0]!)).toBe("I")
      expect(session.processId).toBeGreaterThan(0)
      // Each frame is type byte + Int32 length + body, back to back.
      let at = 0
      for (const f of frames) {
        expect(bytes[at]).toBe(f.type)
        expect(dataView(bytes.subarray(at + 1, at + 5)).getInt32(0)).toBe(f.body.length + 4)
        expect(bytes.subarray(at + 5, at + 5 + f.body.length)).toEqual(f.body)
        at += 5 + f.body.length
      }
      expect(at).toBe(bytes.length)
    } finally {
      await session.close()
    }
  })

  it(`runs PostgreSQL ${version} with ssl and logical WAL`, async () => {
    const rows = await withSession(info, (q) =>
      q("SHOW server_version; SHOW ssl; SHOW wal_level; SHOW max_wal_senders; SHOW max_replication_slots; SHOW max_connections; SHOW password_encryption; SHOW listen_addresses")
    )
    expect(rows[0]![0]!.startsWith(String(version))).toBe(true)
    expect(rows.slice(1).map((r) => r[0])).toEqual(["on", "logical", "20", "20", "200", "scram-sha-256", "127.0.0.1"])
    expect(info.version).toBe(version)
    expect(Fs.existsSync(`${info.socketDir}/.s.PGSQL.${info.port}`)).toBe(true)
  })

  it("has each user with its intended password storage and pg_hba method", async () => {
    const { authid, hba } = await withSession(info, async (q) => ({
      authid: await q(
        "SELECT rolname, coalesce(left(rolpassword, 14), ''), rolcanlogin, rolreplication FROM pg_authid WHERE rolname IN " +
          `('${info.users.scram.user}', '${info.users.md5.user}', '${info.users.password.user}', '${info.users.trust.user}', '${info.users.cert.user}', 'postgres')`
      ),
      hba: await q("SELECT type, array_to_string(database, ','), array_to_string(user_name, ','), address, auth_method, error FROM pg_hba_file_rules")
    }))
    const role = new Map(authid.map((r) => [r[0], r.slice(1)]))
    expect(role.get(info.users.scram.user)).toEqual(["SCRAM-SHA-256$", "t", "t"])
    expect(role.get(info.users.password.user)).toEqual(["SCRAM-SHA-256$", "t", "t"])
    expect(role.get(info.users.md5.user)![0]!.startsWith("md5")).toBe(true)
    for (const u of [info.users.md5.user, info.users.trust.user, info.users.cert.user, "postgres"]) {
      expect(role.get(u)!.slice(1), u).toEqual(["t", "t"])
    }
    expect(hba.filter((r) => r[5] !== null)).toEqual([])
    const methods = (user: string, type: string, database: string) =>
      new Set(hba.filter((r) => r[0] === type && r[1] === database && r[2] === user).map((r) => r[4]))
    for (const db of ["all", "replication"]) {
      expect(methods(info.users.scram.user, "host", db)).toEqual(new Set(["scram-sha-256"]))
      expect(methods(info.users.md5.user, "host", db)).toEqual(new Set(["md5"]))
      expect(methods(info.users.password.user, "host", db)).toEqual(new Set(["password"]))
      expect(methods(info.users.cert.user, "hostssl", db)).toEqual(new Set(["cert"]))
      expect(methods(info.superuser, "host", db)).toEqual(new Set(["trust"]))
      expect(methods("all", "local", db)).toEqual(new Set(["trust"]))
    }
    // Both loopback addresses for each TCP method.
    expect(new Set(hba.filter((r) => r[2] === info.users.scram.user).map((r) => r[3]))).toEqual(new Set(["127.0.0.1", "::1"]))
  })

  it("accepts the trust user on the unix socket", async () => {
    const session = await openRawSession(info, { user: info.users.trust.user })
    try {
      expect(rowsOf(await session.query("SELECT current_user"))).toEqual([[info.users.trust.user]])
    } finally {
      await session.close()
    }
  })

  it("serves TLS with a certificate for localhost and 127.0.0.1 signed by caFile, and accepts the client certificate", async () => {
    const ca = Fs.readFileSync(info.caFile)
    for (const servername of ["localhost", undefined]) {
      const tls = await tlsConnect(info, {
        ca,
        ...(servername === undefined ? {} : { servername }),
        checkServerIdentity: (host, cert) => Tls.checkServerIdentity(servername ?? "127.0.0.1", cert),
        cert: Fs.readFileSync(info.users.cert.certFile),
        key: Fs.readFileSync(info.users.cert.keyFile)
      })
      expect(tls.authorized).toBe(true)
      expect(tls.getPeerCertificate().subjectaltname).toContain("IP Address:127.0.0.1")
      tls.destroy()
    }
    // A wrong CA fails verification.
    await expect(tlsConnect(info, { ca: Fs.readFileSync(info.users.cert.certFile), servername: "localhost" })).rejects.toThrow()
  })

  it("runs extended queries with binary parameters and results", async () => {
    const session = await openRawSession(info)
    try {
      const int4 = new Uint8Array([0, 0, 0x01, 0x00]) // 256
      const result = await session.extended("SELECT $1::int4 + 1, $2::text", [
        { oid: 23, format: 1, value: int4 },
        { oid: 25, format: 0, value: null }
      ], 1)
      expect(types(result)).toBe("12TDCZ") // ParseComplete, BindComplete, RowDescription, DataRow, CommandComplete, ReadyForQuery
      const row = result.frames.find((f) => f.type === 0x44)!
      expect(dataView(row.body).getInt16(0)).toBe(2)
      expect(dataView(row.body).getInt32(2)).toBe(4)
      expect(dataView(row.body).getInt32(6)).toBe(257)
      expect(dataView(row.body).getInt32(10)).toBe(-1)
    } finally {
      await session.close()
    }
  })

  it("reports errors as ErrorResponse and stays usable", async () => {
    const session = await openRawSession(info)
    try {
      const bad = await session.query("SELEC 1")
      expect(types(bad)).toBe("EZ")
      expect(errorFields(bad.frames[0]!)["C"]).toBe("42601")
      expect(() => rowsOf(bad)).toThrow(/42601/)
      const good = await session.query("SELECT 'x', NULL")
      expect(dataRowText(good.frames.find((f) => f.type === 0x44)!)).toEqual(["x", null])
    } finally {
      await session.close()
    }
    await expect(openRawSession(info, { database: "pgfx_no_such_database" })).rejects.toThrow(/3D000/)
  })

  it("negotiates protocol 3.2 (PostgreSQL 18: a 32-byte cancel key; 15: NegotiateProtocolVersion)", async () => {
    const session = await openRawSession(info, { protocol: "3.2" })
    try {
      const key = session.startup.frames.find((f) => f.type === 0x4b)!
      if (version === 18) {
        expect(key.body.length).toBe(4 + 32)
      } else {
        const negotiate = session.startup.frames.find((f) => f.type === 0x76)!
        expect(dataView(negotiate.body).getInt32(0)).toBe(0x00030000)
        expect(key.body.length).toBe(8)
      }
    } finally {
      await session.close()
    }
  })

  it("accepts replication sessions", async () => {
    const session = await openRawSession(info, { replication: "database" })
    try {
      const rows = rowsOf(await session.query("IDENTIFY_SYSTEM"))
      expect(rows).toHaveLength(1)
      expect(rows[0]![3]).toBe("postgres")
    } finally {
      await session.close()
    }
  })
})

const dataView = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength)

describe("bad setup", () => {
  it("fails fast, naming the port, when a requested port is taken", async () => {
    const blocker = Net.createServer()
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r))
    const port = (blocker.address() as Net.AddressInfo).port
    try {
      const t0 = Date.now()
      await expect(startTestServer({ version: 18, port })).rejects.toThrow(new RegExp(`port ${port}.*in use`))
      expect(Date.now() - t0).toBeLessThan(5_000)
    } finally {
      blocker.close()
    }
  })

  it("names the package to install when the binaries are missing", async () => {
    await expect(startTestServer({ version: 15, binDir: "/nonexistent/pg15/bin" })).rejects.toThrow(
      /\/nonexistent\/pg15\/bin.*apt-get install postgresql-15/
    )
    await expect(startTestServer({ version: 18, binDir: "/nonexistent/pg18/bin" })).rejects.toThrow(/npm install/)
  })

  it("includes the tail of the server log when startup fails", async () => {
    await expect(startTestServer({ version: 18, extraConf: { shared_buffers: "not-a-size" } })).rejects.toThrow(
      /failed to start[\s\S]*server log[\s\S]*shared_buffers/
    )
  })
})

describe("lifecycle", () => {
  it("stops, restarts and starts again; stop removes the directories", async () => {
    const lines: Array<string> = []
    const server = await startTestServer({ version: 18, log: (l) => lines.push(l) })
    const { dataDir, socketDir } = server.info
    try {
      const before = await withSession(server.info, (q) => q("SELECT pg_postmaster_start_time()"))
      await server.restart("immediate")
      const after = await withSession(server.info, (q) => q("SELECT pg_postmaster_start_time()"))
      expect(after[0]![0]).not.toBe(before[0]![0])
      await server.stopImmediate()
      await expect(openRawSession(server.info)).rejects.toThrow()
      await server.start()
      expect(await withSession(server.info, (q) => q("SELECT 1"))).toEqual([["1"]])
      await server.restart()
      expect(await withSession(server.info, (q) => q("SELECT 2"))).toEqual([["2"]])
    } finally {
      await server.stop()
    }
    expect(Fs.existsSync(dataDir)).toBe(false)
    expect(Fs.existsSync(socketDir)).toBe(false)
    expect(lines.some((l) => l.includes("immediate shutdown"))).toBe(true)
  })

  it("keeps a given data directory and reuses it", async () => {
    const parent = Fs.mkdtempSync("/tmp/pgfx-keep-test-") // mode 0700
    const dataDir = parent + "/data"
    try {
      if (process.getuid?.() === 0) {
        // As root the server runs as postgres, which cannot enter a 0700 root-owned directory.
        await expect(startTestServer({ version: 15, dataDir, keep: true })).rejects.toThrow(/postgres OS user cannot enter/)
      }
      Fs.chmodSync(parent, 0o755)
      const first = await startTestServer({ version: 15, dataDir, keep: true })
      await withSession(first.info, (q) => q("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"))
      await first.stop()
      expect(Fs.existsSync(`${dataDir}/PG_VERSION`)).toBe(true)
      const second = await startTestServer({ version: 15, dataDir, keep: true })
      try {
        expect(await withSession(second.info, (q) => q("SELECT v FROM kept"))).toEqual([["42"]])
      } finally {
        await second.stop()
      }
    } finally {
      Fs.rmSync(parent, { recursive: true, force: true })
    }
  })
})
