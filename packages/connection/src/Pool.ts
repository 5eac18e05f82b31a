/**
 * A pool of connections on Effect's `Pool`, with the query surface of a connection, pinned borrowing
 * (`withConnection`) and scoped transactions (`withTransaction`, nested as savepoints).
 *
 * Policy (who gets which connection):
 * - Plain queries (`query`, `simple`, `pipeline`) SHARE connections: Effect's Pool runs with per-item
 *   concurrency `borrowersPerConnection` (default 4, at most the connection's pipeline depth), so up to that
 *   many borrowers pipeline on one session. The Pool hands out the most recently released connection that
 *   still has a free slot, and grows (up to `max`) only once usage exceeds `targetUtilization` of the open
 *   capacity: with the default 1 it fills a connection's pipeline before opening another, so the hot set
 *   stays small and idle connections time out. `borrowersPerConnection: 1` gives one borrower per session.
 * - `withConnection`, `withTransaction` and `stream` PIN a connection: it is reserved (no new borrower
 *   joins it) and the pin waits until the plain queries already on it finished, so nothing else ever runs
 *   on a pinned session (a stream's backpressure pauses the whole socket, so streams pin too).
 * - Inside `withConnection`/`withTransaction`, queries made through the pool (also from forked fibers) run
 *   on the pinned connection: the pin is recorded in the fiber's context per pool.
 *
 * Invariants:
 * - Never more than `max` sessions: every session is an item of Effect's Pool.
 * - A session is never handed out or kept when it is unusable: closed (`!isOpen()`: socket error, protocol
 *   violation, backend terminated), a CancelRequest possibly still in flight for it, older than
 *   `maxLifetime`, or left inside a transaction by a plain query. Such a session is invalidated: it closes
 *   once its current borrowers are done, and the Pool opens replacements as needed (up to `min` eagerly).
 * - A session idle for `pingAfterIdle` or more is pinged (an empty query) before it is handed out; a
 *   failed ping discards it and the borrower gets another one. Borrowing fails with
 *   TimeoutError("Acquire") after `acquireTimeout`, or with the connect error when no session can be opened.
 * - A pinned session is returned clean: ROLLBACK when its borrower failed or left a transaction open, and
 *   with `resetSession` the DISCARD ALL equivalent minus DEALLOCATE ALL (the connection's statement cache
 *   stays valid): CLOSE ALL, SET SESSION AUTHORIZATION DEFAULT, RESET ALL, UNLISTEN *, advisory unlock all,
 *   DISCARD PLANS/TEMP/SEQUENCES. A session whose cleanup fails is discarded.
 * - Borrowing from a closed pool fails with ConnectionError("Unusable").
 * - Idle sessions beyond `min` close after `idleTimeout`; any session closes after `maxLifetime` (minus up
 *   to 10% jitter, so sessions opened together do not all reconnect at once), at its next idle moment.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Pool from "effect/Pool"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Config from "effect/Config"
import type * as Fiber from "effect/Fiber"
import * as Connection from "./Connection.ts"
import type { ConnectionApi, ConnectionInput, PipelineOutcome, PipelineStatement, QueryOptions, StreamOptions } from "./Connection.ts"
import { type PgConfig, type PgConfigError, resolve as resolveConfig } from "./PgConfig.ts"
import { ConnectionError, type PgError, TimeoutError } from "./PgError.ts"
import type { QueryResult, Row } from "./Query.ts"
import * as Transaction from "./Transaction.ts"

export interface PoolOptions {
  /** Sessions kept open even when idle (opened eagerly). Default 0. */
  readonly min?: number | undefined
  /** Upper bound on open sessions. Default 10. */
  readonly max?: number | undefined
  /** How long a borrower waits for a session before failing with TimeoutError("Acquire"). Default 30 s. */
  readonly acquireTimeout?: Duration.Input | undefined
  /** Idle sessions beyond `min` are closed after this long. Default 10 minutes. */
  readonly idleTimeout?: Duration.Input | undefined
  /** Sessions are closed (and replaced) once this old. Default 1 hour. */
  readonly maxLifetime?: Duration.Input | undefined
  /** Plain-query borrowers sharing one session (pipelined). Default min(4, pipelineDepth). */
  readonly borrowersPerConnection?: number | undefined
  /** Fraction of the open capacity in use beyond which the pool opens another session (0.1–1). Default 1. */
  readonly targetUtilization?: number | undefined
  /** A session idle at least this long is pinged before it is handed out. Default 1 s. */
  readonly pingAfterIdle?: Duration.Input | undefined
  /** Reset session state (DISCARD ALL minus DEALLOCATE ALL) when a pinned session is returned. Default false. */
  readonly resetSession?: boolean | undefined
}

