/**
 * Shared fixtures of the COPY benchmarks (B4, B5, B4b, CopyMemory): the text data file, its checksums,
 * the tables, psql as a contender, and byte accounting.
 *
 * Invariants:
 * - The data file (ROWS rows of int, text, timestamptz, float8, md5 text in COPY text format) is
 *   generated once into bench/.cache and copied to DATA_DIR (0755, file 0644) so the postgres OS user can
 *   read it for the server-only `COPY … FROM '/path'` figure. Its expected checksums are computed while
 *   generating it and stored beside it; every contender's table is checked against them.
 * - A table's checksum covers every column (row count, sum of the int column, of the float8 column, of the
 *   timestamps' epoch, of the first 32 bits of every md5, of the text lengths), so a contender that loses,
 *   duplicates or mangles rows cannot pass.
 * - Everything here runs untimed (preparation or validation), except `countLines`, which every COPY TO
 *   contender calls on each piece of data it receives, so all do the same validation work.
 */
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { BenchContext, WorkerOutcome } from "../harness.ts"

export const ROWS = 1_000_000
/**
 * Every benchmark warms up (untimed) with as much work as it times: a JIT-compiled client compiles its hot
 * path on background threads during its first ~100,000 rows, which counts as client CPU, so a short warm-up
 * measured compilation rather than the steady state a long-running service sees.
 */
export const WARMUP_ROWS = ROWS
/** Readable by the postgres OS user (the bench's scratch directory is 0700). */
export const DATA_DIR = "/tmp/pgfx-bench-copy"
export const PSQL = "/usr/lib/postgresql/15/bin/psql"
/** 2024-01-01T00:00:00Z: row i has the timestamp BASE_EPOCH + i seconds. */
const BASE_EPOCH = 1_704_067_200

export const TEXT_COLUMNS = "i int4, t text, ts timestamptz, f float8, h text"

/** One row of the data file, "\n" included. */
export const textRow = (i: number): string =>
  `${i}\ttext value ${i}\t${new Date((BASE_EPOCH + i) * 1000).toISOString()}\t${i * 1.5}\t${md5(String(i))}\n`

const md5 = (s: string): string => Crypto.createHash("md5").update(s).digest("hex")

/** The checksum query's expected answer for rows 1..n of `textRow`. */
export interface TextData {
  readonly file: string
  readonly bytes: number
  readonly checksum: string
}

/** Checks every column of a table holding `textRow` rows (see the module header). */
export const checksumSql = (table: string): string =>
  `select count(*) || ' ' || coalesce(sum(i), 0) || ' ' || coalesce(sum(f)::int8, 0) || ' ' || ` +
  `coalesce(sum(extract(epoch from ts))::int8, 0) || ' ' || coalesce(sum(('x' || left(h, 8))::bit(32)::int8), 0) || ' ' || ` +
  `coalesce(sum(length(t)), 0) as checksum from ${table}`

const writeRows = (path: string, n: number): string => {
  const fd = Fs.openSync(path, "w", 0o644)
  let sumI = 0
  let sumF = 0
  let sumEpoch = 0
  let sumH = 0
  let sumT = 0
  let batch = ""
  for (let i = 1; i <= n; i++) {
    const row = textRow(i)
    batch += row
    sumI += i
    sumF += i * 1.5
    sumEpoch += BASE_EPOCH + i
    sumH += parseInt(row.slice(row.length - 33, row.length - 25), 16)
    sumT += `text value ${i}`.length
    if (batch.length > 1 << 20) {
      Fs.writeSync(fd, batch)
      batch = ""
    }
  }
  Fs.writeSync(fd, batch)
  Fs.closeSync(fd)
  Fs.chmodSync(path, 0o644)
  return `${n} ${sumI} ${sumF} ${sumEpoch} ${sumH} ${sumT}`
}

const dataPaths = (rows: number) => ({
  file: Path.join(DATA_DIR, `copy-text-${rows}.tsv`),
  meta: Path.join(DATA_DIR, `copy-text-${rows}.json`)
})

/**
 * Main process: makes sure the data file exists in the cache and in DATA_DIR (generating it once).
 */
