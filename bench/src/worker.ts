/**
 * One round of one contender, in its own process: `node bench/src/worker.ts <bench> <contender>`,
 * with the server and file locations in PGFX_BENCH_CONTEXT (JSON).
 *
 * Invariants:
 * - Prints exactly one result line (RESULT_PREFIX + JSON of a WorkerOutcome) and exits 0, or
 *   prints the error and exits 1. It exits explicitly: a client that keeps a handle open must not
 *   hold the run.
 * - Peak RSS is this process's `maxRSS` after the contender finished (its whole lifetime).
 */
import { benchmarks } from "./benchmarks/index.ts"
import { type BenchContext, RESULT_PREFIX, type WorkerOutcome } from "./harness.ts"

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
  return { _tag: "Sample", sample: { ...outcome.sample, peakRssBytes: process.resourceUsage().maxRSS * 1024 } }
}

main().then(
  (outcome) => {
    process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(outcome)}\n`, () => process.exit(0))
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`, () => process.exit(1))
  }
)
