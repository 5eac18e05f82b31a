/**
 * `pgfx bench`: runs the benchmark suite (`bench/src/main.ts`) in a child process with the repo's Node
 * and passes its output (the comparison tables) through.
 *
 * Invariants: the child's exit code is ours (a failing suite is exit 1); Ctrl-C reaches the child
 * (same process group) and its own cleanup stops its server.
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Argument, Command, Flag } from "effect/cli"
import { CliFailure } from "../Errors.ts"

const REPO = Path.resolve(import.meta.dirname, "../../../..")

export const command = Command.make(
  "bench",
  {
    names: Argument.String("benchmark").pipe(
      Argument.withDescription("benchmarks to run: codec, B1, B2, B3 (default: all)"),
      Argument.variadic()
    ),
    rounds: Flag.Int("rounds").pipe(Flag.withDescription("rounds per contender"), Flag.optional),
    only: Flag.String("only").pipe(Flag.withDescription("only contenders whose id or label matches this regex"), Flag.optional),
    pin: Flag.Literals("pin", ["on", "off", "both"] as const).pipe(
      Flag.withDescription("pin the server to core 0 and clients to core 1"),
      Flag.optional
    )
  },
  (args) =>
    Effect.callback<void, CliFailure>((resume) => {
      const argv = [Path.join(REPO, "bench/src/main.ts"), ...args.names]
      if (Option.isSome(args.rounds)) argv.push("--rounds", String(args.rounds.value))
      if (Option.isSome(args.only)) argv.push("--only", args.only.value)
      if (Option.isSome(args.pin)) argv.push(`--pin=${args.pin.value}`)
      const child = ChildProcess.spawn(process.execPath, argv, { stdio: "inherit", cwd: REPO })
      child.on("error", (e) => resume(Effect.fail(new CliFailure({ message: `cannot start the benchmarks: ${e.message}`, cause: e }))))
      child.on("exit", (code, signal) => {
        if (code === 0) resume(Effect.void)
        else resume(Effect.fail(new CliFailure({ message: `the benchmark suite failed (${signal ?? `exit ${code}`})` })))
      })
      return Effect.sync(() => {
        if (child.exitCode === null) child.kill("SIGINT")
      })
    })
).pipe(
  Command.withDescription("Run the benchmark suite (pgfx against node-postgres, postgres.js, @effect/sql-pg and libpq) and print the comparison tables."),
  Command.withExamples([
    { command: "pgfx bench", description: "every benchmark (about 10 minutes)" },
    { command: "pgfx bench B2 --rounds 3", description: "one benchmark, 3 rounds" },
    { command: "pgfx bench codec --only pgfx", description: "only pgfx's contenders" }
  ])
)
