import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Formatter, Inspectable, Redacted, Result } from "effect"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Util from "node:util"
import * as PgConfig from "../src/PgConfig.ts"
import { PgConfigError } from "../src/PgConfig.ts"

/** The outside world, pinned: no real home directory, OS user or socket directory leaks into results. */
const world: PgConfig.ResolveOptions = {
  osUser: "osuser",
  homeDir: "/nonexistent-pgfx-home",
  defaultSocketDir: "/var/run/postgresql"
}

const resolve = (
  input: PgConfig.PgConfigInput = {},
  env: PgConfig.Environment = {},
  options: PgConfig.ResolveOptions = world
): PgConfig.PgConfig => {
  const r = PgConfig.resolveResult(input, env, options)
  if (Result.isFailure(r)) throw new Error(`unexpected PgConfigError: ${r.failure.message}`)
  return r.success
}

const resolveError = (
  input: PgConfig.PgConfigInput,
  env: PgConfig.Environment = {},
  options: PgConfig.ResolveOptions = world
): PgConfigError => {
  const r = PgConfig.resolveResult(input, env, options)
  if (Result.isSuccess(r)) throw new Error(`expected a PgConfigError for ${JSON.stringify(input)}`)
  assert.instanceOf(r.failure, PgConfigError)
  return r.failure
}

const cs = (connectionString: string, env: PgConfig.Environment = {}, options: PgConfig.ResolveOptions = world) =>
  resolve({ connectionString }, env, options)

const csError = (connectionString: string, env: PgConfig.Environment = {}) => resolveError({ connectionString }, env)

/** The parsed keywords with secrets revealed, for comparison. */
const parse = (s: string): Record<string, string> => {
  const r = PgConfig.parseConnectionString(s)
  if (Result.isFailure(r)) throw new Error(`unexpected PgConfigError: ${r.failure.message}`)
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(r.success)) out[k] = typeof v === "string" ? v : Redacted.value(v)
  return out
}

const parseError = (s: string): PgConfigError => {
  const r = PgConfig.parseConnectionString(s)
  if (Result.isSuccess(r)) throw new Error(`expected a PgConfigError for ${s}`)
  return r.failure
}

const reveal = (r: Redacted.Redacted<string> | undefined) => (r === undefined ? undefined : Redacted.value(r))

const endpoints = (c: PgConfig.PgConfig) =>
  c.hosts.map((h) => ({ host: h.host, port: h.port, kind: h.kind, ...(h.hostaddr === undefined ? {} : { hostaddr: h.hostaddr }) }))

const tempHome = (pgpass: string | undefined, mode = 0o600): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgfx-home-"))
  if (pgpass !== undefined) {
    const file = Path.join(dir, ".pgpass")
    Fs.writeFileSync(file, pgpass)
    Fs.chmodSync(file, mode)
  }
  return dir
}

describe("parseConnectionString: URIs", () => {
  // The examples of libpq's documentation ("Connection URIs"), and the edges of its parser.
  const table: ReadonlyArray<readonly [string, Record<string, string>]> = [
    ["postgresql://", {}],
    ["postgres://", {}],
    ["postgresql://localhost", { host: "localhost" }],
    ["postgresql://localhost:5433", { host: "localhost", port: "5433" }],
    ["postgresql://localhost/mydb", { host: "localhost", dbname: "mydb" }],
    ["postgresql://user@localhost", { user: "user", host: "localhost" }],
    ["postgresql://user:secret@localhost", { user: "user", password: "secret", host: "localhost" }],
    [
      "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
      { user: "other", host: "localhost", dbname: "otherdb", connect_timeout: "10", application_name: "myapp" }
    ],
    [
      "postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp",
      { host: "host1,host2", port: "123,456", dbname: "somedb", target_session_attrs: "any", application_name: "myapp" }
    ],
    ["postgresql:///mydb?host=localhost&port=5433", { dbname: "mydb", host: "localhost", port: "5433" }],
    ["postgresql://[2001:db8::1234]/database", { host: "2001:db8::1234", dbname: "database" }],
    ["postgresql://[::1]:5433,host2/db", { host: "::1,host2", port: "5433,", dbname: "db" }],
    ["postgresql://[fe80::1%25eth0]:5432", { host: "fe80::1%eth0", port: "5432" }],
    ["postgresql:///dbname?host=/var/lib/postgresql", { dbname: "dbname", host: "/var/lib/postgresql" }],
    ["postgresql://%2Fvar%2Flib%2Fpostgresql/dbname", { host: "/var/lib/postgresql", dbname: "dbname" }],
    ["postgresql://%40abstract/db", { host: "@abstract", dbname: "db" }],
    ["postgresql://host1,host2", { host: "host1,host2", port: "," }],
    ["postgresql://u@", { user: "u" }],
    ["postgresql://:pw@host", { password: "pw", host: "host" }],
    ["postgresql://u:@host", { user: "u", host: "host" }],
    ["postgresql://u:p%40ss%3Aw%2Frd@host", { user: "u", password: "p@ss:w/rd", host: "host" }],
    ["postgresql://host/", { host: "host" }],
    ["postgresql://host/?", { host: "host" }],
    ["postgresql://host/db%20name?application_name=a%20b%26c", { host: "host", dbname: "db name", application_name: "a b&c" }],
    ["postgresql://h/%C3%A9t%C3%A9", { host: "h", dbname: "été" }],
    ["postgresql://h/db?application_name=x&", { host: "h", dbname: "db", application_name: "x" }],
    ["postgresql://h/db?ssl=true", { host: "h", dbname: "db", sslmode: "require" }],
    ["postgresql://h/db?requiressl=1", { host: "h", dbname: "db", sslmode: "require" }],
    ["postgresql://h/db?requiressl=0", { host: "h", dbname: "db", sslmode: "prefer" }],
    ["postgresql://h:5432/db?host=other&port=6000", { host: "other", port: "6000", dbname: "db" }],
    ["postgresql://h/db?password=q%20p", { host: "h", dbname: "db", password: "q p" }],
    ["postgresql://h/a/b", { host: "h", dbname: "a/b" }],
    ["postgresql://h/db?statement_cache_size=0&pipeline_depth=10", {
      host: "h",
      dbname: "db",
      statement_cache_size: "0",
      pipeline_depth: "10"
    }]
  ]
  for (const [uri, expected] of table) {
    it(uri, () => {
      assert.deepStrictEqual(parse(uri), expected)
    })
  }

  it("keeps passwords Redacted in the parsed keywords", () => {
    const r = PgConfig.parseConnectionString("postgresql://u:hunter2@h/db?sslpassword=keypass")
    assert.isTrue(Result.isSuccess(r))
    if (Result.isSuccess(r)) {
      assert.isTrue(Redacted.isRedacted(r.success.password))
      assert.isTrue(Redacted.isRedacted(r.success.sslpassword))
      assert.notInclude(JSON.stringify(r.success), "hunter2")
      assert.notInclude(Util.inspect(r.success), "keypass")
    }
  })

  const errors: ReadonlyArray<readonly [string, PgConfig.PgConfigErrorReason, string]> = [
    ["postgresql://[::1", "InvalidUri", `matching "]"`],
    ["postgresql://[]/db", "InvalidUri", "may not be empty"],
    ["postgresql://[::1]x/db", "InvalidUri", `unexpected character "x"`],
    ["postgresql://h/db?foo", "InvalidUri", `missing key/value separator "="`],
    ["postgresql://h/db?a=b=c", "InvalidUri", `extra key/value separator "="`],
    ["postgresql://h/db?&a=b", "InvalidUri", `missing key/value separator "="`],
    ["postgresql://h/db?bogus=1", "UnknownKeyword", `invalid URI query parameter: "bogus"`],
    ["postgresql://h/db?search_path=x", "UnknownKeyword", `"search_path"`],
    ["postgresql://h/%zz", "InvalidUri", "invalid percent-encoded token"],
    ["postgresql://h/db%", "InvalidUri", "invalid percent-encoded token"],
    ["postgresql://h/%00", "InvalidUri", "%00"],
    ["postgresql://h/%ff", "InvalidUri", "UTF-8"]
  ]
  for (const [uri, reason, text] of errors) {
    it(`rejects ${uri}`, () => {
      const e = parseError(uri)
      assert.strictEqual(e.reason, reason)
      assert.include(e.message, text)
    })
  }

  it("never echoes a badly encoded password", () => {
    for (const uri of ["postgresql://u:pa%zzSECRET@h/db", "postgresql://u:pa%00SECRET@h", "postgresql://u:%ffSECRET@h"]) {
      const e = parseError(uri)
      assert.strictEqual(e.reason, "InvalidUri")
      assert.include(e.message, "password")
      assert.notInclude(e.message, "SECRET")
    }
    const q = parseError("postgresql://h/db?password=x%zzSECRET")
    assert.notInclude(q.message, "SECRET")
    const extra = parseError("postgresql://h/db?password=a=SECRET")
    assert.notInclude(extra.message, "SECRET")
  })
})

