/**
 * A WAL receiver: physical streaming written to WAL segment files, like pg_receivewal.
 *
 * Invariants:
 * - Files are named as the server names them (`TTTTTTTTXXXXXXXXYYYYYYYY`, Lsn.walFileName) and carry
 *   the `.partial` suffix while incomplete. A segment is complete when its last byte is written; it is
 *   then fsynced, renamed to its final name, and the directory is fsynced — so a final name always
 *   holds a whole, durable segment, byte-identical to the server's.
 * - Streaming always starts at a segment boundary, so every file is written from byte 0: resuming
 *   starts at the segment after the newest complete one in the directory (on its timeline); with no
 *   complete segment, at the slot's restart_lsn (READ_REPLICATION_SLOT), else `startLsn`, else the
 *   server's current position — each rounded down to its segment start. A leftover `.partial` is
 *   rewritten from its start.
 * - The server is told a position is flushed (the slot may release WAL) only once the segment that
 *   ends there is complete and fsynced: acknowledgements move one segment at a time.
 * - At the end of a historic timeline the partial segment of the old timeline stays `.partial` (as
 *   the server itself keeps it), the next timeline's history file is written, and streaming goes on
 *   from the start of the switchpoint's segment on the new timeline.
 * - File system failures are WalReceiverError (reason "FileSystem"); the stream stops at the first.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Duration from "effect/Duration"
import type { ConnectionApi } from "@pgfx/connection/Connection"
import type { PgError } from "@pgfx/connection/PgError"
import { identifySystem, readReplicationSlot, timelineHistory, walSegmentSize } from "./Commands.ts"
import * as Lsn from "./Lsn.ts"
import { type PhysicalWal, physicalReplication } from "./Physical.ts"

export class WalReceiverError extends Schema.TaggedError<WalReceiverError>()("WalReceiverError", {
  reason: Schema.Literals(["FileSystem", "Discontinuity"]),
  message: Schema.String,
  path: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Unknown)
}) {}

export interface WalReceiverOptions {
  readonly directory: string
  readonly slot?: string | undefined
  /** Where to start when the directory holds no complete segment and the slot has no restart_lsn. */
  readonly startLsn?: Lsn.Lsn | undefined
  /** Default: the newest complete segment's timeline, else the slot's, else the server's current one. */
  readonly timeline?: number | undefined
  /** Default: the server's wal_segment_size. */
  readonly segmentSize?: number | undefined
  readonly statusInterval?: Duration.Input | undefined
  readonly bufferChunks?: number | undefined
}

export type WalReceiverEvent =
  | {
    readonly _tag: "Started"
    readonly timeline: number
    readonly startLsn: Lsn.Lsn
    readonly reason: "resume" | "slot" | "startLsn" | "server"
  }
  | {
    readonly _tag: "SegmentCompleted"
    readonly timeline: number
    readonly segno: bigint
    readonly fileName: string
    /** The first position after the segment: what was acknowledged. */
    readonly end: Lsn.Lsn
  }
  | { readonly _tag: "TimelineSwitched"; readonly from: number; readonly timeline: number; readonly switchpoint: Lsn.Lsn }

/** The newest complete segment in `directory` (by timeline, then segment number), if any. */
export const newestCompleteSegment = (
  directory: string,
  segmentSize: number = Lsn.DEFAULT_SEGMENT_SIZE
): Option.Option<{ readonly timeline: number; readonly segno: bigint }> => {
  let best: { timeline: number; segno: bigint } | undefined
  let names: Array<string>
  try {
    names = Fs.readdirSync(directory)
  } catch {
    return Option.none()
  }
  for (const name of names) {
    const parsed = Lsn.parseWalFileName(name, segmentSize)
    if (Option.isNone(parsed)) continue
    const p = parsed.value
    if (best === undefined || p.timeline > best.timeline || (p.timeline === best.timeline && p.segno > best.segno)) best = p
  }
  return best === undefined ? Option.none() : Option.some(best)
}

