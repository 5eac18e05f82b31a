/**
 * Physical streaming replication: the server's WAL, byte for byte, following timeline switches.
 *
 * Invariants:
 * - Chunks arrive in WAL order; each carries the timeline it belongs to. `data` is a view into the
 *   received socket chunk (no copy); copy it if it must outlive the next pull.
 * - At the end of a historic timeline the server ends COPY and names the next timeline and its
 *   switchpoint (ReplicationStream's `outcome.nextTimeline`); streaming resumes with
 *   `START_REPLICATION … TIMELINE next` at the switchpoint, or at the start of the switchpoint's
 *   segment with `timelineStart: "segmentStart"` (what pg_receivewal does, so that the new
 *   timeline's first segment file is complete: the server copies the old timeline's prefix into it).
 * - `physicalReplication` acknowledges only what its caller passes to `ack` (plus idle keepalive
 *   positions, see ReplicationStream). `streamPhysical` acknowledges a chunk when the consumer pulls
 *   the next batch: everything handed out before a pull counts as processed (at-least-once for a
 *   consumer that finishes an element before asking for the next one).
 * - Without `timeline`, streaming starts on the server's current timeline (IDENTIFY_SYSTEM is asked
 *   once, to label the chunks).
 */
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Pull from "effect/Pull"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Duration from "effect/Duration"
import type { ConnectionApi } from "@pgfx/connection/Connection"
import type { PgError } from "@pgfx/connection/PgError"
import { identifySystem, startPhysicalCommand } from "./Commands.ts"
import * as Lsn from "./Lsn.ts"
import {
  type ReplicationOutcome,
  type ReplicationStream,
  type StandbyFeedback,
  startReplication,
  type TimelineSwitch
} from "./ReplicationStream.ts"

export interface PhysicalWal {
  readonly timeline: number
  /** Where `data` starts in the WAL. */
  readonly walStart: Lsn.Lsn
  /** The server's current end of WAL when it sent this chunk (not the end of `data`). */
  readonly walEnd: Lsn.Lsn
  /** The server's clock, microseconds since 2000-01-01. */
  readonly serverTime: bigint
  readonly data: Uint8Array
}

export interface PhysicalOptions {
  readonly slot?: string | undefined
  readonly startLsn: Lsn.Lsn
  /** Default: the server's current timeline. */
  readonly timeline?: number | undefined
  /** Follow the end of a historic timeline to the next one. Default true. */
  readonly followTimelines?: boolean | undefined
  /** Where streaming resumes on the next timeline. Default "switchpoint". */
  readonly timelineStart?: "switchpoint" | "segmentStart" | undefined
  /** WAL segment size, for `timelineStart: "segmentStart"`. Default 16 MiB. */
  readonly segmentSize?: number | undefined
  readonly statusInterval?: Duration.Input | undefined
  readonly bufferChunks?: number | undefined
  /** Read batching while streaming (see ReplicationOptions.readBatching). Default off. */
  readonly readBatching?: Duration.Input | undefined
  readonly hotStandbyFeedback?: (() => StandbyFeedback | undefined) | undefined
  /** Called when streaming moves to the next timeline (before the first chunk of the new one). */
  readonly onTimelineSwitch?: ((from: number, next: TimelineSwitch) => Effect.Effect<void, PgError>) | undefined
}

export interface PhysicalReplication {
  /** WAL chunks across timelines, with backpressure. */
  readonly chunks: Stream.Stream<PhysicalWal, PgError>
  /** The same as a pull (next non-empty batch, or Cause.Done). */
  readonly pull: Effect.Effect<Arr.NonEmptyReadonlyArray<PhysicalWal>, PgError | Cause.Done>
  /** Everything before `lsn` is durably stored (the flush position reported to the server). */
  readonly ack: (lsn: Lsn.Lsn) => Effect.Effect<void>
  /** The timeline being streamed now. */
  readonly timeline: () => number
  /** The current timeline's replication stream (status updates, positions). */
  readonly current: () => ReplicationStream
  /** Stops streaming (CopyDone) and waits for the server; the chunk stream ends. */
  readonly end: Effect.Effect<ReplicationOutcome, PgError>
}

