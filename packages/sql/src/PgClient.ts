/**
 * `effect/sql`'s `SqlClient` on pgfx: the client is built with `SqlClient.make` over a pgfx pool (or one
 * connection), so every `effect/sql` feature — tagged-template statements, helpers, `withTransaction`,
 * `SqlSchema`, `SqlResolver`, `Migrator`, `Reactivity` — works unchanged, and pgfx's own capabilities
 * (COPY, LISTEN/NOTIFY, explicit pipelines, replication) are reachable from the same service.
 *
 * Invariants:
 * - A statement outside a transaction runs through the pool's `query` (a shared, pipelined session, or
 *   the session pinned by an enclosing pgfx `withConnection`/`withTransaction`); no Scope is opened per
 *   statement (the client lends connections with a `borrower`). Prepared statements are the session's
 *   own cache (`prepare: false` runs them unnamed).
 * - `withTransaction` pins one session for the whole transaction (BEGIN/COMMIT, nested levels as
 *   SAVEPOINT effect_sql_N with RELEASE/ROLLBACK TO), and every statement of the client made inside it —
 *   also from forked fibers — runs on that session. A COMMIT the server answers with ROLLBACK (the
 *   transaction had failed) fails with a SqlError, never reports success.
 * - On a single connection (`fromConnection`, `makeClient`) a transaction excludes every other
 *   statement of the client until it ends (a gate: statements share it, a transaction takes it whole).
 * - Streams keep the connection's backpressure: while the consumer is slow, the socket is paused; a
 *   stream pins its session until it ends.
 * - Every failure is a `SqlError` whose reason is chosen from the SQLSTATE (Errors.ts) and whose
 *   `reason.cause` is the pgfx error with all of its fields.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as Config from "effect/Config"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Client from "effect/sql/SqlClient"
import type * as SqlConnection from "effect/sql/SqlConnection"
import { SqlError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Connection from "@pgfx/connection/Connection"
import type { ConnectionApi, Notification, PipelineOutcome, PipelineStatement, QueryOptions, StreamOptions } from "@pgfx/connection/Connection"
import * as Copy from "@pgfx/connection/Copy"
import * as Notifications from "@pgfx/connection/Notifications"
import type { PgConfig, PgConfigInput } from "@pgfx/connection/PgConfig"
import { resolve as resolveConfig } from "@pgfx/connection/PgConfig"
import * as Pool from "@pgfx/connection/Pool"
import type { PgError } from "@pgfx/connection/PgError"
import type { QueryResult, Row } from "@pgfx/connection/Query"
import { json as jsonFragment, array as arrayFragment, makeCompiler } from "./Compiler.ts"
import { toSqlError } from "./Errors.ts"

export const TypeId: TypeId = "~@pgfx/sql/PgClient"
export type TypeId = "~@pgfx/sql/PgClient"

/** Options of the client itself (as in `@effect/sql-pg`), whatever it runs on. */
export interface PgClientOptions {
  /** Renames result columns, e.g. `String.snakeToCamel`. */
  readonly transformResultNames?: ((str: string) => string) | undefined
  /** Renames identifiers in statements (`sql("col")`, insert/update helpers), e.g. `String.camelToSnake`. */
  readonly transformQueryNames?: ((str: string) => string) | undefined
  /** Also rename keys inside JSON values (rows and `sql.json` fragments). Default true. */
  readonly transformJson?: boolean | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  /** false: every statement runs unnamed (for poolers that cannot keep named statements). Default true. */
  readonly prepare?: boolean | undefined
}

/**
 * Connection, pool and client settings. The names of `@effect/sql-pg`'s `PgPoolConfig` are accepted with
 * the same meaning (see the README for the few differences); every pgfx connection option
 * (`PgConfigInput`: libpq keywords, TLS, target_session_attrs, …) is accepted as well, and `config` takes
 * an already resolved `PgConfig` (e.g. from `PgConfig.config`: DATABASE_URL and the PG* variables).
 */
