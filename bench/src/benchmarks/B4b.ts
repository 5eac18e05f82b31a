/**
 * B4b: binary COPY of 1,000,000 typed rows (int4, text, timestamptz, float8, bool) from JS objects into
 * a table, and from a table back to JS objects: pgfx `copyFromRows` / `copyToRows` beside node-postgres +
 * pg-copy-streams with a hand-written COPY BINARY encoder and decoder (below).
 *
 * Invariants:
 * - Both "from" contenders encode the same rows, generated on the fly in batches of BATCH (row i:
 *   `{ id: i, name: "name i", at: Date(2024-01-01 + i s), score: i × 1.5, flag: i even }`), so no one holds
 *   1,000,000 objects; generating them is part of the timed work of both.
 * - Both "to" contenders decode every value to its JS type (number, string, Date, number, boolean) into an
 *   object per row, and every row is touched: the sums of every column are checked.
 * - The source table is filled once before any worker (untimed); the destination table is truncated before
 *   each round and checked against the same sums after it. One untimed warm-up of WARMUP_ROWS rows each way.
 */
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { describeRow, startTimer } from "../harness.ts"
import { pgClient, withPgfx } from "../clients.ts"
import { psql, ROWS, WARMUP_ROWS } from "./copyFixtures.ts"

const SOURCE = "b4b_src"
const TARGET = "b4b_dst"
const COLUMNS = ["id", "name", "at", "score", "flag"] as const
const BATCH = 1000
const BASE_EPOCH = 1_704_067_200
/** 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in Unix milliseconds. */
const PG_EPOCH_MS = 946_684_800_000
const FROM = "COPY BINARY from JS objects (into a table)"
const TO = "COPY BINARY to JS objects (from a table)"

interface Row {
  id: number
  name: string
  at: Date
  score: number
  flag: boolean
}

const rowAt = (i: number): Row => ({
  id: i,
  name: `name ${i}`,
  at: new Date((BASE_EPOCH + i) * 1000),
  score: i * 1.5,
  flag: i % 2 === 0
})

const makeBatch = (from: number, to: number): Array<Row> => {
  const rows = new Array<Row>(to - from)
  for (let i = from; i < to; i++) rows[i - from] = rowAt(i)
  return rows
}

/** Sums of every column, in the format of `checksumSql`. */
class Tally {
  count = 0
  sumId = 0
  sumScore = 0
  sumEpoch = 0
  sumName = 0
  flags = 0
  first: unknown = undefined
  add(row: Row): void {
    if (this.first === undefined) this.first = row
    this.count++
    this.sumId += row.id
    this.sumScore += row.score
    this.sumEpoch += row.at.getTime() / 1000
    this.sumName += row.name.length
    if (row.flag === true) this.flags++
  }
  get checksum(): string {
    return `${this.count} ${this.sumId} ${this.sumScore} ${this.sumEpoch} ${this.sumName} ${this.flags}`
  }
}

const expectedChecksum = (n: number): string => {
  const t = new Tally()
  for (let i = 1; i <= n; i++) t.add(rowAt(i))
  return t.checksum
}

const checksumSql = (table: string) =>
  `select count(*) || ' ' || coalesce(sum(id), 0) || ' ' || coalesce(sum(score)::int8, 0) || ' ' || ` +
  `coalesce(sum(extract(epoch from at))::int8, 0) || ' ' || coalesce(sum(length(name)), 0) || ' ' || count(*) filter (where flag) ` +
  `as checksum from ${table}`

const check = (what: string, actual: unknown, n: number) => {
  const expected = expectedChecksum(n)
  if (String(actual) !== expected) throw new Error(`${what}: checksum ${String(actual)}, expected ${expected}`)
}

// ---------------------------------------------------------------------------------------------------------
// The hand-written COPY BINARY codec for pg-copy-streams (what a user of pg-copy-streams has to write)

const SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0])
const CHUNK = 64 * 1024

/** Encodes rows into ~64 KiB Buffers (each handed over whole; a fresh one is started after). */
class BinaryEncoder {
  buf = Buffer.allocUnsafe(CHUNK + 1024)
  pos = 0
  header(): void {
    SIGNATURE.copy(this.buf, 0)
    this.pos = SIGNATURE.length
  }
  row(r: Row): void {
    const nameBytes = Buffer.byteLength(r.name)
    this.ensure(2 + 8 + 4 + nameBytes + 12 + 12 + 5)
    const b = this.buf
    let p = this.pos
    b.writeInt16BE(5, p)
    b.writeInt32BE(4, p + 2)
    b.writeInt32BE(r.id, p + 6)
    b.writeInt32BE(nameBytes, p + 10)
    p += 14
    p += b.write(r.name, p, "utf8")
    const micros = (r.at.getTime() - PG_EPOCH_MS) * 1000
    const hi = Math.floor(micros / 4294967296)
    b.writeInt32BE(8, p)
    b.writeInt32BE(hi, p + 4)
    b.writeUInt32BE(micros - hi * 4294967296, p + 8)
    b.writeInt32BE(8, p + 12)
    b.writeDoubleBE(r.score, p + 16)
    b.writeInt32BE(1, p + 24)
    b[p + 28] = r.flag ? 1 : 0
    this.pos = p + 29
  }
  trailer(): void {
    this.ensure(2)
    this.buf.writeInt16BE(-1, this.pos)
    this.pos += 2
  }
  get full(): boolean {
    return this.pos >= CHUNK
  }
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos)
    this.buf = Buffer.allocUnsafe(CHUNK + 1024)
    this.pos = 0
    return out
  }
  private ensure(n: number): void {
    if (this.pos + n > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
      this.buf.copy(next, 0, 0, this.pos)
      this.buf = next
    }
  }
}

