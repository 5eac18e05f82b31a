/**
 * `codec` (issue 2): parsing a captured 1,000,000-row result in-process, no sockets.
 *
 * Invariants:
 * - The bytes are captured once from the real server with `testing/src/RawSession.ts` (a simple
 *   query: text results; and Parse/Bind/Describe/Execute/Sync with binary results) and cached
 *   under `bench/.cache/`, keyed by the SQL; every parser reads the very same bytes.
 * - Each parser gets the stream in the same 64 KiB chunks (views of one buffer, no copies), after
 *   one untimed warm-up pass over the whole stream; then as many timed passes as make about
 *   MIN_TIMED_SECONDS (1 to MAX_TIMED_PASSES, judged from the warm-up), so that a fast parser's
 *   sample is not one 0.1 s window on a busy machine. Every timed pass must see exactly the captured
 *   number of frames and DataRows, or the worker fails.
 * - Frame-level contenders hand out every message their parser produces; decoded contenders turn
 *   each DataRow into JS values (int → number, timestamptz → Date, float8 → number, text → string).
 * - Frame-level work is compared like with like: pgfx's DataRow offsets (`scanDataRow` into one reused
 *   Int32Array, what "DataRow keeps raw bytes and offsets" means) against Effect's parser in both of
 *   its modes (a view per column; a `readField` that keeps the offset), and pgfx's `decodeBackend`
 *   (a view per column) against Effect's views.
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { PgProtocol } from "@effect/sql-pg"
import type { RowDecoder as RowDecoderInstance } from "@pgfx/codec/RowDecoder"
import { type BenchContext, type Benchmark, type Contender, describeRow, type Goal, startTimer, type WorkerOutcome } from "../harness.ts"

const SQL =
  "select i, 'text value ' || i as t, now() as ts, i * 1.5::float8 as f, md5(i::text) as h from generate_series(1, 1000000) i"
const CHUNK = 64 * 1024

type Variant = "text" | "binary"

const cacheFile = (ctx: BenchContext, variant: Variant) => {
  const key = Crypto.createHash("sha256").update(`${variant}\0${SQL}`).digest("hex").slice(0, 12)
  return Path.join(ctx.cacheDir, `codec-${variant}-${key}.bin`)
}

const prepare = async (ctx: BenchContext): Promise<void> => {
  const todo = (["text", "binary"] as const).filter((v) => !Fs.existsSync(cacheFile(ctx, v)))
  if (todo.length === 0) return
  const { openRawSession } = await import("@pgfx/testing/RawSession")
  type Info = Parameters<typeof openRawSession>[0]
  // RawSession reads only the socket directory, port, superuser and database of the server info.
  const info = { socketDir: ctx.socketDir, port: ctx.port, superuser: ctx.user, database: ctx.database } as unknown as Info
  const session = await openRawSession(info, { timeout: 120_000 })
  try {
    for (const variant of todo) {
      const result = variant === "text" ? await session.query(SQL) : await session.extended(SQL, [], 1)
      const error = result.frames.find((f) => f.type === 0x45)
      if (error !== undefined) throw new Error(`codec capture: the server rejected the query`)
      const file = cacheFile(ctx, variant)
      Fs.mkdirSync(ctx.cacheDir, { recursive: true })
      Fs.writeFileSync(`${file}.tmp`, result.bytes)
      Fs.renameSync(`${file}.tmp`, file)
      console.log(`codec: captured ${variant} results, ${(result.bytes.length / 1e6).toFixed(1)} MB, ${result.frames.length} frames → ${file}`)
    }
  } finally {
    await session.close()
  }
}

interface Stream {
  readonly chunks: ReadonlyArray<Buffer>
  readonly bytes: number
  readonly frames: number
  readonly rows: number
}

/** Loads the capture and counts its frames and DataRows directly (the reference every parser must match). */
const load = (ctx: BenchContext, variant: Variant): Stream => {
  const buf = Fs.readFileSync(cacheFile(ctx, variant))
  let frames = 0
  let rows = 0
  for (let p = 0; p < buf.length; ) {
    frames++
    if (buf[p] === 0x44) rows++
    p += 1 + buf.readInt32BE(p + 1)
  }
  const chunks: Array<Buffer> = []
  for (let p = 0; p < buf.length; p += CHUNK) chunks.push(buf.subarray(p, Math.min(p + CHUNK, buf.length)))
  return { chunks, bytes: buf.length, frames, rows }
}

interface Pass {
  frames: number
  rows: number
  last: unknown
}

