/**
 * Scoped transactions on one pinned connection: BEGIN/COMMIT/ROLLBACK, nested calls as SAVEPOINTs.
 *
 * Invariants:
 * - The connection a transaction runs on is recorded in the fiber's context (`CurrentTransactions`, keyed
 *   by the owner — a pool or a connection), so every query made through that owner inside the effect,
 *   including from forked fibers, runs on the pinned session; other owners are unaffected.
 * - The outcome is decided once: success → COMMIT (or RELEASE SAVEPOINT), failure or interruption →
 *   ROLLBACK (or ROLLBACK TO SAVEPOINT + RELEASE). The ending statement runs uninterruptibly, after any
 *   request of the transaction still on the wire (the wire is FIFO), so an interrupted query's effects are
 *   rolled back too.
 * - A transaction the server already aborted (an error the effect caught and ignored) is never reported
 *   as committed: COMMIT answers "ROLLBACK" there, and that becomes a PgServerError 25P02.
 * - Nested transactions must be sequential within one transaction (savepoints form a stack on the
 *   session); concurrent plain queries inside one transaction are fine (they pipeline on the session).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import type { ConnectionApi } from "./Connection.ts"
import { type PgError, PgServerError, serverError } from "./PgError.ts"

export type IsolationLevel = "read uncommitted" | "read committed" | "repeatable read" | "serializable"

export interface TransactionOptions {
  readonly isolationLevel?: IsolationLevel | undefined
  readonly readOnly?: boolean | undefined
  /** Only meaningful for SERIALIZABLE READ ONLY transactions (they then never fail with 40001). */
  readonly deferrable?: boolean | undefined
}

/** A transaction in progress on a pinned connection. */
export interface ActiveTransaction {
  readonly connection: ConnectionApi
  /** Savepoints created so far (names are unique within the transaction). */
  savepoints: number
}

/** The transactions the current fiber runs inside, by owner (a pool, or a connection used directly). */
export const CurrentTransactions = Context.Reference<ReadonlyMap<object, ActiveTransaction>>(
  "@pgfx/connection/Transaction/CurrentTransactions",
  { defaultValue: () => new Map() }
)

const isolationSql: Record<IsolationLevel, string> = {
  "read uncommitted": "READ UNCOMMITTED",
  "read committed": "READ COMMITTED",
  "repeatable read": "REPEATABLE READ",
  "serializable": "SERIALIZABLE"
}

/** The BEGIN statement for these options. Unknown isolation levels (from untyped callers) are rejected by the server. */
export const beginStatement = (options?: TransactionOptions): string => {
  const modes: Array<string> = []
  if (options?.isolationLevel !== undefined) {
    modes.push(`ISOLATION LEVEL ${isolationSql[options.isolationLevel] ?? "<invalid>"}`)
  }
  if (options?.readOnly !== undefined) modes.push(options.readOnly ? "READ ONLY" : "READ WRITE")
  if (options?.deferrable !== undefined) modes.push(options.deferrable ? "DEFERRABLE" : "NOT DEFERRABLE")
  return modes.length === 0 ? "BEGIN" : `BEGIN ${modes.join(", ")}`
}

/** Serialization failures (40001) and deadlocks (40P01) — a new attempt of the whole transaction may succeed. */
export const isRetryable = (error: unknown): error is PgServerError =>
  error instanceof PgServerError && (error.code === "40001" || error.code === "40P01")

/**
 * Retries a whole transaction (apply it OUTSIDE `withTransaction`) while it fails with a serialization
 * failure or a deadlock, as the schedule allows. Other errors fail at once.
 */
export const retryTransaction = <O, R2>(schedule: Schedule.Schedule<O, unknown, never, R2>) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | R2> =>
  Effect.retry(self, { schedule: schedule as Schedule.Schedule<O, E, never, R2>, while: isRetryable }) as Effect.Effect<
    A,
    E,
    R | R2
  >

const abortedAtCommit = () =>
  serverError({
    severity: "ERROR",
    code: "25P02",
    message: "the transaction was rolled back at COMMIT: a statement in it failed and the failure was not propagated"
  })

