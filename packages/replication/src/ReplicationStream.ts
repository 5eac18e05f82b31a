/**
 * The streaming replication core shared by physical and logical replication: START_REPLICATION puts the
 * connection in CopyBoth mode; the server's XLogData and PrimaryKeepalive messages are delivered as a
 * Stream with backpressure, and the client's StandbyStatusUpdate messages are sent from here.
 *
 * Acknowledgement rule (at-least-once):
 * - `received` is the position of the newest XLogData the reader has taken off the socket: its end
 *   (`walStart + data.length`) in physical mode, its `walStart` in logical mode (a logical message is
 *   not WAL; its walStart is the LSN of the change, or the end LSN of a commit).
 * - `acked` is the highest LSN passed to `ack(lsn)`: the consumer promises everything before it is
 *   durably processed.
 * - The stream is idle when `acked >= received` and the last XLogData left the stream between
 *   transactions (`idleAfter(message)`, always true in physical mode: WAL bytes are acknowledged
 *   exactly by position). A PrimaryKeepalive that arrives while the stream is idle acknowledges its
 *   `walEnd` too: the server has sent everything before it, and the consumer has processed all of it,
 *   so an idle slot advances and the server can recycle WAL.
 * - Every StandbyStatusUpdate reports flush = apply = `confirmed` (the larger of `acked` and the last
 *   idle keepalive's walEnd, never anything else) and write = max(received, confirmed). The flush
 *   position therefore never passes what the consumer acknowledged or what an idle keepalive vouched
 *   for; positions reported never move backwards.
 * - An update is sent every `statusInterval` (default 10 s, like pg_recvlogical and pg_receivewal), at
 *   once from the reader when a keepalive asks for a reply, and whenever `sendStatus` is called.
 *   The periodic update goes out from the writer even while the reader waits on a slow consumer, so
 *   the server's wal_sender_timeout is not hit merely because the consumer is slow.
 *
 * Other invariants:
 * - Backpressure: the reader hands each socket chunk's messages to a bounded queue (a `ReaderQueue`: at
 *   once when it has room; while it is full the reader stops reading and the socket pauses).
 *   XLogData `data` is a view into the received chunk (no copy).
 * - Nothing is sent after our CopyDone. When the server ends COPY first (end of a historic timeline,
 *   shutdown), CopyDone is answered at once from the reader, and the result set the server sends next
 *   (next timeline ID and its start LSN) becomes `outcome.nextTimeline`. A START_REPLICATION for the
 *   exact end of an old timeline skips COPY entirely; the outcome then arrives without any message.
 * - `end` (and closing the Scope) stops delivery first — messages not yet taken are discarded, never
 *   acknowledged — then sends a last status update and CopyDone, and waits for the server's
 *   ReadyForQuery, so the connection is usable again for the next command. The stream ends (does not
 *   fail) after `end`.
 * - The connection belongs to the stream until it ends: anything else submitted on it meanwhile would
 *   reach the server in the middle of COPY (a protocol violation that ends the session).
 * - A server error during streaming (WAL already removed, slot dropped…) fails the stream and
 *   `outcome` with that PgServerError; a broken connection fails them with the ConnectionError.
 */
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { encodeCopyDone } from "@pgfx/codec/Copy"
import { decodeDataRow } from "@pgfx/codec/Query"
import { Reader } from "@pgfx/codec/internal/Reader"
import { decodeUtf8 } from "@pgfx/codec/internal/utf8"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import {
  decodeReplicationServerMessage,
  encodeCopyDataReplication,
  type HotStandbyFeedback,
  pgEpochMicrosFromDate,
  type PrimaryKeepalive,
  type XLogData
} from "@pgfx/codec/Replication"
import type { ConnectionApi } from "@pgfx/connection/Connection"
import { type PgError, type PgServerError, serverError } from "@pgfx/connection/PgError"
import { commandTagOf, encodeSimpleQuery, errorFieldsOf } from "@pgfx/connection/Query"
import { type Pending, ReaderQueue, type WireError } from "@pgfx/connection/Wire"
import * as Lsn from "./Lsn.ts"

export type { PrimaryKeepalive, XLogData }
export type ReplicationMessage = XLogData | PrimaryKeepalive

/** The server finished a historic timeline: streaming continues on `timeline`, starting at `switchpoint`. */
export interface TimelineSwitch {
  readonly timeline: number
  readonly switchpoint: Lsn.Lsn
}

export interface ReplicationOutcome {
  /** Set when the server ended COPY at the end of a timeline that is not its latest. */
  readonly nextTimeline: TimelineSwitch | undefined
  /** The final CommandComplete tag (e.g. "START_REPLICATION"), if the server sent one. */
  readonly commandTag: string | undefined
}

