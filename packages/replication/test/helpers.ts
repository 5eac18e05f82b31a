/** Connection settings for the shared test servers, and a private-server helper for tests that need one. */
import { Effect } from "effect"
import { inject } from "vitest"
import type { PgConfigInput } from "@pgfx/connection/PgConfig"
import { startTestServer, type TestServer, type TestServerInfo } from "../../../testing/src/TestServer.ts"

/** The superuser over the server's private unix socket (trust). */
export const unixConfig = (version: 15 | 18 = 18, extra: PgConfigInput = {}): PgConfigInput => {
  const info = version === 18 ? inject("pg18") : inject("pg15")
  return configFor(info, extra)
}

export const configFor = (info: TestServerInfo, extra: PgConfigInput = {}): PgConfigInput => ({
  host: info.socketDir,
  port: info.port,
  user: info.superuser,
  database: info.database,
  ...extra
})

/** A private server for the Scope: started on acquire, stopped (and removed) on release. */
export const privateServer = (version: 15 | 18, extraConf?: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.promise(() => startTestServer({ version, ...(extraConf === undefined ? {} : { extraConf }) })),
    (server: TestServer) => Effect.promise(() => server.stop())
  )

let counter = 0
/** A slot name unique to this process and call. */
export const uniqueSlot = (prefix: string) => `${prefix}_${process.pid}_${Date.now() % 100000}_${counter++}`

/** Re-runs `check` every 50 ms until it returns true, for at most `ms`; returns the last result. */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, ms = 10_000): Effect.Effect<boolean, E, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    while (true) {
      if (yield* check) return true
      if (Date.now() > deadline) return false
      yield* Effect.sleep("50 millis")
    }
  })
