/**
 * Connection configuration the way PostgreSQL users already write it: libpq connection URIs and
 * keyword/value strings, the `PG*` environment variables, the password file, and libpq's defaults.
 *
 * Invariants:
 * - Precedence per keyword is libpq's: explicit option > connection string > environment variable >
 *   default. As in libpq, a keyword that is present with an empty value hides its environment
 *   variable and then means "the default".
 * - Only libpq's keywords and pgfx's own (below) are accepted, in strings, URIs and query parameters.
 *   libpq keywords pgfx cannot honour fail with reason "Unsupported" when they would change
 *   behaviour (service, requirepeer, sslcrldir, scram_client_key, scram_server_key,
 *   gssencmode=require, sslcertmode=require, a client_encoding other than UTF8); those that only
 *   tune features pgfx lacks (keepalives_interval, keepalives_count, tcp_user_timeout,
 *   sslcompression, krbsrvname, gsslib, gssdelegation, sslkeylogfile, oauth_*) are accepted and
 *   listed in `ignoredKeywords`.
 * - Passwords (`password`, `sslpassword`, `PGPASSWORD`, the password file, a `DATABASE_URL`) are
 *   wrapped in `Redacted` as soon as they are read. No `PgConfigError` message, and no
 *   `String`/`JSON.stringify`/`util.inspect` of a config, ever contains one.
 * - Parsing is pure. Only `resolve` reads the outside world: the environment (when not passed),
 *   the OS user, the home directory, whether the default socket directory exists, the password file.
 *
 * Defaults (libpq's unless noted):
 * - host: the Unix socket directory `/var/run/postgresql` if it exists, else `/tmp` if it exists,
 *   else `localhost` (libpq uses its compiled-in DEFAULT_PGSOCKET_DIR; Debian's is the former);
 *   port 5432; user: the OS user; database: the user.
 * - sslmode `prefer`, but `disable` when every host is a Unix socket and sslmode was not given:
 *   TLS is never attempted over a Unix socket (libpq skips it too, whatever sslmode says), so the
 *   connection layer must not attempt it for a host of kind "unix" either.
 *   `sslrootcert=system` makes the default `verify-full` and refuses any weaker explicit mode.
 * - sslnegotiation `postgres`, channel_binding `prefer`, target_session_attrs `any`,
 *   load_balance_hosts `disable`, sslsni on, keepalives on, ssl_min_protocol_version TLSv1.2.
 * - min_protocol_version 3.0; max_protocol_version **3.2** (pgfx's default; libpq 18 defaults to
 *   3.0). pgfx asks for 3.2 and accepts the server's NegotiateProtocolVersion down to the minimum.
 *
 * pgfx keywords (not libpq's; accepted in strings, URIs and as explicit options):
 * - `statement_cache_size` (default 256; 0 = unnamed statements only, for transaction poolers)
 * - `pipeline_depth` (default 1000 requests in flight per connection)
 * - `max_message_size` (default 1 GiB; bytes, or with a kB/MB/GB suffix as in postgresql.conf)
 * - `scram_min_iterations` (default 4096: a server asking for fewer SCRAM iterations is refused)
 * - `statement_timeout`, `idle_timeout` (milliseconds, or with a us/ms/s/min/h/d suffix as in
 *   postgresql.conf; 0 = none)
 *
 * Password file: consulted only when no non-empty password was given, once per host (each
 * `PgHost.password` is that host's effective password; `PgConfig.password` is the explicit one, or
 * the first host's from the file). A file with group/world access is ignored and the warning is
 * returned in `passfileWarnings`, not printed.
 *
 * Environment variables other than libpq's for these keywords: PGDATESTYLE, PGTZ and PGGEQO become
 * the startup parameters datestyle, timezone and geqo (as libpq sends them). PGSERVICE,
 * PGSYSCONFDIR, PGCLIENTENCODING and the GSS/Kerberos variables are not read.
 */
import * as Net from "node:net"
import * as Os from "node:os"
import * as Fs from "node:fs"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { DEFAULT_MAX_MESSAGE_SIZE, INT32_MAX } from "@pgfx/codec/Limits"
import * as PgPass from "./PgPass.ts"

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * One connection target. kind "unix": `host` is a socket directory starting with "/" (socket file
 * `${host}/.s.PGSQL.${port}`) or "@" (Linux abstract namespace). With `hostaddr`, the connection
 * goes to that numeric address and `host` is kept for TLS verification, SNI and the password file;
 * when only `hostaddr` was given, `host` equals it.
 */
export interface PgHost {
  readonly host: string
  readonly hostaddr?: string | undefined
  readonly port: number
  readonly kind: "tcp" | "unix"
  /** The password for this host: the explicit one, else this host's password-file entry. */
  readonly password?: Redacted.Redacted<string> | undefined
}

export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"
export type ProtocolVersion = "3.0" | "3.2"
export type TlsVersion = "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3"

export interface PgConfig {
  readonly hosts: ReadonlyArray<PgHost>
  readonly user: string
  readonly password: Redacted.Redacted<string> | undefined
  readonly database: string
  readonly applicationName: string | undefined
  readonly options: string | undefined
  readonly replication: "true" | "database" | undefined
  readonly sslMode: SslMode
  readonly sslNegotiation: "postgres" | "direct"
  /** A file path, or "system" for the platform's CA store. */
  readonly sslRootCert: string | undefined
  readonly sslCert: string | undefined
  readonly sslKey: string | undefined
  readonly sslPassword: Redacted.Redacted<string> | undefined
  readonly sslCrl: string | undefined
  readonly sslSni: boolean
  readonly sslMinProtocolVersion: TlsVersion | undefined
  readonly sslMaxProtocolVersion: TlsVersion | undefined
  readonly channelBinding: "disable" | "prefer" | "require"
  /** libpq's require_auth list as validated: all plain (allowed methods) or all negated ("!md5"). */
  readonly requireAuth: ReadonlyArray<string> | undefined
  /** libpq semantics: whole seconds, minimum 2; 0 or negative = none. */
  readonly connectTimeout: Duration.Duration | undefined
  readonly targetSessionAttrs: TargetSessionAttrs
  readonly loadBalanceHosts: "disable" | "random"
  readonly minProtocolVersion: ProtocolVersion
  readonly maxProtocolVersion: ProtocolVersion
  /** TCP keepalives (libpq `keepalives`, default on) and the idle time before the first probe. */
  readonly keepAlives: boolean
  readonly keepAlivesIdle: Duration.Duration | undefined
  /** Extra startup parameters: the explicit `runtimeParameters` option plus PGDATESTYLE/PGTZ/PGGEQO. */
  readonly runtimeParameters: Readonly<Record<string, string>>
  readonly statementCacheSize: number
  readonly pipelineDepth: number
  readonly maxMessageSize: number
  readonly scramMinIterations: number
  readonly statementTimeout: Duration.Duration | undefined
  readonly idleTimeout: Duration.Duration | undefined
  /** The password file that was (or would have been) consulted. */
  readonly passfile: string | undefined
  readonly passfileWarnings: ReadonlyArray<string>
  /** libpq keywords that were given but have no effect in pgfx. */
  readonly ignoredKeywords: ReadonlyArray<string>
}

/**
 * Explicit options, the highest-precedence layer. Strings take the same syntax as the keyword;
 * typed values are taken as they are.
 */