export interface PoolStats {
  /** Open sessions (including ones in use). */
  readonly open: number
  readonly idle: number
  readonly used: number
  /** Borrowers waiting for a session. */
  readonly pending: number
  readonly min: number
  readonly max: number
  /** Sessions opened so far, and discarded so far (unusable, expired, idle). */
  readonly opened: number
  readonly retired: number
}

export interface PgPoolApi {
  readonly config: PgConfig
  /** A query on a shared session (or on the pinned one inside withConnection/withTransaction). */
  readonly query: <A = Row>(
    sql: string,
    params?: ReadonlyArray<unknown>,
    options?: QueryOptions
  ) => Effect.Effect<QueryResult<A>, PgError>
  readonly simple: (sql: string, options?: QueryOptions) => Effect.Effect<ReadonlyArray<QueryResult>, PgError>
  /** Rows with backpressure; the stream pins a session until it ends. */
  readonly stream: <A = Row>(sql: string, params?: ReadonlyArray<unknown>, options?: StreamOptions) => Stream.Stream<A, PgError>
  /** `Connection.forEach` on a shared session: a synchronous callback per row, as rows are decoded. */
  readonly forEach: <A = Row>(
    sql: string,
    f: (row: A) => void,
    params?: ReadonlyArray<unknown>,
    options?: QueryOptions
  ) => Effect.Effect<QueryResult<never>, PgError>
  readonly pipeline: (
    segments: ReadonlyArray<ReadonlyArray<PipelineStatement>>,
    options?: QueryOptions
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<PipelineOutcome>>, PgError>
  /** Pins one session for `f` (and for the pool's queries made inside it). */
  readonly withConnection: <A, E, R>(f: (conn: ConnectionApi) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | PgError, R>
  /** Runs `effect` in a transaction on a pinned session; nested calls are savepoints (see Transaction.ts). */
  readonly withTransaction: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    options?: Transaction.TransactionOptions
  ) => Effect.Effect<A, E | PgError, R>
  readonly stats: Effect.Effect<PoolStats>
  /** Low level: Effect's Pool of sessions. */
  readonly pool: Pool.Pool<PooledConnection, PgError>
}

export class PgPool extends Context.Service<PgPool, PgPoolApi>()("@pgfx/connection/PgPool") {}

/** A session of the pool and its borrowing state (mutated only in synchronous steps). */
export class PooledConnection {
  readonly connection: ConnectionApi
  readonly createdAt: number
  /** When this session is retired for age (maxLifetime minus jitter). */
  readonly expiresAt: number
  /** Borrowers counted on the session (shared ones, or the one pinning it). */
  borrowers = 0
  /** Set from the moment a pinning borrower took the session until it returned it. */
  pinned = false
  /** Last time the borrower count went to 0 (or the creation time). */
  lastReleased: number
  drainWaiters: Array<() => void> = []

  constructor(connection: ConnectionApi, createdAt: number, expiresAt: number) {
    this.connection = connection
    this.createdAt = createdAt
    this.expiresAt = expiresAt
    this.lastReleased = createdAt
  }
}

/** Pins per pool in the fiber's context (withConnection); transactions are in Transaction.CurrentTransactions. */
const PinnedConnections = Context.Reference<ReadonlyMap<object, ConnectionApi>>(
  "@pgfx/connection/Pool/PinnedConnections",
  { defaultValue: () => new Map() }
)

const RESET_SQL = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; " +
  "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES"

const isPgConfig = (u: unknown): u is PgConfig =>
  typeof u === "object" && u !== null && Array.isArray((u as PgConfig).hosts) && "sslMode" in (u as object)

const millis = (d: Duration.Input | undefined, fallback: number): number =>
  d === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(d))