describe("parseConnectionString: keyword/value strings", () => {
  const table: ReadonlyArray<readonly [string, Record<string, string>]> = [
    ["", {}],
    ["   ", {}],
    [
      "host=localhost port=5432 dbname=mydb connect_timeout=10",
      { host: "localhost", port: "5432", dbname: "mydb", connect_timeout: "10" }
    ],
    ["host=localhost port=5432 password='a b\\'c'", { host: "localhost", port: "5432", password: "a b'c" }],
    ["password=''", { password: "" }],
    ["  host = localhost\tport\n=\n5432  ", { host: "localhost", port: "5432" }],
    ["host= port=5432", { host: "port=5432" }], // libpq skips blanks after "=": the value is "port=5432"
    ["dbname=my\\ db", { dbname: "my db" }],
    ["dbname=a\\\\b", { dbname: "a\\b" }],
    ["options='-c search_path=x -c geqo=off'", { options: "-c search_path=x -c geqo=off" }],
    ["host=a host=b", { host: "b" }],
    ["host='a'port=1", { host: "a", port: "1" }],
    ["requiressl=1", { sslmode: "require" }],
    ["host=a,b port=1,2", { host: "a,b", port: "1,2" }],
    ["dbname=x=y", { dbname: "x=y" }],
    ["application_name='été'", { application_name: "été" }],
    ["host=/var/run/postgresql", { host: "/var/run/postgresql" }]
  ]
  for (const [s, expected] of table) {
    it(JSON.stringify(s), () => {
      assert.deepStrictEqual(parse(s), expected)
    })
  }

  const errors: ReadonlyArray<readonly [string, PgConfig.PgConfigErrorReason, string]> = [
    ["host", "InvalidKeyword", `missing "=" after "host"`],
    ["mydb", "InvalidKeyword", `missing "=" after "mydb"`],
    ["host=a junk", "InvalidKeyword", `missing "=" after "junk"`],
    ["host='abc", "InvalidKeyword", "unterminated quoted string"],
    ["dbname='it''s'", "InvalidKeyword", `missing "=" after "'s'"`], // SQL-style doubled quotes are not an escape
    ["=x", "UnknownKeyword", `invalid connection option ""`],
    ["foo=bar", "UnknownKeyword", `invalid connection option "foo"`],
    ["Host=x", "UnknownKeyword", `invalid connection option "Host"`]
  ]
  for (const [s, reason, text] of errors) {
    it(`rejects ${JSON.stringify(s)}`, () => {
      const e = parseError(s)
      assert.strictEqual(e.reason, reason)
      assert.include(e.message, text)
    })
  }

  it("names the unknown keyword in the error", () => {
    assert.strictEqual(parseError("host=a foo=bar").keyword, "foo")
  })

  it("never echoes a mis-quoted password", () => {
    for (const s of ["password=my SECRET", "password='my SECRET", "password=a SECRET=c", "sslpassword=a SECRET"]) {
      const e = parseError(s)
      assert.notInclude(e.message, "SECRET", s)
    }
  })

  it("isConnectionString follows libpq's recognized_connection_string", () => {
    assert.isTrue(PgConfig.isConnectionString("postgresql://h"))
    assert.isTrue(PgConfig.isConnectionString("postgres://h"))
    assert.isTrue(PgConfig.isConnectionString("host=h"))
    assert.isFalse(PgConfig.isConnectionString("mydb"))
  })
})

