/**
 * LISTEN / NOTIFY on a connection: notification streams, `notify`, and a listener that survives the loss
 * of its connection.
 *
 * Invariants:
 * - Per connection, LISTEN is issued when the first stream of a channel starts and UNLISTEN when the last
 *   one ends (ref-counted per channel). Changes to the counts and the commands they cause run under one
 *   per-connection lock, so the server's LISTEN set always equals the set of channels with subscribers.
 *   A stream's element delivery starts only after its channel's LISTEN completed.
 * - Channels are always sent quoted (`"` doubled), so a channel name is matched exactly, case included.
 *   Names PostgreSQL would truncate or refuse (empty, NUL, over 63 bytes) are refused up front.
 * - Delivery is synchronous from the connection's reader into one BOUNDED queue per stream (default
 *   10,000). Notifications are never dropped silently and never buffered without bound: a consumer that
 *   falls `bufferSize` behind gets every notification that fit, then its stream fails with
 *   `NotificationOverflowError`. Backpressure is deliberately not used: pausing the socket for one slow
 *   listener would stall every query on the connection.
 * - A stream on a connection that dies fails with the connection's error. `listenReconnecting` instead
 *   opens a new connection (with backoff), LISTENs again on every channel, and emits a `Gap` before any
 *   notification of the new session, because notifications sent while no session listened are lost.
 *
 * - Notices and ParameterStatus changes (`notices`, `parameterChanges` here) are delivered the same way into
 *   one bounded queue per stream, 1024 by default. They are advisory and a server can emit them without
 *   bound, so by default a consumer more than `bufferSize` behind loses the OLDEST buffered ones, and every
 *   loss is counted (`onDropped`); `overflow: "fail"` fails the stream instead. These streams end when the
 *   connection ends. (`conn.notices` / `conn.parameterChanges` of Connection.ts are PubSub-backed, 1024.)
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import type * as Scope from "effect/Scope"
import type { ErrorFields } from "@pgfx/codec/Async"
import type { ConnectionApi, Notification } from "./Connection.ts"
import { InvalidRequestError, type PgError } from "./PgError.ts"
import { quoteIdentifier } from "./Quote.ts"
import type { WireError } from "./Wire.ts"

export type { Notification }

export const DEFAULT_BUFFER_SIZE = 10_000

/** A listener fell `limit` notifications behind; it was stopped so memory stays bounded. */
export class NotificationOverflowError extends Schema.TaggedError<NotificationOverflowError>()(
  "NotificationOverflowError",
  {
    channel: Schema.String,
    limit: Schema.Number,
    message: Schema.String
  }
) {}

export interface ListenOptions {
  /** Notifications buffered for a slow consumer before its stream fails. Default 10,000. */
  readonly bufferSize?: number | undefined
}

export type ListenError = PgError | NotificationOverflowError

// ---------------------------------------------------------------------------------------------
// identifiers

/** PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes; a truncated channel would never match. */
const MAX_CHANNEL_BYTES = 63


const utf8Length = (s: string): number => new TextEncoder().encode(s).length

const checkChannel = (channel: string): Effect.Effect<void, InvalidRequestError> => {
  if (channel.length === 0) return invalidChannel("a channel name cannot be empty")
  if (channel.includes("\0")) return invalidChannel("a channel name cannot contain NUL")
  const n = utf8Length(channel)
  if (n > MAX_CHANNEL_BYTES) {
    return invalidChannel(`channel name is ${n} bytes; PostgreSQL allows at most ${MAX_CHANNEL_BYTES}`)
  }
  return Effect.void
}

const invalidChannel = (message: string) => Effect.fail(new InvalidRequestError({ reason: "Other", message }))

// ---------------------------------------------------------------------------------------------
// the per-connection hub

interface Subscriber {
  readonly push: (n: Notification) => void
  readonly fail: (error: WireError) => void
}

class Hub {
  readonly channels = new Map<string, Set<Subscriber>>()
  readonly lock = Semaphore.makeUnsafe(1)
  private readonly all = new Set<Subscriber>()

  constructor(conn: ConnectionApi) {
    conn.internal.addNotificationListener((n) => {
      const subs = this.channels.get(n.channel)
      if (subs === undefined) return
      for (const s of subs) s.push(n)
    })
    conn.internal.wire.onFail((error) => {
      for (const s of this.all) s.fail(error)
    })
  }