/** Decodes COPY BINARY chunks into row objects; a tuple split across chunks is joined with the next chunk. */
class BinaryDecoder {
  private rest: Buffer | undefined
  private headerDone = false
  ended = false
  push(chunk: Buffer, onRow: (row: Row) => void): void {
    const b = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk])
    this.rest = undefined
    let p = 0
    if (!this.headerDone) {
      if (b.length < 19) {
        this.rest = b
        return
      }
      if (!b.subarray(0, 11).equals(SIGNATURE.subarray(0, 11))) throw new Error("not COPY BINARY data")
      p = 19 + b.readInt32BE(15)
      this.headerDone = true
    }
    const end = b.length
    while (p + 2 <= end) {
      const fields = b.readInt16BE(p)
      if (fields === -1) {
        this.ended = true
        return
      }
      if (fields !== 5) throw new Error(`a tuple with ${fields} fields`)
      // id(4+4) name(4+n) at(4+8) score(4+8) flag(4+1): check the whole tuple is here first.
      if (p + 2 + 8 + 4 > end) break
      const nameLength = b.readInt32BE(p + 10)
      const size = 2 + 8 + 4 + nameLength + 12 + 12 + 5
      if (p + size > end) break
      const id = b.readInt32BE(p + 6)
      let q = p + 14
      const name = b.toString("utf8", q, q + nameLength)
      q += nameLength
      const micros = b.readInt32BE(q + 4) * 4294967296 + b.readUInt32BE(q + 8)
      const at = new Date(PG_EPOCH_MS + micros / 1000)
      const score = b.readDoubleBE(q + 16)
      const flag = b[q + 28] === 1
      onRow({ id, name, at, score, flag })
      p += size
    }
    if (p < end) this.rest = b.subarray(p)
  }
}

// ---------------------------------------------------------------------------------------------------------
// Contenders

const pgfxFrom = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Cause = await import("effect/Cause")
  const Effect = await import("effect/Effect")
  const Stream = await import("effect/Stream")
  const { copyFromRows } = await import("@pgfx/connection/Copy")
  /** Rows 1..n in batches, generated as they are pulled. */
  const rows = (n: number): import("effect/Stream").Stream<Row> =>
    Stream.fromPull(
      Effect.sync(() => {
        let next = 1
        return Effect.suspend(() => {
          if (next > n) return Cause.done()
          const to = Math.min(next + BATCH, n + 1)
          const batch = makeBatch(next, to) as unknown as readonly [Row, ...Array<Row>]
          next = to
          return Effect.succeed(batch)
        })
      })
    )
  return withPgfx(ctx, "tcp", async (conn, exec) => {
    const copy = (n: number) => Effect.runPromise(Stream.run(rows(n), copyFromRows<Row>(conn, TARGET, COLUMNS)))
    await exec(`truncate ${TARGET}`)
    await copy(WARMUP_ROWS)
    await exec(`truncate ${TARGET}`)
    const stop = startTimer()
    const count = await copy(ROWS)
    const outcome = stop(ROWS)
    if (count !== ROWS) throw new Error(`copyFromRows reported ${count} rows`)
    check(TARGET, await exec(checksumSql(TARGET)), ROWS)
    return outcome
  })
}

const pgfxTo = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const Effect = await import("effect/Effect")
  const Stream = await import("effect/Stream")
  const { copyToRows } = await import("@pgfx/connection/Copy")
  return withPgfx(ctx, "tcp", async (conn) => {
    const read = (source: string) => {
      const tally = new Tally()
      return Effect.runPromise(
        Effect.as(
          Stream.runForEachArray(copyToRows<Row>(conn, source), (rows) =>
            Effect.sync(() => {
              for (let i = 0; i < rows.length; i++) tally.add(rows[i]!)
            })),
          tally
        )
      )
    }
    const warm = await read(`select * from ${SOURCE} where id <= ${WARMUP_ROWS}`)
    check("warm-up", warm.checksum, WARMUP_ROWS)
    const stop = startTimer()
    const tally = await read(SOURCE)
    const outcome = stop(ROWS, undefined, `row: ${describeRow(tally.first)}`)
    check(SOURCE, tally.checksum, ROWS)
    return outcome
  })
}