export interface PgClientConfig extends PgClientOptions, Omit<PgConfigInput, "idleTimeout" | "connectTimeout" | "password"> {
  /** A resolved configuration; the connection fields below are then ignored. */
  readonly config?: PgConfig | undefined
  /** A postgres:// URI or libpq keyword/value string (sql-pg's `url`). */
  readonly url?: string | Redacted.Redacted<string> | Redacted.Redacted | undefined
  /** sql-pg's name for `user`. */
  readonly username?: string | undefined
  readonly password?: string | Redacted.Redacted<string> | Redacted.Redacted | undefined
  /** A unix-socket directory (sql-pg's `path`). */
  readonly path?: string | undefined
  /** true: sslmode=require; false: sslmode=disable. */
  readonly ssl?: boolean | undefined
  /** A Duration, or milliseconds (as in sql-pg; pgfx's connection option takes seconds). */
  readonly connectTimeout?: Duration.Input | undefined
  /** Idle time before TCP keepalive probes start. */
  readonly keepAlive?: Duration.Input | undefined
  /** Startup parameters (sql-pg's name for `runtimeParameters`). */
  readonly startupParameters?: Readonly<Record<string, string>> | undefined
  /** Opaque startup `options` (sql-pg's name for `options`). */
  readonly startupOptions?: string | undefined
  readonly preparedStatementCacheSize?: number | undefined
  readonly maxMessageSize?: number | undefined
  // pool
  readonly maxConnections?: number | undefined
  readonly minConnections?: number | undefined
  /** Idle sessions beyond `minConnections` close after this long. */
  readonly idleTimeout?: Duration.Input | undefined
  /** Sessions are replaced once this old. */
  readonly connectionTTL?: Duration.Input | undefined
  /** false: one statement per session at a time; true: up to `multiplexConcurrency` pipelined. Default: pgfx's pool default (4). */
  readonly multiplex?: boolean | undefined
  readonly multiplexConcurrency?: number | undefined
  /** Every other pgfx pool option (acquireTimeout, resetSession, …); these win over the names above. */
  readonly pool?: Pool.PoolOptions | undefined
}

