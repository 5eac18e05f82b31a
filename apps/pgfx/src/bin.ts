#!/usr/bin/env node
/**
 * The `pgfx` executable (`npm start` runs it with no arguments: the main job).
 *
 * Invariants:
 * - Exit codes: 0 ok, 1 runtime error, 2 usage error, 130 interrupted one-shot command. Long-running
 *   commands (the main job, cdc, receivewal, trace) treat Ctrl-C/SIGTERM as their normal end: they shut
 *   down cleanly (finalizers run: positions saved, slots dropped, servers stopped) and exit 0.
 * - A failure prints one line on stderr (Errors.ts); a stack trace only with --verbose.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { CliConfig, CliError, Command } from "effect/cli"
import { builtIns, root, VERSION } from "./Cli.ts"
import { causeError, describeError, EXIT_INTERRUPTED, EXIT_USAGE, exitCodeOf } from "./Errors.ts"
import { interruptedNote, stopIsClean } from "./Shutdown.ts"

const verbose = process.argv.includes("--verbose")

const program = Command.run(root, { version: VERSION }).pipe(
  Effect.provide(NodeServices.layer),
  Effect.provide(CliConfig.layer({ builtIns }))
)

const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return 0
  if (Cause.hasInterruptsOnly(exit.cause)) {
    if (stopIsClean()) return 0
    process.stderr.write(`pgfx: ${interruptedNote()}\n`)
    return EXIT_INTERRUPTED
  }
  const error = causeError(exit.cause)
  // The CLI parser already printed its own errors, with the help text.
  if (CliError.isCliError(error)) return EXIT_USAGE
  process.stderr.write(`pgfx: ${describeError(error)}\n`)
  if (verbose) process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
  return exitCodeOf(error)
}

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    const code = exitCode(exit)
    onExit(code)
    // Nothing may keep the process alive after the command ended (a paused stdin, a stray socket).
    setTimeout(() => process.exit(code), 200).unref()
  }
})