export interface PgConfigInput {
  /** A libpq URI or keyword/value string (the middle layer). */
  readonly connectionString?: string | Redacted.Redacted<string> | undefined
  readonly host?: string | ReadonlyArray<string> | undefined
  readonly hostaddr?: string | ReadonlyArray<string> | undefined
  readonly port?: number | string | ReadonlyArray<number | string> | undefined
  readonly user?: string | undefined
  readonly password?: string | Redacted.Redacted<string> | undefined
  readonly passfile?: string | undefined
  readonly database?: string | undefined
  readonly applicationName?: string | undefined
  readonly fallbackApplicationName?: string | undefined
  readonly options?: string | undefined
  readonly replication?: boolean | "database" | string | undefined
  readonly sslMode?: SslMode | undefined
  readonly sslNegotiation?: "postgres" | "direct" | undefined
  readonly sslRootCert?: string | undefined
  readonly sslCert?: string | undefined
  readonly sslKey?: string | undefined
  readonly sslPassword?: string | Redacted.Redacted<string> | undefined
  readonly sslCrl?: string | undefined
  readonly sslSni?: boolean | undefined
  readonly sslMinProtocolVersion?: TlsVersion | undefined
  readonly sslMaxProtocolVersion?: TlsVersion | undefined
  readonly channelBinding?: "disable" | "prefer" | "require" | undefined
  readonly requireAuth?: string | ReadonlyArray<string> | undefined
  /** A Duration, or a number of seconds as libpq's connect_timeout. */
  readonly connectTimeout?: Duration.Duration | number | undefined
  readonly targetSessionAttrs?: TargetSessionAttrs | undefined
  readonly loadBalanceHosts?: "disable" | "random" | undefined
  readonly minProtocolVersion?: ProtocolVersion | "latest" | undefined
  readonly maxProtocolVersion?: ProtocolVersion | "latest" | undefined
  readonly keepAlives?: boolean | undefined
  /** A Duration, or a number of seconds as libpq's keepalives_idle. */
  readonly keepAlivesIdle?: Duration.Duration | number | undefined
  readonly runtimeParameters?: Readonly<Record<string, string>> | undefined
  readonly statementCacheSize?: number | undefined
  readonly pipelineDepth?: number | undefined
  readonly maxMessageSize?: number | undefined
  readonly scramMinIterations?: number | undefined
  /** A Duration, or a number of milliseconds as PostgreSQL's statement_timeout. */
  readonly statementTimeout?: Duration.Duration | number | undefined
  /** A Duration, or a number of milliseconds. */
  readonly idleTimeout?: Duration.Duration | number | undefined
}

/**
 * The keywords given directly in a connection string (libpq's PQconninfoParse): no defaults, no
 * environment. Secret keywords (password, sslpassword, …) hold `Redacted` values.
 */
export type ConnectionOptions = { readonly [keyword: string]: string | Redacted.Redacted<string> }

/** The parts of the outside world `resolve` reads; tests substitute them. */
export interface ResolveOptions {
  /** Default: `os.homedir()`. The password file defaults to `${homeDir}/.pgpass`. */
  readonly homeDir?: string | undefined
  /** Default: `os.userInfo().username`. */
  readonly osUser?: string | undefined
  /** Default: `/var/run/postgresql` if it exists, else `/tmp` if it exists. `null`: none (use localhost). */
  readonly defaultSocketDir?: string | null | undefined
  /** Default: `node:fs`. */
  readonly fs?: PgPass.PassfileFs | undefined
}

export type Environment = Readonly<Record<string, string | Redacted.Redacted<string> | undefined>>

// -----------------------------------------------------------------------------
// Errors
// -----------------------------------------------------------------------------

export const PgConfigErrorReason = Schema.Literals([
  "InvalidUri", // a postgresql:// URI that does not parse
  "InvalidKeyword", // a keyword/value string that does not parse (missing "=", unterminated quote)
  "UnknownKeyword", // a keyword libpq and pgfx do not know
  "InvalidValue", // a keyword's value outside its domain
  "Conflict", // values that cannot go together (ports vs hosts, sslmode vs sslrootcert=system, …)
  "Unsupported" // a libpq feature pgfx does not implement and cannot ignore safely
])
export type PgConfigErrorReason = typeof PgConfigErrorReason.Type

export class PgConfigError extends Schema.TaggedError<PgConfigError>()("PgConfigError", {
  reason: PgConfigErrorReason,
  message: Schema.String,
  /** The keyword at fault, when there is one. */
  keyword: Schema.optional(Schema.String)
}) {}

const fail = (reason: PgConfigErrorReason, message: string, keyword?: string): never => {
  throw new PgConfigError({ reason, message, ...(keyword === undefined ? {} : { keyword }) })
}

const invalidValue = (keyword: string, value: unknown): never =>
  fail(
    "InvalidValue",
    SECRET_KEYWORDS.has(keyword)
      ? `invalid ${keyword} value`
      : `invalid ${keyword} value: "${typeof value === "string" ? value : String(value)}"`,
    keyword
  )

// -----------------------------------------------------------------------------
// Keywords
// -----------------------------------------------------------------------------

type Disposition = "used" | "ignored" | "unsupported"

/** Every keyword accepted, with its environment variable (libpq's) and what pgfx does with it. */
const KEYWORDS: ReadonlyArray<readonly [keyword: string, env: string | undefined, disposition: Disposition]> = [
  ["host", "PGHOST", "used"],
  ["hostaddr", "PGHOSTADDR", "used"],
  ["port", "PGPORT", "used"],
  ["dbname", "PGDATABASE", "used"],
  ["user", "PGUSER", "used"],
  ["password", "PGPASSWORD", "used"],
  ["passfile", "PGPASSFILE", "used"],
  ["require_auth", "PGREQUIREAUTH", "used"],
  ["channel_binding", "PGCHANNELBINDING", "used"],
  ["connect_timeout", "PGCONNECT_TIMEOUT", "used"],
  ["client_encoding", undefined, "used"],
  ["options", "PGOPTIONS", "used"],
  ["application_name", "PGAPPNAME", "used"],
  ["fallback_application_name", undefined, "used"],
  ["keepalives", undefined, "used"],
  ["keepalives_idle", undefined, "used"],
  ["replication", undefined, "used"],
  ["sslmode", "PGSSLMODE", "used"],
  ["sslnegotiation", "PGSSLNEGOTIATION", "used"],
  ["sslcert", "PGSSLCERT", "used"],
  ["sslkey", "PGSSLKEY", "used"],
  ["sslpassword", undefined, "used"],
  ["sslrootcert", "PGSSLROOTCERT", "used"],
  ["sslcrl", "PGSSLCRL", "used"],
  ["sslsni", "PGSSLSNI", "used"],
  ["ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION", "used"],
  ["ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION", "used"],
  ["target_session_attrs", "PGTARGETSESSIONATTRS", "used"],
  ["load_balance_hosts", "PGLOADBALANCEHOSTS", "used"],
  ["min_protocol_version", "PGMINPROTOCOLVERSION", "used"],
  ["max_protocol_version", "PGMAXPROTOCOLVERSION", "used"],
  ["gssencmode", undefined, "used"], // only disable/prefer: there is no GSS encryption to prefer
  ["sslcertmode", undefined, "used"], // only disable/allow
  ["keepalives_interval", undefined, "ignored"],
  ["keepalives_count", undefined, "ignored"],
  ["tcp_user_timeout", undefined, "ignored"],
  ["sslcompression", undefined, "ignored"],
  ["krbsrvname", undefined, "ignored"],
  ["gsslib", undefined, "ignored"],
  ["gssdelegation", undefined, "ignored"],
  ["sslkeylogfile", undefined, "ignored"],
  ["oauth_issuer", undefined, "ignored"],
  ["oauth_client_id", undefined, "ignored"],
  ["oauth_client_secret", undefined, "ignored"],
  ["oauth_scope", undefined, "ignored"],
  ["service", undefined, "unsupported"],
  ["requirepeer", undefined, "unsupported"],
  ["sslcrldir", undefined, "unsupported"],
  ["scram_client_key", undefined, "unsupported"],
  ["scram_server_key", undefined, "unsupported"],
  // pgfx's own
  ["statement_cache_size", undefined, "used"],
  ["pipeline_depth", undefined, "used"],
  ["max_message_size", undefined, "used"],
  ["scram_min_iterations", undefined, "used"],
  ["statement_timeout", undefined, "used"],
  ["idle_timeout", undefined, "used"]
]