const pgCopyStreamsFrom = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { from } = await import("pg-copy-streams")
  const { finished } = await import("node:stream/promises")
  const client = await pgClient(ctx)
  const exec = async (sql: string) => (await client.query(sql)).rows[0]?.["checksum"]
  const copy = async (n: number) => {
    const sink = client.query(from(`copy ${TARGET} (${COLUMNS.join(", ")}) from stdin (format binary)`)) as unknown as ReturnType<typeof from>
    const encoder = new BinaryEncoder()
    encoder.header()
    for (let next = 1; next <= n; next += BATCH) {
      const batch = makeBatch(next, Math.min(next + BATCH, n + 1))
      for (let i = 0; i < batch.length; i++) {
        encoder.row(batch[i]!)
        if (encoder.full && !sink.write(encoder.take())) await new Promise<void>((resolve) => sink.once("drain", resolve))
      }
    }
    encoder.trailer()
    sink.end(encoder.take())
    await finished(sink)
    return sink.rowCount
  }
  await exec(`truncate ${TARGET}`)
  await copy(WARMUP_ROWS)
  await exec(`truncate ${TARGET}`)
  const stop = startTimer()
  const count = await copy(ROWS)
  const outcome = stop(ROWS)
  if (count !== ROWS) throw new Error(`pg-copy-streams reported ${count} rows`)
  check(TARGET, await exec(checksumSql(TARGET)), ROWS)
  await client.end()
  return outcome
}

const pgCopyStreamsTo = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { to } = await import("pg-copy-streams")
  const client = await pgClient(ctx)
  const read = async (source: string) => {
    const tally = new Tally()
    const decoder = new BinaryDecoder()
    const add = (row: Row) => tally.add(row)
    const stream = client.query(to(`copy (${source}) to stdout (format binary)`)) as unknown as ReturnType<typeof to>
    for await (const chunk of stream) decoder.push(chunk as Buffer, add)
    if (!decoder.ended) throw new Error("COPY BINARY data ended without its trailer")
    return tally
  }
  const warm = await read(`select * from ${SOURCE} where id <= ${WARMUP_ROWS}`)
  check("warm-up", warm.checksum, WARMUP_ROWS)
  const stop = startTimer()
  const tally = await read(`select * from ${SOURCE}`)
  const outcome = stop(ROWS, undefined, `row: ${describeRow(tally.first)}`)
  check(SOURCE, tally.checksum, ROWS)
  await client.end()
  return outcome
}

const contenders: ReadonlyArray<Contender> = [
  { id: "pgfx-from", label: "pgfx copyFromRows (objects)", group: FROM, isPgfx: true, run: pgfxFrom },
  { id: "pg-copy-streams-from", label: "pg-copy-streams + hand-written binary encoder", group: FROM, run: pgCopyStreamsFrom },
  { id: "pgfx-to", label: "pgfx copyToRows (objects)", group: TO, isPgfx: true, run: pgfxTo },
  { id: "pg-copy-streams-to", label: "pg-copy-streams + hand-written binary decoder", group: TO, run: pgCopyStreamsTo }
]

export const benchmark: Benchmark = {
  name: "B4b",
  title: `binary COPY of ${ROWS.toLocaleString("en")} typed rows from and to JS objects, over TCP loopback`,
  unit: "row",
  unitPlural: "rows",
  defaultRounds: 3,
  needsServer: true,
  contenders,
  prepare: async (ctx) => {
    const columns = "id int4, name text, at timestamptz, score float8, flag bool"
    await psql(
      ctx,
      [
        `drop table if exists ${SOURCE}, ${TARGET}`,
        `create unlogged table ${SOURCE} (${columns})`,
        `create unlogged table ${TARGET} (${columns})`,
        `insert into ${SOURCE} select i, 'name ' || i, to_timestamp(${BASE_EPOCH} + i), i * 1.5, i % 2 = 0 from generate_series(1, ${ROWS}) i`,
        `vacuum analyze ${SOURCE}`
      ],
      ["-q"]
    )
  },
  goals: [
    { _tag: "Ratio", label: "from objects: pgfx vs pg-copy-streams", pgfx: "pgfx-from", peers: ["pg-copy-streams-from"], atLeast: 1.0 },
    { _tag: "Ratio", label: "from objects: pgfx vs pg-copy-streams", pgfx: "pgfx-from", peers: ["pg-copy-streams-from"], atLeast: 1.0, metric: "cpu" },
    { _tag: "Ratio", label: "to objects: pgfx vs pg-copy-streams", pgfx: "pgfx-to", peers: ["pg-copy-streams-to"], atLeast: 1.0 },
    { _tag: "Ratio", label: "to objects: pgfx vs pg-copy-streams", pgfx: "pgfx-to", peers: ["pg-copy-streams-to"], atLeast: 1.0, metric: "cpu" }
  ]
}
