/** Shared helpers of the logical replication tests (real servers only). */
import { Effect } from "effect"
import { afterAll, inject } from "vitest"
import * as Connection from "@pgfx/connection/Connection"
import type { PgConfigInput } from "@pgfx/connection/PgConfig"
import { startTestServer, type TestServerInfo } from "../../../testing/src/TestServer.ts"
import * as Lsn from "../src/Lsn.ts"

/**
 * Each test file using these helpers gets a PostgreSQL 18 of its own: creating a logical slot waits until
 * every transaction running in the cluster has ended, which under the other test files' writes on the
 * shared server can take several of its 15-second running-transaction snapshots.
 */
const own = await startTestServer({ version: 18 })
afterAll(() => own.stop())

export const serverInfo = (version: 15 | 18 = 18): TestServerInfo => (version === 18 ? own.info : inject("pg15"))

/** The superuser over the unix socket of `info` (default: the shared server of `version`). */
export const configOf = (info: TestServerInfo, database?: string): PgConfigInput => ({
  host: info.socketDir,
  port: info.port,
  user: info.superuser,
  database: database ?? info.database
})

export const config = (version: 15 | 18 = 18, database?: string): PgConfigInput => configOf(serverInfo(version), database)

let counter = 0
/** A name unique to this process and call. */
export const unique = (prefix: string): string =>
  `${prefix}_${process.pid}_${Date.now().toString(36)}_${(counter++).toString(36)}`

/** Runs SQL (simple protocol) on a fresh connection. */
export const sql = (cfg: PgConfigInput, text: string) =>
  Effect.scoped(Effect.flatMap(Connection.make(cfg), (c) => c.simple(text)))

/** confirmed_flush_lsn of a slot (0/0 when unset). */
export const confirmedFlush = (conn: Connection.ConnectionApi, slot: string) =>
  Effect.map(
    conn.query<{ lsn: string | null }>(
      "select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1",
      [slot]
    ),
    (r) => {
      const text = r.rows[0]?.lsn
      return text === null || text === undefined ? Lsn.zero : Lsn.fromStringUnsafe(text)
    }
  )

/** pg_current_wal_lsn() */
export const currentWal = (conn: Connection.ConnectionApi) =>
  Effect.map(conn.query<{ lsn: string }>("select pg_current_wal_lsn()::text as lsn"), (r) => Lsn.fromStringUnsafe(r.rows[0]!.lsn))

/** Drops a slot if it exists (waiting for its walsender to go away first). */
export const dropSlot = (conn: Connection.ConnectionApi, slot: string) =>
  conn.query(
    `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null`,
    [slot]
  ).pipe(
    Effect.andThen(Effect.sleep("100 millis")),
    Effect.andThen(conn.query(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1`, [slot])),
    Effect.retry({ times: 20 }),
    Effect.ignore
  )

/** Polls `check` every 100 ms until it returns true, at most `timeoutMs`. */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMs = 15_000): Effect.Effect<boolean, E, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (yield* check) return true
      yield* Effect.sleep("100 millis")
    }
    return yield* check
  })