describe("resolve: defaults", () => {
  it("uses libpq's defaults, the default socket directory, and pgfx's own defaults", () => {
    const c = resolve()
    assert.deepStrictEqual(endpoints(c), [{ host: "/var/run/postgresql", port: 5432, kind: "unix" }])
    assert.strictEqual(c.user, "osuser")
    assert.strictEqual(c.database, "osuser")
    assert.isUndefined(c.password)
    assert.strictEqual(c.sslMode, "disable") // every host is a Unix socket
    assert.strictEqual(c.sslNegotiation, "postgres")
    assert.strictEqual(c.channelBinding, "prefer")
    assert.strictEqual(c.targetSessionAttrs, "any")
    assert.strictEqual(c.loadBalanceHosts, "disable")
    assert.strictEqual(c.minProtocolVersion, "3.0")
    assert.strictEqual(c.maxProtocolVersion, "3.2")
    assert.strictEqual(c.sslSni, true)
    assert.strictEqual(c.sslMinProtocolVersion, "TLSv1.2")
    assert.isUndefined(c.sslMaxProtocolVersion)
    assert.strictEqual(c.keepAlives, true)
    assert.isUndefined(c.connectTimeout)
    assert.isUndefined(c.requireAuth)
    assert.isUndefined(c.replication)
    assert.isUndefined(c.applicationName)
    assert.isUndefined(c.options)
    assert.strictEqual(c.statementCacheSize, 256)
    assert.strictEqual(c.pipelineDepth, 1000)
    assert.strictEqual(c.maxMessageSize, 1024 * 1024 * 1024)
    assert.strictEqual(c.scramMinIterations, 4096)
    assert.isUndefined(c.statementTimeout)
    assert.isUndefined(c.idleTimeout)
    assert.deepStrictEqual(c.runtimeParameters, {})
    assert.strictEqual(c.passfile, "/nonexistent-pgfx-home/.pgpass")
    assert.deepStrictEqual(c.passfileWarnings, [])
    assert.deepStrictEqual(c.ignoredKeywords, [])
  })

  it("falls back to localhost over TCP, with sslmode prefer, when there is no socket directory", () => {
    const c = resolve({}, {}, { ...world, defaultSocketDir: null })
    assert.deepStrictEqual(endpoints(c), [{ host: "localhost", port: 5432, kind: "tcp" }])
    assert.strictEqual(c.sslMode, "prefer")
  })

  it("detects /var/run/postgresql, else /tmp", () => {
    const expected = Fs.existsSync("/var/run/postgresql") ? "/var/run/postgresql" : Fs.existsSync("/tmp") ? "/tmp" : undefined
    assert.strictEqual(PgConfig.detectDefaultSocketDir(), expected)
    const c = resolve({}, {}, { osUser: "u", homeDir: "/nonexistent-pgfx-home" })
    assert.strictEqual(c.hosts[0].host, expected ?? "localhost")
  })

  it("takes the OS user when none is given", () => {
    const c = resolve({}, {}, { homeDir: "/nonexistent-pgfx-home", defaultSocketDir: null })
    assert.strictEqual(c.user, Os.userInfo().username)
    assert.strictEqual(c.database, Os.userInfo().username)
  })

  it("fails clearly when there is no user at all", () => {
    const e = resolveError({}, {}, { ...world, osUser: "" })
    assert.strictEqual(e.reason, "InvalidValue")
    assert.strictEqual(e.keyword, "user")
  })

  it("defaults the database to the user, also an explicit one", () => {
    assert.strictEqual(cs("user=alice").database, "alice")
    assert.strictEqual(cs("user=alice dbname=").database, "alice")
  })

  it("reads process.env when no environment is passed", () => {
    const previous = process.env.PGAPPNAME
    process.env.PGAPPNAME = "from-process-env"
    try {
      const r = PgConfig.resolveResult({}, undefined, world)
      assert.isTrue(Result.isSuccess(r))
      if (Result.isSuccess(r)) assert.strictEqual(r.success.applicationName, "from-process-env")
    } finally {
      if (previous === undefined) delete process.env.PGAPPNAME
      else process.env.PGAPPNAME = previous
    }
  })
})

describe("resolve: precedence (explicit > connection string > environment > default)", () => {
  const env = { PGHOST: "envhost", PGPORT: "6000", PGUSER: "envuser", PGDATABASE: "envdb", PGAPPNAME: "envapp" }

  it("takes the environment when nothing else is given", () => {
    const c = resolve({}, env)
    assert.deepStrictEqual(endpoints(c), [{ host: "envhost", port: 6000, kind: "tcp" }])
    assert.strictEqual(c.user, "envuser")
    assert.strictEqual(c.database, "envdb")
    assert.strictEqual(c.applicationName, "envapp")
  })

  it("lets the connection string override the environment, keyword by keyword", () => {
    const c = cs("postgresql://csuser@cshost/csdb", env)
    assert.deepStrictEqual(endpoints(c), [{ host: "cshost", port: 6000, kind: "tcp" }])
    assert.strictEqual(c.user, "csuser")
    assert.strictEqual(c.database, "csdb")
    assert.strictEqual(c.applicationName, "envapp")
  })

  it("lets explicit options override the connection string", () => {
    const c = resolve({ connectionString: "host=cshost port=7000 user=csuser", host: "explicit", user: "xuser" }, env)
    assert.deepStrictEqual(endpoints(c), [{ host: "explicit", port: 7000, kind: "tcp" }])
    assert.strictEqual(c.user, "xuser")
  })

  it("an explicitly empty keyword hides its environment variable and means the default (libpq)", () => {
    const c = cs("host='' port='' user=''", env)
    assert.deepStrictEqual(endpoints(c), [{ host: "/var/run/postgresql", port: 5432, kind: "unix" }])
    assert.strictEqual(c.user, "osuser")
  })

  it("an empty URI path does not hide PGDATABASE (libpq)", () => {
    assert.strictEqual(cs("postgresql://h/", env).database, "envdb")
    assert.strictEqual(cs("postgresql://h", env).database, "envdb")
  })

  it("maps every documented environment variable", () => {
    const c = resolve({}, {
      PGHOST: "h1,h2",
      PGHOSTADDR: "10.0.0.1,10.0.0.2",
      PGPORT: "5433",
      PGUSER: "u",
      PGPASSWORD: "pw",
      PGPASSFILE: "/custom/passfile",
      PGDATABASE: "d",
      PGAPPNAME: "app",
      PGOPTIONS: "-c geqo=off",
      PGSSLMODE: "verify-full",
      PGSSLROOTCERT: "/ca.pem",
      PGSSLCERT: "/cert.pem",
      PGSSLKEY: "/key.pem",
      PGSSLNEGOTIATION: "direct",
      PGCONNECT_TIMEOUT: "7",
      PGTARGETSESSIONATTRS: "read-write",
      PGLOADBALANCEHOSTS: "random",
      PGCHANNELBINDING: "require",
      PGREQUIREAUTH: "scram-sha-256",
      PGMINPROTOCOLVERSION: "3.2",
      PGMAXPROTOCOLVERSION: "latest",
      PGSSLSNI: "0",
      PGSSLCRL: "/crl.pem",
      PGSSLMINPROTOCOLVERSION: "TLSv1.3",
      PGSSLMAXPROTOCOLVERSION: "tlsv1.3"
    })
    assert.deepStrictEqual(endpoints(c), [
      { host: "h1", hostaddr: "10.0.0.1", port: 5433, kind: "tcp" },
      { host: "h2", hostaddr: "10.0.0.2", port: 5433, kind: "tcp" }
    ])
    assert.strictEqual(c.user, "u")
    assert.strictEqual(reveal(c.password), "pw")
    assert.strictEqual(c.passfile, "/custom/passfile")
    assert.strictEqual(c.database, "d")
    assert.strictEqual(c.applicationName, "app")
    assert.strictEqual(c.options, "-c geqo=off")
    assert.strictEqual(c.sslMode, "verify-full")
    assert.strictEqual(c.sslRootCert, "/ca.pem")
    assert.strictEqual(c.sslCert, "/cert.pem")
    assert.strictEqual(c.sslKey, "/key.pem")
    assert.strictEqual(c.sslNegotiation, "direct")
    assert.isTrue(Duration.equals(c.connectTimeout!, Duration.seconds(7)))
    assert.strictEqual(c.targetSessionAttrs, "read-write")
    assert.strictEqual(c.loadBalanceHosts, "random")
    assert.strictEqual(c.channelBinding, "require")
    assert.deepStrictEqual(c.requireAuth, ["scram-sha-256"])
    assert.strictEqual(c.minProtocolVersion, "3.2")
    assert.strictEqual(c.maxProtocolVersion, "3.2")
    assert.strictEqual(c.sslSni, false)
    assert.strictEqual(c.sslCrl, "/crl.pem")
    assert.strictEqual(c.sslMinProtocolVersion, "TLSv1.3")
    assert.strictEqual(c.sslMaxProtocolVersion, "TLSv1.3")
  })

  it("PGREQUIRESSL=1 means sslmode=require, below PGSSLMODE", () => {
    assert.strictEqual(resolve({ host: "h" }, { PGREQUIRESSL: "1" }).sslMode, "require")
    assert.strictEqual(resolve({ host: "h" }, { PGREQUIRESSL: "1", PGSSLMODE: "disable" }).sslMode, "disable")
    assert.strictEqual(resolve({ host: "h" }, { PGREQUIRESSL: "0" }).sslMode, "prefer")
  })

  it("sends PGDATESTYLE, PGTZ and PGGEQO as startup parameters, below explicit runtimeParameters", () => {
    const c = resolve(
      { runtimeParameters: { timezone: "UTC", search_path: "app" } },
      { PGDATESTYLE: "ISO, DMY", PGTZ: "Europe/Paris", PGGEQO: "off" }
    )
    assert.deepStrictEqual(c.runtimeParameters, { datestyle: "ISO, DMY", timezone: "UTC", geqo: "off", search_path: "app" })
  })

  it("takes typed explicit options", () => {
    const c = resolve({
      host: ["a", "b"],
      port: [5433, "5434"],
      password: Redacted.make("pw"),
      connectTimeout: Duration.seconds(30),
      keepAlives: false,
      keepAlivesIdle: 60,
      sslSni: false,
      replication: true,
      statementTimeout: 1500,
      idleTimeout: Duration.minutes(5),
      maxMessageSize: 1 << 20
    })
    assert.deepStrictEqual(endpoints(c), [{ host: "a", port: 5433, kind: "tcp" }, { host: "b", port: 5434, kind: "tcp" }])
    assert.strictEqual(reveal(c.password), "pw")
    assert.isTrue(Duration.equals(c.connectTimeout!, Duration.seconds(30)))
    assert.strictEqual(c.keepAlives, false)
    assert.isTrue(Duration.equals(c.keepAlivesIdle!, Duration.seconds(60)))
    assert.strictEqual(c.sslSni, false)
    assert.strictEqual(c.replication, "true")
    assert.isTrue(Duration.equals(c.statementTimeout!, Duration.millis(1500)))
    assert.isTrue(Duration.equals(c.idleTimeout!, Duration.minutes(5)))
    assert.strictEqual(c.maxMessageSize, 1 << 20)
  })

  it("resolve is an Effect failing with PgConfigError", () => {
    const exit = Effect.runSyncExit(PgConfig.resolve({ sslMode: "bogus" as PgConfig.SslMode }, {}, world))
    assert.isTrue(Exit.isFailure(exit))
    const ok = Effect.runSync(PgConfig.resolve({ host: "h" }, {}, world))
    assert.strictEqual(ok.hosts[0].host, "h")
  })
})