const DISPOSITION = new Map(KEYWORDS.map(([k, , d]) => [k, d]))

/** Keywords whose values are secrets: stored as Redacted, never echoed in messages. */
const SECRET_KEYWORDS: ReadonlySet<string> = new Set([
  "password",
  "sslpassword",
  "oauth_client_secret",
  "scram_client_key",
  "scram_server_key"
])

/** Every environment variable `resolve` reads (libpq's for the keywords above, plus the startup-parameter ones). */
export const environmentVariables: ReadonlyArray<string> = [
  ...KEYWORDS.flatMap(([, env]) => (env === undefined ? [] : [env])),
  "PGREQUIRESSL",
  "PGDATESTYLE",
  "PGTZ",
  "PGGEQO"
]

const STARTUP_ENVIRONMENT: ReadonlyArray<readonly [env: string, parameter: string]> = [
  ["PGDATESTYLE", "datestyle"],
  ["PGTZ", "timezone"],
  ["PGGEQO", "geqo"]
]

/** Explicit option name → keyword. */
const INPUT_KEYWORDS: { readonly [K in Exclude<keyof PgConfigInput, "connectionString" | "runtimeParameters">]-?: string } = {
  host: "host",
  hostaddr: "hostaddr",
  port: "port",
  user: "user",
  password: "password",
  passfile: "passfile",
  database: "dbname",
  applicationName: "application_name",
  fallbackApplicationName: "fallback_application_name",
  options: "options",
  replication: "replication",
  sslMode: "sslmode",
  sslNegotiation: "sslnegotiation",
  sslRootCert: "sslrootcert",
  sslCert: "sslcert",
  sslKey: "sslkey",
  sslPassword: "sslpassword",
  sslCrl: "sslcrl",
  sslSni: "sslsni",
  sslMinProtocolVersion: "ssl_min_protocol_version",
  sslMaxProtocolVersion: "ssl_max_protocol_version",
  channelBinding: "channel_binding",
  requireAuth: "require_auth",
  connectTimeout: "connect_timeout",
  targetSessionAttrs: "target_session_attrs",
  loadBalanceHosts: "load_balance_hosts",
  minProtocolVersion: "min_protocol_version",
  maxProtocolVersion: "max_protocol_version",
  keepAlives: "keepalives",
  keepAlivesIdle: "keepalives_idle",
  statementCacheSize: "statement_cache_size",
  pipelineDepth: "pipeline_depth",
  maxMessageSize: "max_message_size",
  scramMinIterations: "scram_min_iterations",
  statementTimeout: "statement_timeout",
  idleTimeout: "idle_timeout"
}

const redact = (keyword: string, value: string): Redacted.Redacted<string> => Redacted.make(value, { label: keyword })

// -----------------------------------------------------------------------------
// Connection strings
// -----------------------------------------------------------------------------

const URI_PREFIXES = ["postgresql://", "postgres://"] as const

const uriPrefixLength = (s: string): number => {
  for (const prefix of URI_PREFIXES) if (s.startsWith(prefix)) return prefix.length
  return 0
}

/** C's isspace in the "C" locale, as libpq's keyword/value parser uses it. */
const isSpace = (c: string | undefined): boolean =>
  c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\v" || c === "\f"

const utf8Decoder = new TextDecoder("utf-8", { fatal: true })
const utf8Encoder = new TextEncoder()

const hexValue = (c: number): number =>
  c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1

/** libpq's conninfo_uri_decode; `what` names the part for messages, which never echo secrets. */
const percentDecode = (s: string, what: string, secret: boolean): string => {
  if (!s.includes("%")) return s
  const bytes: Array<number> = []
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c !== 37 /* % */) {
      const code = s.codePointAt(i)!
      if (code > 0x7f) {
        const encoded = utf8Encoder.encode(String.fromCodePoint(code))
        for (const b of encoded) bytes.push(b)
        if (code > 0xffff) i++
      } else {
        bytes.push(c)
      }
      continue
    }
    const hi = i + 1 < s.length ? hexValue(s.charCodeAt(i + 1)) : -1
    const lo = i + 2 < s.length ? hexValue(s.charCodeAt(i + 2)) : -1
    if (hi < 0 || lo < 0) {
      fail("InvalidUri", secret ? `invalid percent-encoded token in the ${what}` : `invalid percent-encoded token: "${s}"`)
    }
    const b = (hi << 4) | lo
    if (b === 0) {
      fail(
        "InvalidUri",
        secret
          ? `forbidden value %00 in percent-encoded ${what}`
          : `forbidden value %00 in percent-encoded value: "${s}"`
      )
    }
    bytes.push(b)
    i += 2
  }
  try {
    return utf8Decoder.decode(new Uint8Array(bytes))
  } catch {
    return fail("InvalidUri", secret ? `the ${what} is not valid UTF-8 once percent-decoded` : `percent-decoded value is not valid UTF-8: "${s}"`)
  }
}

/** Stores a keyword after libpq's `requiressl` translation and the keyword check. */
const store = (
  out: Record<string, string | Redacted.Redacted<string>>,
  keyword: string,
  value: string,
  unknown: (keyword: string) => never
): void => {
  if (keyword === "requiressl") {
    keyword = "sslmode"
    value = value.startsWith("1") ? "require" : "prefer"
  }
  if (!DISPOSITION.has(keyword)) unknown(keyword)
  out[keyword] = SECRET_KEYWORDS.has(keyword) ? redact(keyword, value) : value
}