/** Opens a pool in the current Scope; closing the Scope closes every session (after their borrowers). */
export const make = (
  input: ConnectionInput,
  options: PoolOptions = {}
): Effect.Effect<PgPoolApi, PgConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const config: PgConfig = isPgConfig(input)
      ? input
      : yield* resolveConfig(typeof input === "string" ? { connectionString: input } : input)
    const max = Math.max(1, options.max ?? 10)
    const min = Math.min(Math.max(0, options.min ?? 0), max)
    const perConnection = Math.max(1, Math.min(options.borrowersPerConnection ?? 4, config.pipelineDepth))
    const acquireTimeoutMs = millis(options.acquireTimeout, 30_000)
    const idleTimeoutMs = millis(options.idleTimeout, 10 * 60_000)
    const maxLifetimeMs = millis(options.maxLifetime, 60 * 60_000)
    const pingAfterIdleMs = millis(options.pingAfterIdle, 1_000)
    const sweepEveryMs = Math.max(10, Math.min(1_000, Math.min(idleTimeoutMs, maxLifetimeMs) / 4))
    let opened = 0
    let retired = 0

    const open = Effect.map(
      Connection.make(config).pipe(
        Effect.catchTag("PgConfigError", (e) =>
          Effect.fail(new ConnectionError({ reason: "ConnectFailed", message: e.message })))
      ),
      (conn) => {
        opened++
        const now = Date.now()
        return new PooledConnection(conn, now, now + maxLifetimeMs * (1 - Math.random() * 0.1))
      }
    )

    const unusable = (m: PooledConnection): boolean =>
      !m.connection.isOpen() || m.connection.internal.cancelsInFlight() > 0 || Date.now() >= m.expiresAt

    const retire = (pool: Pool.Pool<PooledConnection, PgError>, m: PooledConnection): Effect.Effect<void> =>
      Effect.suspend(() => {
        for (const item of pool.state.items) {
          if (item.exit._tag === "Success" && item.exit.value === m && !pool.state.invalidated.has(item)) {
            retired++
            return Pool.invalidate(pool, m)
          }
        }
        return Effect.void
      })

    // Idle timeout and max lifetime (Effect's TTL strategies offer one or the other, not both).
    const strategy: Pool.Strategy<PooledConnection, PgError> = {
      onAcquire: () => Effect.void,
      reclaim: () => Effect.undefined,
      run: (pool) => {
        const sweep = Effect.suspend(() => {
          const now = Date.now()
          let active = 0
          for (const item of pool.state.items) {
            if (item.exit._tag === "Success" && !pool.state.invalidated.has(item)) active++
          }
          const stale: Array<PooledConnection> = []
          for (const item of pool.state.items) {
            if (item.exit._tag !== "Success" || pool.state.invalidated.has(item) || item.refCount > 0) continue
            const m = item.exit.value
            if (m.borrowers > 0) continue // in use through the fast path (see `shared`)
            if (!m.connection.isOpen() || now >= m.expiresAt) {
              stale.push(m)
              active--
            } else if (active > min && now - m.lastReleased >= idleTimeoutMs) {
              stale.push(m)
              active--
            }
          }
          return Effect.forEach(stale, (m) => retire(pool, m), { discard: true })
        })
        return Effect.forever(Effect.andThen(Effect.sleep(Duration.millis(sweepEveryMs)), sweep))
      }
    }

    const pool = yield* Pool.makeWithStrategy({
      acquire: open,
      min,
      max,
      concurrency: perConnection,
      targetUtilization: options.targetUtilization ?? 1,
      strategy
    })

    const uncount = (m: PooledConnection) => {
      m.borrowers--
      if (m.borrowers === 0) {
        m.lastReleased = Date.now()
        const ws = m.drainWaiters
        m.drainWaiters = []
        for (const w of ws) w()
      }
    }

    const drained = (m: PooledConnection): Effect.Effect<void> =>
      Effect.callback<void>((resume) => {
        if (m.borrowers === 0) return resume(Effect.void)
        const wake = () => resume(Effect.void)
        m.drainWaiters.push(wake)
        return Effect.sync(() => {
          const i = m.drainWaiters.indexOf(wake)
          if (i >= 0) m.drainWaiters.splice(i, 1)
        })
      })

    const ping = (m: PooledConnection): Effect.Effect<boolean> =>
      Effect.match(m.connection.simple(""), { onFailure: () => false, onSuccess: () => true })

    type Attempt = PooledConnection | "retry" | "busy"

    const closedError = () => new ConnectionError({ reason: "Unusable", message: "the pool is closed" })

    // Effect's Pool interrupts borrowers once it shuts down; a borrower of a closed pool gets an error instead.
    const getSession: Effect.Effect<PooledConnection, PgError, Scope.Scope> = Effect.suspend(() =>
      pool.state.isShuttingDown
        ? Effect.fail(closedError())
        : Effect.catchCause(Pool.get(pool), (cause) =>
          pool.state.isShuttingDown && Cause.hasInterruptsOnly(cause) ? Effect.fail(closedError()) : Effect.failCause(cause))
    )

    /**
     * One try at a session, leased into `scope` (a child of the borrower's lease scope, closed here when
     * the try fails). The borrower is counted on the session in the same step as the last check, and
     * uncounted by `scope`'s finalizer, so an interruption at any point leaves no count behind.
     */
    const attempt = (scope: Scope.Closeable, pin: boolean): Effect.Effect<Attempt, PgError> =>
      Effect.gen(function*() {
        const m = yield* Scope.provide(getSession, scope)
        const mine = { pinned: false, counted: false }
        yield* Scope.addFinalizer(
          scope,
          Effect.sync(() => {
            if (mine.pinned) m.pinned = false
            if (mine.counted) uncount(m)
            mine.pinned = mine.counted = false
          })
        )
        // A pinning borrower owns the session from here; a shared one leaves a pinned session alone.
        if (m.pinned) return "busy"
        if (unusable(m)) {
          yield* retire(pool, m)
          return "retry"
        }
        if (pin) {
          m.pinned = mine.pinned = true
          yield* Scope.provide(Pool.reserve(pool, m), scope)
          // Reserving raises the Pool's usage (the session counts as full) but does not resize it: wake one
          // waiter so the Pool re-evaluates its target size and opens a session for the waiters if it may.
          pool.state.waiters.values().next().value?.()
          // Shared borrowers already on the session finish first; no new one joins a reserved session.
          yield* drained(m)
          if (unusable(m)) {
            yield* retire(pool, m)
            return "retry"
          }
        }
        mine.counted = true
        m.borrowers++
        if (m.borrowers === 1 && Date.now() - m.lastReleased >= pingAfterIdleMs) {
          const ok = yield* ping(m)
          m.lastReleased = Date.now()
          if (!ok) {
            yield* retire(pool, m)
            return "retry"
          }
        }
        return m
      })

    /** Borrows a session into `lease` (the borrower's scope), retrying past unusable sessions, within the acquire timeout. */
    const borrow = (lease: Scope.Scope, pin: boolean): Effect.Effect<PooledConnection, PgError> => {
      // The try is uninterruptible except while it waits (restore), so a lease is either handed over or released.
      const once = Effect.flatMap(Scope.fork(lease), (scope) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.onExit(restore(attempt(scope, pin)), (exit) =>
            exit._tag === "Success" && typeof exit.value !== "string" ? Effect.void : Scope.close(scope, Exit.void))
        ))
      const loop = (retries: number): Effect.Effect<PooledConnection, PgError> =>
        Effect.flatMap(once, (r) => {
          if (typeof r !== "string") return Effect.succeed(r)
          if (r === "busy") return Effect.andThen(Effect.yieldNow, loop(retries))
          if (retries <= 0) {
            return Effect.fail(
              new ConnectionError({ reason: "Unusable", message: "no usable session: every one tried was closed or expired" })
            )
          }
          return loop(retries - 1)
        })
      return Effect.timeoutOrElse(loop(max + 1), {
        duration: Duration.millis(acquireTimeoutMs),
        orElse: () =>
          Effect.fail(
            new TimeoutError({
              reason: "Acquire",
              message: `no session available within ${acquireTimeoutMs} ms (pool max ${max})`,
              timeoutMillis: acquireTimeoutMs
            })
          )
      })
    }

    /** Returns a pinned session clean, or reports that it must be discarded. */
    const cleanPinned = (m: PooledConnection, exit: Exit.Exit<unknown, unknown>): Effect.Effect<boolean> => {
      const conn = m.connection
      if (unusable(m)) return Effect.succeed(false)
      const statements: Array<string> = []
      // After a failure an abandoned request may still be on the wire (the wire is FIFO, so this runs after it).
      if (exit._tag === "Failure" || conn.transactionStatus() !== "I") statements.push("ROLLBACK")
      if (options.resetSession) statements.push(RESET_SQL)
      if (statements.length === 0) return Effect.succeed(true)
      return conn.simple(statements.join("; ")).pipe(
        Effect.timeout(Duration.seconds(5)),
        Effect.match({ onFailure: () => false, onSuccess: () => conn.transactionStatus() === "I" && !unusable(m) })
      )
    }

    /** A borrower that failed with a connection or protocol error leaves a session nobody should trust. */
    const brokeTheSession = (exit: Exit.Exit<unknown, unknown>): boolean => {
      if (exit._tag === "Success") return false
      const e = Cause.findErrorOption(exit.cause)
      return e._tag === "Some" && typeof e.value === "object" && e.value !== null &&
        ((e.value as { _tag?: unknown })._tag === "ConnectionError" || (e.value as { _tag?: unknown })._tag === "ProtocolError")
    }

    /** Borrows for the current Scope: released (and checked) when the Scope closes. */
    const lease = (pin: boolean): Effect.Effect<ConnectionApi, PgError, Scope.Scope> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const scope = yield* Effect.scope
          const leaseScope = yield* Scope.fork(scope)
          const m = yield* Effect.onError(restore(borrow(leaseScope, pin)), () => Scope.close(leaseScope, Exit.void))
          yield* Scope.addFinalizerExit(scope, (exit) =>
            Effect.gen(function*() {
              const keep = !brokeTheSession(exit) && (pin ? yield* cleanPinned(m, exit) : !unusable(m))
              // A plain query must not leave a transaction open (the next borrower would run inside it).
              const leftInTransaction = !pin && m.borrowers === 1 && m.connection.transactionStatus() !== "I"
              if (!keep || leftInTransaction) yield* retire(pool, m)
              yield* Scope.close(leaseScope, exit)
            }))
          return m.connection
        })
      )

    const owner: object = {}

    /** The connection this fiber is pinned to on this pool (its transaction's, or withConnection's), if any. */
    const pinnedOf = (fiber: Fiber.Fiber<unknown, unknown>): ConnectionApi | undefined =>
      fiber.getRef(Transaction.CurrentTransactions).get(owner)?.connection ?? fiber.getRef(PinnedConnections).get(owner)

    /**
     * The fast path of a plain query: an open, unpinned, recently used session with room (fewest borrowers
     * first) is used directly — no lease scope, no Pool bookkeeping — counted in `borrowers` like any
     * borrower, so pinning, draining and the idle sweep see it. Anything else (no room, a session that
     * needs its health check, none open yet) takes the full lease path, which may open a session.
     */
    const readySession = (): PooledConnection | undefined => {
      const now = Date.now()
      let best: PooledConnection | undefined
      for (const item of pool.state.items) {
        if (item.exit._tag !== "Success" || pool.state.invalidated.has(item)) continue
        const m = item.exit.value
        if (m.pinned || m.borrowers >= perConnection || unusable(m)) continue
        if (m.borrowers === 0 && now - m.lastReleased >= pingAfterIdleMs) continue
        if (best === undefined || m.borrowers < best.borrowers) best = m
      }
      return best
    }

    /** Runs `f` on `m` as one more borrower; call it from the running fiber (it counts at once). */
    const onSession = <A>(m: PooledConnection, f: (conn: ConnectionApi) => Effect.Effect<A, PgError>) => {
      m.borrowers++
      return Effect.onExit(f(m.connection), (exit) => {
        // An expired session is retired by its last borrower (retiring closes it under the others).
        const last = m.borrowers === 1
        const broken = brokeTheSession(exit) ||
          (last && (m.connection.transactionStatus() !== "I" || unusable(m)))
        uncount(m)
        return broken ? retire(pool, m) : Effect.void
      })
    }

    const shared = <A>(f: (conn: ConnectionApi) => Effect.Effect<A, PgError>): Effect.Effect<A, PgError> =>
      Effect.withFiber((fiber) => {
        const conn = pinnedOf(fiber)
        if (conn !== undefined) return f(conn)
        if (pool.state.isShuttingDown) return Effect.fail(closedError())
        const m = readySession()
        return m !== undefined ? onSession(m, f) : Effect.scoped(Effect.flatMap(lease(false), f))
      })

    const withConnection = <A, E, R>(f: (conn: ConnectionApi) => Effect.Effect<A, E, R>): Effect.Effect<A, E | PgError, R> =>
      Effect.withFiber((fiber) => {
        const conn = pinnedOf(fiber)
        if (conn !== undefined) return f(conn)
        return Effect.scoped(
          Effect.flatMap(lease(true), (c) =>
            Effect.flatMap(Effect.service(PinnedConnections), (pins) => {
              const next = new Map(pins)
              next.set(owner, c)
              return Effect.provideService(f(c), PinnedConnections, next)
            }))
        )
      })

    const api: PgPoolApi = {
      config,
      pool,
      query: <A = Row>(sql: string, params?: ReadonlyArray<unknown>, options?: QueryOptions) =>
        shared((c) => c.query<A>(sql, params, options)),
      simple: (sql, options) => shared((c) => c.simple(sql, options)),
      forEach: <A = Row>(sql: string, f: (row: A) => void, params?: ReadonlyArray<unknown>, options?: QueryOptions) =>
        shared((c) => c.forEach<A>(sql, f, params, options)),
      pipeline: (segments, options) => shared((c) => c.pipeline(segments, options)),
      stream: <A = Row>(sql: string, params?: ReadonlyArray<unknown>, options?: StreamOptions) =>
        Stream.unwrap(
          Effect.withFiber((fiber) => {
            const conn = pinnedOf(fiber)
            return conn !== undefined
              ? Effect.succeed(conn.stream<A>(sql, params, options))
              : Effect.map(lease(true), (c) => c.stream<A>(sql, params, options))
          })
        ),
      withConnection,
      withTransaction: <A, E, R>(effect: Effect.Effect<A, E, R>, options?: Transaction.TransactionOptions) =>
        Transaction.withTransaction<A, E, R, PgError, never>(owner, withConnection, effect, options),
      stats: Effect.map(Pool.stats(pool), (s) => ({
        open: s.idle + s.used,
        idle: s.idle,
        used: s.used,
        pending: s.pending,
        min,
        max,
        opened,
        retired
      }))
    }
    return api
  })

export const layer = (input: ConnectionInput, options?: PoolOptions): Layer.Layer<PgPool, PgConfigError> =>
  Layer.effect(PgPool, make(input, options))

export const layerConfig = (
  config: Config.Config<PgConfig>,
  options?: PoolOptions
): Layer.Layer<PgPool, PgConfigError | Config.ConfigError> =>
  Layer.effect(PgPool, Effect.flatMap(config, (c) => make(c, options)))

/** Runs `effect` in a transaction of the PgPool service. */
export const withTransaction = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options?: Transaction.TransactionOptions
): Effect.Effect<A, E | PgError, R | PgPool> =>
  Effect.flatMap(Effect.service(PgPool), (pool) => pool.withTransaction(effect, options))

export const { isRetryable, retryTransaction } = Transaction