export interface StandbyFeedback {
  readonly xmin: number
  readonly xminEpoch: number
  readonly catalogXmin: number
  readonly catalogXminEpoch: number
}

export interface ReplicationOptions {
  /** How XLogData positions are read (see the module header). Default "physical". */
  readonly mode?: "physical" | "logical" | undefined
  /** Interval of the periodic status update. Default 10 seconds; 0 turns periodic updates off. */
  readonly statusInterval?: Duration.Input | undefined
  /** The position already processed before this stream (reported until something newer is acked). */
  readonly initialAck?: Lsn.Lsn | undefined
  /** Socket chunks of messages buffered ahead of the consumer. Default 4 (more only keeps more events alive: measured +25 MB peak RSS at 16 in B6, no faster). */
  readonly bufferChunks?: number | undefined
  /**
   * Whether the stream is between transactions after this XLogData (logical decoders: true after a
   * commit, false after a begin or a change). Default: always true.
   */
  readonly idleAfter?: ((message: XLogData) => boolean) | undefined
  /** Acknowledge keepalive positions while idle (see the module header). Default true. */
  readonly advanceWhenIdle?: boolean | undefined
  /**
   * Read batching while in COPY (plain TCP only; unix sockets and TLS unaffected; the mechanism is the
   * connection's, see its Transport module): on a busy stream (a read of less than 16 KiB within 1 ms of
   * the previous one) the socket stops reading for this long (at most 100 ms; a timer, the event loop
   * runs on), so the walsender's one-send-per-change messages queue up, leave the server in a few large
   * TCP segments and arrive many per read. A message that arrives during a pause waits for its end.
   * Default off here (`Logical` turns it on, 10 ms). Switched off again when the command ends (or the
   * Scope closes).
   */
  readonly readBatching?: Duration.Input | undefined
  /** Hot standby feedback sent with every periodic status update (physical standbys). */
  readonly hotStandbyFeedback?: (() => StandbyFeedback | undefined) | undefined
}

export interface ReplicationPositions {
  /** Position of the newest XLogData received (see the module header). */
  readonly received: Lsn.Lsn
  /** Highest LSN acknowledged by the consumer. */
  readonly acked: Lsn.Lsn
  /** The flush position reported to the server. */
  readonly confirmed: Lsn.Lsn
  /** The newest `walEnd` the server reported (keepalives and XLogData). */
  readonly serverWalEnd: Lsn.Lsn
}

export interface ReplicationStream {
  /** The server's messages, in order, with backpressure. Ends when COPY ends (or after `end`). */
  readonly messages: Stream.Stream<ReplicationMessage, PgError>
  /** The same messages as a pull: the next non-empty batch, or Cause.Done once the stream ended. */
  readonly pull: Effect.Effect<Arr.NonEmptyReadonlyArray<ReplicationMessage>, PgError | Cause.Done>
  /** Everything before `lsn` is durably processed (flush/apply position). Never moves backwards. */
  readonly ack: (lsn: Lsn.Lsn) => Effect.Effect<void>
  /** Sends a status update now (optionally asking the server to reply with a keepalive). */
  readonly sendStatus: (options?: { readonly replyRequested?: boolean | undefined }) => Effect.Effect<void>
  /** Sends hot standby feedback now (all zeros: feedback switched off). */
  readonly sendFeedback: (feedback: StandbyFeedback) => Effect.Effect<void>
  readonly positions: () => ReplicationPositions
  /** Stops delivery, sends CopyDone, and waits for the server to finish the command. Idempotent. */
  readonly end: Effect.Effect<ReplicationOutcome, PgError>
  /** Completes when the server finished the command (after COPY ended from either side). */
  readonly outcome: Effect.Effect<ReplicationOutcome, PgError>
}

const DEFAULT_STATUS_INTERVAL = Duration.seconds(10)
const COPY_BOTH = 0x57 // W
const COPY_DATA = 0x64 // d
const COPY_DONE = 0x63 // c
const ROW_DESCRIPTION = 0x54 // T
const DATA_ROW = 0x44 // D
const COMMAND_COMPLETE = 0x43 // C
const ERROR = 0x45 // E
const READY = 0x5a // Z
const EMPTY_QUERY = 0x49 // I

const unexpected = (type: number, where: string): never => {
  throw new ProtocolError({
    reason: "UnexpectedMessage",
    message: `message '${String.fromCharCode(type)}' is not legal ${where}`,
    messageType: String.fromCharCode(type)
  })
}