describe("resolve: hosts and ports", () => {
  it("uses one port for every host", () => {
    assert.deepStrictEqual(endpoints(cs("host=a,b,c port=5999")).map((h) => h.port), [5999, 5999, 5999])
  })

  it("pairs ports with hosts, empty entries meaning 5432", () => {
    assert.deepStrictEqual(endpoints(cs("postgresql://a:1,b,[::1]:3")), [
      { host: "a", port: 1, kind: "tcp" },
      { host: "b", port: 5432, kind: "tcp" },
      { host: "::1", port: 3, kind: "tcp" }
    ])
  })

  it("defaults empty host entries", () => {
    assert.deepStrictEqual(endpoints(cs("host=a,,/tmp")), [
      { host: "a", port: 5432, kind: "tcp" },
      { host: "/var/run/postgresql", port: 5432, kind: "unix" },
      { host: "/tmp", port: 5432, kind: "unix" }
    ])
  })

  it("rejects a number of ports that is neither one nor the number of hosts", () => {
    const e = csError("host=a,b,c port=1,2")
    assert.strictEqual(e.reason, "Conflict")
    assert.include(e.message, "could not match 2 port numbers to 3 hosts")
    assert.strictEqual(csError("postgresql://a:1,b:2/db?host=x").reason, "Conflict")
  })

  it("rejects bad ports, naming the value", () => {
    for (const port of ["abc", "0", "65536", "-1", "5432x", "1.5", "99999999999"]) {
      const e = csError(`host=h port=${port}`)
      assert.strictEqual(e.reason, "InvalidValue", port)
      assert.strictEqual(e.keyword, "port")
      assert.include(e.message, `"${port}"`)
    }
    assert.strictEqual(resolveError({ port: 70000 }).reason, "InvalidValue")
    assert.strictEqual(cs("port=' 6543 '").hosts[0].port, 6543)
  })

  it("hostaddr fixes the number of hosts; host names must match it", () => {
    assert.deepStrictEqual(endpoints(cs("hostaddr=127.0.0.1,::1 port=1,2")), [
      { host: "127.0.0.1", hostaddr: "127.0.0.1", port: 1, kind: "tcp" },
      { host: "::1", hostaddr: "::1", port: 2, kind: "tcp" }
    ])
    assert.deepStrictEqual(endpoints(cs("host=db.example,other hostaddr=10.1.1.1,")), [
      { host: "db.example", hostaddr: "10.1.1.1", port: 5432, kind: "tcp" },
      { host: "other", port: 5432, kind: "tcp" }
    ])
    const e = csError("host=a,b,c hostaddr=10.0.0.1,10.0.0.2")
    assert.strictEqual(e.reason, "Conflict")
    assert.include(e.message, "could not match 3 host names to 2 hostaddr values")
  })

  it("rejects a hostaddr that is not a numeric address", () => {
    const e = csError("hostaddr=db.example")
    assert.strictEqual(e.reason, "InvalidValue")
    assert.include(e.message, `"db.example"`)
  })

  it("a hostaddr makes even a socket-path host TCP (libpq)", () => {
    assert.deepStrictEqual(endpoints(cs("host=/tmp hostaddr=127.0.0.1")), [
      { host: "/tmp", hostaddr: "127.0.0.1", port: 5432, kind: "tcp" }
    ])
  })
})

describe("resolve: Unix sockets", () => {
  it("a host starting with / or @ is a Unix socket", () => {
    assert.strictEqual(cs("host=/var/lib/postgresql").hosts[0].kind, "unix")
    assert.strictEqual(cs("host=@abstract").hosts[0].kind, "unix")
    assert.strictEqual(cs("postgresql://%2Ftmp:5433/db").hosts[0].kind, "unix")
    assert.strictEqual(cs("postgresql:///db?host=/tmp").hosts[0].kind, "unix")
    assert.strictEqual(cs("host=relative/path").hosts[0].kind, "tcp")
  })

  it("defaults sslmode to disable only when every host is a Unix socket and sslmode was not given", () => {
    assert.strictEqual(cs("host=/tmp,@abs").sslMode, "disable")
    assert.strictEqual(cs("host=/tmp,localhost").sslMode, "prefer")
    assert.strictEqual(cs("host=/tmp sslmode=require").sslMode, "require")
    assert.strictEqual(cs("host=/tmp sslmode=prefer").sslMode, "prefer")
    assert.strictEqual(resolve({ host: "/tmp" }, { PGSSLMODE: "verify-ca" }).sslMode, "verify-ca")
  })
})