  add(channel: string, sub: Subscriber): boolean {
    this.all.add(sub)
    const subs = this.channels.get(channel)
    if (subs !== undefined) {
      subs.add(sub)
      return false
    }
    this.channels.set(channel, new Set([sub]))
    return true
  }

  /** Returns true when `sub` was the channel's last subscriber. */
  remove(channel: string, sub: Subscriber): boolean {
    this.all.delete(sub)
    const subs = this.channels.get(channel)
    if (subs === undefined) return false
    subs.delete(sub)
    if (subs.size > 0) return false
    this.channels.delete(channel)
    return true
  }
}

const hubs = new WeakMap<ConnectionApi, Hub>()

const hubOf = (conn: ConnectionApi): Hub => {
  let hub = hubs.get(conn)
  if (hub === undefined) {
    hub = new Hub(conn)
    hubs.set(conn, hub)
  }
  return hub
}

/**
 * Adds `sub` to `channel` on `conn` for the lifetime of the current Scope; LISTENs first when it is the
 * channel's first subscriber, UNLISTENs when the Scope closes and it was the last.
 */
const subscribe = (conn: ConnectionApi, channel: string, sub: Subscriber): Effect.Effect<void, PgError, Scope.Scope> => {
  const hub = hubOf(conn)
  const sql = quoteIdentifier(channel)
  return Effect.acquireRelease(
    hub.lock.withPermits(1)(
      Effect.suspend(() => {
        if (!hub.add(channel, sub)) return Effect.void
        return conn.simple(`LISTEN ${sql}`).pipe(
          Effect.asVoid,
          Effect.onError(() => Effect.sync(() => hub.remove(channel, sub)))
        )
      })
    ),
    () =>
      hub.lock.withPermits(1)(
        Effect.suspend(() => {
          if (!hub.remove(channel, sub) || !conn.isOpen()) return Effect.void
          // A failure here means the connection is going away, which ends the LISTEN too.
          return Effect.ignore(conn.simple(`UNLISTEN ${sql}`))
        })
      )
  )
}

// ---------------------------------------------------------------------------------------------
// listen / notify

const overflowError = (channel: string, limit: number) =>
  new NotificationOverflowError({
    channel,
    limit,
    message: `the listener on channel ${JSON.stringify(channel)} fell ${limit} notifications behind and was stopped ` +
      `so memory stays bounded (limit: bufferSize = ${limit}); consume faster, or raise the limit with ` +
      `listen(conn, channel, { bufferSize })`
  })

/**
 * The notifications of `channel` on `conn`, from the moment LISTEN completed until the stream ends.
 * Several streams may listen on one channel; each receives every notification.
 */
export const listen = (
  conn: ConnectionApi,
  channel: string,
  options?: ListenOptions
): Stream.Stream<Notification, ListenError> => Stream.unwrap(listenScoped(conn, channel, options))

/**
 * LISTENs on `channel` for the lifetime of the current Scope and returns the stream of its notifications:
 * when this Effect completes, the server is listening, so a NOTIFY sent afterwards will be in the stream.
 * The stream can be run once.
 */
export const listenScoped = (
  conn: ConnectionApi,
  channel: string,
  options?: ListenOptions
): Effect.Effect<Stream.Stream<Notification, ListenError>, PgError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* checkChannel(channel)
    const limit = options?.bufferSize ?? DEFAULT_BUFFER_SIZE
    const queue = yield* Queue.bounded<Notification, ListenError | Cause.Done>(limit)
    let overflowed = false
    const sub: Subscriber = {
      push: (n) => {
        // false: the queue is full, or already ended (the consumer drains what it holds, then sees the error).
        if (Queue.offerUnsafe(queue, n) || overflowed) return
        overflowed = true
        Queue.failCauseUnsafe(queue, Cause.fail(overflowError(channel, limit)))
      },
      fail: (error) => {
        Queue.failCauseUnsafe(queue, Cause.fail(error))
      }
    }
    yield* subscribe(conn, channel, sub)
    return Stream.fromQueue(queue)
  })

