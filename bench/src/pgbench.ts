/**
 * pgbench (libpq, C) as a contender: runs Debian's PostgreSQL 15 pgbench against the benchmark
 * server over TCP loopback and reads its own report.
 *
 * Invariants:
 * - Throughput is pgbench's "tps … (without initial connection time)" times the queries per
 *   transaction of the script, so connection setup is excluded as it is for the Node contenders.
 * - CPU is pgbench's own user + system time: the worker's `/proc/self/stat` cutime + cstime
 *   (children that were waited for) before and after, in clock ticks (10 ms resolution).
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { type BenchContext, skipped, type WorkerOutcome } from "./harness.ts"

const CLOCK_TICKS_PER_SECOND = 100

/** User + system CPU of this process's waited-for children, in microseconds. */
const childrenCpuUs = (): number => {
  const stat = Fs.readFileSync("/proc/self/stat", "utf8")
  // Fields after the parenthesised command name; cutime and cstime are fields 16 and 17.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return ((Number(fields[13]) + Number(fields[14])) * 1e6) / CLOCK_TICKS_PER_SECOND
}

export interface PgbenchRun {
  readonly name: string
  readonly script: string
  readonly transactions: number
  readonly queriesPerTransaction: number
  readonly protocol: "simple" | "extended" | "prepared"
}

export const runPgbench = async (ctx: BenchContext, run: PgbenchRun): Promise<WorkerOutcome> => {
  if (!Fs.existsSync(ctx.pgbench)) return skipped(`${ctx.pgbench} not found (apt-get install postgresql-client-15)`)
  const script = Path.join(ctx.scratchDir, `${run.name}.sql`)
  Fs.writeFileSync(script, run.script)
  const cpu0 = childrenCpuUs()
  const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = ChildProcess.spawn(
      ctx.pgbench,
      ["-n", "-f", script, "-t", String(run.transactions), "-c", "1", "-M", run.protocol,
        "-h", ctx.host, "-p", String(ctx.port), "-U", ctx.user, ctx.database],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PGSSLMODE: "disable" } }
    )
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr.on("data", (d: Buffer) => (output += d.toString()))
    child.on("close", (code) => resolve({ code, output }))
  })
  const cpuUs = childrenCpuUs() - cpu0
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(result.output)
  const processed = /number of transactions actually processed: (\d+)/.exec(result.output)
  if (result.code !== 0 || tps === null || processed === null) {
    throw new Error(`pgbench failed (exit ${result.code}):\n${result.output.trim().split("\n").slice(-8).join("\n")}`)
  }
  const transactions = Number(processed[1])
  const ops = transactions * run.queriesPerTransaction
  return {
    _tag: "Sample",
    sample: { ops, seconds: transactions / Number(tps[1]), cpuUs }
  }
}