/** `effect/sql`'s client with pgfx's extras. */
export interface PgClient extends Client.SqlClient {
  readonly [TypeId]: TypeId
  readonly config: PgClientConfig
  /** The resolved connection configuration every session uses. */
  readonly pgConfig: PgConfig
  /** The pgfx pool underneath (undefined on a single connection). */
  readonly pool: Pool.PgPoolApi | undefined
  /** A JSON parameter (bound as JSON text). */
  readonly json: (value: unknown) => Statement.Fragment
  /** An array parameter (bound as an array literal; cast to `elementType[]` when given). */
  readonly array: (values: ReadonlyArray<unknown>, elementType?: string) => Statement.Fragment
  /**
   * Runs `f` with the pgfx connection of the current transaction, or with a session pinned for `f` (the
   * door to every pgfx API: `Copy`, `Notifications`, `prepare`, `internal`…).
   */
  readonly withConnection: <A, E, R>(f: (conn: ConnectionApi) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /** A pgfx connection for the current Scope (the transaction's, or a session held for the Scope). */
  readonly reserveConnection: Effect.Effect<ConnectionApi, SqlError, Scope.Scope>
  /**
   * LISTENs on `channel` on a session held until the Scope closes (as `@effect/sql-pg`'s `listen`):
   * when this completes, the server is listening.
   */
  readonly listen: (channel: string) => Effect.Effect<Queue.Dequeue<Notification, SqlError | Cause.Done>, SqlError, Scope.Scope>
  /** The notifications of `channel` as a Stream (a session is held while it runs). */
  readonly listenStream: (channel: string, options?: Notifications.ListenOptions) => Stream.Stream<Notification, SqlError>
  readonly notify: (channel: string, payload: string) => Effect.Effect<void, SqlError>
  /** COPY … FROM STDIN of `source` (text, CSV or binary chunks); the rows copied. */
  readonly copyFrom: <E, R>(
    sql: string,
    source: Stream.Stream<Uint8Array | string, E, R>,
    options?: Copy.CopyFromOptions
  ) => Effect.Effect<number, SqlError | E, R>
  /** COPY BINARY of rows (arrays or objects) into `table (columns)`; the rows copied. */
  readonly copyFromRows: <A, E, R>(
    table: Copy.TableName,
    columns: ReadonlyArray<string>,
    rows: Stream.Stream<A, E, R>
  ) => Effect.Effect<number, SqlError | E, R>
  /** COPY … TO STDOUT as a stream of CopyData payloads, with backpressure. */
  readonly copyTo: (sql: string, options?: Copy.CopyToOptions) => Stream.Stream<Uint8Array, SqlError>
  /** An explicit pipeline: statements (or `effect/sql` statements) in segments, each ending with a Sync. */
  readonly pipeline: (
    segments: ReadonlyArray<ReadonlyArray<PipelineStatement | Statement.Fragment>>
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<PipelineOutcome>>, SqlError>
  /**
   * A replication connection with the same configuration (`replication=database` for logical, `true`
   * for physical), for `@pgfx/replication`; closed with the Scope.
   */
  readonly replicationConnection: (mode?: "logical" | "physical") => Effect.Effect<ConnectionApi, SqlError, Scope.Scope>
}

export const PgClient = Context.Service<PgClient>("@pgfx/sql/PgClient")

// ---------------------------------------------------------------------------------------------------------
// SqlConnection.Connection on pgfx

/** What a statement runs on: a pool (shared sessions) or one connection. Both have this surface. */
interface Target {
  readonly query: <A = Row>(sql: string, params?: ReadonlyArray<unknown>, options?: QueryOptions) => Effect.Effect<QueryResult<A>, PgError>
  readonly stream: <A = Row>(sql: string, params?: ReadonlyArray<unknown>, options?: StreamOptions) => Stream.Stream<A, PgError>
  readonly simple: (sql: string, options?: QueryOptions) => Effect.Effect<ReadonlyArray<QueryResult>, PgError>
}

type TransformRows = (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

// SqlClient makes a client span per statement itself: pgfx's own would only duplicate it.
const OBJECT: QueryOptions = { span: false }
const ARRAY: QueryOptions = { rowMode: "array", span: false }
const OBJECT_UNNAMED: QueryOptions = { prepare: false, span: false }
const ARRAY_UNNAMED: QueryOptions = { rowMode: "array", prepare: false, span: false }

const rowsOf = (r: QueryResult<any>): ReadonlyArray<any> => r.rows
const failExecute = (e: PgError) => toSqlError(e, "execute")
const failExecuteRaw = (e: PgError) => toSqlError(e, "executeRaw")
const failValues = (e: PgError) => toSqlError(e, "executeValues")
const failUnprepared = (e: PgError) => toSqlError(e, "executeUnprepared")
const failStream = (e: PgError) => toSqlError(e, "executeStream")

/** The driver connection `SqlClient` runs statements on. `session` is set when it is one pinned session. */
export class PgfxConnection implements SqlConnection.Connection {
  readonly target: Target
  readonly session: ConnectionApi | undefined
  private readonly named: QueryOptions
  private readonly namedArray: QueryOptions
  /** Wraps a stream (single-connection clients hold their gate while it runs). */
  private readonly guardStream: <A>(s: Stream.Stream<A, SqlError>) => Stream.Stream<A, SqlError>

  constructor(
    target: Target,
    session: ConnectionApi | undefined,
    prepare: boolean,
    guardStream: <A>(s: Stream.Stream<A, SqlError>) => Stream.Stream<A, SqlError> = (s) => s
  ) {
    this.target = target
    this.session = session
    this.named = prepare ? OBJECT : OBJECT_UNNAMED
    this.namedArray = prepare ? ARRAY : ARRAY_UNNAMED
    this.guardStream = guardStream
  }

  execute(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    return Effect.mapBothEager(this.target.query(sql, params, this.named), {
      onFailure: failExecute,
      onSuccess: transformRows === undefined ? rowsOf : (r: QueryResult<any>) => transformRows(r.rows)
    })
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return Effect.mapError(this.target.query(sql, params, this.named), failExecuteRaw)
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return Effect.mapBothEager(this.target.query<ReadonlyArray<unknown>>(sql, params, this.namedArray), {
      onFailure: failValues,
      onSuccess: rowsOf
    })
  }
  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return Effect.mapBothEager(this.target.query<ReadonlyArray<unknown>>(sql, params, ARRAY_UNNAMED), {
      onFailure: failValues,
      onSuccess: rowsOf
    })
  }
  /** Without parameters: the simple protocol, so a script of several statements runs (rows of the last one). */
  executeUnprepared(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    if (params.length === 0) {
      return Effect.mapBothEager(this.target.simple(sql, OBJECT), {
        onFailure: failUnprepared,
        onSuccess: (results): ReadonlyArray<any> => {
          const rows = results.length === 0 ? [] : results[results.length - 1]!.rows
          return transformRows === undefined ? rows : transformRows(rows)
        }
      })
    }
    return Effect.mapBothEager(this.target.query(sql, params, OBJECT_UNNAMED), {
      onFailure: failUnprepared,
      onSuccess: transformRows === undefined ? rowsOf : (r: QueryResult<any>) => transformRows(r.rows)
    })
  }
  executeStream(sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) {
    const rows = Stream.mapError(this.target.stream(sql, params, this.named), failStream)
    const out = transformRows === undefined
      ? rows
      : Stream.mapArray(rows, (chunk) => transformRows(chunk as ReadonlyArray<object>) as any)
    return this.guardStream(out)
  }
}

/** PostgreSQL answers COMMIT with the tag ROLLBACK when the transaction had failed. */
const commit = (conn: SqlConnection.Connection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(conn.executeRaw("COMMIT", []) as Effect.Effect<QueryResult, SqlError>, (result) =>
    result.command === "ROLLBACK"
      ? Effect.fail(
        new SqlError({
          reason: new UnknownError({
            cause: new Error("COMMIT rolled back an aborted transaction"),
            message: "COMMIT rolled back the transaction: a statement in it had failed",
            operation: "commit"
          })
        })
      )
      : Effect.void)

// ---------------------------------------------------------------------------------------------------------
// acquiring sessions

/**
 * Pins a pool session for the current Scope. The pool pins inside `withConnection`, so a fiber holds the
 * pin open until the Scope closes; the pool then cleans the session (ROLLBACK if it was left in a
 * transaction) before handing it out again.
 */
const reservePooled = (pool: Pool.PgPoolApi): Effect.Effect<ConnectionApi, PgError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const ready = yield* Deferred.make<ConnectionApi, PgError>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.forkDetach(
        pool.withConnection((conn) => Effect.andThen(Deferred.succeed(ready, conn), Deferred.await(release))).pipe(
          Effect.catch((e) => Deferred.fail(ready, e))
        )
      )
      yield* Scope.addFinalizer(
        scope,
        Effect.suspend(() =>
          Deferred.isDoneUnsafe(ready)
            ? Effect.andThen(Deferred.succeed(release, undefined), Fiber.await(holder))
            : Fiber.interrupt(holder)
        )
      )
      return yield* restore(Deferred.await(ready))
    })
  )

