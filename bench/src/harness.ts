/**
 * The benchmark harness: benchmarks, contenders, rounds, medians, goals and reports.
 *
 * Invariants:
 * - Every contender runs in its own child process (`node bench/src/worker.ts <bench> <contender>`),
 *   one process per round, so one client's heap, JIT state and RSS never leak into another's.
 *   With pinning on, the worker (and any subprocess it starts, such as pgbench) runs under
 *   `taskset -c 1` while the server is pinned to core 0.
 * - Rounds are interleaved (round 1 of every contender, then round 2, …), so slow drift of the
 *   machine affects every contender alike.
 * - Every figure printed or written is computed from the samples of this run: medians, min/max,
 *   ratios against the pgfx baseline of the same group, and the goal checks. Nothing is hard-coded.
 * - A worker that fails or reports a skip yields no sample; its contender is shown with the reason
 *   and every goal that needs it is reported as "not measured", never as met.
 */
import * as Fs from "node:fs"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"

/** What a worker needs to reach the server and the shared files. */
export interface BenchContext {
  readonly host: string
  readonly port: number
  readonly socketDir: string
  readonly user: string
  readonly database: string
  readonly cacheDir: string
  readonly scratchDir: string
  readonly pgbench: string
  readonly pinned: boolean
}

/** One measured round of one contender, as the worker reports it. */
export interface Sample {
  /** Operations in the timed section (queries, rows or frames: see the benchmark's unit). */
  readonly ops: number
  readonly seconds: number
  /** Client CPU (user + system) spent in the timed section, in microseconds. */
  readonly cpuUs: number
  /** Peak resident set size of the client process, in bytes, from the start of the timed section (see startTimer). */
  readonly peakRssBytes?: number
  /** Secondary figures, e.g. frames/s next to rows/s. */
  readonly extra?: Record<string, number>
  /** Facts worth printing once, e.g. the JS types of a decoded row. */
  readonly note?: string
}

export type WorkerOutcome =
  | { readonly _tag: "Sample"; readonly sample: Sample }
  | { readonly _tag: "Skipped"; readonly reason: string }

export interface Contender {
  readonly id: string
  /** Shown in tables. */
  readonly label: string
  /** Rows of a benchmark are grouped; each group's first pgfx contender is its ratio baseline. */
  readonly group: string
  readonly isPgfx?: boolean
  /** The work happens in a subprocess (pgbench, psql): the worker's own RSS says nothing about it. */
  readonly subprocess?: boolean
  /** Only its peak RSS means something (a reference point: the client loaded and connected, no work). */
  readonly rssOnly?: boolean
  /** Runs inside the worker process. */
  readonly run: (ctx: BenchContext) => Promise<WorkerOutcome>
}

export type Goal =
  | {
      readonly _tag: "Ratio"
      readonly label: string
      readonly pgfx: string
      /** The best (highest median throughput) of these peers is the reference. */
      readonly peers: ReadonlyArray<string>
      readonly atLeast: number
      /**
       * "throughput" (default): median ops/s over the best peer's. "cpu": operations per client
       * CPU-second over the best peer's — robust when other processes compete for the cores.
       */
      readonly metric?: "throughput" | "cpu"
    }
  | { readonly _tag: "Cpu"; readonly label: string; readonly contender: string; readonly maxUsPerOp: number }
  | { readonly _tag: "Rss"; readonly label: string; readonly contender: string; readonly maxMB: number }
  /** A secondary figure of a contender (e.g. "MB/s") at least this high. */
  | { readonly _tag: "Rate"; readonly label: string; readonly contender: string; readonly extra: string; readonly atLeast: number }

export interface Benchmark {
  readonly name: string
  readonly title: string
  /** Unit of one operation, e.g. "query", "row". */
  readonly unit: string
  readonly unitPlural: string
  readonly defaultRounds: number
  readonly contenders: ReadonlyArray<Contender>
  readonly goals: ReadonlyArray<Goal>
  /** Preparation in the main process before any worker runs (e.g. capturing fixtures). */
  readonly prepare?: (ctx: BenchContext) => Promise<void>
  /** Whether the benchmark needs a running server in its workers. */
  readonly needsServer: boolean
}

