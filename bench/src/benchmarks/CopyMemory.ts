/**
 * CopyMemory: 2 GB through pgfx's COPY in each direction, to show memory stays bounded whatever the size
 * of the data: peak RSS (VmHWM) next to throughput, and reference lines for what loading pgfx costs.
 *
 * Invariants:
 * - Nothing of the 2 GB exists at once anywhere: COPY FROM STDIN is fed by a Stream that generates its
 *   1,000-byte text rows as it is pulled, and the server keeps only every 1,000th row (`COPY … WHERE`), so
 *   the server parses all 2 GB but stores 2 MB; COPY TO STDOUT reads a query that generates its rows as
 *   the server sends them (a set-returning function in the select list, which does not materialize).
 * - One COPY FROM line reads the same 2 GB from a file with `copyFromFile` (its default options): the file
 *   is written once into DATA_DIR by `prepare` and kept there for later runs (delete it to reclaim 2 GB).
 * - One COPY TO line writes the 2 GB into '/dev/null' with `copyToFile` (its default options).
 * - Both are checked: COPY FROM by its row count and the kept rows' count and sum; COPY TO by the number
 *   of line ends and bytes received.
 * - The reference lines run in their own workers: pgfx loaded and connected (one SELECT 1), and the worker
 *   alone (Node 24 with type stripping, nothing loaded); a COPY line's peak minus pgfx's reference is what
 *   the 2 GB added.
 */
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { startTimer } from "../harness.ts"
import { pgClient, withPgfx } from "../clients.ts"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { DATA_DIR, LineCounter, psql, withBytes } from "./copyFixtures.ts"

const TABLE = "copymem_rows"
const ROW_BYTES = 1000
const ROWS = 2_000_000
const BYTES = ROWS * ROW_BYTES
const KEEP_EVERY = 1000
const BATCH = 256
/** 7 digits, a tab, 991 payload characters, "\n": exactly ROW_BYTES. */
const PAYLOAD = Array.from({ length: 991 }, (_, i) => String.fromCharCode(97 + (i % 26))).join("")
const GROUP = "2 GB through one connection"
const IDLE = "RSS reference (no COPY)"

const textRow = (i: number): string => `${String(i).padStart(7, "0")}\t${PAYLOAD}\n`

const copyOutSql =
  `copy (select lpad(g::text, 7, '0'), repeat('x', ${ROW_BYTES - 9}) from (select generate_series(1, ${ROWS}) as g) s) to stdout`

/** COPY FROM kept every KEEP_EVERY-th row: checks the count it reported and the table's rows. */
const checkKept = async (kept: number, exec: (sql: string) => Promise<unknown>): Promise<void> => {
  const keptRows = ROWS / KEEP_EVERY
  const expected = `${keptRows} ${(KEEP_EVERY * keptRows * (keptRows + 1)) / 2} ${keptRows * (ROW_BYTES - 9)}`
  const actual = await exec(`select count(*) || ' ' || sum(i) || ' ' || sum(length(p)) from ${TABLE}`)
  if (kept !== keptRows || actual !== expected) throw new Error(`COPY kept ${kept} rows, table: ${String(actual)}, expected ${expected}`)
}

/**
 * COPY FROM fed by a Stream generating rows 1..ROWS as it is pulled, `perPull` rows per pull: `items(from, to)`
 * makes one pull's items (strings or byte chunks) of rows from..to-1.
 */
const copyFromGenerated = <A extends string | Uint8Array>(
  perPull: number,
  items: (from: number, to: number) => readonly [A, ...Array<A>]
) =>
async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Cause = await import("effect/Cause")
  const Effect = await import("effect/Effect")
  const Stream = await import("effect/Stream")
  const { copyFrom } = await import("@pgfx/connection/Copy")
  return withPgfx(ctx, "tcp", async (conn, exec) => {
    const generated = Stream.fromPull(
      Effect.sync(() => {
        let next = 1
        return Effect.suspend(() => {
          if (next > ROWS) return Cause.done()
          const to = Math.min(next + perPull, ROWS + 1)
          const pulled = items(next, to)
          next = to
          return Effect.succeed(pulled)
        })
      })
    )
    await exec(`truncate ${TABLE}`)
    const stop = startTimer()
    const kept = await Effect.runPromise(Stream.run(generated, copyFrom(conn, `copy ${TABLE} from stdin where i % ${KEEP_EVERY} = 0`)))
    const outcome = stop(ROWS)
    await checkKept(kept, exec)
    return withBytes(outcome, BYTES)
  })
}

/** BATCH text rows per pull, one string each. */
const copyFrom2GB = copyFromGenerated(BATCH, (from, to) => {
  const batch = new Array<string>(to - from)
  for (let i = from; i < to; i++) batch[i - from] = textRow(i)
  return batch as unknown as readonly [string, ...Array<string>]
})

/** Rows per byte chunk of the byte-chunk producer: 64 rows, 64,000 bytes (a file read stream's chunk size). */
const ROWS_PER_CHUNK = 64
const PAYLOAD_BYTES = Buffer.from(PAYLOAD, "latin1")