/** A gate for a single connection: statements take one permit, a transaction takes them all. */
const GATE_PERMITS = 1 << 30

interface Backend {
  readonly pool: Pool.PgPoolApi | undefined
  readonly pgConfig: PgConfig
  /** Plain statements: lend the shared connection. */
  readonly plain: PgfxConnection
  readonly borrower: SqlConnection.Borrower
  /** A session for the Scope that nothing else uses meanwhile (transactions, `reserve`). */
  readonly reserve: Effect.Effect<ConnectionApi, SqlError, Scope.Scope>
  /** A session held for the Scope (LISTEN, COPY, `withConnection`): pinned on a pool, shared on one connection. */
  readonly hold: Effect.Effect<ConnectionApi, SqlError, Scope.Scope>
  /** A session for a listener's lifetime: pinned on a pool; on one connection, the connection (no gate: LISTEN never blocks a transaction). */
  readonly listenOn: Effect.Effect<ConnectionApi, SqlError, Scope.Scope>
}

const poolBackend = (pool: Pool.PgPoolApi, prepare: boolean): Backend => {
  const plain = new PgfxConnection(pool, undefined, prepare)
  const reserve = Effect.mapError(reservePooled(pool), (e) => toSqlError(e, "reserve"))
  return { pool, pgConfig: pool.config, plain, borrower: (f) => f(plain), reserve, hold: reserve, listenOn: reserve }
}