// ---------------------------------------------------------------------------------------------
// Measuring (inside workers)
// ---------------------------------------------------------------------------------------------

/**
 * Starts the timed section; the returned function ends it and builds the sample. The peak-RSS mark (VmHWM) is reset (Linux: "5" to /proc/self/clear_refs), so the
 * peak a worker reports is that of its timed section (and the checks after it), not of its warm-up.
 * `collect`: a full GC first (workers run with --expose-gc), for buffered results, whose warm-up leaves
 * ~400 MB of dead rows the timed section would otherwise pay to collect. Not by default: a forced full GC
 * also shrinks V8's young generation, so a streaming workload would then be timed while the heap regrows.
 */
/** The process's read and write system calls so far (Linux /proc/self/io; zeros elsewhere). */
const syscallCounts = (): { readonly reads: number; readonly writes: number } => {
  try {
    const io = Fs.readFileSync("/proc/self/io", "utf8")
    return { reads: Number(/syscr: (\d+)/.exec(io)?.[1] ?? 0), writes: Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0) }
  } catch {
    return { reads: 0, writes: 0 }
  }
}

/** The machine's TCP counters (/proc/net/netstat TcpExt and /proc/net/snmp Tcp), by name. */
const tcpCounters = (): Map<string, number> => {
  const counters = new Map<string, number>()
  for (const file of ["/proc/net/netstat", "/proc/net/snmp"]) {
    try {
      const lines = Fs.readFileSync(file, "utf8").split("\n")
      for (let i = 0; i + 1 < lines.length; i += 2) {
        const names = lines[i]!.split(" ")
        const values = lines[i + 1]!.split(" ")
        if (names[0] !== "TcpExt:" && names[0] !== "Tcp:") continue
        for (let j = 1; j < names.length; j++) counters.set(names[j]!, Number(values[j]))
      }
    } catch {
      // not Linux
    }
  }
  return counters
}

export const startTimer = (
  options?: { readonly collect?: boolean }
): ((ops: number, extra?: Record<string, number>, note?: string) => WorkerOutcome) => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (options?.collect === true && gc !== undefined) gc()
  try {
    Fs.writeFileSync("/proc/self/clear_refs", "5")
  } catch {
    // not Linux, or not permitted: the peak then covers the whole process
  }
  const io0 = syscallCounts()
  const tcp0 = process.env["PGFX_BENCH_MEMORY"] === "1" ? tcpCounters() : undefined
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  return (ops, extra, note) => {
    const t1 = process.hrtime.bigint()
    const cpu = process.cpuUsage(cpu0)
    // PGFX_BENCH_MEMORY=1: the timed section's user/system CPU split, its read/write system calls, and
    // where the RSS is, on stderr (see PGFX_BENCH_WORKER_LOG).
    if (process.env["PGFX_BENCH_MEMORY"] === "1") {
      const io1 = syscallCounts()
      process.stderr.write(`cpu user ${cpu.user} µs, system ${cpu.system} µs over ${ops} ops; read syscalls ${io1.reads - io0.reads}, write syscalls ${io1.writes - io0.writes}\n`)
      // The whole machine's TCP counters over the timed section (client and server alike; loopback).
      const tcp1 = tcpCounters()
      const moved = [...tcp1].map(([name, value]) => [name, value - (tcp0?.get(name) ?? value)] as const)
        .filter(([name, delta]) => delta >= 100 && !/Octets|CurrEstab|RtoMax|MaxConn/.test(name))
      process.stderr.write(`tcp ${moved.map(([name, delta]) => `${name} ${delta}`).join(", ")}\n`)
      dumpMemory()
    }
    const sample: Sample = {
      ops,
      seconds: Number(t1 - t0) / 1e9,
      cpuUs: cpu.user + cpu.system,
      ...(extra === undefined ? {} : { extra }),
      ...(note === undefined ? {} : { note })
    }
    return { _tag: "Sample", sample }
  }
}

