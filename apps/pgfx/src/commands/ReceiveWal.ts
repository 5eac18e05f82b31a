/**
 * `pgfx receivewal`: physical WAL streaming into segment files, like pg_receivewal.
 *
 * Invariants (WalReceiver.ts does the work):
 * - Files carry the server's names; an incomplete segment is `<name>.partial`; a final name always holds a
 *   whole, fsynced segment byte-identical to the server's. The slot (if any) is acknowledged only up to
 *   complete segments, so the server keeps everything not yet safely on disk.
 * - Resumable: a rerun continues after the newest complete segment in the directory.
 * - `--create-slot` creates the physical slot if it is missing (RESERVE_WAL); a slot active elsewhere is
 *   an error at once. Ctrl-C (or `--duration`) ends cleanly with exit 0.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { Argument, Command, Flag } from "effect/cli"
import * as Connection from "@pgfx/connection/Connection"
import { resolve as resolveConfig } from "@pgfx/connection/PgConfig"
import * as Commands from "@pgfx/replication/Commands"
import * as Lsn from "@pgfx/replication/Lsn"
import { walReceiver } from "@pgfx/replication/WalReceiver"
import { connectionFlags, toConfigInput } from "../ConnectionFlags.ts"
import { parseDurationMs } from "../Duration.ts"
import { CliFailure, UsageError } from "../Errors.ts"
import { markStopIsClean } from "../Shutdown.ts"

const flags = {
  directory: Flag.String("directory").pipe(Flag.withAlias("D"), Flag.withDescription("directory for the WAL segment files (created if missing)")),
  conninfo: Argument.String("conninfo").pipe(Argument.withDescription("a postgresql:// URI, keyword/value string or database name"), Argument.optional),
  ...connectionFlags,
  slot: Flag.String("slot").pipe(Flag.withAlias("S"), Flag.withDescription("physical replication slot to stream from"), Flag.optional),
  createSlot: Flag.Boolean("create-slot").pipe(Flag.withDescription("create the slot if it does not exist (RESERVE_WAL)"), Flag.withDefault(false)),
  startLsn: Flag.String("start-lsn").pipe(Flag.withDescription("start here when the directory and the slot give no position (X/X)"), Flag.optional),
  duration: Flag.String("duration").pipe(Flag.withDescription("stop after this long (default: until Ctrl-C)"), Flag.optional),
  quiet: Flag.Boolean("quiet").pipe(Flag.withAlias("q"), Flag.withDescription("no status lines on stderr"), Flag.withDefault(false))
}

export const command = Command.make("receivewal", flags, (args) =>
  Effect.scoped(
    Effect.gen(function*() {
      markStopIsClean()
      const info = (s: string) => (args.quiet ? Effect.void : Effect.sync(() => process.stderr.write(`pgfx receivewal: ${s}\n`)))
      let durationMs: number | undefined
      if (Option.isSome(args.duration)) {
        durationMs = parseDurationMs(args.duration.value)
        if (durationMs === undefined) return yield* Effect.fail(new UsageError({ message: `--duration: cannot read "${args.duration.value}"` }))
      }
      let startLsn: Lsn.Lsn | undefined
      if (Option.isSome(args.startLsn)) {
        const parsed = Lsn.fromString(args.startLsn.value)
        if (Option.isNone(parsed)) return yield* Effect.fail(new UsageError({ message: `--start-lsn: "${args.startLsn.value}" is not an LSN (X/X)` }))
        startLsn = parsed.value
      }
      if (args.createSlot && Option.isNone(args.slot)) return yield* Effect.fail(new UsageError({ message: "--create-slot needs --slot" }))
      const config = yield* resolveConfig(toConfigInput(args.conninfo, args))
      const conn = yield* Connection.make({ ...config, replication: "true" })
      const slot = Option.getOrUndefined(args.slot)
      if (slot !== undefined) {
        const existing = yield* Commands.readReplicationSlot(conn, slot)
        if (Option.isNone(existing)) {
          if (!args.createSlot) return yield* Effect.fail(new CliFailure({ message: `replication slot ${slot} does not exist (use --create-slot)` }))
          yield* Commands.createReplicationSlot(conn, slot, Commands.physical, { reserveWal: true })
          yield* info(`created physical slot ${slot}`)
        }
      }
      let segments = 0
      const stream = walReceiver(conn, { directory: args.directory, slot, startLsn, statusInterval: Duration.seconds(5) }).pipe(
        Stream.runForEach((e) => {
          switch (e._tag) {
            case "Started":
              return info(`streaming timeline ${e.timeline} from ${Lsn.format(e.startLsn)} (${e.reason}) into ${args.directory}`)
            case "SegmentCompleted":
              segments++
              return info(`segment ${e.fileName} complete (acknowledged ${Lsn.format(e.end)})`)
            case "TimelineSwitched":
              return info(`timeline ${e.from} ended at ${Lsn.format(e.switchpoint)}; following timeline ${e.timeline}`)
          }
        })
      )
      yield* Effect.addFinalizer(() => info(`stopped after ${segments} complete segment(s)`))
      if (durationMs === undefined) yield* stream
      else yield* Effect.raceFirst(stream, Effect.sleep(Duration.millis(durationMs)))
    })
  )).pipe(
    Command.withDescription("Stream the server's WAL into segment files (like pg_receivewal): a slot keeps the server from recycling what is not yet safe here; reruns resume."),
    Command.withExamples([
      { command: "pgfx receivewal -D wal/ -h db -U repl --slot archiver --create-slot", description: "archive WAL through a slot until Ctrl-C" },
      { command: "pgfx receivewal -D wal/ 'host=db user=repl' --duration 1h", description: "one hour, then stop cleanly" }
    ])
  )