const connectionBackend = (conn: ConnectionApi, prepare: boolean): Backend => {
  const gate = Semaphore.makeUnsafe(GATE_PERMITS)
  const plain = new PgfxConnection(
    conn,
    conn,
    prepare,
    (s) => Stream.unwrap(Effect.as(gate.takeScoped(1), s))
  )
  const withPermit = gate.withPermits(1)
  return {
    pool: undefined,
    pgConfig: conn.config,
    plain,
    borrower: (f) => withPermit(f(plain)),
    reserve: Effect.as(gate.takeScoped(GATE_PERMITS), conn),
    hold: Effect.as(gate.takeScoped(1), conn),
    listenOn: Effect.succeed(conn)
  }
}

// ---------------------------------------------------------------------------------------------------------
// the client

const ATTR_DB_SYSTEM_NAME = "db.system.name"
const ATTR_DB_NAMESPACE = "db.namespace"
const ATTR_SERVER_ADDRESS = "server.address"
const ATTR_SERVER_PORT = "server.port"

const makeWith = (
  backend: Backend,
  options: PgClientOptions,
  config: PgClientConfig
): Effect.Effect<PgClient, never, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const prepare = options.prepare !== false
    const compiler = makeCompiler(options.transformQueryNames, options.transformJson)
    const transformRows = options.transformResultNames
      ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
      : undefined
    const pgConfig = backend.pgConfig
    const host = pgConfig.hosts[0]
    const txConnection = (conn: ConnectionApi) => new PgfxConnection(conn, conn, prepare)

    const client = yield* Client.make({
      acquirer: Effect.succeed(backend.plain),
      borrower: backend.borrower,
      transactionAcquirer: Effect.map(backend.reserve, txConnection),
      compiler,
      driver: "pgfx",
      // PostgreSQL prepares transaction control like any statement; unnamed when `prepare` is off.
      prepareTransactionControls: true,
      commit,
      releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
      isTransaction: (conn) => {
        const session = (conn as PgfxConnection).session
        // A closed session has no transaction left to end (and ROLLBACK on it could only fail).
        return session === undefined || (session.isOpen() && session.transactionStatus() !== "I")
      },
      spanAttributes: [
        ...(options.spanAttributes ? Object.entries(options.spanAttributes) : []),
        [ATTR_DB_SYSTEM_NAME, "postgresql"],
        [ATTR_DB_NAMESPACE, pgConfig.database],
        [ATTR_SERVER_ADDRESS, host?.host ?? "localhost"],
        [ATTR_SERVER_PORT, host?.port ?? 5432]
      ],
      transformRows
    })

    /** The pgfx connection of the current transaction of this client, if any. */
    const currentSession = Effect.map(Effect.serviceOption(client.transactionService), (o) =>
      o._tag === "Some" ? (o.value[0] as PgfxConnection).session : undefined)

    const reserveConnection: Effect.Effect<ConnectionApi, SqlError, Scope.Scope> = Effect.flatMap(
      currentSession,
      (session) => (session !== undefined ? Effect.succeed(session) : backend.hold)
    )

    const withConnection = <A, E, R>(f: (conn: ConnectionApi) => Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
      Effect.scoped(Effect.flatMap(reserveConnection, f))

    const mapPg = <A, E, R>(effect: Effect.Effect<A, E, R>, operation: string) =>
      Effect.mapError(effect, (e) => toSqlError(e, operation) as E extends PgError ? SqlError : SqlError)

    // A listener outlives any transaction it is started in: it never uses the transaction's session.
    const listenConnection = backend.listenOn

    const listenStream = (channel: string, listenOptions?: Notifications.ListenOptions): Stream.Stream<Notification, SqlError> =>
      Stream.unwrap(
        Effect.flatMap(listenConnection, (conn) =>
          Effect.map(
            Effect.mapError(Notifications.listenScoped(conn, channel, listenOptions), (e) => toSqlError(e, "listen")),
            (s) => Stream.mapError(s, (e) => toSqlError(e, "listen"))
          ))
      )

    const listen = (channel: string) =>
      Effect.gen(function*() {
        const conn = yield* listenConnection
        const stream = yield* Effect.mapError(Notifications.listenScoped(conn, channel), (e) => toSqlError(e, "listen"))
        const queue = yield* Queue.bounded<Notification, SqlError | Cause.Done>(Notifications.DEFAULT_BUFFER_SIZE)
        yield* Effect.forkScoped(Stream.runIntoQueue(Stream.mapError(stream, (e) => toSqlError(e, "listen")), queue))
        return queue as Queue.Dequeue<Notification, SqlError | Cause.Done>
      })

    const compileSegment = (items: ReadonlyArray<PipelineStatement | Statement.Fragment>): ReadonlyArray<PipelineStatement> =>
      items.map((item) => {
        if (Statement.isFragment(item)) {
          const [sql, params] = compiler.compile(item, false)
          return { sql, params }
        }
        return item
      })

    const pgClient: PgClient = Object.assign(client, {
      [TypeId]: TypeId as TypeId,
      config,
      pgConfig,
      pool: backend.pool,
      json: jsonFragment,
      array: arrayFragment,
      withConnection,
      reserveConnection,
      listen,
      listenStream,
      // A plain statement: on the transaction's session inside one (delivered at COMMIT), else shared.
      notify: (channel: string, payload: string) => Effect.asVoid(client`select pg_notify(${channel}, ${payload})`.unprepared),
      copyFrom: <E, R>(sql: string, source: Stream.Stream<Uint8Array | string, E, R>, copyOptions?: Copy.CopyFromOptions) =>
        withConnection((conn) =>
          Stream.run(source, Sink.mapError(Copy.copyFrom(conn, sql, copyOptions), (e) => toSqlError(e, "copyFrom")))),
      copyFromRows: <A, E, R>(table: Copy.TableName, columns: ReadonlyArray<string>, rows: Stream.Stream<A, E, R>) =>
        withConnection((conn) =>
          Stream.run(rows, Sink.mapError(Copy.copyFromRows<A>(conn, table, columns), (e) => toSqlError(e, "copyFromRows")))),
      copyTo: (sql: string, copyOptions?: Copy.CopyToOptions) =>
        Stream.unwrap(
          Effect.map(reserveConnection, (conn) => Stream.mapError(Copy.copyTo(conn, sql, copyOptions), (e) => toSqlError(e, "copyTo")))
        ),
      pipeline: (segments: ReadonlyArray<ReadonlyArray<PipelineStatement | Statement.Fragment>>) =>
        Effect.flatMap(currentSession, (session) => {
          const compiled = segments.map(compileSegment)
          const run = session !== undefined
            ? session.pipeline(compiled)
            : backend.pool !== undefined
            ? backend.pool.pipeline(compiled)
            : backend.borrower(() => backend.plain.session!.pipeline(compiled))
          return mapPg(run, "pipeline")
        }),
      replicationConnection: (mode: "logical" | "physical" = "logical") =>
        mapPg(
          Connection.make({ ...pgConfig, replication: mode === "logical" ? "database" : "true", statementCacheSize: 0 }),
          "replicationConnection"
        )
    }) as PgClient
    return pgClient
  })