/** Sends a notification (`pg_notify`, with parameters, so any channel name and payload is safe). */
export const notify = (conn: ConnectionApi, channel: string, payload = ""): Effect.Effect<void, PgError> =>
  Effect.asVoid(conn.query("select pg_notify($1, $2)", [channel, payload], { prepare: false }))

// ---------------------------------------------------------------------------------------------
// reconnecting listener

export interface NotificationEvent extends Notification {
  readonly _tag: "Notification"
}

/**
 * The listener's connection was lost at `since` and listening resumed on a new one at `reconnectedAt`:
 * notifications sent in between may have been missed (re-read whatever state they signal).
 */
export interface Gap {
  readonly _tag: "Gap"
  readonly since: Date
  readonly reconnectedAt: Date
  /** Why the previous connection ended. */
  readonly cause: WireError
}

export type ListenEvent = NotificationEvent | Gap

export interface ReconnectOptions extends ListenOptions {
  /** Delay before the first reconnection attempt; doubled after each failed attempt. Default 100 ms. */
  readonly initialDelay?: Duration.Input | undefined
  /** Upper bound of the delay between attempts. Default 5 s. */
  readonly maxDelay?: Duration.Input | undefined
  /** Consecutive failed attempts after which the stream fails with the last error. Default: never. */
  readonly maxAttempts?: number | undefined
}

/**
 * Listens on `channels` over connections opened by `open` (e.g. `Connection.make(config)` or a pool's
 * connection factory): when the connection dies, a new one is opened with exponential backoff, every
 * channel is LISTENed again, and a `Gap` precedes the first notification of the new session (or is
 * emitted as soon as the new LISTENs completed).
 */
export const listenReconnecting = <E>(
  open: Effect.Effect<ConnectionApi, E, Scope.Scope>,
  channels: ReadonlyArray<string>,
  options?: ReconnectOptions
): Stream.Stream<ListenEvent, E | ListenError> =>
  Stream.unwrap(
    Effect.gen(function*() {
      for (const channel of channels) yield* checkChannel(channel)
      const limit = options?.bufferSize ?? DEFAULT_BUFFER_SIZE
      const initialDelay = Duration.toMillis(Duration.fromInputUnsafe(options?.initialDelay ?? Duration.millis(100)))
      const maxDelay = Duration.toMillis(Duration.fromInputUnsafe(options?.maxDelay ?? Duration.seconds(5)))
      const maxAttempts = options?.maxAttempts ?? Number.POSITIVE_INFINITY
      const queue = yield* Queue.bounded<ListenEvent, E | ListenError | Cause.Done>(limit)

      let overflowed = false
      const emit = (event: ListenEvent) => {
        if (Queue.offerUnsafe(queue, event) || overflowed) return
        overflowed = true
        Queue.failCauseUnsafe(queue, Cause.fail(overflowError(channels.join(", "), limit)))
      }
      // Set when a listening session died; emitted (once) before anything of the next session.
      let lost: { readonly since: Date; readonly cause: WireError } | undefined
      const emitGap = () => {
        if (lost === undefined) return
        const { cause, since } = lost
        lost = undefined
        emit({ _tag: "Gap", since, reconnectedAt: new Date(), cause })
      }
      const sub: Subscriber = {
        push: (n) => {
          emitGap()
          emit({ _tag: "Notification", processId: n.processId, channel: n.channel, payload: n.payload })
        },
        // The session below notices the failure through `closed` and reconnects.
        fail: () => {}
      }

      /** One session: open, LISTEN on every channel, and wait for the connection to die. */
      const session = Effect.scoped(
        Effect.gen(function*() {
          const conn = yield* open
          for (const channel of channels) yield* subscribe(conn, channel, sub)
          emitGap()
          return yield* conn.closed
        })
      )

      const supervise = Effect.gen(function*() {
        let failures = 0
        while (true) {
          const result = yield* Effect.result(session)
          if (result._tag === "Success") {
            // A listening session ended: the next one starts right after the first delay.
            failures = 0
            lost ??= { since: new Date(), cause: result.success }
          } else {
            failures++
            if (failures >= maxAttempts) {
              yield* Queue.fail(queue, result.failure)
              return
            }
          }
          yield* Effect.sleep(Duration.millis(Math.min(maxDelay, initialDelay * 2 ** Math.max(0, failures - 1))))
        }
      })
      yield* Effect.forkScoped(supervise)
      return Stream.fromQueue(queue)
    })
  )

