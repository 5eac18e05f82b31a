/** Connection settings for the shared PostgreSQL 18 of the vitest global setup, as client configs. */
import { Effect } from "effect"
import type * as SqlClient from "effect/sql/SqlClient"
import { inject } from "vitest"
import type { PgClientConfig } from "../src/PgClient.ts"

/** The superuser over the server's unix socket (trust). */
export const clientConfig = (extra: PgClientConfig = {}): PgClientConfig => {
  const info = inject("pg18")
  return { host: info.socketDir, port: info.port, user: info.superuser, database: info.database, ...extra }
}

let counter = 0

/** A fresh table name, unique per process and call. */
export const tableName = (prefix: string) => `${prefix}_${process.pid}_${++counter}`

/** Creates a table for the test's Scope (dropped at the end). */
export const freshTable = (sql: SqlClient.SqlClient, prefix: string, columns: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = tableName(prefix)
      yield* sql.unsafe(`create table ${name} (${columns})`)
      return name
    }),
    (name) => Effect.ignore(sql.unsafe(`drop table if exists ${name}`))
  )