/** process.memoryUsage, the VmHWM/RssAnon/RssFile lines, the largest mappings by RSS. */
const dumpMemory = (): void => {
  const m = process.memoryUsage()
  const mb = (n: number) => (n / 1048576).toFixed(1)
  process.stderr.write(`memoryUsage rss ${mb(m.rss)} heapTotal ${mb(m.heapTotal)} heapUsed ${mb(m.heapUsed)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)}\n`)
  const status = Fs.readFileSync("/proc/self/status", "utf8").split("\n").filter((l) => /^(VmHWM|VmRSS|RssAnon|RssFile)/.test(l))
  process.stderr.write(status.join(" | ") + "\n")
  const smaps = Fs.readFileSync("/proc/self/smaps", "utf8").split("\n")
  const maps: Array<[string, number]> = []
  let name = ""
  for (const line of smaps) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head !== null) name = head[1] || "[anon]"
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss !== null) maps.push([name, Number(rss[1])])
  }
  const byName = new Map<string, number>()
  for (const [n, kb] of maps) byName.set(n, (byName.get(n) ?? 0) + kb)
  const top = [...byName].sort((a, b) => b[1] - a[1]).slice(0, 8)
  process.stderr.write(top.map(([n, kb]) => `${n.split("/").pop()} ${(kb / 1024).toFixed(1)}`).join(" | ") + "\n")
  const anon = maps.filter(([n]) => n === "[anon]").map(([, kb]) => kb).sort((a, b) => b - a).slice(0, 12)
  process.stderr.write("largest anon (MB): " + anon.map((kb) => (kb / 1024).toFixed(1)).join(" ") + "\n")
}

export const skipped = (reason: string): WorkerOutcome => ({ _tag: "Skipped", reason })

/** A short description of a decoded row's value types, to show that every contender decodes alike. */
export const describeRow = (row: unknown): string => {
  const values = Array.isArray(row) ? row : Object.values(row as Record<string, unknown>)
  return values
    .map((v) => (v === null ? "null" : v instanceof Date ? "Date" : v instanceof Uint8Array ? "bytes" : typeof v))
    .join(",")
}

// ---------------------------------------------------------------------------------------------
// Running workers (main process)
// ---------------------------------------------------------------------------------------------

/** The worker script: the bundle main.ts builds before a run (see bundle.ts), else the TypeScript source. */
let WORKER = Path.join(import.meta.dirname, "worker.ts")
export const useWorker = (path: string): void => {
  WORKER = path
}
export const RESULT_PREFIX = "@@pgfx-bench-result@@"
const WORKER_TIMEOUT_MS = 180_000
/** How long a worker that printed its result may take to exit. */
const REPORTED_GRACE_MS = 10_000

export interface WorkerFailure {
  readonly _tag: "Failed"
  readonly reason: string
}