/** libpq's conninfo_uri_parse_options: postgresql://[user[:password]@][netloc][:port][,...][/dbname][?param=value&...] */
const parseUri = (uri: string, prefixLength: number): ConnectionOptions => {
  const out: Record<string, string | Redacted.Redacted<string>> = {}
  const n = uri.length
  let p = prefixLength

  // Credentials: libpq looks for "@" before the first "/" (so "@" in a password must be %40).
  let at = p
  while (at < n && uri[at] !== "@" && uri[at] !== "/") at++
  if (at < n && uri[at] === "@") {
    let u = p
    while (uri[u] !== ":" && uri[u] !== "@") u++
    const user = uri.slice(p, u)
    if (user !== "") out.user = percentDecode(user, "user name", false)
    if (uri[u] === ":") {
      const password = uri.slice(u + 1, at)
      if (password !== "") out.password = redact("password", percentDecode(password, "password", true))
    }
    p = at + 1
  }

  // One or more netloc[:port], comma-separated; IPv6 addresses in brackets.
  const hosts: Array<string> = []
  const ports: Array<string> = []
  let terminator: string | undefined
  for (;;) {
    let host: string
    if (uri[p] === "[") {
      const start = ++p
      while (p < n && uri[p] !== "]") p++
      if (p >= n) fail("InvalidUri", `end of string reached when looking for matching "]" in IPv6 host address in URI`)
      if (p === start) fail("InvalidUri", "IPv6 host address may not be empty in URI")
      host = uri.slice(start, p)
      p++
      if (p < n && uri[p] !== ":" && uri[p] !== "/" && uri[p] !== "?" && uri[p] !== ",") {
        fail("InvalidUri", `unexpected character "${uri[p]}" at position ${p + 1} in URI (expected ":" or "/")`)
      }
    } else {
      const start = p
      while (p < n && uri[p] !== ":" && uri[p] !== "/" && uri[p] !== "?" && uri[p] !== ",") p++
      host = uri.slice(start, p)
    }
    terminator = p < n ? uri[p] : undefined
    hosts.push(host)
    let port = ""
    if (terminator === ":") {
      const start = ++p
      while (p < n && uri[p] !== "/" && uri[p] !== "?" && uri[p] !== ",") p++
      port = uri.slice(start, p)
      terminator = p < n ? uri[p] : undefined
    }
    ports.push(port)
    if (terminator !== ",") break
    p++
  }
  // As libpq: the lists are joined first and decoded whole.
  const hostList = hosts.join(",")
  const portList = ports.join(",")
  if (hostList !== "") out.host = percentDecode(hostList, "host", false)
  if (portList !== "") out.port = percentDecode(portList, "port", false)

  if (terminator !== undefined && terminator !== "?") {
    const start = ++p
    while (p < n && uri[p] !== "?") p++
    const dbname = uri.slice(start, p)
    terminator = p < n ? "?" : undefined
    // An empty path does not set dbname, so PGDATABASE still applies (libpq).
    if (dbname !== "") out.dbname = percentDecode(dbname, "database name", false)
  }

  if (terminator === "?") {
    const params = uri.slice(p + 1)
    const pairs = params.split("&")
    if (pairs[pairs.length - 1] === "") pairs.pop() // libpq stops at the end after a trailing "&"
    for (const pair of pairs) {
      const eq = pair.indexOf("=")
      if (eq < 0) fail("InvalidUri", `missing key/value separator "=" in URI query parameter: "${pair}"`)
      const rawKeyword = pair.slice(0, eq)
      const rawValue = pair.slice(eq + 1)
      const keyword = percentDecode(rawKeyword, "query parameter name", false)
      const secret = SECRET_KEYWORDS.has(keyword)
      if (rawValue.includes("=")) {
        fail(
          "InvalidUri",
          secret
            ? `extra key/value separator "=" in URI query parameter "${keyword}"`
            : `extra key/value separator "=" in URI query parameter: "${pair}"`,
          keyword
        )
      }
      const value = percentDecode(rawValue, `value of ${keyword}`, secret)
      if (keyword === "ssl" && value === "true") {
        // libpq's JDBC compatibility
        store(out, "sslmode", "require", () => undefined as never)
        continue
      }
      store(out, keyword, value, (k) => fail("UnknownKeyword", `invalid URI query parameter: "${k}"`, k))
    }
  }
  return out
}

/** libpq's conninfo_parse: `keyword = value` pairs, values optionally single-quoted, `\` escapes. */
const parseKeywordValue = (s: string): ConnectionOptions => {
  const out: Record<string, string | Redacted.Redacted<string>> = {}
  const n = s.length
  let i = 0
  // After a secret value, the next token may be the rest of a mis-quoted secret: never echo it.
  let afterSecret: string | undefined
  const token = (t: string) => (afterSecret === undefined ? `"${t}"` : `the text following the value of "${afterSecret}"`)
  while (i < n) {
    if (isSpace(s[i])) {
      i++
      continue
    }
    const start = i
    while (i < n && s[i] !== "=" && !isSpace(s[i])) i++
    const keyword = s.slice(start, i)
    while (i < n && isSpace(s[i])) i++
    if (s[i] !== "=") fail("InvalidKeyword", `missing "=" after ${token(keyword)} in connection info string`)
    i++
    while (i < n && isSpace(s[i])) i++
    let value = ""
    if (s[i] !== "'") {
      while (i < n && !isSpace(s[i])) {
        if (s[i] === "\\") {
          i++
          if (i < n) value += s[i++]
        } else {
          value += s[i++]
        }
      }
    } else {
      i++
      for (;;) {
        if (i >= n) {
          fail(
            "InvalidKeyword",
            SECRET_KEYWORDS.has(keyword)
              ? `unterminated quoted string in connection info string (value of "${keyword}")`
              : "unterminated quoted string in connection info string",
            keyword
          )
        }
        if (s[i] === "\\") {
          i++
          if (i < n) value += s[i++]
          continue
        }
        if (s[i] === "'") {
          i++
          break
        }
        value += s[i++]
      }
    }
    store(out, keyword, value, (k) =>
      afterSecret === undefined
        ? fail("UnknownKeyword", `invalid connection option "${k}"`, k)
        : fail("UnknownKeyword", `invalid connection option after the value of "${afterSecret}" (check its quoting)`))
    afterSecret = SECRET_KEYWORDS.has(keyword) ? keyword : undefined
  }
  return out
}

/** Whether `s` is a connection string libpq would recognise: a URI, or anything containing "=". */
export const isConnectionString = (s: string): boolean => uriPrefixLength(s) !== 0 || s.includes("=")

const parseUnsafe = (s: string): ConnectionOptions => {
  const prefix = uriPrefixLength(s)
  return prefix !== 0 ? parseUri(s, prefix) : parseKeywordValue(s)
}

const catchConfigError = <A>(f: () => A): Result.Result<A, PgConfigError> => {
  try {
    return Result.succeed(f())
  } catch (e) {
    if (e instanceof PgConfigError) return Result.fail(e)
    throw e
  }
}

/**
 * Parses a libpq connection string (URI or keyword/value) into the keywords it sets, like libpq's
 * PQconninfoParse: no defaults, no environment, values not yet validated (that is `resolve`'s job),
 * but unknown keywords and syntax errors are rejected. Pure; returns a Result (use
 * `Effect.fromResult` to lift it).
 */
export const parseConnectionString = (s: string): Result.Result<ConnectionOptions, PgConfigError> =>
  catchConfigError(() => parseUnsafe(s))

// -----------------------------------------------------------------------------
// Values
// -----------------------------------------------------------------------------

type Raw = unknown

const text = (keyword: string, v: Raw): string => {
  if (typeof v === "string") return v
  if (Redacted.isRedacted(v)) return Redacted.value(v as Redacted.Redacted<string>)
  if (typeof v === "number" || typeof v === "bigint") return String(v)
  if (typeof v === "boolean") return v ? "1" : "0"
  if (Array.isArray(v)) return v.map((e) => text(keyword, e)).join(",")
  return invalidValue(keyword, v)
}