describe("resolve: TLS", () => {
  it("accepts every sslmode and rejects others, naming keyword and value", () => {
    for (const mode of ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]) {
      assert.strictEqual(cs(`host=h sslmode=${mode}`).sslMode, mode)
    }
    const e = csError("host=h sslmode=bogus")
    assert.strictEqual(e.reason, "InvalidValue")
    assert.strictEqual(e.keyword, "sslmode")
    assert.include(e.message, "sslmode")
    assert.include(e.message, `"bogus"`)
    assert.strictEqual(csError("sslmode=Require").reason, "InvalidValue")
  })

  it("sslrootcert=system strengthens the default to verify-full and refuses weaker modes", () => {
    const c = cs("host=h sslrootcert=system")
    assert.strictEqual(c.sslRootCert, "system")
    assert.strictEqual(c.sslMode, "verify-full")
    assert.strictEqual(cs("host=/tmp sslrootcert=system").sslMode, "verify-full")
    for (const mode of ["disable", "allow", "prefer", "require", "verify-ca"]) {
      const e = csError(`host=h sslrootcert=system sslmode=${mode}`)
      assert.strictEqual(e.reason, "Conflict", mode)
      assert.include(e.message, `weak sslmode "${mode}"`)
    }
    assert.strictEqual(resolveError({ sslRootCert: "system" }, { PGSSLMODE: "require" }).reason, "Conflict")
    assert.strictEqual(cs("host=h sslrootcert=system sslmode=verify-full").sslMode, "verify-full")
  })

  it("sslnegotiation=direct requires sslmode require or stronger", () => {
    assert.strictEqual(cs("host=h sslnegotiation=direct sslmode=require").sslNegotiation, "direct")
    assert.strictEqual(cs("host=h sslnegotiation=direct sslmode=verify-full").sslNegotiation, "direct")
    for (const s of ["host=h sslnegotiation=direct", "host=h sslnegotiation=direct sslmode=allow"]) {
      const e = csError(s)
      assert.strictEqual(e.reason, "Conflict")
      assert.include(e.message, "sslnegotiation=direct")
    }
    assert.strictEqual(csError("sslnegotiation=fast").reason, "InvalidValue")
  })

  it("validates channel_binding", () => {
    for (const v of ["disable", "prefer", "require"]) assert.strictEqual(cs(`host=h channel_binding=${v}`).channelBinding, v)
    assert.strictEqual(csError("channel_binding=maybe").reason, "InvalidValue")
    const e = csError("host=h channel_binding=require sslmode=disable")
    assert.strictEqual(e.reason, "Conflict")
  })

  it("validates the TLS protocol version range", () => {
    assert.strictEqual(cs("ssl_min_protocol_version=tlsv1.1").sslMinProtocolVersion, "TLSv1.1")
    assert.isUndefined(cs("ssl_min_protocol_version=''").sslMinProtocolVersion)
    assert.strictEqual(csError("ssl_min_protocol_version=SSLv3").reason, "InvalidValue")
    const e = csError("ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2")
    assert.strictEqual(e.reason, "Conflict")
    assert.include(e.message, "invalid SSL protocol version range")
  })

  it("reads sslsni as a boolean", () => {
    assert.strictEqual(cs("sslsni=0").sslSni, false)
    assert.strictEqual(cs("sslsni=1").sslSni, true)
    assert.strictEqual(csError("sslsni=sometimes").reason, "InvalidValue")
  })

  it("keeps file paths, and sslpassword Redacted", () => {
    const c = cs("sslcert=/c.pem sslkey=/k.pem sslrootcert=/ca.pem sslcrl=/crl.pem sslpassword=keypass")
    assert.strictEqual(c.sslCert, "/c.pem")
    assert.strictEqual(c.sslKey, "/k.pem")
    assert.strictEqual(c.sslRootCert, "/ca.pem")
    assert.strictEqual(c.sslCrl, "/crl.pem")
    assert.isTrue(Redacted.isRedacted(c.sslPassword))
    assert.strictEqual(reveal(c.sslPassword), "keypass")
  })
})

