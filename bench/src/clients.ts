/**
 * How each contender connects: one place, so every benchmark uses the same settings per client.
 *
 * Invariants:
 * - Every Node client and pgbench connects over TCP loopback (127.0.0.1, no TLS) as the trusted
 *   superuser; the unix socket is used only by contenders whose label says so.
 * - Client libraries are imported lazily inside the worker, so a worker loads only its own client
 *   (its RSS and JIT state are its own).
 */
import type { ConnectionApi } from "@pgfx/connection/Connection"
import type { BenchContext } from "./harness.ts"

export type Via = "tcp" | "unix"

export const pgfxInput = (ctx: BenchContext, via: Via) =>
  via === "unix"
    ? { host: ctx.socketDir, port: ctx.port, user: ctx.user, database: ctx.database }
    : { host: "127.0.0.1", port: ctx.port, user: ctx.user, database: ctx.database, sslMode: "disable" as const }

/**
 * Runs `f` with a pgfx connection (over `via`), closed however `f` ends; `exec` runs a statement and
 * resolves with the first column of its first row (setup and checks in promise-style contenders).
 */
export const withPgfx = async <A>(
  ctx: BenchContext,
  via: Via,
  f: (conn: ConnectionApi, exec: (sql: string) => Promise<unknown>) => Promise<A>
): Promise<A> => {
  const Effect = await import("effect/Effect")
  const Exit = await import("effect/Exit")
  const Scope = await import("effect/Scope")
  const Connection = await import("@pgfx/connection/Connection")
  const scope = Effect.runSync(Scope.make())
  try {
    const conn = await Effect.runPromise(Scope.provide(Connection.make(pgfxInput(ctx, via)), scope))
    const exec = (sql: string) =>
      Effect.runPromise(Effect.map(conn.query<ReadonlyArray<unknown>>(sql, undefined, { rowMode: "array" }), (r) => r.rows[0]?.[0]))
    return await f(conn, exec)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** node-postgres `Client`, connected. */
export const pgClient = async (ctx: BenchContext, options: { readonly pipeline?: boolean } = {}) => {
  const { default: pg } = await import("pg")
  const client = new pg.Client({ host: "127.0.0.1", port: ctx.port, user: ctx.user, database: ctx.database, ...options })
  await client.connect()
  return client
}

/** postgres.js with one connection. */
export const postgresJs = async (ctx: BenchContext) => {
  const { default: postgres } = await import("postgres")
  return postgres({
    host: "127.0.0.1",
    port: ctx.port,
    user: ctx.user,
    database: ctx.database,
    ssl: false,
    max: 1,
    onnotice: () => {}
  })
}

/** The `@effect/sql-pg` client layer over one pooled connection. */
export const effectSqlLayer = async (ctx: BenchContext, options: { readonly multiplexConcurrency?: number } = {}) => {
  const { PgClient } = await import("@effect/sql-pg")
  return PgClient.layer({
    host: "127.0.0.1",
    port: ctx.port,
    username: ctx.user,
    database: ctx.database,
    ssl: false,
    maxConnections: 1,
    minConnections: 1,
    ...(options.multiplexConcurrency === undefined
      ? {}
      : { multiplex: true, multiplexConcurrency: options.multiplexConcurrency })
  })
}

/** Runs `total` calls of `f` with at most `width` in flight (each lane awaits its previous call). */
export const lanes = async (width: number, total: number, f: (i: number) => Promise<unknown>): Promise<void> => {
  let next = 0
  const lane = async () => {
    while (next < total) {
      const i = next++
      await f(i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, total) }, lane))
}