// ---------------------------------------------------------------------------------------------------------
// constructors

const millis = (d: Duration.Input): Duration.Duration => Duration.fromInputUnsafe(d)

/** The pgfx connection input for a client configuration (sql-pg names mapped onto libpq's). */
export const connectionInput = (config: PgClientConfig): PgConfig | PgConfigInput => {
  if (config.config !== undefined) return config.config
  const {
    config: _config,
    url,
    username,
    password,
    path,
    ssl,
    connectTimeout,
    keepAlive,
    startupParameters,
    startupOptions,
    preparedStatementCacheSize,
    maxConnections: _max,
    minConnections: _min,
    idleTimeout: _idle,
    connectionTTL: _ttl,
    multiplex,
    multiplexConcurrency,
    pool: _pool,
    transformResultNames: _trn,
    transformQueryNames: _tqn,
    transformJson: _tj,
    spanAttributes: _sa,
    prepare: _prepare,
    ...rest
  } = config
  const input: Record<string, unknown> = { ...rest }
  const set = (k: string, v: unknown) => {
    if (v !== undefined) input[k] = v
  }
  set("connectionString", url ?? rest.connectionString)
  set("user", rest.user ?? username)
  set("password", password as string | Redacted.Redacted<string> | undefined)
  set("host", rest.host ?? path)
  if (ssl !== undefined && rest.sslMode === undefined) input["sslMode"] = ssl ? "require" : "disable"
  if (connectTimeout !== undefined) input["connectTimeout"] = millis(connectTimeout)
  if (keepAlive !== undefined && rest.keepAlivesIdle === undefined) input["keepAlivesIdle"] = millis(keepAlive)
  set("runtimeParameters", rest.runtimeParameters ?? startupParameters)
  set("options", rest.options ?? startupOptions)
  set("statementCacheSize", rest.statementCacheSize ?? preparedStatementCacheSize)
  if (multiplex === true && rest.pipelineDepth === undefined) {
    input["pipelineDepth"] = Math.max(multiplexConcurrency ?? 32, 1)
  }
  return input as PgConfigInput
}

