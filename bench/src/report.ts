/**
 * `node bench/src/report.ts [bench/results/<file>.json]`: renders a results file again (the newest
 * when none is named) — text tables and the markdown for bench/README.md — re-summarising its
 * samples with the current benchmark definitions and goals.
 *
 * Invariants:
 * - Only the samples and problems stored in the file are used; nothing is measured or invented here.
 *   A contender no longer defined keeps its stored summary; a goal's contender missing from the
 *   file is "not measured".
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { benchmarks } from "./benchmarks/index.ts"
import { type BenchmarkResult, evaluateGoals, formatMarkdown, formatText, summarize } from "./harness.ts"

const resultsDir = Path.resolve(import.meta.dirname, "..", "results")
const file = process.argv[2] ?? Path.join(resultsDir, Fs.readdirSync(resultsDir).filter((f) => f.endsWith(".json")).sort().at(-1) ?? "")
const stored = JSON.parse(Fs.readFileSync(file, "utf8")) as { readonly results: ReadonlyArray<BenchmarkResult> }

const results: Array<BenchmarkResult> = []
for (const result of stored.results) {
  const load = benchmarks[result.name]
  if (load === undefined) {
    results.push(result)
    continue
  }
  const bench = await load()
  const contenders = result.contenders.map((stored) => {
    const contender = bench.contenders.find((c) => c.id === stored.id)
    return contender === undefined ? stored : summarize(contender, stored.samples, stored.problems)
  })
  results.push({ ...result, unitPlural: bench.unitPlural, contenders, goals: evaluateGoals(bench.goals, contenders) })
}
console.log(results.map(formatText).join("\n\n"))
console.log(`\nmarkdown for bench/README.md (${Path.basename(file)}):\n`)
console.log(results.map(formatMarkdown).join("\n\n"))
