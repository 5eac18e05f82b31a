/**
 * Connection settings the way psql users give them: a URI or keyword/value string as an argument,
 * `-h -p -U -d`, the libpq environment variables and `~/.pgpass` (the last two read by PgConfig.resolve).
 *
 * Invariants:
 * - Precedence is libpq's: an explicit flag beats the connection string, which beats PG* variables.
 * - A positional argument that is not a connection string is a database name (as for psql).
 */
import * as Option from "effect/Option"
import { Argument, Flag } from "effect/cli"
import { isConnectionString, type PgConfigInput } from "@pgfx/connection/PgConfig"

export const connectionFlags = {
  host: Flag.String("host").pipe(
    Flag.withAlias("h"),
    Flag.withDescription("server host or Unix socket directory (PGHOST)"),
    Flag.optional
  ),
  port: Flag.Int("port").pipe(Flag.withAlias("p"), Flag.withDescription("server port (PGPORT)"), Flag.optional),
  username: Flag.String("username").pipe(
    Flag.withAlias("U"),
    Flag.withDescription("user name (PGUSER); the password comes from PGPASSWORD or ~/.pgpass"),
    Flag.optional
  ),
  dbname: Flag.String("dbname").pipe(Flag.withAlias("d"), Flag.withDescription("database name (PGDATABASE)"), Flag.optional)
} as const

export const conninfoArgument = Argument.String("conninfo").pipe(
  Argument.withDescription("a postgresql:// URI, a keyword/value string (\"host=… dbname=…\") or a database name"),
  Argument.optional
)

export interface ConnectionFlagValues {
  readonly host: Option.Option<string>
  readonly port: Option.Option<number>
  readonly username: Option.Option<string>
  readonly dbname: Option.Option<string>
}

/** The PgConfigInput for a conninfo string and the explicit flags. */
export const toConfigInput = (
  conninfo: Option.Option<string> | string | undefined,
  flags?: ConnectionFlagValues,
  extra: PgConfigInput = {}
): PgConfigInput => {
  const info = typeof conninfo === "string" ? conninfo : conninfo === undefined ? undefined : Option.getOrUndefined(conninfo)
  const input: Record<string, unknown> = { fallbackApplicationName: "pgfx", ...extra }
  if (info !== undefined && info.length > 0) {
    if (isConnectionString(info)) input["connectionString"] = info
    else input["database"] = info
  }
  if (flags !== undefined) {
    if (Option.isSome(flags.host)) input["host"] = flags.host.value
    if (Option.isSome(flags.port)) input["port"] = flags.port.value
    if (Option.isSome(flags.username)) input["user"] = flags.username.value
    if (Option.isSome(flags.dbname)) input["database"] = flags.dbname.value
  }
  return input as PgConfigInput
}