// ---------------------------------------------------------------------------------------------
// notices and ParameterStatus changes

/** A notice or ParameterStatus stream with `overflow: "fail"` fell `limit` messages behind. */
export class AsyncMessageOverflowError extends Schema.TaggedError<AsyncMessageOverflowError>()(
  "AsyncMessageOverflowError",
  {
    kind: Schema.Literals(["NoticeResponse", "ParameterStatus", "NotificationResponse"]),
    limit: Schema.Number,
    message: Schema.String
  }
) {}

export interface AsyncStreamOptions {
  /** Messages buffered for a slow consumer. Default 1024. */
  readonly bufferSize?: number | undefined
  /**
   * Past `bufferSize`: "slide" (default) drops the oldest buffered message and counts it; "fail" fails the
   * stream with AsyncMessageOverflowError once the buffered messages are consumed.
   */
  readonly overflow?: "slide" | "fail" | undefined
  /** Called from the connection's reader with the running total each time a message is dropped (must not block). */
  readonly onDropped?: ((totalDropped: number) => void) | undefined
}

export const DEFAULT_ASYNC_BUFFER_SIZE = 1024

const asyncStream = <A>(
  conn: ConnectionApi,
  kind: AsyncMessageOverflowError["kind"],
  register: (f: (a: A) => void) => () => void,
  options: AsyncStreamOptions | undefined
): Stream.Stream<A, AsyncMessageOverflowError> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const limit = options?.bufferSize ?? DEFAULT_ASYNC_BUFFER_SIZE
      const slide = (options?.overflow ?? "slide") === "slide"
      const onDropped = options?.onDropped
      const queue = yield* (slide ? Queue.sliding : Queue.bounded)<A, AsyncMessageOverflowError | Cause.Done>(limit)
      let dropped = 0
      let overflowed = false
      const remove = register((a) => {
        if (slide) {
          // A sliding queue at capacity drops its oldest message to take this one.
          if (Queue.sizeUnsafe(queue) >= limit) {
            dropped++
            onDropped?.(dropped)
          }
          Queue.offerUnsafe(queue, a)
          return
        }
        if (Queue.offerUnsafe(queue, a) || overflowed) return
        overflowed = true
        Queue.failCauseUnsafe(
          queue,
          Cause.fail(
            new AsyncMessageOverflowError({
              kind,
              limit,
              message: `the ${kind} stream fell ${limit} messages behind (bufferSize = ${limit}); consume faster, ` +
                `raise bufferSize, or use overflow: "slide" to drop the oldest instead`
            })
          )
        )
      })
      yield* Effect.addFinalizer(() => Effect.sync(remove))
      yield* Effect.forkScoped(Effect.andThen(conn.closed, Queue.end(queue)))
      return Stream.fromQueue(queue)
    })
  )

/** NoticeResponses of `conn` (RAISE NOTICE, warnings…) from the moment the stream starts. */
export const notices = (
  conn: ConnectionApi,
  options?: AsyncStreamOptions
): Stream.Stream<ErrorFields, AsyncMessageOverflowError> =>
  asyncStream(conn, "NoticeResponse", conn.internal.addNoticeListener, options)

/**
 * Every NotificationResponse `conn` receives, whatever the channel (LISTEN is up to the caller; prefer
 * `listen`, which also manages LISTEN/UNLISTEN and fails instead of dropping).
 */
export const allNotifications = (
  conn: ConnectionApi,
  options?: AsyncStreamOptions
): Stream.Stream<Notification, AsyncMessageOverflowError> =>
  asyncStream(conn, "NotificationResponse", conn.internal.addNotificationListener, options)

/** ParameterStatus changes of `conn` (SET application_name, TimeZone…) from the moment the stream starts. */
export const parameterChanges = (
  conn: ConnectionApi,
  options?: AsyncStreamOptions
): Stream.Stream<{ readonly name: string; readonly value: string }, AsyncMessageOverflowError> =>
  asyncStream(conn, "ParameterStatus", conn.internal.addParameterStatusListener, options)