/** A string option, "" meaning not set. */
const optionalText = (keyword: string, v: Raw): string | undefined => {
  if (v === undefined) return undefined
  const s = text(keyword, v)
  return s === "" ? undefined : s
}

const oneOf = <const A extends string>(keyword: string, v: Raw, allowed: ReadonlyArray<A>): A | undefined => {
  const s = optionalText(keyword, v)
  if (s === undefined) return undefined
  return (allowed as ReadonlyArray<string>).includes(s) ? (s as A) : invalidValue(keyword, s)
}

/** libpq's parse_int_param: optional whitespace, optional sign, digits, optional trailing whitespace. */
const integer = (keyword: string, v: Raw): number | undefined => {
  if (v === undefined) return undefined
  if (typeof v === "number") {
    return Number.isInteger(v) ? v : fail("InvalidValue", `invalid integer value "${v}" for connection option "${keyword}"`, keyword)
  }
  const s = text(keyword, v)
  if (s === "") return undefined
  if (!/^\s*[+-]?\d+\s*$/.test(s)) {
    fail("InvalidValue", `invalid integer value "${s}" for connection option "${keyword}"`, keyword)
  }
  const n = Number(s)
  if (n > INT32_MAX || n < -INT32_MAX - 1) {
    fail("InvalidValue", `integer value "${s}" for connection option "${keyword}" is out of range`, keyword)
  }
  return n
}

const atLeast = (keyword: string, n: number | undefined, min: number, max: number = INT32_MAX): number | undefined => {
  if (n === undefined) return undefined
  if (n < min || n > max) {
    fail("InvalidValue", `invalid ${keyword} value: "${n}" (must be between ${min} and ${max})`, keyword)
  }
  return n
}

const BOOLEAN_TRUE = ["1", "true", "on", "yes"]
const BOOLEAN_FALSE = ["0", "false", "off", "no"]

const boolean = (keyword: string, v: Raw): boolean | undefined => {
  if (typeof v === "boolean") return v
  const s = optionalText(keyword, v)?.toLowerCase()
  if (s === undefined) return undefined
  if (BOOLEAN_TRUE.includes(s)) return true
  if (BOOLEAN_FALSE.includes(s)) return false
  return invalidValue(keyword, s)
}

/** A number of whole seconds (libpq's connect_timeout, keepalives_idle), or a Duration as is. */
const seconds = (keyword: string, v: Raw): Duration.Duration | undefined => {
  if (Duration.isDuration(v)) return v
  const n = integer(keyword, v)
  return n === undefined || n <= 0 ? undefined : Duration.seconds(n)
}

const GUC_TIME_UNITS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }

/** A postgresql.conf-style time: milliseconds, or a number with a unit (us, ms, s, min, h, d); 0 = none. */
const gucTime = (keyword: string, v: Raw): Duration.Duration | undefined => {
  if (Duration.isDuration(v)) return Duration.isZero(v) ? undefined : v
  let millis: number
  if (typeof v === "number") {
    millis = v
  } else {
    const s = optionalText(keyword, v)
    if (s === undefined) return undefined
    const m = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(s)
    if (m === null) return invalidValue(keyword, s)
    millis = Number(m[1]) * GUC_TIME_UNITS[m[2] ?? "ms"]
  }
  if (!Number.isFinite(millis) || millis < 0) return invalidValue(keyword, v)
  return millis === 0 ? undefined : Duration.millis(millis)
}

const GUC_SIZE_UNITS: Readonly<Record<string, number>> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }

const gucBytes = (keyword: string, v: Raw): number | undefined => {
  if (typeof v === "number") return v
  const s = optionalText(keyword, v)
  if (s === undefined) return undefined
  const m = /^\s*(\d+)\s*(B|kB|MB|GB)?\s*$/.exec(s)
  return m === null ? invalidValue(keyword, s) : Number(m[1]) * GUC_SIZE_UNITS[m[2] ?? "B"]
}

/** Splits a comma-separated list (libpq's parse_comma_separated_list: no trimming). */
const list = (keyword: string, v: Raw): ReadonlyArray<string> | undefined => {
  if (v === undefined) return undefined
  if (Array.isArray(v)) return v.length === 0 ? undefined : v.map((e) => text(keyword, e))
  const s = text(keyword, v)
  return s === "" ? undefined : s.split(",")
}

const parsePort = (raw: string): number => {
  const s = raw
  if (s === "") return 5432
  if (!/^\s*[+-]?\d+\s*$/.test(s)) return fail("InvalidValue", `invalid port number: "${s}"`, "port")
  const n = Number(s)
  if (n < 1 || n > 65535) fail("InvalidValue", `invalid port number: "${s}"`, "port")
  return n
}

const REQUIRE_AUTH_METHODS = ["password", "md5", "gss", "sspi", "scram-sha-256", "oauth", "none"]

/** libpq's require_auth: a list of methods, or a list of negated methods; no duplicates. */
const requireAuth = (v: Raw): ReadonlyArray<string> | undefined => {
  const items = list("require_auth", v)
  if (items === undefined) return undefined
  let negated = false
  const seen = new Set<string>()
  items.forEach((part, index) => {
    let method = part
    if (method.startsWith("!")) {
      if (index > 0 && !negated) {
        fail("Conflict", `negative require_auth method "${method}" cannot be mixed with non-negative methods`, "require_auth")
      }
      negated = true
      method = method.slice(1)
    } else if (negated) {
      fail("Conflict", `require_auth method "${method}" cannot be mixed with negative methods`, "require_auth")
    }
    if (!REQUIRE_AUTH_METHODS.includes(method)) invalidValue("require_auth", method)
    if (seen.has(method)) fail("InvalidValue", `require_auth method "${part}" is specified more than once`, "require_auth")
    seen.add(method)
  })
  return items
}

/**
 * Whether an authentication method the server asks for is allowed by `requireAuth` (libpq's
 * semantics: a plain list allows exactly those methods; a negated list allows all others; "none"
 * is the server not asking for authentication at all).
 */
export const isAuthMethodAllowed = (
  requireAuth: ReadonlyArray<string> | undefined,
  method: "password" | "md5" | "gss" | "sspi" | "scram-sha-256" | "oauth" | "none"
): boolean => {
  if (requireAuth === undefined || requireAuth.length === 0) return true
  return requireAuth[0].startsWith("!") ? !requireAuth.includes("!" + method) : requireAuth.includes(method)
}

const TLS_VERSIONS: ReadonlyArray<TlsVersion> = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]

const tlsVersion = (keyword: string, v: Raw, fallback: TlsVersion | undefined): TlsVersion | undefined => {
  if (v === undefined) return fallback
  const s = text(keyword, v)
  if (s === "") return undefined // libpq: empty means "no bound"
  const found = TLS_VERSIONS.find((t) => t.toLowerCase() === s.toLowerCase())
  return found ?? invalidValue(keyword, s)
}

const protocolVersion = (keyword: string, v: Raw, fallback: ProtocolVersion): ProtocolVersion => {
  const s = optionalText(keyword, v)
  if (s === undefined) return fallback
  if (s === "3.0" || s === "3.2") return s
  if (s === "latest") return "3.2"
  return invalidValue(keyword, s)
}