/** The pgfx pool options for a client configuration. */
export const poolOptions = (config: PgClientConfig): Pool.PoolOptions => {
  const out: Record<string, unknown> = {}
  const set = (k: string, v: unknown) => {
    if (v !== undefined) out[k] = v
  }
  set("max", config.maxConnections)
  set("min", config.minConnections)
  set("idleTimeout", config.idleTimeout)
  set("maxLifetime", config.connectionTTL)
  if (config.multiplex === false) out["borrowersPerConnection"] = 1
  else if (config.multiplex === true) out["borrowersPerConnection"] = config.multiplexConcurrency ?? 32
  return { ...out, ...config.pool } as Pool.PoolOptions
}

const resolved = (config: PgClientConfig): Effect.Effect<PgConfig, SqlError> => {
  const input = connectionInput(config)
  return "hosts" in input && Array.isArray(input.hosts)
    ? Effect.succeed(input as PgConfig)
    : Effect.mapError(resolveConfig(input as PgConfigInput), (e) => toSqlError(e, "config"))
}

/** A client over a new pgfx pool (closed with the Scope). */
export const make = (config: PgClientConfig): Effect.Effect<PgClient, SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.flatMap(resolved(config), (pgConfig) =>
    Effect.flatMap(Effect.orDie(Pool.make(pgConfig, poolOptions(config))), (pool) =>
      makeWith(poolBackend(pool, config.prepare !== false), config, config)))