/**
 * The request: START_REPLICATION's replies up to ReadyForQuery. Runs in the connection's reader, so
 * everything here is synchronous; the consumer is reached only through the bounded queue.
 */
class ReplicationRequest implements Pending {
  abandoned = false
  /** Both directions of COPY. */
  inCopy = false
  clientDone = false
  serverDone = false
  finished = false
  /** After `end`: messages are dropped, never queued. */
  discarding = false

  received: Lsn.Lsn = Lsn.zero
  acked: Lsn.Lsn
  confirmed: Lsn.Lsn
  serverWalEnd: Lsn.Lsn = Lsn.zero
  boundary = true

  private batch: Array<ReplicationMessage> = []
  private error: PgServerError | undefined
  private nextTimeline: TimelineSwitch | undefined
  private commandTag: string | undefined
  private resultColumns = 0
  private readonly logical: boolean
  private readonly idleAfter: ((m: XLogData) => boolean) | undefined
  private readonly advanceWhenIdle: boolean
  private readonly readBatchingMs: number

  readonly conn: ConnectionApi
  readonly queue: Queue.Queue<ReadonlyArray<ReplicationMessage>, PgError | Cause.Done>
  /** The reader's way into `queue` (in order, waiting only while it is full). */
  private readonly toConsumer: ReaderQueue<ReadonlyArray<ReplicationMessage>, PgError>
  readonly started: Deferred.Deferred<boolean, PgError>
  readonly done: Deferred.Deferred<ReplicationOutcome, PgError>
  resume: ((effect: Effect.Effect<void, PgError>) => void) | undefined
  private readonly command: string

  constructor(
    conn: ConnectionApi,
    command: string,
    options: ReplicationOptions,
    queue: Queue.Queue<ReadonlyArray<ReplicationMessage>, PgError | Cause.Done>,
    started: Deferred.Deferred<boolean, PgError>,
    done: Deferred.Deferred<ReplicationOutcome, PgError>
  ) {
    this.conn = conn
    this.command = command
    this.queue = queue
    this.toConsumer = new ReaderQueue(conn.internal.wire, queue)
    this.started = started
    this.done = done
    this.logical = options.mode === "logical"
    this.idleAfter = options.idleAfter
    this.advanceWhenIdle = options.advanceWhenIdle ?? true
    this.readBatchingMs = options.readBatching === undefined ? 0 : Duration.toMillis(Duration.fromInputUnsafe(options.readBatching))
    this.acked = options.initialAck ?? Lsn.zero
    this.confirmed = this.acked
  }

  onFrame(type: number, buf: Uint8Array, start: number, end: number): boolean {
    if (type === COPY_DATA) {
      // The hot path: one decode, position bookkeeping, one push.
      if (!this.inCopy || this.serverDone) unexpected(type, "outside CopyBoth")
      const m = decodeReplicationServerMessage(buf, start, end)
      if (m._tag === "XLogData") {
        const at = (this.logical ? m.walStart : m.walStart + BigInt(m.data.length)) as Lsn.Lsn
        if (at > this.received) this.received = at
        if (m.walEnd > this.serverWalEnd) this.serverWalEnd = m.walEnd as Lsn.Lsn
        this.boundary = this.idleAfter === undefined ? true : this.idleAfter(m)
      } else {
        if (m.walEnd > this.serverWalEnd) this.serverWalEnd = m.walEnd as Lsn.Lsn
        if (this.advanceWhenIdle && this.boundary && this.acked >= this.received && m.walEnd > this.confirmed) {
          this.confirmed = m.walEnd as Lsn.Lsn
        }
        if (m.replyRequested) this.sendStatus(false)
      }
      if (!this.discarding && !this.abandoned) this.batch.push(m)
      return false
    }
    switch (type) {
      case COPY_BOTH:
        if (this.inCopy) unexpected(type, "twice")
        this.inCopy = true
        if (this.readBatchingMs > 0) this.conn.internal.wire.transport.setReadBatching(this.readBatchingMs)
        Deferred.doneUnsafe(this.started, Effect.succeed(true))
        return false
      case COPY_DONE:
        if (!this.inCopy || this.serverDone) unexpected(type, "outside CopyBoth")
        this.serverDone = true
        // The server left COPY (end of timeline, shutdown): leave it too, so it can send what follows.
        this.sendCopyDone()
        return false
      case ROW_DESCRIPTION: {
        const r = new Reader(buf, start, end, "T")
        this.resultColumns = r.count16(18, "field count")
        return false
      }
      case DATA_ROW: {
        // The next timeline after the end of a historic one: next_tli (int8), next_tli_startpos (text).
        const { values } = decodeDataRow(new Reader(buf, start, end, "D"))
        if (values.length < 2 || this.resultColumns < 2 || values[0] == null || values[1] == null) {
          throw new ProtocolError({
            reason: "InvalidValue",
            message: "the end-of-timeline result set must hold next_tli and next_tli_startpos",
            messageType: "D"
          })
        }
        const tliText = decodeUtf8(values[0], 0, values[0].length)
        const lsnText = decodeUtf8(values[1], 0, values[1].length)
        const timeline = Number(tliText)
        const switchpoint = Lsn.fromString(lsnText)
        if (!/^\d+$/.test(tliText) || !Number.isSafeInteger(timeline) || switchpoint._tag === "None") {
          throw new ProtocolError({
            reason: "InvalidValue",
            message: `invalid end-of-timeline row (${JSON.stringify(tliText)}, ${JSON.stringify(lsnText)})`,
            messageType: "D"
          })
        }
        this.nextTimeline = { timeline, switchpoint: switchpoint.value }
        return false
      }
      case COMMAND_COMPLETE:
        this.commandTag = commandTagOf(buf, start, end)
        this.inCopy = false
        return false
      case EMPTY_QUERY:
        return false
      case ERROR:
        this.error = serverError(errorFieldsOf(buf, start, end), this.command)
        // An error ends COPY on the server side.
        this.inCopy = false
        return false
      case READY:
        // The server ends CopyBoth with CopyDone or an error, then CommandComplete: a ReadyForQuery while
        // still in CopyBoth is a broken or hostile server, not the end of the stream.
        if (this.inCopy) unexpected(type, "inside CopyBoth")
        this.complete()
        return true
      default:
        return unexpected(type, "in START_REPLICATION")
    }
  }