const fsError = (what: string, path: string) => (cause: unknown) =>
  new WalReceiverError({
    reason: "FileSystem",
    message: `${what} ${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
    path,
    cause
  })

const fsyncDirectory = (directory: string): void => {
  const fd = Fs.openSync(directory, "r")
  try {
    Fs.fsyncSync(fd)
  } finally {
    Fs.closeSync(fd)
  }
}

/** The segment being written. */
interface OpenSegment {
  readonly timeline: number
  readonly segno: bigint
  readonly fd: number
  readonly partialPath: string
  readonly finalPath: string
}

/**
 * Receives WAL into `options.directory` until the stream is ended (interrupt it, or take what you
 * need from it) or the server ends replication. Emits an event per completed segment.
 */
export const walReceiver = (
  conn: ConnectionApi,
  options: WalReceiverOptions
): Stream.Stream<WalReceiverEvent, PgError | WalReceiverError> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const dir = options.directory
      yield* Effect.try({ try: () => Fs.mkdirSync(dir, { recursive: true }), catch: fsError("cannot create", dir) })
      const segmentSize = options.segmentSize ?? (yield* walSegmentSize(conn))
      const resume = newestCompleteSegment(dir, segmentSize)

      let timeline: number
      let startLsn: Lsn.Lsn
      let reason: "resume" | "slot" | "startLsn" | "server"
      const slotInfo = options.slot === undefined || Option.isSome(resume)
        ? Option.none()
        : yield* readReplicationSlot(conn, options.slot)
      if (Option.isSome(resume)) {
        timeline = options.timeline ?? resume.value.timeline
        startLsn = Lsn.segmentStart(resume.value.segno + 1n, segmentSize)
        reason = "resume"
      } else if (Option.isSome(slotInfo) && slotInfo.value.restartLsn !== undefined) {
        timeline = options.timeline ?? slotInfo.value.restartTimeline ?? (yield* identifySystem(conn)).timeline
        startLsn = Lsn.segmentFloor(slotInfo.value.restartLsn, segmentSize)
        reason = "slot"
      } else {
        const id = yield* identifySystem(conn)
        timeline = options.timeline ?? id.timeline
        startLsn = Lsn.segmentFloor(options.startLsn ?? id.xlogPos, segmentSize)
        reason = options.startLsn === undefined ? "server" : "startLsn"
      }

      const switches: Array<WalReceiverEvent> = []
      let failure: WalReceiverError | undefined
      const replication = yield* physicalReplication(conn, {
        slot: options.slot,
        startLsn,
        timeline,
        timelineStart: "segmentStart",
        segmentSize,
        statusInterval: options.statusInterval,
        bufferChunks: options.bufferChunks,
        onTimelineSwitch: (from, next) =>
          Effect.gen(function*() {
            // The old timeline's last segment stays .partial; the new timeline's history file is kept.
            try {
              closeCurrent(false)
            } catch (e) {
              failure = fsError("cannot close", dir)(e)
            }
            const history = yield* timelineHistory(conn, next.timeline)
            const path = Path.join(dir, history.fileName)
            try {
              Fs.writeFileSync(path, history.content)
              const fd = Fs.openSync(path, "r")
              Fs.fsyncSync(fd)
              Fs.closeSync(fd)
            } catch (e) {
              // Reported by the next batch (this callback may only fail with the server's errors).
              failure = fsError("cannot write", path)(e)
            }
            switches.push({ _tag: "TimelineSwitched", from, timeline: next.timeline, switchpoint: next.switchpoint })
          })
      })

      let current: OpenSegment | undefined
      /** Where the next byte must go (streaming is contiguous within a timeline). */
      let expected: Lsn.Lsn | undefined = startLsn

      const closeCurrent = (complete: boolean): void => {
        const seg = current
        if (seg === undefined) return
        current = undefined
        Fs.fsyncSync(seg.fd)
        Fs.closeSync(seg.fd)
        if (complete) {
          Fs.renameSync(seg.partialPath, seg.finalPath)
          fsyncDirectory(dir)
        }
      }

      const openSegment = (tli: number, segno: bigint): OpenSegment => {
        const name = Lsn.walFileName(tli, segno, segmentSize)
        const partialPath = Path.join(dir, `${name}.partial`)
        // Written from byte 0: a leftover partial is replaced.
        const fd = Fs.openSync(partialPath, "w")
        return { timeline: tli, segno, fd, partialPath, finalPath: Path.join(dir, name) }
      }

      /** Writes one batch; returns the segments it completed. */
      const writeBatch = (batch: ReadonlyArray<PhysicalWal>): Array<WalReceiverEvent> => {
        if (failure !== undefined) throw failure
        const events: Array<WalReceiverEvent> = switches.splice(0)
        for (const chunk of batch) {
          if (current !== undefined && current.timeline !== chunk.timeline) closeCurrent(false)
          if (expected !== undefined && chunk.walStart !== expected && current !== undefined) {
            throw new WalReceiverError({
              reason: "Discontinuity",
              message: `WAL chunk at ${Lsn.format(chunk.walStart)} does not follow ${Lsn.format(expected)}`
            })
          }
          let pos = chunk.walStart
          let offset = 0
          const data = chunk.data
          while (offset < data.length) {
            const segno = Lsn.segmentNumber(pos, segmentSize)
            const inSegment = Lsn.segmentOffset(pos, segmentSize)
            if (current === undefined || current.segno !== segno) {
              closeCurrent(false)
              if (inSegment !== 0) {
                throw new WalReceiverError({
                  reason: "Discontinuity",
                  message: `WAL for segment ${Lsn.walFileName(chunk.timeline, segno, segmentSize)} starts at offset ${inSegment}, not 0`
                })
              }
              current = openSegment(chunk.timeline, segno)
            }
            const n = Math.min(data.length - offset, segmentSize - inSegment)
            let written = 0
            while (written < n) {
              written += Fs.writeSync(current.fd, data, offset + written, n - written, inSegment + written)
            }
            offset += n
            pos = Lsn.add(pos, n)
            if (inSegment + n === segmentSize) {
              const done = current
              closeCurrent(true)
              events.push({
                _tag: "SegmentCompleted",
                timeline: done.timeline,
                segno: done.segno,
                fileName: Path.basename(done.finalPath),
                end: pos
              })
            }
          }
          expected = pos
        }
        return events
      }

      const started: WalReceiverEvent = { _tag: "Started", timeline, startLsn, reason }
      const segments = Stream.fromPull(Effect.succeed(
        Effect.flatMap(replication.pull, (batch) =>
          Effect.try({
            try: () => writeBatch(batch),
            catch: (e) => (e instanceof WalReceiverError ? e : fsError("cannot write WAL in", dir)(e))
          }).pipe(
            Effect.tap((events) => {
              // Acknowledge only what is complete and fsynced.
              let end: Lsn.Lsn | undefined
              for (const e of events) if (e._tag === "SegmentCompleted") end = e.end
              return end === undefined ? Effect.void : replication.ack(end)
            }),
            Effect.map((events) => [events] as const)
          ))
      )).pipe(Stream.flattenIterable)
      yield* Effect.addFinalizer(() => Effect.sync(() => {
        try {
          closeCurrent(false)
        } catch {
          // the partial file is rewritten on the next start anyway
        }
      }))
      return Stream.concat(Stream.make(started), segments)
    })
  )
