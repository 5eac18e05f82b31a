/** Connection settings for the test servers started by the vitest global setup. */
import { inject } from "vitest"
import type { ConnectionApi } from "../src/Connection.ts"
import type { PgConfigInput } from "../src/PgConfig.ts"

export const pg18 = () => inject("pg18")
export const pg15 = () => inject("pg15")

/** The superuser over the server's private unix socket (trust). */
export const unixConfig = (version: 15 | 18 = 18, extra: PgConfigInput = {}): PgConfigInput => {
  const info = version === 18 ? pg18() : pg15()
  return {
    host: info.socketDir,
    port: info.port,
    user: info.superuser,
    database: info.database,
    ...extra
  }
}

/** A user over TCP loopback, TLS off unless asked. */
export const tcpConfig = (
  user: "scram" | "md5" | "password",
  extra: PgConfigInput = {},
  version: 15 | 18 = 18
): PgConfigInput => {
  const info = version === 18 ? pg18() : pg15()
  const u = info.users[user]
  return {
    host: "127.0.0.1",
    port: info.port,
    user: u.user,
    password: u.password,
    database: info.database,
    sslMode: "disable",
    ...extra
  }
}

/**
 * Makes the connection's int4 binary codec refuse one value — the real server only sends valid data, so this
 * stands in for a decoding failure. Returns the function that puts the codec back.
 */
export const refuseInt4 = (conn: ConnectionApi, refused: number): (() => void) => {
  const int4 = conn.registry.get(23)
  conn.registry.register({
    ...int4,
    decodeBinary: (buf: Uint8Array, start: number, end: number) => {
      const v = int4.decodeBinary!(buf, start, end)
      if (v === refused) throw new Error(`value ${refused} is refused`)
      return v
    }
  })
  return () => void conn.registry.register(int4)
}