describe("resolve: other keywords", () => {
  it("parses require_auth lists as libpq does", () => {
    assert.deepStrictEqual(cs("require_auth=password,md5,scram-sha-256,none").requireAuth, [
      "password",
      "md5",
      "scram-sha-256",
      "none"
    ])
    assert.deepStrictEqual(cs("require_auth=!password,!md5").requireAuth, ["!password", "!md5"])
    assert.deepStrictEqual(cs("require_auth=!none").requireAuth, ["!none"])
    assert.isUndefined(cs("require_auth=").requireAuth)
    assert.deepStrictEqual(resolve({ requireAuth: ["scram-sha-256"] }).requireAuth, ["scram-sha-256"])

    const mixed1 = csError("require_auth=password,!md5")
    assert.strictEqual(mixed1.reason, "Conflict")
    assert.include(mixed1.message, "cannot be mixed with non-negative methods")
    const mixed2 = csError("require_auth=!password,md5")
    assert.strictEqual(mixed2.reason, "Conflict")
    assert.include(mixed2.message, "cannot be mixed with negative methods")
    const unknown = csError("require_auth=kerberos5")
    assert.strictEqual(unknown.reason, "InvalidValue")
    assert.include(unknown.message, `"kerberos5"`)
    assert.include(csError("require_auth=md5,md5").message, "specified more than once")
    assert.include(csError("require_auth=!md5,!md5").message, "specified more than once")
    assert.strictEqual(csError("require_auth=md5,").reason, "InvalidValue")
  })

  it("isAuthMethodAllowed applies plain and negated lists", () => {
    assert.isTrue(PgConfig.isAuthMethodAllowed(undefined, "md5"))
    assert.isTrue(PgConfig.isAuthMethodAllowed(["scram-sha-256"], "scram-sha-256"))
    assert.isFalse(PgConfig.isAuthMethodAllowed(["scram-sha-256"], "password"))
    assert.isFalse(PgConfig.isAuthMethodAllowed(["scram-sha-256"], "none"))
    assert.isTrue(PgConfig.isAuthMethodAllowed(["scram-sha-256", "none"], "none"))
    assert.isFalse(PgConfig.isAuthMethodAllowed(["!password", "!md5"], "md5"))
    assert.isTrue(PgConfig.isAuthMethodAllowed(["!password", "!md5"], "scram-sha-256"))
    assert.isFalse(PgConfig.isAuthMethodAllowed(["!none"], "none"))
  })

  it("reads connect_timeout as libpq: whole seconds, minimum 2, 0 or less meaning none", () => {
    const seconds = (s: string) => {
      const d = cs(`connect_timeout=${s}`).connectTimeout
      return d === undefined ? undefined : Duration.toSeconds(d)
    }
    assert.strictEqual(seconds("10"), 10)
    assert.strictEqual(seconds("1"), 2)
    assert.strictEqual(seconds("2"), 2)
    assert.strictEqual(seconds(" 15 "), 15)
    assert.isUndefined(seconds("0"))
    assert.isUndefined(seconds("-5"))
    assert.isUndefined(seconds("''"))
    for (const bad of ["abc", "1.5", "10s"]) {
      const e = csError(`connect_timeout=${bad}`)
      assert.strictEqual(e.reason, "InvalidValue")
      assert.include(e.message, `"${bad}"`)
      assert.include(e.message, "connect_timeout")
    }
    assert.strictEqual(Duration.toMillis(resolve({ connectTimeout: Duration.millis(500) }).connectTimeout!), 2000)
    assert.strictEqual(Duration.toSeconds(resolve({ connectTimeout: 3 }).connectTimeout!), 3)
  })

  it("validates target_session_attrs and load_balance_hosts", () => {
    for (const v of ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"]) {
      assert.strictEqual(cs(`target_session_attrs=${v}`).targetSessionAttrs, v)
    }
    assert.strictEqual(csError("target_session_attrs=master").reason, "InvalidValue")
    assert.strictEqual(cs("load_balance_hosts=random").loadBalanceHosts, "random")
    assert.strictEqual(csError("load_balance_hosts=round-robin").reason, "InvalidValue")
  })

  it("validates the protocol version range", () => {
    assert.strictEqual(cs("max_protocol_version=3.0").maxProtocolVersion, "3.0")
    assert.strictEqual(cs("min_protocol_version=latest").minProtocolVersion, "3.2")
    assert.strictEqual(csError("max_protocol_version=3.1").reason, "InvalidValue")
    assert.strictEqual(csError("min_protocol_version=2.0").reason, "InvalidValue")
    const e = csError("min_protocol_version=3.2 max_protocol_version=3.0")
    assert.strictEqual(e.reason, "Conflict")
    assert.include(e.message, "min_protocol_version")
  })

  it("reads replication as libpq's boolean or database", () => {
    for (const v of ["true", "on", "yes", "1", "TRUE"]) assert.strictEqual(cs(`replication=${v}`).replication, "true")
    assert.strictEqual(cs("replication=database").replication, "database")
    for (const v of ["false", "off", "no", "0"]) assert.isUndefined(cs(`replication=${v}`).replication)
    assert.strictEqual(csError("replication=logical").reason, "InvalidValue")
  })

  it("reads keepalives as libpq: an integer, nonzero meaning on", () => {
    assert.strictEqual(cs("keepalives=0").keepAlives, false)
    assert.strictEqual(cs("keepalives=1").keepAlives, true)
    assert.strictEqual(Duration.toSeconds(cs("keepalives_idle=30").keepAlivesIdle!), 30)
    assert.strictEqual(csError("keepalives=yes").reason, "InvalidValue")
  })

  it("prefers application_name to fallback_application_name", () => {
    assert.strictEqual(cs("fallback_application_name=fb").applicationName, "fb")
    assert.strictEqual(cs("fallback_application_name=fb application_name=app").applicationName, "app")
    assert.strictEqual(cs("fallback_application_name=fb application_name=''").applicationName, "fb")
  })

  it("accepts UTF8 client_encoding only", () => {
    for (const v of ["UTF8", "utf8", "UTF-8", "unicode", "auto"]) assert.isDefined(cs(`client_encoding=${v}`))
    const e = csError("client_encoding=LATIN1")
    assert.strictEqual(e.reason, "Unsupported")
    assert.include(e.message, "LATIN1")
  })

  it("refuses libpq features pgfx cannot honour", () => {
    for (
      const s of [
        "service=mydb",
        "requirepeer=postgres",
        "sslcrldir=/crls",
        "scram_client_key=abc",
        "gssencmode=require",
        "sslcertmode=require"
      ]
    ) {
      const e = csError(s)
      assert.strictEqual(e.reason, "Unsupported", s)
      assert.strictEqual(e.keyword, s.split("=")[0])
    }
    assert.strictEqual(csError("gssencmode=maybe").reason, "InvalidValue")
    assert.isDefined(cs("gssencmode=disable sslcertmode=allow"))
  })

  it("accepts and lists the libpq keywords it ignores", () => {
    const c = cs("keepalives_interval=5 keepalives_count=3 tcp_user_timeout=100 sslcompression=0 krbsrvname=pg gsslib=gssapi")
    assert.deepStrictEqual(c.ignoredKeywords, [
      "keepalives_interval",
      "keepalives_count",
      "tcp_user_timeout",
      "sslcompression",
      "krbsrvname",
      "gsslib"
    ])
  })

  it("reads the pgfx keywords", () => {
    const c = cs(
      "statement_cache_size=0 pipeline_depth=16 max_message_size=64MB scram_min_iterations=10000 statement_timeout=5s idle_timeout=1.5min"
    )
    assert.strictEqual(c.statementCacheSize, 0)
    assert.strictEqual(c.pipelineDepth, 16)
    assert.strictEqual(c.maxMessageSize, 64 * 1024 * 1024)
    assert.strictEqual(c.scramMinIterations, 10000)
    assert.strictEqual(Duration.toMillis(c.statementTimeout!), 5000)
    assert.strictEqual(Duration.toMillis(c.idleTimeout!), 90_000)
    assert.strictEqual(Duration.toMillis(cs("statement_timeout=250").statementTimeout!), 250)
    assert.strictEqual(cs("max_message_size=2048").maxMessageSize, 2048)
    assert.isUndefined(cs("idle_timeout=0").idleTimeout)
    const bad: ReadonlyArray<readonly [string, string]> = [
      ["statement_cache_size=-1", "statement_cache_size"],
      ["pipeline_depth=0", "pipeline_depth"],
      ["max_message_size=1k", "max_message_size"],
      ["max_message_size=100", "max_message_size"],
      ["max_message_size=4GB", "max_message_size"],
      ["scram_min_iterations=0", "scram_min_iterations"],
      ["statement_timeout=5 weeks", "statement_timeout"],
      ["idle_timeout=-1s", "idle_timeout"]
    ]
    for (const [s, keyword] of bad) {
      const e = csError(s.replace(/=(.*)$/, "='$1'"))
      assert.strictEqual(e.reason, "InvalidValue", s)
      assert.strictEqual(e.keyword, keyword, s)
    }
  })

  it("rejects runtime parameters that have their own option, or hold NUL", () => {
    assert.strictEqual(resolveError({ runtimeParameters: { application_name: "x" } }).reason, "Conflict")
    assert.strictEqual(resolveError({ runtimeParameters: { User: "x" } }).reason, "Conflict")
    assert.strictEqual(resolveError({ runtimeParameters: { a: "b\0c" } }).reason, "InvalidValue")
    assert.strictEqual(resolveError({ runtimeParameters: { "": "x" } }).reason, "InvalidValue")
  })

  it("reports errors from any layer with the keyword", () => {
    assert.strictEqual(resolveError({}, { PGSSLMODE: "bogus" }).keyword, "sslmode")
    assert.strictEqual(resolveError({}, { PGPORT: "x" }).keyword, "port")
    assert.strictEqual(resolveError({ connectionString: "postgresql://h:99999" }).keyword, "port")
  })
})