const replication = (v: Raw): "true" | "database" | undefined => {
  if (typeof v === "boolean") return v ? "true" : undefined
  const s = optionalText("replication", v)
  if (s === undefined) return undefined
  const lower = s.toLowerCase()
  if (lower === "database") return "database"
  if (BOOLEAN_TRUE.includes(lower)) return "true"
  if (BOOLEAN_FALSE.includes(lower)) return undefined
  return invalidValue("replication", s)
}

const UTF8_NAMES = ["utf8", "utf-8", "unicode", "auto"]

// -----------------------------------------------------------------------------
// Resolution
// -----------------------------------------------------------------------------

/** The default socket directory pgfx uses when no host is given (see the module header). */
export const detectDefaultSocketDir = (): string | undefined => {
  for (const dir of ["/var/run/postgresql", "/tmp"]) {
    try {
      if (Fs.statSync(dir).isDirectory()) return dir
    } catch {
      // not there: try the next one
    }
  }
  return undefined
}

const isUnixSocketPath = (host: string): boolean => host.startsWith("/") || host.startsWith("@")

interface Layers {
  readonly explicit: ReadonlyMap<string, Raw>
  readonly connectionString: ConnectionOptions
  readonly env: Environment
}

const envFor = new Map(KEYWORDS.flatMap(([k, env]) => (env === undefined ? [] : [[k, env] as const])))

/** The value of a keyword by libpq's precedence, and whether it was given at all (even empty). */
const lookupKeyword = (layers: Layers, keyword: string): { readonly value: Raw; readonly given: boolean } => {
  if (layers.explicit.has(keyword)) return { value: layers.explicit.get(keyword), given: true }
  if (Object.hasOwn(layers.connectionString, keyword)) return { value: layers.connectionString[keyword], given: true }
  const env = envFor.get(keyword)
  if (env !== undefined && layers.env[env] !== undefined) return { value: layers.env[env], given: true }
  return { value: undefined, given: false }
}

