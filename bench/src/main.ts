/**
 * `npm run bench [-- name… --rounds N --pin[=on|off|both] --only REGEX]`: one command, one run.
 *
 * Invariants:
 * - Starts its own PostgreSQL 18 (fsync=off, synchronous_commit=off, shared_buffers=256MB) and
 *   always stops it, also on failure; every contender of every benchmark measures against it.
 * - With pinning, the server (postmaster and every process it has started) is moved to core 0
 *   and workers run on core 1; backends forked later inherit the postmaster's affinity. Without
 *   pinning both may use every core. `--pin=both` runs everything twice, pinned first.
 * - Everything reported is measured in this run; results go to stdout (a table per benchmark,
 *   then markdown for bench/README.md) and to bench/results/<timestamp>.json with every sample.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { startTestServer, type TestServer } from "@pgfx/testing/TestServer"
import { benchmarkNames, benchmarks, findBenchmark } from "./benchmarks/index.ts"
import {
  type BenchContext,
  type BenchmarkResult,
  evaluateGoals,
  formatMarkdown,
  formatText,
  runWorker,
  type Sample,
  si,
  summarize,
  useWorker
} from "./harness.ts"
import { bundleWorker } from "./bundle.ts"

const BENCH_DIR = Path.resolve(import.meta.dirname, "..")
const PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"

interface Args {
  readonly names: ReadonlyArray<string>
  readonly rounds: number | undefined
  readonly pin: ReadonlyArray<boolean>
  readonly only: RegExp | undefined
}

const usage = `usage: npm run bench -- [${benchmarkNames.join("|")}…] [--rounds N] [--pin[=on|off|both]] [--only REGEX]`

const parseArgs = (argv: ReadonlyArray<string>): Args => {
  const names: Array<string> = []
  let rounds: number | undefined
  let pin: ReadonlyArray<boolean> = [false]
  let only: RegExp | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [flag, inline] = arg.startsWith("--") ? (arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined]) : [undefined, undefined]
    const value = () => inline ?? argv[++i] ?? ""
    if (flag === undefined) {
      const name = findBenchmark(arg)
      if (name === undefined) throw new Error(`unknown benchmark ${arg}\n${usage}`)
      names.push(name)
    } else if (flag === "--rounds") {
      rounds = Number(value())
      if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds needs a positive integer\n${usage}`)
    } else if (flag === "--pin") {
      const mode = inline ?? "on"
      if (mode === "on" || mode === "true") pin = [true]
      else if (mode === "off" || mode === "false") pin = [false]
      else if (mode === "both") pin = [true, false]
      else throw new Error(`--pin takes on, off or both\n${usage}`)
    } else if (flag === "--only") {
      only = new RegExp(value(), "i")
    } else if (flag === "--help" || flag === "-h") {
      console.log(usage)
      process.exit(0)
    } else throw new Error(`unknown option ${arg}\n${usage}`)
  }
  return { names: names.length === 0 ? benchmarkNames : names, rounds, pin, only }
}

/** The postmaster and every process it started (backends started later inherit its affinity). */
const serverPids = (dataDir: string): Array<number> => {
  const postmaster = Number(Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])
  const pids = [postmaster]
  for (const entry of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === postmaster) pids.push(Number(entry))
    } catch {
      // The process ended while we looked.
    }
  }
  return pids
}

const setServerAffinity = (server: TestServer, cores: string) => {
  for (const pid of serverPids(server.info.dataDir)) {
    ChildProcess.execFileSync("taskset", ["-a", "-p", "-c", cores, String(pid)], { stdio: "ignore" })
  }
}

const serverVersion = (server: TestServer): string => {
  try {
    return ChildProcess.execFileSync(Path.join(server.info.binDir, "postgres"), ["--version"], { encoding: "utf8" }).trim()
  } catch {
    return "PostgreSQL 18"
  }
}

const stamp = () => new Date().toISOString().replace(/\..*$/, "").replace(/:/g, "-")