export const runWorker = (
  bench: string,
  contender: string,
  ctx: BenchContext
): Promise<WorkerOutcome | WorkerFailure> =>
  new Promise((resolve) => {
    const node = process.execPath
    // --expose-gc: buffered benchmarks start their timed section from a collected heap (see startTimer).
    // PGFX_BENCH_NODE_FLAGS: extra V8/Node flags for the workers only (e.g. --trace-gc, which NODE_OPTIONS refuses).
    const extra = (process.env["PGFX_BENCH_NODE_FLAGS"] ?? "").split(/\s+/).filter((f) => f !== "")
    const args = ["--expose-gc", ...extra, WORKER, bench, contender]
    // PGFX_BENCH_WRAPPER: a command the workers run under (e.g. "strace -f -c -o /tmp/st"), for diagnostics.
    const wrapper = (process.env["PGFX_BENCH_WRAPPER"] ?? "").split(/\s+/).filter((f) => f !== "")
    const inner = [...wrapper, node, ...args]
    const [cmd, argv] = ctx.pinned ? ["taskset", ["-c", "1", ...inner]] : [inner[0]!, inner.slice(1)]
    const child = ChildProcess.spawn(cmd, argv, {
      env: { ...process.env, PGFX_BENCH_CONTEXT: JSON.stringify(ctx) },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let grace: ReturnType<typeof setTimeout> | undefined
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString()
      // A worker that reported but does not exit (a peer library holding the event loop) is stopped soon
      // after: its result was measured before, so it still counts.
      if (grace === undefined && stdout.includes(RESULT_PREFIX)) grace = setTimeout(() => child.kill("SIGKILL"), REPORTED_GRACE_MS)
    })
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), WORKER_TIMEOUT_MS)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      // PGFX_BENCH_WORKER_LOG=file: every worker's output appended there (for --trace-gc and the like).
      const log = process.env["PGFX_BENCH_WORKER_LOG"]
      if (log !== undefined && log !== "") Fs.appendFileSync(log, `== ${bench} ${contender}\n${stdout}${stderr}`)
      if (grace !== undefined) clearTimeout(grace)
      const line = stdout.split("\n").find((l) => l.startsWith(RESULT_PREFIX) && l.endsWith("}"))
      if (line !== undefined) {
        if (code !== 0) process.stderr.write(`${bench} ${contender}: the worker reported, then exited with ${signal ?? code}\n`)
        resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as WorkerOutcome)
        return
      }
      const tail = (stderr.trim() || stdout.trim()).split("\n").slice(-6).join("\n")
      resolve({
        _tag: "Failed",
        reason: `worker exited with ${signal ?? code}${signal === "SIGKILL" ? ` (timeout ${WORKER_TIMEOUT_MS / 1000} s?)` : ""}: ${tail}`
      })
    })
  })

// ---------------------------------------------------------------------------------------------
// Statistics and reports
// ---------------------------------------------------------------------------------------------

export interface ContenderResult {
  readonly id: string
  readonly label: string
  readonly group: string
  readonly isPgfx: boolean
  readonly rssOnly: boolean
  readonly samples: ReadonlyArray<Sample>
  /** Why there are no (or fewer) samples. */
  readonly problems: ReadonlyArray<string>
  readonly median?: number
  readonly min?: number
  readonly max?: number
  readonly cpuUsPerOp?: number
  readonly peakRssMB?: number
  readonly extra?: Record<string, number>
  readonly note?: string
}

export interface GoalResult {
  readonly label: string
  readonly value: number | undefined
  readonly target: string
  readonly met: boolean | undefined
  readonly detail: string
}

export interface BenchmarkResult {
  readonly name: string
  readonly title: string
  readonly unit: string
  readonly unitPlural: string
  readonly pinned: boolean
  readonly rounds: number
  /** The 1-minute load average before and after the benchmark (other processes on the machine show here). */
  readonly loadAverage?: readonly [number, number]
  readonly contenders: ReadonlyArray<ContenderResult>
  readonly goals: ReadonlyArray<GoalResult>
}

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export const summarize = (
  contender: Contender,
  samples: ReadonlyArray<Sample>,
  problems: ReadonlyArray<string>
): ContenderResult => {
  const base = {
    id: contender.id,
    label: contender.label,
    group: contender.group,
    isPgfx: contender.isPgfx === true,
    rssOnly: contender.rssOnly === true,
    samples,
    problems
  }
  if (samples.length === 0) return base
  const rates = samples.map((s) => s.ops / s.seconds)
  const extraKeys = new Set(samples.flatMap((s) => Object.keys(s.extra ?? {})))
  const extra: Record<string, number> = {}
  for (const k of extraKeys) extra[k] = median(samples.map((s) => s.extra?.[k]).filter((v): v is number => v !== undefined))
  const rss = samples.map((s) => s.peakRssBytes).filter((v): v is number => v !== undefined)
  const note = samples.find((s) => s.note !== undefined)?.note
  return {
    ...base,
    median: median(rates),
    min: Math.min(...rates),
    max: Math.max(...rates),
    cpuUsPerOp: median(samples.map((s) => s.cpuUs / s.ops)),
    ...(rss.length > 0 ? { peakRssMB: Math.max(...rss) / (1024 * 1024) } : {}),
    ...(extraKeys.size > 0 ? { extra } : {}),
    ...(note === undefined ? {} : { note })
  }
}