/** Rows from..to-1 as the bytes of textRow, written into a fresh buffer (as a reader of a file or a socket hands them on). */
const byteChunk = (from: number, to: number): Uint8Array => {
  const chunk = Buffer.allocUnsafeSlow((to - from) * ROW_BYTES)
  let at = 0
  for (let i = from; i < to; i++) {
    let n = i
    for (let d = 6; d >= 0; d--) {
      chunk[at + d] = 48 + (n % 10)
      n = Math.floor(n / 10)
    }
    chunk[at + 7] = 9
    chunk.set(PAYLOAD_BYTES, at + 8)
    chunk[at + ROW_BYTES - 1] = 10
    at += ROW_BYTES
  }
  return chunk
}

/** COPY FROM fed by a Stream of 64,000-byte chunks generated as they are pulled (bytes in, not strings). */
const copyFromBytes2GB = copyFromGenerated(ROWS_PER_CHUNK, (from, to) => [byteChunk(from, to)])

/** The same byte chunks through pg-copy-streams (a Readable generating them as they are read): the peer's figure for it. */
const pgCopyStreamsBytes2GB = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { from } = await import("pg-copy-streams")
  const { Readable } = await import("node:stream")
  const { pipeline } = await import("node:stream/promises")
  const client = await pgClient(ctx)
  try {
    await client.query(`truncate ${TABLE}`)
    let next = 1
    const chunks = new Readable({
      read() {
        if (next > ROWS) return void this.push(null)
        const to = Math.min(next + ROWS_PER_CHUNK, ROWS + 1)
        this.push(byteChunk(next, to))
        next = to
      }
    })
    const stop = startTimer()
    const sink = client.query(from(`copy ${TABLE} from stdin where i % ${KEEP_EVERY} = 0`)) as unknown as ReturnType<typeof from>
    await pipeline(chunks, sink)
    const outcome = stop(ROWS)
    await checkKept(Number(sink.rowCount), async (sql) => (await client.query(sql)).rows[0]?.["?column?"])
    return withBytes(outcome, BYTES)
  } finally {
    await client.end()
  }
}

const FILE = Path.join(DATA_DIR, `copymem-${ROWS}x${ROW_BYTES}.tsv`)

/** Main process: writes the 2 GB file of the same rows once (8 MiB at a time). */
const ensureFile = (): void => {
  if (Fs.existsSync(FILE) && Fs.statSync(FILE).size === BYTES) return
  Fs.mkdirSync(DATA_DIR, { recursive: true, mode: 0o755 })
  const fd = Fs.openSync(`${FILE}.partial`, "w", 0o644)
  try {
    const perWrite = 8192
    for (let from = 1; from <= ROWS; from += perWrite) {
      let text = ""
      for (let i = from; i < Math.min(from + perWrite, ROWS + 1); i++) text += textRow(i)
      Fs.writeSync(fd, text)
    }
  } finally {
    Fs.closeSync(fd)
  }
  Fs.renameSync(`${FILE}.partial`, FILE)
}

const copyFromFile2GB = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const { copyFromFile } = await import("@pgfx/connection/Copy")
  return withPgfx(ctx, "tcp", async (conn, exec) => {
    await exec(`truncate ${TABLE}`)
    const stop = startTimer()
    const kept = await Effect.runPromise(copyFromFile(conn, `copy ${TABLE} from stdin where i % ${KEEP_EVERY} = 0`, FILE))
    const outcome = stop(ROWS)
    await checkKept(kept, exec)
    return withBytes(outcome, BYTES)
  })
}

const copyTo2GB = (api: "copyTo" | "copyToBytes") => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Stream = await import("effect/Stream")
  const copyTo = (await import("@pgfx/connection/Copy"))[api]
  return withPgfx(ctx, "tcp", async (conn) => {
    const counter = new LineCounter()
    const stop = startTimer()
    await Effect.runPromise(
      Stream.runForEachArray(copyTo(conn, copyOutSql), (payloads) =>
        Effect.sync(() => {
          for (let i = 0; i < payloads.length; i++) counter.add(payloads[i]!)
        }))
    )
    const outcome = stop(ROWS)
    counter.check(ROWS, BYTES)
    return withBytes(outcome, BYTES)
  })
}

/** pg-copy-streams' COPY TO of the same 2 GB, its chunks counted by a Writable (the peer's figure for it). */
const pgCopyStreamsTo2GB = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { to } = await import("pg-copy-streams")
  const { Writable } = await import("node:stream")
  const { pipeline } = await import("node:stream/promises")
  const client = await pgClient(ctx)
  try {
    const counter = new LineCounter()
    const stop = startTimer()
    const source = client.query(to(copyOutSql)) as unknown as ReturnType<typeof to>
    await pipeline(
      source,
      new Writable({
        write(chunk: Uint8Array, _encoding, done) {
          counter.add(chunk)
          done()
        }
      })
    )
    const outcome = stop(ROWS)
    counter.check(ROWS, BYTES)
    return withBytes(outcome, BYTES)
  } finally {
    await client.end()
  }
}