describe("resolve: password file", () => {
  it("finds each host's password, with the user and database after defaults", () => {
    const home = tempHome(["h1:5432:alice:alice:pw-one", "h2:5433:*:alice:pw-two", "*:*:*:bob:bobs"].join("\n"))
    const c = resolve({ connectionString: "host=h1,h2 port=5432,5433 user=alice" }, {}, { ...world, homeDir: home })
    assert.deepStrictEqual(c.hosts.map((h) => reveal(h.password)), ["pw-one", "pw-two"])
    assert.strictEqual(reveal(c.password), "pw-one")
    assert.strictEqual(c.passfile, `${home}/.pgpass`)
    assert.deepStrictEqual(c.passfileWarnings, [])
  })

  it("leaves hosts without a matching line without a password", () => {
    const home = tempHome("h2:*:*:*:pw-two\n")
    const c = resolve({ host: "h1,h2" }, {}, { ...world, homeDir: home })
    assert.deepStrictEqual(c.hosts.map((h) => reveal(h.password)), [undefined, "pw-two"])
    assert.strictEqual(reveal(c.password), "pw-two")
  })

  it("is not consulted when a password is given, anywhere", () => {
    const home = tempHome("*:*:*:*:from-file\n", 0o644) // would also warn, if read
    for (
      const [input, env] of [
        [{ password: "explicit" }, {}],
        [{ connectionString: "postgresql://u:explicit@h" }, {}],
        [{}, { PGPASSWORD: "explicit" }]
      ] as const
    ) {
      const c = resolve(input, env, { ...world, homeDir: home })
      assert.strictEqual(reveal(c.password), "explicit")
      assert.deepStrictEqual(c.hosts.map((h) => reveal(h.password)), ["explicit"])
      assert.deepStrictEqual(c.passfileWarnings, [])
    }
  })

  it("is consulted when the given password is empty (libpq)", () => {
    const home = tempHome("*:*:*:*:from-file\n")
    assert.strictEqual(reveal(resolve({ password: "" }, {}, { ...world, homeDir: home }).password), "from-file")
    assert.strictEqual(reveal(resolve({}, { PGPASSWORD: "" }, { ...world, homeDir: home }).password), "from-file")
  })

  it("ignores a group/world-readable file and returns the warning", () => {
    const home = tempHome("*:*:*:*:from-file\n", 0o644)
    const c = resolve({ host: "h" }, {}, { ...world, homeDir: home })
    assert.isUndefined(c.password)
    assert.strictEqual(c.passfileWarnings.length, 1)
    assert.include(c.passfileWarnings[0], "has group or world access")
    assert.notInclude(c.passfileWarnings[0], "from-file")
  })

  it("takes the file from passfile or PGPASSFILE", () => {
    const home = tempHome("*:*:*:*:custom\n")
    const file = `${home}/.pgpass`
    assert.strictEqual(reveal(resolve({ passfile: file }).password), "custom")
    assert.strictEqual(reveal(cs(`passfile=${file}`).password), "custom")
    assert.strictEqual(reveal(resolve({}, { PGPASSFILE: file }).password), "custom")
    assert.strictEqual(resolve({}, { PGPASSFILE: file }).passfile, file)
  })

  it("matches localhost to a connection through the default socket directory, and socket paths literally", () => {
    const home = tempHome(["localhost:5432:*:*:via-localhost", "/srv/sock:5432:*:*:via-path"].join("\n"))
    const options = { ...world, homeDir: home }
    assert.strictEqual(reveal(resolve({}, {}, options).password), "via-localhost")
    assert.strictEqual(reveal(resolve({ host: "/var/run/postgresql" }, {}, options).password), "via-localhost")
    assert.strictEqual(reveal(resolve({ host: "localhost" }, {}, options).password), "via-localhost")
    assert.strictEqual(reveal(resolve({ host: "/srv/sock" }, {}, options).password), "via-path")
    assert.isUndefined(resolve({ host: "/tmp" }, {}, options).password)
  })

  it("looks up a hostaddr-only target by its address", () => {
    const home = tempHome("10.0.0.7:5432:*:*:by-address\n")
    assert.strictEqual(reveal(resolve({ hostaddr: "10.0.0.7" }, {}, { ...world, homeDir: home }).password), "by-address")
  })

  it("honours escapes in the file", () => {
    const home = tempHome("h:5432:my\\:db:alice:p\\:w\\\\d\n")
    const c = resolve({ host: "h", database: "my:db", user: "alice" }, {}, { ...world, homeDir: home })
    assert.strictEqual(reveal(c.password), "p:w\\d")
  })
})

describe("redaction", () => {
  const SECRET = "hunter2-SECRET"
  const KEY_SECRET = "keypass-SECRET"

  const configs = (): ReadonlyArray<PgConfig.PgConfig> => {
    const home = tempHome(`*:*:*:*:${SECRET}\n`)
    return [
      resolve({ connectionString: `postgresql://u:${SECRET}@h/db?sslpassword=${KEY_SECRET}` }),
      resolve({ connectionString: `host=h password='${SECRET}' sslpassword=${KEY_SECRET}` }),
      resolve({ password: SECRET, sslPassword: KEY_SECRET }),
      resolve({}, { PGPASSWORD: SECRET }),
      resolve({ host: "h" }, {}, { ...world, homeDir: home })
    ]
  }

  it("String, JSON, util.inspect, Formatter and toConnectionString never show a password", () => {
    for (const c of configs()) {
      assert.isDefined(c.password)
      const renderings = [
        String(c),
        `${c.hosts[0].password}`,
        JSON.stringify(c),
        JSON.stringify(c.hosts),
        Util.inspect(c, { depth: null }),
        Util.format("%o", c),
        Formatter.format(c),
        Inspectable.toStringUnknown(c),
        PgConfig.toConnectionString(c),
        PgConfig.toConnectionString(c, { redact: true })
      ]
      for (const r of renderings) {
        assert.notInclude(r, "SECRET", r)
      }
      assert.include(PgConfig.toConnectionString(c), "****")
    }
  })

  it("no PgConfigError message holds a password", () => {
    const failing: ReadonlyArray<PgConfig.PgConfigInput> = [
      { connectionString: `postgresql://u:${SECRET}@h/db?sslmode=bogus` },
      { connectionString: `postgresql://u:${SECRET}@[::1/db` },
      { connectionString: `postgresql://u:${SECRET}@h/db?nope=1` },
      { connectionString: `postgresql://u:${SECRET}%zz@h/db` },
      { connectionString: `host=h password=${SECRET} port=x` },
      { connectionString: `host=h password=hunter2 SECRET` },
      { connectionString: `host=h password='${SECRET}` },
      { connectionString: `host=h password=hunter2 SECRET=1` },
      { connectionString: `host=h sslpassword=${SECRET} sslmode=bogus` },
      { password: SECRET, port: "nope" },
      { password: SECRET, sslRootCert: "system", sslMode: "require" },
      { password: SECRET, host: "a,b", port: "1,2,3" }
    ]
    for (const input of failing) {
      const e = resolveError(input)
      for (const r of [e.message, String(e), JSON.stringify(e), Util.inspect(e), Formatter.format(e)]) {
        assert.notInclude(r, "SECRET", r)
      }
    }
  })

  it("toConnectionString with redact: false shows the password, percent-encoded", () => {
    const c = resolve({ password: "p@ss:w/rd" , host: "h"})
    assert.include(PgConfig.toConnectionString(c, { redact: false }), "p%40ss%3Aw%2Frd")
  })
})