export const evaluateGoals = (goals: ReadonlyArray<Goal>, results: ReadonlyArray<ContenderResult>): Array<GoalResult> => {
  const byId = new Map(results.map((r) => [r.id, r]))
  return goals.map((g): GoalResult => {
    switch (g._tag) {
      case "Ratio": {
        const score = (r: ContenderResult | undefined): number | undefined =>
          r === undefined || r.median === undefined
            ? undefined
            : g.metric === "cpu"
            ? 1e6 / r.cpuUsPerOp!
            : r.median
        const mine = score(byId.get(g.pgfx))
        const peers = g.peers
          .map((id) => ({ result: byId.get(id)!, score: score(byId.get(id)) }))
          .filter((p): p is { result: ContenderResult; score: number } => p.score !== undefined)
        const label = g.metric === "cpu" ? `${g.label} (per client CPU-second)` : g.label
        if (mine === undefined || peers.length === 0) {
          return { label, value: undefined, target: `≥ ${g.atLeast}×`, met: undefined, detail: "not measured" }
        }
        const best = peers.reduce((a, b) => (b.score > a.score ? b : a))
        const ratio = mine / best.score
        return {
          label,
          value: ratio,
          target: `≥ ${g.atLeast}×`,
          met: ratio >= g.atLeast,
          detail: `${ratio.toFixed(2)}× ${best.result.label}`
        }
      }
      case "Cpu": {
        const v = byId.get(g.contender)?.cpuUsPerOp
        return {
          label: g.label,
          value: v,
          target: `≤ ${g.maxUsPerOp} µs`,
          met: v === undefined ? undefined : v <= g.maxUsPerOp,
          detail: v === undefined ? "not measured" : `${v.toFixed(2)} µs/op`
        }
      }
      case "Rate": {
        const v = byId.get(g.contender)?.extra?.[g.extra]
        return {
          label: g.label,
          value: v,
          target: `≥ ${g.atLeast} ${g.extra}`,
          met: v === undefined ? undefined : v >= g.atLeast,
          detail: v === undefined ? "not measured" : `${v.toFixed(0)} ${g.extra}`
        }
      }
      case "Rss": {
        const v = byId.get(g.contender)?.peakRssMB
        return {
          label: g.label,
          value: v,
          target: `≤ ${g.maxMB} MB`,
          met: v === undefined ? undefined : v <= g.maxMB,
          detail: v === undefined ? "not measured" : `${v.toFixed(1)} MB`
        }
      }
    }
  })
}

/** Throughput with an SI suffix: 1234567 → "1.23 M". */
export const si = (x: number): string =>
  x >= 1e9 ? `${(x / 1e9).toFixed(2)} G` : x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0)

interface Row {
  readonly cells: ReadonlyArray<string>
}