export const ensureTextData = (ctx: BenchContext, rows: number = ROWS): TextData => {
  Fs.mkdirSync(DATA_DIR, { recursive: true, mode: 0o755 })
  Fs.chmodSync(DATA_DIR, 0o755)
  Fs.mkdirSync(ctx.cacheDir, { recursive: true })
  const cached = Path.join(ctx.cacheDir, `copy-text-${rows}.tsv`)
  const cachedMeta = `${cached}.json`
  if (!Fs.existsSync(cached) || !Fs.existsSync(cachedMeta)) {
    const checksum = writeRows(cached, rows)
    Fs.writeFileSync(cachedMeta, JSON.stringify({ checksum, bytes: Fs.statSync(cached).size }))
  }
  const paths = dataPaths(rows)
  const meta = JSON.parse(Fs.readFileSync(cachedMeta, "utf8")) as { checksum: string; bytes: number }
  if (!Fs.existsSync(paths.file) || Fs.statSync(paths.file).size !== meta.bytes) {
    Fs.copyFileSync(cached, paths.file)
    Fs.chmodSync(paths.file, 0o644)
  }
  const data: TextData = { file: paths.file, bytes: meta.bytes, checksum: meta.checksum }
  Fs.writeFileSync(paths.meta, JSON.stringify(data))
  return data
}

/** Worker: the data file prepared by `ensureTextData` in the main process. */
export const textData = (rows: number = ROWS): TextData =>
  JSON.parse(Fs.readFileSync(dataPaths(rows).meta, "utf8")) as TextData

export const checkChecksum = (what: string, actual: unknown, expected: string): void => {
  if (String(actual) !== expected) throw new Error(`${what}: checksum ${String(actual)}, expected ${expected}`)
}

// ---------------------------------------------------------------------------------------------------------
// psql

/** User + system CPU of this process's waited-for children, in microseconds (10 ms resolution). */
export const childrenCpuUs = (): number => {
  const stat = Fs.readFileSync("/proc/self/stat", "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return ((Number(fields[13]) + Number(fields[14])) * 1e6) / 100
}

export interface PsqlRun {
  readonly output: string
  readonly seconds: number
  readonly cpuUs: number
}

/** Runs psql with `-c` commands against the bench server; throws on a non-zero exit. */
export const psql = (ctx: BenchContext, commands: ReadonlyArray<string>, extra: ReadonlyArray<string> = []): Promise<PsqlRun> =>
  new Promise((resolve, reject) => {
    const args = ["-X", "-v", "ON_ERROR_STOP=1", "-h", ctx.host, "-p", String(ctx.port), "-U", ctx.user, "-d", ctx.database, ...extra]
    for (const c of commands) args.push("-c", c)
    const cpu0 = childrenCpuUs()
    const t0 = process.hrtime.bigint()
    const child = ChildProcess.spawn(PSQL, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PGSSLMODE: "disable" } })
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr.on("data", (d: Buffer) => (output += d.toString()))
    child.on("error", reject)
    child.on("close", (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      if (code !== 0) reject(new Error(`psql exited with ${code}: ${output.trim().split("\n").slice(-4).join("\n")}`))
      else resolve({ output, seconds, cpuUs: childrenCpuUs() - cpu0 })
    })
  })

/** One value from psql (unaligned, tuples only). */
export const psqlValue = async (ctx: BenchContext, sql: string): Promise<string> =>
  (await psql(ctx, [sql], ["-A", "-t", "-q"])).output.trim()

// ---------------------------------------------------------------------------------------------------------
// Accounting

/** Adds throughput in MB/s and MB per client CPU-second to a sample (CPU-per-MB survives a busy machine). */
export const withBytes = (outcome: WorkerOutcome, bytes: number): WorkerOutcome => {
  if (outcome._tag !== "Sample") return outcome
  const s = outcome.sample
  const mb = bytes / 1e6
  return {
    _tag: "Sample",
    sample: { ...s, extra: { ...s.extra, "MB/s": mb / s.seconds, "MB/CPU-s": s.cpuUs > 0 ? mb / (s.cpuUs / 1e6) : 0 } }
  }
}

/** Counts bytes and line ends of COPY TO data as it arrives (the same check for every contender). */
export class LineCounter {
  bytes = 0
  lines = 0
  add(chunk: Uint8Array): void {
    this.bytes += chunk.length
    let at = chunk.indexOf(10)
    while (at !== -1) {
      this.lines++
      at = chunk.indexOf(10, at + 1)
    }
  }
  check(rows: number, bytes: number): void {
    if (this.lines !== rows || this.bytes !== bytes) {
      throw new Error(`received ${this.lines} lines in ${this.bytes} bytes, expected ${rows} lines in ${bytes} bytes`)
    }
  }
}

/** The size of COPY text output for a table of `textRow` rows, in the asking session (its TimeZone/DateStyle). */
export const copyOutBytesSql = (table: string): string =>
  `select sum(octet_length(i::text) + octet_length(t) + octet_length(ts::text) + octet_length(f::text) + octet_length(h) + 5)::int8 as bytes from ${table}`