const resolveUnsafe = (input: PgConfigInput, env: Environment, options: ResolveOptions): PgConfig => {
  const explicit = new Map<string, Raw>()
  for (const [name, keyword] of Object.entries(INPUT_KEYWORDS)) {
    const v = (input as Record<string, unknown>)[name]
    if (v !== undefined) explicit.set(keyword, v)
  }
  const connectionString =
    input.connectionString === undefined
      ? {}
      : parseUnsafe(
        typeof input.connectionString === "string" ? input.connectionString : Redacted.value(input.connectionString)
      )
  const layers: Layers = { explicit, connectionString, env }
  const get = (keyword: string): Raw => lookupKeyword(layers, keyword).value

  // Keywords pgfx cannot honour, or ignores.
  const ignoredKeywords: Array<string> = []
  for (const [keyword, , disposition] of KEYWORDS) {
    if (disposition === "used" || !lookupKeyword(layers, keyword).given) continue
    if (disposition === "unsupported") {
      fail("Unsupported", `connection option "${keyword}" is not supported by pgfx`, keyword)
    }
    ignoredKeywords.push(keyword)
  }
  const gssencmode = oneOf("gssencmode", get("gssencmode"), ["disable", "prefer", "require"])
  if (gssencmode === "require") fail("Unsupported", `gssencmode value "require" is not supported by pgfx (no GSSAPI encryption)`, "gssencmode")
  const sslcertmode = oneOf("sslcertmode", get("sslcertmode"), ["disable", "allow", "require"])
  if (sslcertmode === "require") fail("Unsupported", `sslcertmode value "require" is not supported by pgfx`, "sslcertmode")
  const clientEncoding = optionalText("client_encoding", get("client_encoding"))
  if (clientEncoding !== undefined && !UTF8_NAMES.includes(clientEncoding.toLowerCase())) {
    fail("Unsupported", `client_encoding "${clientEncoding}" is not supported: pgfx always uses UTF8`, "client_encoding")
  }

  // Hosts: libpq's pqConnectOptions2. hostaddr, when given, fixes the number of hosts.
  let socketDirCache: string | undefined | null = null
  const defaultSocketDir = (): string | undefined => {
    if (socketDirCache === null) {
      socketDirCache = options.defaultSocketDir === undefined
        ? detectDefaultSocketDir()
        : options.defaultSocketDir ?? undefined
    }
    return socketDirCache
  }
  const hostaddrs = list("hostaddr", get("hostaddr"))
  const hostNames = list("host", get("host"))
  const count = hostaddrs?.length ?? hostNames?.length ?? 1
  if (hostaddrs !== undefined && hostNames !== undefined && hostNames.length !== count) {
    fail("Conflict", `could not match ${hostNames.length} host names to ${count} hostaddr values`, "host")
  }
  const portList = list("port", get("port"))
  let ports: ReadonlyArray<number>
  if (portList === undefined) {
    ports = Array.from({ length: count }, () => 5432)
  } else if (portList.length === 1) {
    const port = parsePort(portList[0])
    ports = Array.from({ length: count }, () => port)
  } else if (portList.length === count) {
    ports = portList.map(parsePort)
  } else {
    return fail("Conflict", `could not match ${portList.length} port numbers to ${count} hosts`, "port")
  }
  const targets: Array<{ host: string; hostaddr: string | undefined; port: number; kind: "tcp" | "unix" }> = []
  for (let i = 0; i < count; i++) {
    const hostaddr = hostaddrs?.[i] ?? ""
    const host = hostNames?.[i] ?? ""
    const port = ports[i]
    if (hostaddr !== "") {
      if (Net.isIP(hostaddr) === 0) fail("InvalidValue", `could not parse network address "${hostaddr}"`, "hostaddr")
      targets.push({ host: host === "" ? hostaddr : host, hostaddr, port, kind: "tcp" })
    } else if (host !== "") {
      targets.push({ host, hostaddr: undefined, port, kind: isUnixSocketPath(host) ? "unix" : "tcp" })
    } else {
      const dir = defaultSocketDir()
      targets.push(
        dir === undefined
          ? { host: "localhost", hostaddr: undefined, port, kind: "tcp" }
          : { host: dir, hostaddr: undefined, port, kind: "unix" }
      )
    }
  }

  // User and database.
  let user = optionalText("user", get("user"))
  if (user === undefined) {
    user = options.osUser
    if (user === undefined) {
      try {
        user = Os.userInfo().username
      } catch {
        user = undefined
      }
    }
    if (user === undefined || user === "") {
      return fail("InvalidValue", "no user name was given and the local user name could not be determined", "user")
    }
  }
  const database = optionalText("dbname", get("dbname")) ?? user

  // TLS.
  const sslModeGiven = lookupKeyword(layers, "sslmode").given
  const requireSsl = layers.env.PGREQUIRESSL
  let sslMode: SslMode | undefined = oneOf("sslmode", get("sslmode"), [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full"
  ])
  const sslRootCert = optionalText("sslrootcert", get("sslrootcert"))
  if (sslMode === undefined && !sslModeGiven && typeof requireSsl === "string" && requireSsl.startsWith("1")) {
    sslMode = "require" // the deprecated PGREQUIRESSL, below PGSSLMODE as in libpq ≥ 9.3
  }
  const sslModeExplicit = sslMode !== undefined
  if (sslMode === undefined) sslMode = sslRootCert === "system" ? "verify-full" : "prefer"
  if (sslRootCert === "system" && sslMode !== "verify-full") {
    fail("Conflict", `weak sslmode "${sslMode}" may not be used with sslrootcert=system (use "verify-full")`, "sslmode")
  }
  const sslNegotiation = oneOf("sslnegotiation", get("sslnegotiation"), ["postgres", "direct"]) ?? "postgres"
  if (sslNegotiation === "direct" && !sslMode.startsWith("require") && !sslMode.startsWith("verify")) {
    fail(
      "Conflict",
      `weak sslmode "${sslMode}" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")`,
      "sslmode"
    )
  }
  if (!sslModeExplicit && sslMode === "prefer" && targets.every((t) => t.kind === "unix")) sslMode = "disable"
  const sslMinProtocolVersion = tlsVersion("ssl_min_protocol_version", get("ssl_min_protocol_version"), "TLSv1.2")
  const sslMaxProtocolVersion = tlsVersion("ssl_max_protocol_version", get("ssl_max_protocol_version"), undefined)
  if (
    sslMinProtocolVersion !== undefined && sslMaxProtocolVersion !== undefined &&
    TLS_VERSIONS.indexOf(sslMinProtocolVersion) > TLS_VERSIONS.indexOf(sslMaxProtocolVersion)
  ) {
    fail("Conflict", "invalid SSL protocol version range", "ssl_min_protocol_version")
  }
  const channelBinding = oneOf("channel_binding", get("channel_binding"), ["disable", "prefer", "require"]) ?? "prefer"
  if (channelBinding === "require" && sslMode === "disable") {
    // libpq would only fail at authentication; it can never succeed, so say so now.
    fail("Conflict", `channel_binding "require" cannot be satisfied with sslmode "disable"`, "channel_binding")
  }

  // Protocol.
  const minProtocolVersion = protocolVersion("min_protocol_version", get("min_protocol_version"), "3.0")
  const maxProtocolVersion = protocolVersion("max_protocol_version", get("max_protocol_version"), "3.2")
  if (minProtocolVersion > maxProtocolVersion) {
    fail(
      "Conflict",
      `min_protocol_version "${minProtocolVersion}" is greater than max_protocol_version "${maxProtocolVersion}"`,
      "min_protocol_version"
    )
  }

  // Startup parameters.
  const runtimeParameters: Record<string, string> = {}
  for (const [envName, parameter] of STARTUP_ENVIRONMENT) {
    const v = layers.env[envName]
    if (typeof v === "string" && v !== "") runtimeParameters[parameter] = v
  }
  for (const [name, value] of Object.entries(input.runtimeParameters ?? {})) {
    if (name === "" || name.includes("\0") || value.includes("\0")) {
      fail("InvalidValue", `invalid runtime parameter "${name.replace(/\0/g, "\\0")}"`, "runtimeParameters")
    }
    if (RESERVED_STARTUP_PARAMETERS.has(name.toLowerCase())) {
      fail("Conflict", `runtime parameter "${name}" is set by its own connection option`, "runtimeParameters")
    }
    runtimeParameters[name] = value
  }

  // Passwords.
  const passwordRaw = get("password")
  const passwordText = passwordRaw === undefined ? "" : text("password", passwordRaw)
  const password = passwordText === "" ? undefined : redact("password", passwordText)
  const sslPasswordText = optionalText("sslpassword", get("sslpassword"))
  const sslPassword = sslPasswordText === undefined ? undefined : redact("sslpassword", sslPasswordText)
  const passfileWarnings: Array<string> = []
  let passfile = optionalText("passfile", get("passfile"))
  if (passfile === undefined) {
    let home = options.homeDir
    if (home === undefined) {
      try {
        home = Os.homedir()
      } catch {
        home = undefined
      }
    }
    if (home !== undefined && home !== "") passfile = `${home}/.pgpass`
  }
  let hosts: ReadonlyArray<PgHost>
  if (password !== undefined || passfile === undefined) {
    hosts = targets.map((t) => makeHost(t, password))
  } else {
    const file = PgPass.read(passfile, options.fs ?? PgPass.nodeFs)
    if (file._tag === "Ignored") passfileWarnings.push(file.warning)
    hosts = targets.map((t) => {
      if (file._tag !== "Loaded") return makeHost(t, undefined)
      const found = PgPass.lookup(file.content, {
        host: t.kind === "unix" ? PgPass.hostForLookup(t.host, defaultSocketDir()) : t.host,
        port: String(t.port),
        database,
        user: user!
      })
      return makeHost(t, found === undefined || found === "" ? undefined : redact("password", found))
    })
  }

  const applicationName = optionalText("application_name", get("application_name")) ??
    optionalText("fallback_application_name", get("fallback_application_name"))

  return {
    hosts,
    user,
    password: password ?? hosts.find((h) => h.password !== undefined)?.password,
    database,
    applicationName,
    options: optionalText("options", get("options")),
    replication: replication(get("replication")),
    sslMode,
    sslNegotiation,
    sslRootCert,
    sslCert: optionalText("sslcert", get("sslcert")),
    sslKey: optionalText("sslkey", get("sslkey")),
    sslPassword,
    sslCrl: optionalText("sslcrl", get("sslcrl")),
    sslSni: boolean("sslsni", get("sslsni")) ?? true,
    sslMinProtocolVersion,
    sslMaxProtocolVersion,
    channelBinding,
    requireAuth: requireAuth(get("require_auth")),
    connectTimeout: connectTimeout(get("connect_timeout")),
    targetSessionAttrs: oneOf("target_session_attrs", get("target_session_attrs"), [
      "any",
      "read-write",
      "read-only",
      "primary",
      "standby",
      "prefer-standby"
    ]) ?? "any",
    loadBalanceHosts: oneOf("load_balance_hosts", get("load_balance_hosts"), ["disable", "random"]) ?? "disable",
    minProtocolVersion,
    maxProtocolVersion,
    keepAlives: keepAlives(get("keepalives")),
    keepAlivesIdle: seconds("keepalives_idle", get("keepalives_idle")),
    runtimeParameters,
    statementCacheSize: atLeast("statement_cache_size", integer("statement_cache_size", get("statement_cache_size")), 0) ??
      256,
    pipelineDepth: atLeast("pipeline_depth", integer("pipeline_depth", get("pipeline_depth")), 1) ?? 1000,
    maxMessageSize: atLeast("max_message_size", gucBytes("max_message_size", get("max_message_size")), 1024, INT32_MAX) ??
      DEFAULT_MAX_MESSAGE_SIZE,
    scramMinIterations: atLeast("scram_min_iterations", integer("scram_min_iterations", get("scram_min_iterations")), 1) ??
      4096,
    statementTimeout: gucTime("statement_timeout", get("statement_timeout")),
    idleTimeout: gucTime("idle_timeout", get("idle_timeout")),
    passfile,
    passfileWarnings,
    ignoredKeywords
  }
}

/** Startup parameters with their own option; `runtimeParameters` may not set them. */
const RESERVED_STARTUP_PARAMETERS: ReadonlySet<string> = new Set([
  "user",
  "database",
  "options",
  "application_name",
  "replication",
  "client_encoding"
])

const makeHost = (
  t: { readonly host: string; readonly hostaddr: string | undefined; readonly port: number; readonly kind: "tcp" | "unix" },
  password: Redacted.Redacted<string> | undefined
): PgHost => ({
  host: t.host,
  ...(t.hostaddr === undefined ? {} : { hostaddr: t.hostaddr }),
  port: t.port,
  kind: t.kind,
  ...(password === undefined ? {} : { password })
})