describe("toConnectionString", () => {
  it("renders hosts, sockets, IPv6 and non-default settings", () => {
    const c = cs(
      "host=/var/run/postgresql,db.example,::1,@abs port=5432,5433,5434,5435 user=me dbname='my db' application_name=app target_session_attrs=read-write"
    )
    assert.strictEqual(
      PgConfig.toConnectionString(c),
      "postgresql://me@%2Fvar%2Frun%2Fpostgresql:5432,db.example:5433,[::1]:5434,%40abs:5435/my%20db?sslmode=prefer&application_name=app&target_session_attrs=read-write"
    )
  })

  it("round-trips through resolve", () => {
    const hostname = fc.stringMatching(/^[a-z][a-z0-9.-]{0,20}$/)
    const socketDir = fc.stringMatching(/^\/[a-z0-9_./-]{0,20}$/)
    const host = fc.oneof(hostname, socketDir, fc.ipV6(), fc.ipV4())
    const text = fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }).filter((s) => !s.includes("\0"))
    const input = fc.record({
      host: fc.array(host, { minLength: 1, maxLength: 3 }),
      port: fc.integer({ min: 1, max: 65535 }),
      user: text,
      database: text,
      password: fc.option(text, { nil: undefined }),
      applicationName: fc.option(text, { nil: undefined }),
      options: fc.option(text, { nil: undefined }),
      sslMode: fc.constantFrom("disable", "allow", "prefer", "require", "verify-ca", "verify-full") as fc.Arbitrary<PgConfig.SslMode>,
      channelBinding: fc.constantFrom("disable", "prefer") as fc.Arbitrary<"disable" | "prefer">,
      targetSessionAttrs: fc.constantFrom("any", "read-write", "standby") as fc.Arbitrary<PgConfig.TargetSessionAttrs>,
      connectTimeout: fc.option(fc.integer({ min: 2, max: 3600 }), { nil: undefined }),
      statementCacheSize: fc.integer({ min: 0, max: 10000 }),
      statementTimeout: fc.option(fc.integer({ min: 1, max: 1_000_000 }), { nil: undefined }),
      requireAuth: fc.option(fc.constantFrom("scram-sha-256", "!md5,!password", "none,scram-sha-256"), { nil: undefined }),
      maxProtocolVersion: fc.constantFrom("3.0", "3.2") as fc.Arbitrary<PgConfig.ProtocolVersion>
    })
    const comparable = (c: PgConfig.PgConfig) => ({
      ...c,
      password: reveal(c.password),
      sslPassword: reveal(c.sslPassword),
      hosts: c.hosts.map((h) => ({ ...h, password: reveal(h.password) })),
      connectTimeout: c.connectTimeout === undefined ? undefined : Duration.toMillis(c.connectTimeout),
      statementTimeout: c.statementTimeout === undefined ? undefined : Duration.toMillis(c.statementTimeout),
      idleTimeout: c.idleTimeout === undefined ? undefined : Duration.toMillis(c.idleTimeout),
      keepAlivesIdle: c.keepAlivesIdle === undefined ? undefined : Duration.toMillis(c.keepAlivesIdle)
    })
    fc.assert(
      fc.property(input, (i) => {
        const original = resolve(i)
        const uri = PgConfig.toConnectionString(original, { redact: false })
        const again = resolve({ connectionString: uri })
        assert.deepStrictEqual(comparable(again), comparable(original), uri)
      }),
      { numRuns: 300 }
    )
  })
})

describe("Config", () => {
  const provider = (env: Record<string, string>) => ConfigProvider.fromEnv({ env })

  it("reads DATABASE_URL and PG* variables through the ConfigProvider", () => {
    const c = Effect.runSync(
      PgConfig.fromConfig(undefined, world).parse(
        provider({ DATABASE_URL: "postgresql://u:urlpass@urlhost:6543/urldb", PGAPPNAME: "envapp", PGHOST: "envhost" })
      )
    )
    assert.deepStrictEqual(endpoints(c), [{ host: "urlhost", port: 6543, kind: "tcp" }])
    assert.strictEqual(c.user, "u")
    assert.strictEqual(reveal(c.password), "urlpass")
    assert.strictEqual(c.database, "urldb")
    assert.strictEqual(c.applicationName, "envapp")
  })

  it("reads PGPASSWORD as Redacted", () => {
    const c = Effect.runSync(PgConfig.fromConfig(undefined, world).parse(provider({ PGPASSWORD: "envpass", PGHOST: "h" })))
    assert.strictEqual(reveal(c.password), "envpass")
  })

  it("is yieldable with the current ConfigProvider", () => {
    const c = Effect.runSync(
      Effect.gen(function*() {
        return yield* PgConfig.config
      }).pipe(Effect.provideService(ConfigProvider.ConfigProvider, provider({ PGHOST: "yielded", PGUSER: "u" })))
    )
    assert.strictEqual(c.hosts[0].host, "yielded")
    assert.strictEqual(c.user, "u")
  })

  it("reads under a prefix", () => {
    const c = Effect.runSync(
      PgConfig.fromConfig("MYAPP", world).parse(provider({ MYAPP_PGHOST: "prefixed", PGHOST: "unprefixed", MYAPP_PGPORT: "7000" }))
    )
    assert.deepStrictEqual(endpoints(c), [{ host: "prefixed", port: 7000, kind: "tcp" }])
  })

  it("fails with a ConfigError carrying the PgConfigError, without the password", () => {
    const exit = Effect.runSyncExit(
      PgConfig.fromConfig(undefined, world).parse(provider({ DATABASE_URL: "postgresql://u:hunter2-SECRET@h/db?sslmode=bogus" }))
    )
    assert.isTrue(Exit.isFailure(exit))
    if (Exit.isFailure(exit)) {
      const rendered = String(exit.cause) + Util.inspect(exit.cause, { depth: null })
      assert.include(rendered, "sslmode")
      assert.notInclude(rendered, "SECRET")
    }
  })
})