const MIN_TIMED_SECONDS = 1
const MAX_TIMED_PASSES = 20

/** One parser: `pass` parses the whole stream once with fresh parser state. */
const measure = (ctx: BenchContext, variant: Variant, pass: (chunks: ReadonlyArray<Buffer>) => Pass): WorkerOutcome => {
  const stream = load(ctx, variant)
  const check = (result: Pass) => {
    if (result.frames !== stream.frames || result.rows !== stream.rows) {
      throw new Error(`parsed ${result.frames} frames / ${result.rows} rows, the capture holds ${stream.frames} / ${stream.rows}`)
    }
  }
  const warmStart = performance.now()
  check(pass(stream.chunks)) // warm-up
  const warmSeconds = (performance.now() - warmStart) / 1000
  const passes = Math.max(1, Math.min(MAX_TIMED_PASSES, Math.ceil(MIN_TIMED_SECONDS / warmSeconds)))
  const stop = startTimer()
  let result: Pass | undefined
  for (let i = 0; i < passes; i++) {
    result = pass(stream.chunks)
    check(result)
  }
  const outcome = stop(stream.rows * passes, undefined, result?.last === undefined ? undefined : `row: ${describeRow(result.last)}`)
  if (outcome._tag !== "Sample") return outcome
  const s = outcome.sample
  return {
    _tag: "Sample",
    sample: {
      ...s,
      extra: { "frames/s": (stream.frames * passes) / s.seconds, "MB/s": (stream.bytes * passes) / 1e6 / s.seconds, passes }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Frame-level parsers
// ---------------------------------------------------------------------------------------------

/**
 * pgfx's row path at frame level: a DataRow is validated by `scanDataRow` into one reused offsets
 * array (start and length per column) and nothing is allocated for it; every other message goes
 * through `decodeBackend`.
 */
const pgfxOffsets = (variant: Variant) => async (ctx: BenchContext) => {
  const { Framer } = await import("@pgfx/codec/Frame")
  const { decodeBackend } = await import("@pgfx/codec/BackendMessage")
  const { scanDataRow } = await import("@pgfx/codec/Query")
  return measure(ctx, variant, (chunks) => {
    const state: Pass = { frames: 0, rows: 0, last: undefined }
    const framer = new Framer()
    let columns = -1
    let offsets = new Int32Array(0)
    const onFrame = (type: number, buf: Uint8Array, start: number, end: number) => {
      state.frames++
      if (type === 0x44) {
        scanDataRow(buf, start, end, columns, offsets)
        state.rows++
        return
      }
      const m = decodeBackend(type, buf, start, end)
      if (m._tag === "RowDescription") {
        columns = m.fields.length
        offsets = new Int32Array(2 * columns)
      }
    }
    for (const c of chunks) framer.push(c, onFrame)
    return state
  })
}

/** Every message through `decodeBackend`: a DataRow becomes `{ values }` with a view per column. */
const pgfxFrames = (variant: Variant) => async (ctx: BenchContext) => {
  const { Framer } = await import("@pgfx/codec/Frame")
  const { decodeBackend } = await import("@pgfx/codec/BackendMessage")
  return measure(ctx, variant, (chunks) => {
    const state: Pass = { frames: 0, rows: 0, last: undefined }
    const framer = new Framer()
    const onFrame = (type: number, buf: Uint8Array, start: number, end: number) => {
      const m = decodeBackend(type, buf, start, end)
      state.frames++
      if (m._tag === "DataRow") state.rows++
    }
    for (const c of chunks) framer.push(c, onFrame)
    return state
  })
}

const pgProtocolFrames = (variant: Variant) => async (ctx: BenchContext) => {
  const { Parser } = await import("pg-protocol/dist/parser.js")
  return measure(ctx, variant, (chunks) => {
    const state: Pass = { frames: 0, rows: 0, last: undefined }
    const parser = new Parser()
    const onMessage = (m: { name: string }) => {
      state.frames++
      if (m.name === "dataRow") state.rows++
    }
    for (const c of chunks) parser.parse(c, onMessage)
    return state
  })
}

/**
 * Effect's parser as documented: with no `readField` a DataRow's values are views; with `offsets`, a
 * `readField` that keeps each field's offset (-1 for NULL), its cheapest mode (no view per column).
 */
const effectFrames = (variant: Variant, values: "views" | "offsets" = "views") => async (ctx: BenchContext) => {
  const { PgProtocol } = await import("@effect/sql-pg")
  return measure(ctx, variant, (chunks) => {
    const state: Pass = { frames: 0, rows: 0, last: undefined }
    const parser = values === "views"
      ? PgProtocol.makeParser()
      : PgProtocol.makeParser<unknown>({ readField: (_bytes: Uint8Array, offset: number, size: number) => (size < 0 ? -1 : offset) })
    const onMessage = (m: PgProtocol.BackendMessage<unknown>) => {
      state.frames++
      if (m._tag === "DataRow") state.rows++
    }
    for (const c of chunks) (parser as PgProtocol.Parser<unknown>).pushEach(c, onMessage)
    return state
  })
}

// ---------------------------------------------------------------------------------------------
// Decoded values
// ---------------------------------------------------------------------------------------------

const pgfxDecoded = (variant: Variant, mode: "object" | "array") => async (ctx: BenchContext) => {
  const { Framer } = await import("@pgfx/codec/Frame")
  const { decodeBackend } = await import("@pgfx/codec/BackendMessage")
  const { RowDecoder } = await import("@pgfx/codec/RowDecoder")
  const { TypeRegistry } = await import("@pgfx/codec/TypeRegistry")
  const registry = TypeRegistry.make()
  return measure(ctx, variant, (chunks) => {
    const state: Pass = { frames: 0, rows: 0, last: undefined }
    const framer = new Framer()
    let decoder: RowDecoderInstance | undefined
    const onFrame = (type: number, buf: Uint8Array, start: number, end: number) => {
      state.frames++
      if (type === 0x44 && decoder !== undefined) {
        // DataRow bodies go straight to the row decoder, as the connection does.
        state.last = decoder.decode(buf, start, end)
        state.rows++
        return
      }
      const m = decodeBackend(type, buf, start, end)
      if (m._tag === "RowDescription") {
        decoder = RowDecoder.make(m.fields.map((f) => ({ name: f.name, typeOid: f.typeOid, format: f.format })), registry, { mode })
      }
    }
    for (const c of chunks) framer.push(c, onFrame)
    return state
  })
}

/** pg-protocol plus pg's own Result (pg-types text parsers): what `pg` does per row. */
const pgDecoded = async (ctx: BenchContext) => {
  const { Parser } = await import("pg-protocol/dist/parser.js")
  const { default: Result } = await import("pg/lib/result.js")
  return measure(ctx, "text", (chunks) => {
    const state: Pass = { frames: 0, rows: 0, last: undefined }
    const parser = new Parser()
    let result = new Result()
    const onMessage = (m: any) => {
      state.frames++
      if (m.name === "dataRow") {
        state.last = result.parseRow(m.fields)
        state.rows++
      } else if (m.name === "rowDescription") {
        result = new Result()
        result.addFields(m.fields)
      }
    }
    for (const c of chunks) parser.parse(c, onMessage)
    return state
  })
}

/** Effect's parser with the field reader `@effect/sql-pg` builds from its binary codecs. */
const effectDecoded = async (ctx: BenchContext) => {
  const { PgProtocol, PgTypes } = await import("@effect/sql-pg")
  const Result = await import("effect/Result")
  return measure(ctx, "binary", (chunks) => {
    const state: Pass = { frames: 0, rows: 0, last: undefined }
    const parser = PgProtocol.makeParser<unknown>()
    const onMessage = (m: PgProtocol.BackendMessage<unknown>) => {
      state.frames++
      if (m._tag === "DataRow") {
        state.last = m.values
        state.rows++
      } else if (m._tag === "RowDescription") {
        parser.readField = Result.getOrThrow(PgTypes.makeFieldReader(m.fields))
      }
    }
    for (const c of chunks) parser.pushEach(c, onMessage)
    return state
  })
}

const FRAMES_TEXT = "frames, text results (simple query)"
const FRAMES_BINARY = "frames, binary results (extended query)"
const DECODED_TEXT = "decoded rows, text results"
const DECODED_BINARY = "decoded rows, binary results"

const contenders: ReadonlyArray<Contender> = [
  { id: "pgfx-text", label: "pgfx Framer + scanDataRow (offsets)", group: FRAMES_TEXT, isPgfx: true, run: pgfxOffsets("text") },
  { id: "pgfx-views-text", label: "pgfx Framer + decodeBackend (views)", group: FRAMES_TEXT, isPgfx: true, run: pgfxFrames("text") },
  { id: "pg-protocol-text", label: "pg-protocol Parser (strings)", group: FRAMES_TEXT, run: pgProtocolFrames("text") },
  { id: "effect-text", label: "@effect/sql-pg PgProtocol.makeParser (views)", group: FRAMES_TEXT, run: effectFrames("text") },
  { id: "effect-offsets-text", label: "@effect/sql-pg PgProtocol.makeParser, readField → offset", group: FRAMES_TEXT, run: effectFrames("text", "offsets") },
  { id: "pgfx-binary", label: "pgfx Framer + scanDataRow (offsets)", group: FRAMES_BINARY, isPgfx: true, run: pgfxOffsets("binary") },
  { id: "pgfx-views-binary", label: "pgfx Framer + decodeBackend (views)", group: FRAMES_BINARY, isPgfx: true, run: pgfxFrames("binary") },
  { id: "pg-protocol-binary", label: "pg-protocol Parser (strings)", group: FRAMES_BINARY, run: pgProtocolFrames("binary") },
  { id: "effect-binary", label: "@effect/sql-pg PgProtocol.makeParser (views)", group: FRAMES_BINARY, run: effectFrames("binary") },
  { id: "effect-offsets-binary", label: "@effect/sql-pg PgProtocol.makeParser, readField → offset", group: FRAMES_BINARY, run: effectFrames("binary", "offsets") },
  { id: "pgfx-decoded-text", label: "pgfx RowDecoder (objects)", group: DECODED_TEXT, isPgfx: true, run: pgfxDecoded("text", "object") },
  { id: "pg-decoded-text", label: "pg-protocol + pg Result/pg-types (objects)", group: DECODED_TEXT, run: pgDecoded },
  { id: "pgfx-decoded-binary", label: "pgfx RowDecoder (arrays)", group: DECODED_BINARY, isPgfx: true, run: pgfxDecoded("binary", "array") },
  { id: "pgfx-decoded-binary-objects", label: "pgfx RowDecoder (objects)", group: DECODED_BINARY, isPgfx: true, run: pgfxDecoded("binary", "object") },
  { id: "effect-decoded-binary", label: "@effect/sql-pg parser + PgTypes field reader (arrays)", group: DECODED_BINARY, run: effectDecoded }
]

/** Each comparison, by throughput and (parsing being CPU-bound, so it holds on a busy machine) by CPU time. */
const bothMetrics = (goal: Omit<Extract<Goal, { _tag: "Ratio" }>, "metric">): ReadonlyArray<Goal> => [
  goal,
  { ...goal, metric: "cpu" }
]

export const benchmark: Benchmark = {
  name: "codec",
  title: "parse a captured 1,000,000-row result in 64 KiB chunks (in-process)",
  unit: "row",
  unitPlural: "rows",
  defaultRounds: 3,
  needsServer: false,
  prepare,
  contenders,
  goals: [
    ...bothMetrics({ _tag: "Ratio", label: "frames (text): pgfx offsets vs pg-protocol", pgfx: "pgfx-text", peers: ["pg-protocol-text"], atLeast: 1.5 }),
    ...bothMetrics({ _tag: "Ratio", label: "frames (binary): pgfx offsets vs pg-protocol", pgfx: "pgfx-binary", peers: ["pg-protocol-binary"], atLeast: 1.5 }),
    // Against the better of Effect's two modes, so pgfx's offsets never meet only Effect's views.
    ...bothMetrics({ _tag: "Ratio", label: "frames (text): pgfx offsets vs Effect's parser (either mode)", pgfx: "pgfx-text", peers: ["effect-text", "effect-offsets-text"], atLeast: 1.0 }),
    ...bothMetrics({ _tag: "Ratio", label: "frames (binary): pgfx offsets vs Effect's parser (either mode)", pgfx: "pgfx-binary", peers: ["effect-binary", "effect-offsets-binary"], atLeast: 1.0 }),
    // Views against views: the same work per DataRow on both sides.
    ...bothMetrics({ _tag: "Ratio", label: "frames (text): pgfx views vs Effect's views", pgfx: "pgfx-views-text", peers: ["effect-text"], atLeast: 1.0 }),
    ...bothMetrics({ _tag: "Ratio", label: "frames (binary): pgfx views vs Effect's views", pgfx: "pgfx-views-binary", peers: ["effect-binary"], atLeast: 1.0 }),
    ...bothMetrics({ _tag: "Ratio", label: "decoded (text): pgfx vs pg-protocol + pg-types", pgfx: "pgfx-decoded-text", peers: ["pg-decoded-text"], atLeast: 1.5 }),
    ...bothMetrics({ _tag: "Ratio", label: "decoded (binary, arrays): pgfx vs Effect's parser + field reader", pgfx: "pgfx-decoded-binary", peers: ["effect-decoded-binary"], atLeast: 1.0 })
  ]
}