/** libpq: whole seconds; 0 or negative = no timeout; 1 is raised to 2 (a 1 s timeout is too racy). */
const connectTimeout = (v: Raw): Duration.Duration | undefined => {
  const d = seconds("connect_timeout", v)
  if (d === undefined || !Duration.isPositive(d)) return undefined
  return Duration.isLessThan(d, Duration.seconds(2)) ? Duration.seconds(2) : d
}

const keepAlives = (v: Raw): boolean => {
  if (typeof v === "boolean") return v
  const n = integer("keepalives", v)
  return n === undefined ? true : n !== 0
}

/**
 * Resolves a configuration by libpq's rules: explicit options, then the connection string, then
 * the environment (`process.env` unless given), then defaults; then reads the password file if no
 * password was given.
 */
export const resolve = (
  input: PgConfigInput = {},
  env?: Environment,
  options: ResolveOptions = {}
): Effect.Effect<PgConfig, PgConfigError> =>
  Effect.suspend(() => Effect.fromResult(resolveResult(input, env, options)))

/** `resolve` as a synchronous Result. */
export const resolveResult = (
  input: PgConfigInput = {},
  env?: Environment,
  options: ResolveOptions = {}
): Result.Result<PgConfig, PgConfigError> =>
  catchConfigError(() => resolveUnsafe(input, env ?? (process.env as Environment), options))

// -----------------------------------------------------------------------------
// Display
// -----------------------------------------------------------------------------

const encodeUriHost = (h: PgHost): string => {
  if (h.kind === "tcp" && h.host.includes(":")) return `[${h.host.replace(/%/g, "%25")}]`
  return encodeURIComponent(h.host)
}

const durationSeconds = (d: Duration.Duration): string => String(Math.ceil(Duration.toSeconds(d)))
const durationMillis = (d: Duration.Duration): string => String(Duration.toMillis(d))

/**
 * A `postgresql://` URI for the configuration. With `redact` (the default) a password is shown as
 * `****`; the result then never contains a password. Settings equal to their defaults are omitted;
 * `runtimeParameters` and the password file are not represented.
 */
export const toConnectionString = (config: PgConfig, options: { readonly redact?: boolean } = {}): string => {
  const redactPassword = options.redact ?? true
  let uri = "postgresql://" + encodeURIComponent(config.user)
  if (config.password !== undefined) {
    uri += ":" + (redactPassword ? "****" : encodeURIComponent(Redacted.value(config.password)))
  }
  uri += "@" + config.hosts.map((h) => `${encodeUriHost(h)}:${h.port}`).join(",")
  uri += "/" + encodeURIComponent(config.database)
  const params: Array<[string, string]> = []
  if (config.hosts.some((h) => h.hostaddr !== undefined)) {
    params.push(["hostaddr", config.hosts.map((h) => h.hostaddr ?? "").join(",")])
  }
  params.push(["sslmode", config.sslMode])
  const optional: ReadonlyArray<readonly [string, string | undefined, string | undefined]> = [
    ["application_name", config.applicationName, undefined],
    ["options", config.options, undefined],
    ["replication", config.replication, undefined],
    ["sslnegotiation", config.sslNegotiation, "postgres"],
    ["sslrootcert", config.sslRootCert, undefined],
    ["sslcert", config.sslCert, undefined],
    ["sslkey", config.sslKey, undefined],
    ["sslcrl", config.sslCrl, undefined],
    ["sslsni", config.sslSni ? "1" : "0", "1"],
    ["ssl_min_protocol_version", config.sslMinProtocolVersion ?? "", "TLSv1.2"],
    ["ssl_max_protocol_version", config.sslMaxProtocolVersion, undefined],
    ["channel_binding", config.channelBinding, "prefer"],
    ["require_auth", config.requireAuth?.join(","), undefined],
    ["connect_timeout", config.connectTimeout === undefined ? undefined : durationSeconds(config.connectTimeout), undefined],
    ["target_session_attrs", config.targetSessionAttrs, "any"],
    ["load_balance_hosts", config.loadBalanceHosts, "disable"],
    ["min_protocol_version", config.minProtocolVersion, "3.0"],
    ["max_protocol_version", config.maxProtocolVersion, "3.2"],
    ["keepalives", config.keepAlives ? "1" : "0", "1"],
    ["keepalives_idle", config.keepAlivesIdle === undefined ? undefined : durationSeconds(config.keepAlivesIdle), undefined],
    ["statement_cache_size", String(config.statementCacheSize), "256"],
    ["pipeline_depth", String(config.pipelineDepth), "1000"],
    ["max_message_size", String(config.maxMessageSize), String(DEFAULT_MAX_MESSAGE_SIZE)],
    ["scram_min_iterations", String(config.scramMinIterations), "4096"],
    ["statement_timeout", config.statementTimeout === undefined ? undefined : durationMillis(config.statementTimeout), undefined],
    ["idle_timeout", config.idleTimeout === undefined ? undefined : durationMillis(config.idleTimeout), undefined]
  ]
  for (const [keyword, value, fallback] of optional) {
    if (value !== undefined && value !== fallback) params.push([keyword, value])
  }
  if (config.sslPassword !== undefined) {
    params.push(["sslpassword", redactPassword ? "****" : Redacted.value(config.sslPassword)])
  }
  return uri + "?" + params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")
}

// -----------------------------------------------------------------------------
// Effect Config
// -----------------------------------------------------------------------------

const toConfigError = (e: PgConfigError): Config.ConfigError =>
  new Config.ConfigError(new ConfigProvider.SourceError({ message: e.message, cause: e }))

/**
 * A `Config` reading `DATABASE_URL` (the connection-string layer) and the `PG*` variables (the
 * environment layer) through the current `ConfigProvider`, then resolving as `resolve` does. With a
 * prefix, every name is looked up under it (with `ConfigProvider.fromEnv`: `${prefix}_PGHOST`, …).
 * A `PgConfigError` surfaces as a `ConfigError` whose cause is a `SourceError` carrying it.
 */
export const fromConfig = (prefix?: string, options: ResolveOptions = {}): Config.Config<PgConfig> => {
  const fields: Record<string, Config.Config<Option.Option<string | Redacted.Redacted<string>>>> = {
    DATABASE_URL: Config.option(Config.Redacted("DATABASE_URL"))
  }
  for (const name of environmentVariables) {
    const field: Config.Config<string | Redacted.Redacted<string>> = name === "PGPASSWORD"
      ? Config.Redacted(name)
      : Config.String(name)
    fields[name] = Config.option(field)
  }
  const all = Config.all(fields)
  const scoped = prefix === undefined ? all : all.pipe(Config.nested(prefix))
  return Config.mapEffect(scoped, (vars) => {
    const env: Record<string, string | Redacted.Redacted<string>> = {}
    for (const name of environmentVariables) {
      const v = vars[name]
      if (v !== undefined && Option.isSome(v)) env[name] = v.value
    }
    const url = vars.DATABASE_URL
    const input: PgConfigInput = url !== undefined && Option.isSome(url) && Redacted.isRedacted(url.value)
      ? { connectionString: url.value }
      : {}
    return resolve(input, env, options).pipe(Effect.mapError(toConfigError))
  })
}

/** `fromConfig()` — `DATABASE_URL` and `PG*` from the current ConfigProvider. */
export const config: Config.Config<PgConfig> = fromConfig()