/** Where streaming continues on the next timeline. */
export const nextStart = (
  next: TimelineSwitch,
  mode: "switchpoint" | "segmentStart",
  segmentSize: number = Lsn.DEFAULT_SEGMENT_SIZE
): Lsn.Lsn => (mode === "segmentStart" ? Lsn.segmentFloor(next.switchpoint, segmentSize) : next.switchpoint)

/** Opens physical streaming in the current Scope (see the module header). */
export const physicalReplication = (
  conn: ConnectionApi,
  options: PhysicalOptions
): Effect.Effect<PhysicalReplication, PgError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    let timeline = options.timeline ?? (yield* identifySystem(conn)).timeline
    let acked: Lsn.Lsn = options.startLsn
    let ended = false

    const open = (startLsn: Lsn.Lsn, tli: number) =>
      startReplication(conn, startPhysicalCommand({ slot: options.slot, startLsn, timeline: tli }), {
        mode: "physical",
        initialAck: acked,
        statusInterval: options.statusInterval,
        bufferChunks: options.bufferChunks,
        readBatching: options.readBatching,
        hotStandbyFeedback: options.hotStandbyFeedback
      }).pipe(Scope.provide(scope))

    let current = yield* open(options.startLsn, timeline)

    const toChunks = (batch: ReadonlyArray<import("./ReplicationStream.ts").ReplicationMessage>): Array<PhysicalWal> => {
      const out: Array<PhysicalWal> = []
      for (const m of batch) {
        if (m._tag !== "XLogData") continue
        out.push({
          timeline,
          walStart: m.walStart as Lsn.Lsn,
          walEnd: m.walEnd as Lsn.Lsn,
          serverTime: m.serverTime,
          data: m.data
        })
      }
      return out
    }

    /** The current timeline ended: follow to the next one, or end. */
    const afterEnd: Effect.Effect<boolean, PgError> = Effect.gen(function*() {
      const outcome = yield* current.outcome
      const next = outcome.nextTimeline
      if (ended || next === undefined || options.followTimelines === false) return false
      yield* options.onTimelineSwitch?.(timeline, next) ?? Effect.void
      timeline = next.timeline
      current = yield* open(nextStart(next, options.timelineStart ?? "switchpoint", options.segmentSize), timeline)
      return true
    })

    const pull: Effect.Effect<Arr.NonEmptyReadonlyArray<PhysicalWal>, PgError | Cause.Done> = Effect.suspend(
      function loop(): Effect.Effect<Arr.NonEmptyReadonlyArray<PhysicalWal>, PgError | Cause.Done> {
        return current.pull.pipe(
          Effect.flatMap((batch) => {
            const chunks = toChunks(batch)
            return chunks.length > 0 ? Effect.succeed(chunks as unknown as Arr.NonEmptyReadonlyArray<PhysicalWal>) : loop()
          }),
          Pull.catchDone(() => Effect.flatMap(afterEnd, (more) => (more ? loop() : Cause.done())))
        )
      }
    )

    const handle: PhysicalReplication = {
      chunks: Stream.fromPull(Effect.succeed(pull)),
      pull,
      ack: (lsn) =>
        Effect.suspend(() => {
          if (lsn > acked) acked = lsn
          return current.ack(lsn)
        }),
      timeline: () => timeline,
      current: () => current,
      end: Effect.suspend(() => {
        ended = true
        return current.end
      })
    }
    return handle
  })

/**
 * Physical WAL as a Stream: each batch is acknowledged when the consumer pulls the next one
 * (see the module header). Scoped to the stream: ending the stream ends streaming.
 */
export const streamPhysical = (conn: ConnectionApi, options: PhysicalOptions): Stream.Stream<PhysicalWal, PgError> =>
  Stream.unwrap(
    Effect.map(physicalReplication(conn, options), (replication) => {
      let handedOut: Lsn.Lsn | undefined
      const pull = Effect.suspend(() => {
        const ack = handedOut === undefined ? Effect.void : replication.ack(handedOut)
        return Effect.andThen(
          ack,
          Effect.tap(replication.pull, (batch) =>
            Effect.sync(() => {
              const last = batch[batch.length - 1]!
              handedOut = Lsn.add(last.walStart, last.data.length)
            }))
        )
      })
      return Stream.fromPull(Effect.succeed(pull))
    })
  )
