/**
 * `pgfx basebackup`: BASE_BACKUP into a directory (plain: the archives extracted, like
 * `pg_basebackup -F p`) or as tar files (`-F t`), with a progress bar and the backup manifest.
 *
 * Invariants:
 * - The target directory must be empty or missing (never overwrite a data directory).
 * - Plain format: the base archive is extracted into the directory, other tablespaces into
 *   `<directory>/pg_tblspc/<oid>` (not relocated), the manifest written as `backup_manifest`.
 *   Tar format: one file per archive as the server names it, and `backup_manifest`. Files are
 *   fsynced before the command reports success.
 * - A failure or Ctrl-C leaves an incomplete backup and says so (exit 1 / 130); the summary line names
 *   the start and end LSN and timeline on success.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { Command, Flag } from "effect/cli"
import * as Connection from "@pgfx/connection/Connection"
import { resolve as resolveConfig } from "@pgfx/connection/PgConfig"
import { baseBackup } from "@pgfx/replication/BaseBackup"
import * as Lsn from "@pgfx/replication/Lsn"
import { conninfoArgument, connectionFlags, toConfigInput } from "../ConnectionFlags.ts"
import { CliFailure, describeError, UsageError } from "../Errors.ts"
import { ioFailure } from "../Output.ts"
import { formatBytes, ProgressBar } from "../Progress.ts"
import { setInterruptedNote } from "../Shutdown.ts"
import { TarExtractor } from "../TarExtract.ts"

const flags = {
  directory: Flag.String("directory").pipe(Flag.withAlias("D"), Flag.withDescription("target directory (must be empty or missing)")),
  conninfo: conninfoArgument,
  ...connectionFlags,
  format: Flag.Literals("format", ["plain", "tar"] as const).pipe(Flag.withAlias("F"), Flag.withDescription("plain (extracted, default) or tar files"), Flag.withDefault("plain" as const)),
  wal: Flag.Boolean("wal").pipe(Flag.withDescription("include the WAL needed to start the backup (in pg_wal)"), Flag.withDefault(true)),
  checkpoint: Flag.Literals("checkpoint", ["fast", "spread"] as const).pipe(Flag.withDescription("checkpoint mode (default fast)"), Flag.withDefault("fast" as const)),
  maxRate: Flag.Int("max-rate").pipe(Flag.withAlias("r"), Flag.withDescription("throttle the server's sending to this many kB/s (32–1048576, like pg_basebackup -r)"), Flag.optional),
  label: Flag.String("label").pipe(Flag.withAlias("l"), Flag.withDescription("backup label"), Flag.withDefault("pgfx basebackup")),
  manifest: Flag.Boolean("manifest").pipe(Flag.withDescription("request a backup manifest (default on)"), Flag.withDefault(true)),
  quiet: Flag.Boolean("quiet").pipe(Flag.withAlias("q"), Flag.withDescription("no progress and no summary"), Flag.withDefault(false))
}

export const command = Command.make("basebackup", flags, (args) =>
  Effect.scoped(
    Effect.gen(function*() {
      const dir = Path.resolve(args.directory)
      const nonEmpty = Fs.existsSync(dir) && Fs.readdirSync(dir).length > 0
      if (nonEmpty) return yield* Effect.fail(new UsageError({ message: `directory ${args.directory} exists and is not empty` }))
      if (args.maxRate._tag === "Some" && (args.maxRate.value < 32 || args.maxRate.value > 1048576)) {
        return yield* Effect.fail(new UsageError({ message: `--max-rate ${args.maxRate.value} is out of range (32–1048576 kB/s)` }))
      }
      const config = yield* resolveConfig(toConfigInput(args.conninfo, args))
      const conn = yield* Connection.make({ ...config, replication: "true" })
      yield* Effect.try({ try: () => Fs.mkdirSync(dir, { recursive: true, mode: 0o700 }), catch: (e) => ioFailure(`cannot create ${dir}`, e) })
      setInterruptedNote(`interrupted: the backup in ${dir} is incomplete; delete it`)
      const progress = new ProgressBar({ quiet: args.quiet, label: "basebackup" })
      let extractor: TarExtractor | undefined
      let fd: number | undefined
      let current = ""
      let manifestFd: number | undefined
      const written: Array<string> = []
      let startLsn: Lsn.Lsn | undefined
      let endLsn: Lsn.Lsn | undefined
      let timeline = 0
      const closeArchive = () => {
        extractor?.end()
        extractor = undefined
        if (fd !== undefined) {
          Fs.fsyncSync(fd)
          Fs.closeSync(fd)
          fd = undefined
        }
      }
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const f of [fd, manifestFd]) if (f !== undefined) Fs.closeSync(f)
        })
      )
      const incomplete = (e: unknown) =>
        new CliFailure({ message: `${describeError(e)} — the backup in ${dir} is incomplete`, cause: e })
      yield* baseBackup(conn, {
        label: args.label,
        progress: true,
        checkpoint: args.checkpoint,
        wal: args.wal,
        manifest: args.manifest ? "yes" : "no",
        wait: false,
        ...(args.maxRate._tag === "Some" ? { maxRate: args.maxRate.value } : {})
      }).pipe(
        Stream.runForEach((e) =>
          Effect.try({
            try: () => {
              switch (e._tag) {
                case "Start": {
                  startLsn = e.startLsn
                  timeline = e.timeline
                  let kb = 0n
                  for (const t of e.tablespaces) kb += t.sizeKb ?? 0n
                  if (kb > 0n) progress.totalBytes = Number(kb) * 1024
                  break
                }
                case "Archive": {
                  closeArchive()
                  current = e.name
                  if (args.format === "tar") {
                    if (e.name.includes("/") || e.name.startsWith(".")) throw new Error(`unsafe archive name ${e.name}`)
                    fd = Fs.openSync(Path.join(dir, e.name), "w", 0o600)
                    written.push(e.name)
                  } else {
                    const oid = /^(\d+)\.tar$/.exec(e.name)?.[1]
                    extractor = new TarExtractor(oid === undefined ? dir : Path.join(dir, "pg_tblspc", oid))
                    written.push(oid === undefined ? "base" : `pg_tblspc/${oid}`)
                  }
                  break
                }
                case "ArchiveData":
                  if (extractor !== undefined) extractor.push(e.data)
                  else if (fd !== undefined) Fs.writeSync(fd, e.data)
                  progress.update(0, e.data.length)
                  break
                case "Progress":
                  break
                case "Manifest":
                  closeArchive()
                  current = "backup_manifest"
                  manifestFd = Fs.openSync(Path.join(dir, "backup_manifest"), "w", 0o600)
                  break
                case "ManifestData":
                  Fs.writeSync(manifestFd!, e.data)
                  break
                case "End":
                  endLsn = e.endLsn
                  timeline = e.timeline
                  break
              }
            },
            catch: (cause) => ioFailure(`cannot write ${current === "" ? dir : current}`, cause)
          })
        ),
        Effect.mapError(incomplete)
      )
      yield* Effect.try({
        try: () => {
          closeArchive()
          if (manifestFd !== undefined) {
            Fs.fsyncSync(manifestFd)
            Fs.closeSync(manifestFd)
            manifestFd = undefined
          }
        },
        catch: (e) => ioFailure(`cannot finish ${dir}`, e)
      })
      progress.done()
      if (startLsn === undefined || endLsn === undefined) {
        return yield* Effect.fail(new CliFailure({ message: "the server ended BASE_BACKUP without its start and end positions; the backup is incomplete" }))
      }
      if (!args.quiet) {
        process.stderr.write(
          `pgfx basebackup: ${args.format} backup of ${formatBytes(progress.bytes)} in ${dir} (${written.join(", ")}${args.manifest ? ", backup_manifest" : ""}); ` +
            `start ${Lsn.format(startLsn)}, end ${Lsn.format(endLsn)}, timeline ${timeline}\n`
        )
      }
    })
  )).pipe(
    Command.withDescription("Take a base backup with BASE_BACKUP: extracted into a directory (plain) or as tar files, with a progress bar and the backup manifest."),
    Command.withExamples([
      { command: "pgfx basebackup -D backup/ -h db -U repl", description: "a plain backup (a startable data directory)" },
      { command: "pgfx basebackup -D backup/ -F tar 'host=db user=repl'", description: "base.tar, <oid>.tar and backup_manifest" }
    ])
  )