/** `copyToFile` into '/dev/null' (the check: the row count COPY reported; the bytes are tested elsewhere). */
const copyToFile2GB = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const { copyToFile } = await import("@pgfx/connection/Copy")
  return withPgfx(ctx, "tcp", async (conn) => {
    const stop = startTimer()
    const rows = await Effect.runPromise(copyToFile(conn, copyOutSql, "/dev/null"))
    const outcome = stop(ROWS)
    if (rows !== ROWS) throw new Error(`copyToFile reported ${rows} rows`)
    return withBytes(outcome, BYTES)
  })
}

const idlePgfx = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  await import("@pgfx/connection/Copy")
  return withPgfx(ctx, "tcp", async (conn) => {
    const stop = startTimer()
    await Effect.runPromise(conn.query("select 1"))
    return stop(1)
  })
}

const idlePg = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  await import("pg-copy-streams")
  const client = await pgClient(ctx)
  try {
    const stop = startTimer()
    await client.query("select 1")
    return stop(1)
  } finally {
    await client.end()
  }
}

const idleNode = async (): Promise<WorkerOutcome> => startTimer()(1)

const contenders: ReadonlyArray<Contender> = [
  { id: "copy-from", label: "pgfx copyFrom, 2 GB of strings (a row each) generated by a Stream", group: GROUP, isPgfx: true, run: copyFrom2GB },
  { id: "copy-from-bytes", label: "pgfx copyFrom, 2 GB generated by a Stream of 64,000-byte chunks", group: GROUP, isPgfx: true, run: copyFromBytes2GB },
  { id: "pg-copy-streams-from-bytes", label: "pg 8.23 + pg-copy-streams 7, the same 64,000-byte chunks from a Readable", group: GROUP, run: pgCopyStreamsBytes2GB },
  { id: "copy-from-file", label: "pgfx copyFromFile, a 2 GB file", group: GROUP, isPgfx: true, run: copyFromFile2GB },
  { id: "copy-to", label: "pgfx copyTo (a payload per row), 2 GB generated by the server", group: GROUP, isPgfx: true, run: copyTo2GB("copyTo") },
  { id: "copy-to-bytes", label: "pgfx copyToBytes (a chunk per read), 2 GB generated by the server", group: GROUP, isPgfx: true, run: copyTo2GB("copyToBytes") },
  { id: "pg-copy-streams-to", label: "pg 8.23 + pg-copy-streams 7, its chunks into a Writable, 2 GB generated by the server", group: GROUP, run: pgCopyStreamsTo2GB },
  { id: "copy-to-file", label: "pgfx copyToFile → '/dev/null', 2 GB generated by the server", group: GROUP, isPgfx: true, run: copyToFile2GB },
  { id: "idle-pgfx", label: "pgfx loaded (Connection + Copy) and connected, one SELECT 1", group: IDLE, isPgfx: true, rssOnly: true, run: idlePgfx },
  { id: "idle-pg", label: "pg + pg-copy-streams loaded and connected, one SELECT 1", group: IDLE, rssOnly: true, run: idlePg },
  { id: "idle-node", label: "the worker alone (Node 24 + type stripping, no client)", group: IDLE, rssOnly: true, run: idleNode }
]

export const benchmark: Benchmark = {
  name: "CopyMemory",
  title: `COPY of ${BYTES / 1e9} GB (${ROWS.toLocaleString("en")} rows of ${ROW_BYTES} bytes) each way, memory bounded`,
  unit: "row",
  unitPlural: "rows",
  defaultRounds: 1,
  needsServer: true,
  contenders,
  prepare: async (ctx) => {
    ensureFile()
    await psql(ctx, [`drop table if exists ${TABLE}`, `create unlogged table ${TABLE} (i int4, p text)`], ["-q"])
  },
  goals: [
    { _tag: "Rss", label: "COPY FROM STDIN of 2 GB from a Stream of strings: pgfx copyFrom peak RSS", contender: "copy-from", maxMB: 100 },
    { _tag: "Rss", label: "COPY FROM STDIN of 2 GB from a Stream of byte chunks: pgfx copyFrom peak RSS", contender: "copy-from-bytes", maxMB: 100 },
    { _tag: "Rss", label: "COPY FROM STDIN of a 2 GB file: pgfx copyFromFile peak RSS", contender: "copy-from-file", maxMB: 100 },
    { _tag: "Rss", label: "COPY TO STDOUT of 2 GB: pgfx copyTo peak RSS", contender: "copy-to", maxMB: 100 },
    { _tag: "Rss", label: "COPY TO STDOUT of 2 GB: pgfx copyToBytes peak RSS", contender: "copy-to-bytes", maxMB: 100 },
    { _tag: "Rss", label: "COPY TO STDOUT of 2 GB into '/dev/null': pgfx copyToFile peak RSS", contender: "copy-to-file", maxMB: 100 }
  ]
}
