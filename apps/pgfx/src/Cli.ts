/**
 * The `pgfx` command tree.
 *
 * Invariants:
 * - `pgfx` with no subcommand runs the main job (the live demo on the embedded PostgreSQL 18).
 * - `-h` is the host (as in psql), so help is `--help` only; `--version` has no short form.
 * - `--verbose` is accepted by every command (stack traces on failure).
 */
import { Command, Flag, GlobalFlag } from "effect/cli"
import * as BaseBackup from "./commands/BaseBackup.ts"
import * as Bench from "./commands/Bench.ts"
import * as Cdc from "./commands/Cdc.ts"
import * as Copy from "./commands/Copy.ts"
import * as ReceiveWal from "./commands/ReceiveWal.ts"
import * as Trace from "./commands/Trace.ts"
import * as MainJob from "./MainJob.ts"

export const VERSION = "0.1.0"

export const root = MainJob.command.pipe(
  Command.withSharedFlags({
    verbose: Flag.Boolean("verbose").pipe(Flag.withDescription("print stack traces with errors"), Flag.withDefault(false))
  }),
  Command.withSubcommands([Copy.command, Cdc.command, ReceiveWal.command, BaseBackup.command, Trace.command, Bench.command])
)

/** The built-in global flags without short aliases that clash with psql's (-h host, -v). */
export const builtIns: ReadonlyArray<GlobalFlag.BuiltIn> = [
  GlobalFlag.Action({
    flag: Flag.Boolean("help").pipe(Flag.withDescription("Show help information"), Flag.withDefault(false)),
    run: GlobalFlag.Help.run
  }),
  GlobalFlag.Action({
    flag: Flag.Boolean("version").pipe(Flag.withDescription("Show version information"), Flag.withDefault(false)),
    run: GlobalFlag.Version.run
  })
]