const tableRows = (result: BenchmarkResult): { header: ReadonlyArray<string>; groups: Array<{ group: string; rows: Array<Row> }> } => {
  const header = ["contender", `${result.unitPlural}/s (median)`, "min – max", "vs pgfx", `CPU µs/${result.unit}`, "peak RSS", "notes"]
  const groups: Array<{ group: string; rows: Array<Row> }> = []
  for (const c of result.contenders) {
    let g = groups.find((x) => x.group === c.group)
    if (g === undefined) {
      g = { group: c.group, rows: [] }
      groups.push(g)
    }
  }
  for (const g of groups) {
    const members = result.contenders.filter((c) => c.group === g.group)
    // pgfx rows first; the first measured pgfx row is the baseline.
    const ordered = [...members.filter((c) => c.isPgfx), ...members.filter((c) => !c.isPgfx)]
    const baseline = ordered.find((c) => c.isPgfx && !c.rssOnly && c.median !== undefined)?.median
    for (const c of ordered) {
      const extra = c.extra === undefined ? [] : Object.entries(c.extra).map(([k, v]) => `${k} ${si(v)}`)
      const notes = [...extra, ...(c.note === undefined ? [] : [c.note]), ...c.problems].join("; ")
      g.rows.push({
        cells: c.median === undefined
          ? [c.label, "—", "—", "—", "—", "—", notes]
          : c.rssOnly
          ? [c.label, "—", "—", "—", "—", c.peakRssMB === undefined ? "—" : `${c.peakRssMB.toFixed(0)} MB`, notes]
          : [
              c.label,
              si(c.median),
              `${si(c.min!)} – ${si(c.max!)}`,
              baseline === undefined ? "—" : (c.median / baseline).toFixed(2),
              c.cpuUsPerOp!.toFixed(c.cpuUsPerOp! < 10 ? 2 : 1),
              c.peakRssMB === undefined ? "—" : `${c.peakRssMB.toFixed(0)} MB`,
              notes
            ]
      })
    }
  }
  return { header, groups }
}

const conditions = (result: BenchmarkResult): string =>
  [
    result.pinned ? "pinned: client on core 1, server on core 0" : "unpinned",
    `${result.rounds} rounds`,
    ...(result.loadAverage === undefined
      ? []
      : [`load average ${result.loadAverage[0].toFixed(1)} before, ${result.loadAverage[1].toFixed(1)} after`])
  ].join(", ")

const mark = (met: boolean | undefined) => (met === undefined ? "not measured" : met ? "met" : "NOT met")

export const formatText = (result: BenchmarkResult): string => {
  const { header, groups } = tableRows(result)
  const all = [header, ...groups.flatMap((g) => g.rows.map((r) => r.cells))]
  const widths = header.map((_, i) => Math.max(...all.map((r) => (i === header.length - 1 ? 0 : r[i]!.length))))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : i === cells.length - 1 ? c : c.padStart(widths[i]!))).join("  ")
  const out: Array<string> = []
  out.push(`== ${result.name}: ${result.title} (${conditions(result)})`)
  out.push(line(header))
  for (const g of groups) {
    out.push(`-- ${g.group}`)
    for (const r of g.rows) out.push(line(r.cells))
  }
  for (const goal of result.goals) out.push(`goal: ${goal.label} ${goal.target}: ${goal.detail} → ${mark(goal.met)}`)
  return out.join("\n")
}

export const formatMarkdown = (result: BenchmarkResult): string => {
  const { header, groups } = tableRows(result)
  const esc = (s: string) => s.replace(/\|/g, "\\|")
  const out: Array<string> = []
  out.push(`#### ${result.name}: ${result.title}`)
  out.push("")
  out.push(`${conditions(result)}.`)
  out.push("")
  out.push(`| ${header.join(" | ")} |`)
  out.push(`|${header.map((_, i) => (i === 0 || i === header.length - 1 ? " --- " : " ---: ")).join("|")}|`)
  for (const g of groups) {
    out.push(`| **${esc(g.group)}** |${" |".repeat(header.length - 1)}`)
    for (const r of g.rows) out.push(`| ${r.cells.map(esc).join(" | ")} |`)
  }
  out.push("")
  for (const goal of result.goals) out.push(`- ${goal.label} ${goal.target}: ${goal.detail} — **${mark(goal.met)}**`)
  return out.join("\n")
}