const main = async () => {
  const args = parseArgs(process.argv.slice(2))
  const cores = Os.cpus().length
  if (args.pin.includes(true) && cores < 2) throw new Error("--pin needs at least 2 cores")
  console.log(`pgfx benchmarks: ${args.names.join(", ")}; ${cores} cores (${Os.cpus()[0]?.model ?? "?"}), node ${process.version}`)
  if (process.env["PGFX_BENCH_UNBUNDLED"] !== "1") {
    useWorker(await bundleWorker())
    console.log("workers run the bundled JavaScript in bench/.build (PGFX_BENCH_UNBUNDLED=1 runs the TypeScript sources)")
  }
  const server = await startTestServer({
    version: 18,
    extraConf: { fsync: "off", synchronous_commit: "off", shared_buffers: "256MB", full_page_writes: "off" }
  })
  const scratchDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgfx-bench-"))
  const results: Array<BenchmarkResult> = []
  try {
    const version = serverVersion(server)
    console.log(`server: ${version} on 127.0.0.1:${server.info.port} (socket ${server.info.socketDir})`)
    const base: Omit<BenchContext, "pinned"> = {
      host: "127.0.0.1",
      port: server.info.port,
      socketDir: server.info.socketDir,
      user: server.info.superuser,
      database: server.info.database,
      cacheDir: Path.join(BENCH_DIR, ".cache"),
      scratchDir,
      pgbench: PGBENCH
    }
    const prepared = new Set<string>()
    for (const pinned of args.pin) {
      setServerAffinity(server, pinned ? "0" : Array.from({ length: cores }, (_, i) => i).join(","))
      const ctx: BenchContext = { ...base, pinned }
      for (const name of args.names) {
        const bench = await benchmarks[name]!()
        if (bench.prepare !== undefined && !prepared.has(name)) {
          await bench.prepare(ctx)
          prepared.add(name)
        }
        const contenders = bench.contenders.filter((c) => args.only === undefined || args.only.test(c.id) || args.only.test(c.label))
        const rounds = args.rounds ?? bench.defaultRounds
        const loadBefore = Os.loadavg()[0]!
        const samples = new Map<string, Array<Sample>>(contenders.map((c) => [c.id, []]))
        const problems = new Map<string, Array<string>>(contenders.map((c) => [c.id, []]))
        const retired = new Set<string>()
        for (let round = 1; round <= rounds; round++) {
          for (const c of contenders) {
            if (retired.has(c.id)) continue
            const outcome = await runWorker(name, c.id, ctx)
            const where = `${name}${pinned ? " (pinned)" : ""} round ${round}/${rounds} ${c.id}`
            if (outcome._tag === "Sample") {
              samples.get(c.id)!.push(outcome.sample)
              const s = outcome.sample
              console.error(`${where}: ${si(s.ops / s.seconds)} ${bench.unitPlural}/s, ${(s.cpuUs / s.ops).toFixed(2)} µs CPU/${bench.unit}`)
            } else {
              // A skip or a failure repeats every round; report it once and move on.
              retired.add(c.id)
              const reason = outcome._tag === "Skipped" ? `skipped: ${outcome.reason}` : `failed: ${outcome.reason}`
              problems.get(c.id)!.push(reason)
              console.error(`${where}: ${reason}`)
            }
          }
        }
        const summaries = contenders.map((c) => summarize(c, samples.get(c.id)!, problems.get(c.id)!))
        const result: BenchmarkResult = {
          name,
          title: bench.title,
          unit: bench.unit,
          unitPlural: bench.unitPlural,
          pinned,
          rounds,
          loadAverage: [loadBefore, Os.loadavg()[0]!],
          contenders: summaries,
          goals: evaluateGoals(bench.goals, summaries)
        }
        results.push(result)
        console.log(`\n${formatText(result)}\n`)
      }
    }
    const file = Path.join(BENCH_DIR, "results", `${stamp()}.json`)
    Fs.mkdirSync(Path.dirname(file), { recursive: true })
    Fs.writeFileSync(
      file,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          machine: { cores, cpu: Os.cpus()[0]?.model, os: `${Os.type()} ${Os.release()}`, node: process.version, server: version },
          args: process.argv.slice(2),
          results
        },
        null,
        2
      )
    )
    console.log(`results written to ${Path.relative(process.cwd(), file)}\n\nmarkdown for bench/README.md:\n`)
    console.log(results.map(formatMarkdown).join("\n\n"))
  } finally {
    Fs.rmSync(scratchDir, { recursive: true, force: true })
    await server.stop()
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e)
  process.exitCode = 1
})
