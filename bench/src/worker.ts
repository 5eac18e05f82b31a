/**
 * One round of one contender, in its own process: `node bench/src/worker.ts <bench> <contender>`,
 * with the server and file locations in PGFX_BENCH_CONTEXT (JSON).
 *
 * Invariants:
 * - Prints exactly one result line (RESULT_PREFIX + JSON of a WorkerOutcome) and exits 0, or
 *   prints the error and exits 1. It exits explicitly: a client that keeps a handle open must not
 *   hold the run.
 * - Peak RSS is this process's VmHWM from /proc/self/status after the contender finished (its
 *   whole lifetime). Not `resourceUsage().maxRSS`: Linux carries the parent's peak over fork and
 *   exec into it, so a worker started by a big harness process would report the harness's peak.
 */
import * as Fs from "node:fs"
import { benchmarks } from "./benchmarks/index.ts"
import { type BenchContext, RESULT_PREFIX, type WorkerOutcome } from "./harness.ts"

/** Peak resident set size of this process since the timed section started (startTimer resets the mark), in bytes. */
const peakRssBytes = (): number => {
  const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(Fs.readFileSync("/proc/self/status", "utf8"))
  if (hwm === null) throw new Error("no VmHWM in /proc/self/status")
  return Number(hwm[1]) * 1024
}

const main = async (): Promise<WorkerOutcome> => {
  const [benchName, contenderId] = process.argv.slice(2)
  const load = benchName === undefined ? undefined : benchmarks[benchName]
  if (load === undefined) throw new Error(`unknown benchmark ${benchName}`)
  const bench = await load()
  const contender = bench.contenders.find((c) => c.id === contenderId)
  if (contender === undefined) throw new Error(`benchmark ${benchName} has no contender ${contenderId}`)
  const ctx = JSON.parse(process.env["PGFX_BENCH_CONTEXT"] ?? "null") as BenchContext | null
  if (ctx === null) throw new Error("PGFX_BENCH_CONTEXT is not set (run the benchmarks with `npm run bench`)")
  const outcome = await contender.run(ctx)
  if (outcome._tag !== "Sample" || contender.subprocess === true) return outcome
  return { _tag: "Sample", sample: { ...outcome.sample, peakRssBytes: peakRssBytes() } }
}

main().then(
  (outcome) => {
    process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(outcome)}\n`, () => process.exit(0))
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`, () => process.exit(1))
  }
)