  /** After each socket chunk: hand the batch to the consumer; the reader waits while the queue is full. */
  afterChunk(): void {
    if (this.batch.length === 0) return
    const b = this.batch
    this.batch = []
    this.toConsumer.offer(b)
  }

  private complete(): void {
    this.finished = true
    // The connection is a plain one again (the next command's replies are not batched).
    if (this.readBatchingMs > 0) this.conn.internal.wire.transport.setReadBatching(0)
    this.afterChunk()
    const error = this.error
    const outcome: ReplicationOutcome = { nextTimeline: this.nextTimeline, commandTag: this.commandTag }
    // Ordered after the last batch's offer: the stream ends after its last message, never before.
    this.toConsumer.end(error)
    Deferred.doneUnsafe(this.started, error === undefined ? Effect.succeed(false) : Effect.fail(error))
    Deferred.doneUnsafe(this.done, error === undefined ? Effect.succeed(outcome) : Effect.fail(error))
    const resume = this.resume
    this.resume = undefined
    resume?.(Effect.void)
  }

  onFail(error: WireError): void {
    this.finished = true
    if (this.readBatchingMs > 0) this.conn.internal.wire.transport.setReadBatching(0)
    Queue.failCauseUnsafe(this.queue, Cause.fail(error))
    Deferred.doneUnsafe(this.started, Effect.fail(error))
    Deferred.doneUnsafe(this.done, Effect.fail(error))
    const resume = this.resume
    this.resume = undefined
    resume?.(Effect.fail(error))
  }

  /** Whether client messages may still be sent (in COPY, before our CopyDone). */
  get canSend(): boolean {
    return this.inCopy && !this.clientDone && !this.finished && this.conn.internal.wire.failure === undefined
  }

  sendStatus(replyRequested: boolean): void {
    if (!this.canSend) return
    const w = this.conn.internal.writer
    const write = this.received > this.confirmed ? this.received : this.confirmed
    encodeCopyDataReplication(w, {
      _tag: "StandbyStatusUpdate",
      writeLsn: write,
      flushLsn: this.confirmed,
      applyLsn: this.confirmed,
      clientTime: pgEpochMicrosFromDate(new Date()),
      replyRequested
    })
    this.conn.internal.wire.send(w.take())
  }

  sendFeedback(f: StandbyFeedback): void {
    if (!this.canSend) return
    const w = this.conn.internal.writer
    const m: HotStandbyFeedback = {
      _tag: "HotStandbyFeedback",
      clientTime: pgEpochMicrosFromDate(new Date()),
      xmin: f.xmin,
      xminEpoch: f.xminEpoch,
      catalogXmin: f.catalogXmin,
      catalogXminEpoch: f.catalogXminEpoch
    }
    encodeCopyDataReplication(w, m)
    this.conn.internal.wire.send(w.take())
  }