const commit = (conn: ConnectionApi): Effect.Effect<void, PgError> =>
  Effect.flatMap(conn.simple("COMMIT"), (results) =>
    results[0]?.command === "ROLLBACK" ? Effect.fail(abortedAtCommit()) : Effect.void)

/** Ends the transaction after a failure. Its own failure is ignored: the session is then broken or not in a transaction, and the owner checks that before reusing it. */
const rollback = (conn: ConnectionApi, sql: string): Effect.Effect<void> => Effect.ignore(conn.simple(sql))

/** BEGIN on `conn`, the effect with the transaction recorded for `owner`, then COMMIT or ROLLBACK. */
export const runTopLevel = <A, E, R>(
  owner: object,
  conn: ConnectionApi,
  effect: Effect.Effect<A, E, R>,
  options: TransactionOptions | undefined
): Effect.Effect<A, E | PgError, R> =>
  Effect.flatMap(Effect.service(CurrentTransactions), (current) =>
    Effect.uninterruptibleMask((restore) => {
      const transactions = new Map(current)
      transactions.set(owner, { connection: conn, savepoints: 0 })
      return Effect.flatMap(
        Effect.onInterrupt(restore(conn.simple(beginStatement(options))), () => rollback(conn, "ROLLBACK")),
        () =>
          Effect.flatMap(
            Effect.exit(restore(Effect.provideService(effect, CurrentTransactions, transactions))),
            (exit): Effect.Effect<A, E | PgError> =>
              exit._tag === "Success"
                ? Effect.as(commit(conn), exit.value)
                : Effect.flatMap(rollback(conn, "ROLLBACK"), () => exit)
          )
      )
    }))

/** A nested transaction: SAVEPOINT, then RELEASE on success or ROLLBACK TO (and RELEASE) on failure. */
export const runNested = <A, E, R>(
  active: ActiveTransaction,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | PgError, R> =>
  Effect.uninterruptibleMask((restore) => {
    const conn = active.connection
    const name = `pgfx_savepoint_${++active.savepoints}`
    const undo = `ROLLBACK TO SAVEPOINT ${name}; RELEASE SAVEPOINT ${name}`
    return Effect.flatMap(
      Effect.onInterrupt(restore(conn.simple(`SAVEPOINT ${name}`)), () => rollback(conn, undo)),
      () =>
        Effect.flatMap(Effect.exit(restore(effect)), (exit): Effect.Effect<A, E | PgError> =>
          exit._tag === "Success"
            ? Effect.as(conn.simple(`RELEASE SAVEPOINT ${name}`), exit.value)
            : Effect.flatMap(rollback(conn, undo), () => exit))
    )
  })

/**
 * Runs `effect` in a transaction of `owner`: nested (a savepoint) when the fiber is already inside one of
 * `owner`'s transactions, else on a connection obtained with `pin` (held for the whole transaction).
 */
export const withTransaction = <A, E, R, E2, R2>(
  owner: object,
  pin: <B, EB, RB>(use: (conn: ConnectionApi) => Effect.Effect<B, EB, RB>) => Effect.Effect<B, EB | E2, RB | R2>,
  effect: Effect.Effect<A, E, R>,
  options?: TransactionOptions
): Effect.Effect<A, E | E2 | PgError, R | R2> =>
  Effect.flatMap(Effect.service(CurrentTransactions), (current) => {
    const active = current.get(owner)
    if (active !== undefined) return runNested(active, effect)
    return pin((conn) => runTopLevel(owner, conn, effect, options))
  })

/** The connection of `owner`'s transaction the current fiber runs inside, if any. */
export const currentConnection = (owner: object): Effect.Effect<ConnectionApi | undefined> =>
  Effect.map(Effect.service(CurrentTransactions), (current) => current.get(owner)?.connection)

/**
 * A transaction on a single connection (no pool): nested calls on the same connection become savepoints.
 * Queries inside must use `conn` itself; they all run on it anyway.
 */
export const withConnectionTransaction = <A, E, R>(
  conn: ConnectionApi,
  effect: Effect.Effect<A, E, R>,
  options?: TransactionOptions
): Effect.Effect<A, E | PgError, R> =>
  withTransaction<A, E, R, never, never>(conn, (use) => use(conn), effect, options)