/** A client over ONE new connection (as sql-pg's `makeClient`); transactions exclude other statements. */
export const makeClient = (config: PgClientConfig): Effect.Effect<PgClient, SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.flatMap(resolved(config), (pgConfig) =>
    Effect.flatMap(Effect.mapError(Connection.make(pgConfig), (e) => toSqlError(e, "connect")), (conn) =>
      makeWith(connectionBackend(conn, config.prepare !== false), config, config)))

/** A client over an existing pgfx pool. */
export const fromPool = (
  pool: Pool.PgPoolApi,
  options: PgClientOptions = {}
): Effect.Effect<PgClient, never, Scope.Scope | Reactivity.Reactivity> =>
  makeWith(poolBackend(pool, options.prepare !== false), options, { ...options, config: pool.config })

/** A client over an existing pgfx connection (it is not closed by the client). */
export const fromConnection = (
  conn: ConnectionApi,
  options: PgClientOptions = {}
): Effect.Effect<PgClient, never, Scope.Scope | Reactivity.Reactivity> =>
  makeWith(connectionBackend(conn, options.prepare !== false), options, { ...options, config: conn.config })

// ---------------------------------------------------------------------------------------------------------
// layers

/** Provides both `PgClient` and `SqlClient` from an acquisition effect (Reactivity included). */
export const layerFromClient = <E, R>(
  acquire: Effect.Effect<PgClient, E, R>
): Layer.Layer<PgClient | Client.SqlClient, E, Exclude<R, Scope.Scope | Reactivity.Reactivity>> =>
  Layer.effectContext(
    Effect.map(acquire, (client) => Context.make(PgClient, client).pipe(Context.add(Client.SqlClient, client)))
  ).pipe(Layer.provide(Reactivity.layer)) as any

/** A client over a pool opened from `config` (the same options as `@effect/sql-pg`'s `PgClient.layer`). */
export const layer = (config: PgClientConfig): Layer.Layer<PgClient | Client.SqlClient, SqlError> =>
  layerFromClient(make(config))

/**
 * A client from `Config`: `layerConfig(PgConfig.config)` reads DATABASE_URL and the PG* variables (libpq
 * rules, Redacted secrets); a `Config.Wrap<PgClientConfig>` (as `@effect/sql-pg`'s) is accepted too.
 * `options` adds client and pool settings to a `Config<PgConfig>`.
 */
export const layerConfig = (
  config: Config.Config<PgConfig> | Config.Wrap<PgClientConfig>,
  options: Omit<PgClientConfig, "config"> = {}
): Layer.Layer<PgClient | Client.SqlClient, Config.ConfigError | SqlError> =>
  layerFromClient(
    Effect.flatMap(Config.unwrap(config as Config.Wrap<PgClientConfig | PgConfig>), (c) =>
      make(isPgConfig(c) ? { ...options, config: c } : { ...options, ...c }))
  )

const isPgConfig = (u: unknown): u is PgConfig =>
  typeof u === "object" && u !== null && Array.isArray((u as PgConfig).hosts) && "sslMode" in (u as object)

/** A client over the `PgPool` service (an existing pgfx pool). */
export const layerFrom = (options: PgClientOptions = {}): Layer.Layer<PgClient | Client.SqlClient, never, Pool.PgPool> =>
  layerFromClient(Effect.flatMap(Effect.service(Pool.PgPool), (pool) => fromPool(pool, options)))

/** A client over the `Connection` service (one existing pgfx connection). */
export const layerFromConnection = (
  options: PgClientOptions = {}
): Layer.Layer<PgClient | Client.SqlClient, never, Connection.Connection> =>
  layerFromClient(Effect.flatMap(Effect.service(Connection.Connection), (conn) => fromConnection(conn, options)))

/** One connection (as `@effect/sql-pg`'s `makeClient`), as a layer. */
export const layerClient = (config: PgClientConfig): Layer.Layer<PgClient | Client.SqlClient, SqlError> =>
  layerFromClient(makeClient(config))