  sendCopyDone(): void {
    if (this.clientDone || this.finished || !this.inCopy) return
    this.clientDone = true
    const w = this.conn.internal.writer
    encodeCopyDone(w, { _tag: "CopyDone" })
    this.conn.internal.wire.send(w.take())
  }

  ack(lsn: Lsn.Lsn): void {
    if (lsn > this.acked) this.acked = lsn
    if (lsn > this.confirmed) this.confirmed = lsn
  }

  /** Stops delivery: the stream ends now, messages not yet taken are dropped, a waiting reader goes on. */
  stopDelivery(): void {
    this.discarding = true
    this.batch = []
    Queue.endUnsafe(this.queue)
    Queue.shutdownUnsafe(this.queue)
  }
}

/**
 * Runs a START_REPLICATION command (physical or logical) and returns once the server entered COPY
 * (or refused: the server's error). Scoped: closing the Scope ends streaming cleanly (CopyDone, then
 * the server's ReadyForQuery, waited for at most 10 seconds).
 */
export const startReplication = (
  conn: ConnectionApi,
  command: string,
  options: ReplicationOptions = {}
): Effect.Effect<ReplicationStream, PgError, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Queue.bounded<ReadonlyArray<ReplicationMessage>, PgError | Cause.Done>(
      Math.max(1, options.bufferChunks ?? 4)
    )
    const started = yield* Deferred.make<boolean, PgError>()
    const done = yield* Deferred.make<ReplicationOutcome, PgError>()
    const request = new ReplicationRequest(conn, command, options, queue, started, done)

    const fiber = yield* Effect.forkScoped(
      conn.internal.run<void>((resume) => {
        request.resume = resume
        return { request, bytes: encodeSimpleQuery(conn.internal.writer, command) }
      }).pipe(
        // A failure is already in `done`/`started` (run fails only through the request or before submit).
        Effect.catch((e) =>
          Effect.sync(() => {
            Deferred.doneUnsafe(started, Effect.fail(e))
            Deferred.doneUnsafe(done, Effect.fail(e))
            Queue.failCauseUnsafe(queue, Cause.fail(e))
          })
        )
      )
    )

    const end: Effect.Effect<ReplicationOutcome, PgError> = Effect.suspend(() => {
      request.stopDelivery()
      // A last status update first (as pg_recvlogical does), so the final acknowledgements count.
      request.sendStatus(false)
      request.sendCopyDone()
      return Deferred.await(done)
    })

    if (options.readBatching !== undefined) {
      // Runs after the finalizer below (finalizers run in reverse): batching never outlives the stream.
      yield* Effect.addFinalizer(() => Effect.sync(() => conn.internal.wire.transport.setReadBatching(0)))
    }
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        if (request.finished) return Effect.void
        return end.pipe(
          Effect.timeout(Duration.seconds(10)),
          Effect.ignore,
          Effect.andThen(Fiber.interrupt(fiber))
        )
      })
    )

    // Wait for CopyBothResponse (true), or for the command to finish without COPY (false), or its error.
    yield* Deferred.await(started)

    const interval = options.statusInterval === undefined
      ? DEFAULT_STATUS_INTERVAL
      : Duration.fromInputUnsafe(options.statusInterval)
    if (Duration.toMillis(interval) > 0 && !request.finished) {
      const feedback = options.hotStandbyFeedback
      const tick = Effect.sync(() => {
        request.sendStatus(false)
        const f = feedback?.()
        if (f !== undefined) request.sendFeedback(f)
      })
      // Stops when the command is done (or with the Scope).
      yield* Effect.forkScoped(
        Effect.sleep(interval).pipe(Effect.andThen(tick), Effect.forever, Effect.raceFirst(Deferred.await(done)), Effect.ignore)
      )
    }

    // Only non-empty batches are offered (see afterChunk).
    const pull = Queue.take(queue) as Effect.Effect<Arr.NonEmptyReadonlyArray<ReplicationMessage>, PgError | Cause.Done>
    const messages: Stream.Stream<ReplicationMessage, PgError> = Stream.fromPull(Effect.succeed(pull))

    const stream: ReplicationStream = {
      messages,
      pull,
      ack: (lsn) => Effect.sync(() => request.ack(lsn)),
      sendStatus: (o) => Effect.sync(() => request.sendStatus(o?.replyRequested === true)),
      sendFeedback: (f) => Effect.sync(() => request.sendFeedback(f)),
      positions: () => ({
        received: request.received,
        acked: request.acked,
        confirmed: request.confirmed,
        serverWalEnd: request.serverWalEnd
      }),
      end,
      outcome: Deferred.await(done)
    }
    return stream
  })
