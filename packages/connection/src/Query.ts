/**
 * Query requests: what goes on the wire for simple and extended queries, and the state machine that
 * turns the server's replies into results.
 *
 * Invariants:
 * - A request is encoded whole before it is submitted (a failed encode sends nothing).
 * - Every request ends at its ReadyForQuery, whatever happened before it (errors, COPY the caller did not
 *   ask for, abandonment): the connection is usable again exactly when the request leaves the FIFO.
 * - An abandoned request (its fiber was interrupted) still consumes its replies but decodes no rows.
 * - A message that cannot occur in a query flow is a ProtocolError, which fails the connection: the
 *   reply stream can no longer be trusted to line up with the requests.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { decodeBackend } from "@pgfx/codec/BackendMessage"
import type { ErrorFields } from "@pgfx/codec/Async"
import { encodeCopyFail } from "@pgfx/codec/Copy"
import { encodeClose, encodeDescribe, encodeFlush, encodeParse, encodeSync } from "@pgfx/codec/Extended"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import { decodeRowDescription, encodeQuery, type FieldDescription } from "@pgfx/codec/Query"
import { Reader } from "@pgfx/codec/internal/Reader"
import { decodeUtf8 } from "@pgfx/codec/internal/utf8"
import type { Writer } from "@pgfx/codec/internal/Writer"
import { RowDecoder } from "@pgfx/codec/RowDecoder"
import type { TypeRegistry } from "@pgfx/codec/TypeRegistry"
import { InvalidRequestError, type PgError, PgServerError, serverError } from "./PgError.ts"
import type { ResultPlan } from "./StatementCache.ts"
import type { Pending, Wire, WireError } from "./Wire.ts"

export type Row = Record<string, unknown>

/** The result of a statement that produced none (an empty query string). */
export const EMPTY_RESULT: QueryResult<never> = { command: "", rowCount: undefined, rows: [], fields: [] }

export interface QueryResult<A = Row> {
  /** The command tag's verb: "SELECT", "INSERT", "CREATE TABLE"… ("" for an empty query). */
  readonly command: string
  /** Rows affected or returned, from the command tag, when the command reports one. */
  readonly rowCount: number | undefined
  readonly rows: ReadonlyArray<A>
  readonly fields: ReadonlyArray<FieldDescription>
}

/**
 * Completes a request. Query requests pass an `Exit` (a completed Effect), so a caller that submits many
 * requests at once (a pipeline) can read each outcome synchronously.
 */
export type Resume<A> = (effect: Effect.Effect<A, PgError>) => void

export type RowMode = "object" | "array"

export interface RowDecoderLike {
  decode(buf: Uint8Array, start: number, end: number): unknown
}

/**
 * Where the frames (or payloads) of one socket chunk are, with no object per frame, for a consumer to read
 * later: `bounds` holds (index into `sources`, start, end) triples; the sources are socket chunks (or fresh
 * buffers of frames that spanned chunks), which nothing writes to again (Frame.ts).
 */
export interface FrameRanges {
  readonly sources: ReadonlyArray<Uint8Array>
  readonly bounds: ReadonlyArray<number>
}

/** Notes frame ranges in the reader (one source per socket chunk, not per frame); `take` hands them on. */
export class FrameRangeCollector {
  private sources: Array<Uint8Array> = []
  private bounds: Array<number> = []

  get isEmpty(): boolean {
    return this.bounds.length === 0
  }

  add(buf: Uint8Array, start: number, end: number): void {
    const sources = this.sources
    if (sources.length === 0 || sources[sources.length - 1] !== buf) sources.push(buf)
    this.bounds.push(sources.length - 1, start, end)
  }

  /** The ranges noted since the last take. */
  take(): FrameRanges {
    const ranges: FrameRanges = { sources: this.sources, bounds: this.bounds }
    this.sources = []
    this.bounds = []
    return ranges
  }
}

/** DataRow bodies of one socket chunk, with the decoder of their result. */
export interface RawRows extends FrameRanges {
  readonly decoder: RowDecoderLike
}

/**
 * Decodes a batch of raw rows into `out`, in order, up to the first row that cannot be decoded: returns that
 * row's ProtocolError (anything a decoder throws becomes one), or undefined.
 */
export const decodeRawRows = (batch: RawRows, out: Array<unknown>): ProtocolError | undefined => {
  const { bounds, decoder, sources } = batch
  try {
    for (let i = 0; i < bounds.length; i += 3) out.push(decoder.decode(sources[bounds[i]!]!, bounds[i + 1]!, bounds[i + 2]!))
  } catch (e) {
    return rowDecodeError(e)
  }
  return undefined
}

/** What a row decoder threw, as the ProtocolError a stream or `forEach` fails with. */
export const rowDecodeError = (e: unknown): ProtocolError =>
  e instanceof ProtocolError
    ? e
    : new ProtocolError({ reason: "InvalidValue", message: `a row could not be decoded: ${e instanceof Error ? e.message : String(e)}`, messageType: "D" })

/** Where rows go: an array (buffered results) or a consumer (streams, COPY helpers). */
export interface RowSink {
  push(row: unknown): void
  /**
   * When present, rows are not decoded in the reader: each DataRow body `buf[start, end)` (a view of a
   * buffer nothing writes to again) is handed on with its decoder, for the consumer to decode when it
   * takes the row — so rows are made just before they are used and die young.
   */
  pushRaw?(decoder: RowDecoderLike, buf: Uint8Array, start: number, end: number): void
  /** Called after each batch of frames; may register a backpressure effect with the wire. */
  endOfBatch?(): void
  /**
   * Called at ReadyForQuery, after the last endOfBatch, with the request's outcome — in the reader, so
   * a sink can order its end after the rows it handed on.
   */
  end?(error: PgServerError | undefined): void
}

export const makeDecoder = (
  registry: TypeRegistry,
  fields: ReadonlyArray<FieldDescription>,
  formats: ReadonlyArray<0 | 1> | undefined,
  mode: RowMode
): RowDecoderLike =>
  RowDecoder.make(
    fields.map((f, i) => ({ name: f.name, typeOid: f.typeOid, format: formats === undefined ? f.format : formats[i]! })),
    registry,
    { mode }
  )

/** "INSERT 0 5" → 5; "SELECT 3" → 3; "CREATE TABLE" → undefined. */
export const parseCommandTag = (tag: string): { command: string; rowCount: number | undefined } => {
  const sp = tag.lastIndexOf(" ")
  if (sp > 0) {
    const last = tag.slice(sp + 1)
    if (last.length > 0 && last.length < 16 && /^\d+$/.test(last)) {
      const verb = tag.slice(0, tag.indexOf(" "))
      return { command: verb, rowCount: Number(last) }
    }
  }
  return { command: tag, rowCount: undefined }
}

/** CommandComplete's tag: one C string filling the body exactly (no terminator is a ProtocolError). */
export const commandTagOf = (buf: Uint8Array, start: number, end: number): string => {
  if (end <= start || buf[end - 1] !== 0) {
    throw new ProtocolError({ reason: "UnterminatedString", message: "CommandComplete tag has no terminator", messageType: "C" })
  }
  return decodeUtf8(buf, start, end - 1)
}

const unexpected = (type: number, where: string): never => {
  throw new ProtocolError({
    reason: "UnexpectedMessage",
    message: `message '${String.fromCharCode(type)}' is not legal ${where}`,
    messageType: String.fromCharCode(type)
  })
}

export const errorFieldsOf = (buf: Uint8Array, start: number, end: number): ErrorFields =>
  (decodeBackend(0x45, buf, start, end) as { fields: ErrorFields }).fields

export interface RequestContext {
  readonly wire: Wire
  readonly writer: Writer
  readonly registry: TypeRegistry
  readonly rowMode: RowMode
}

/**
 * The replies of one or more statements up to ReadyForQuery: simple queries (RowDescription arrives with
 * the rows) and extended executions of prepared statements (the decoder is known in advance).
 */
export class QueryRequest implements Pending {
  private readonly ctx: RequestContext
  private readonly sql: string
  private results: Array<QueryResult<unknown>> = []
  private rows: Array<unknown> = []
  private fields: ReadonlyArray<FieldDescription> = []
  private decoder: RowDecoderLike | undefined
  /** Decoders of prepared statements, in execution order (extended queries). */
  private readonly presets: ReadonlyArray<ResultPlan> | undefined
  private presetIndex = 0
  /** The server's error, if one ended the request (readable after completion: pipelines report it per statement). */
  error: PgServerError | undefined
  /** When true, completion succeeds with the results gathered so far even after an error (see `error`). */
  partial = false
  /** When true, completion yields the first result alone (one statement), saving a map per query. */
  single = false
  private inCopyOut = false
  private readonly sink: RowSink | undefined
  private resume: Resume<Array<QueryResult<unknown>>> | undefined
  abandoned = false
  /** Status byte of the final ReadyForQuery. */
  transactionStatus = 0x49

  constructor(
    ctx: RequestContext,
    sql: string,
    resume: Resume<Array<QueryResult<unknown>>>,
    presets?: ReadonlyArray<ResultPlan>,
    sink?: RowSink
  ) {
    this.ctx = ctx
    this.sql = sql
    this.resume = resume
    this.presets = presets
    this.sink = sink
    if (presets !== undefined && presets.length > 0) this.usePreset(0)
  }

  private usePreset(i: number): void {
    const p = this.presets![i]
    if (p === undefined) return
    this.fields = p.fields
    this.decoder = p.decoder
  }

  private endResult(command: string, rowCount: number | undefined): void {
    this.results.push({ command, rowCount, rows: this.rows, fields: this.fields })
    this.rows = []
    if (this.presets !== undefined) this.usePreset(++this.presetIndex)
    else {
      this.decoder = undefined
      this.fields = []
    }
  }

  onFrame(type: number, buf: Uint8Array, start: number, end: number): boolean {
    switch (type) {
      case 0x44: {
        // DataRow: the hot path
        if (this.abandoned) return false
        const decoder = this.decoder
        if (decoder === undefined) unexpected(type, "before a RowDescription")
        const sink = this.sink
        if (sink === undefined) this.rows.push(decoder!.decode(buf, start, end))
        else if (sink.pushRaw !== undefined) sink.pushRaw(decoder!, buf, start, end)
        else sink.push(decoder!.decode(buf, start, end))
        return false
      }
      case 0x43: {
        // CommandComplete
        const { command, rowCount } = parseCommandTag(commandTagOf(buf, start, end))
        this.inCopyOut = false
        this.endResult(command, rowCount)
        return false
      }
      case 0x54: {
        // RowDescription: simple queries, or an extended query that described its portal
        const { fields } = decodeRowDescription(new Reader(buf, start, end, "T"))
        this.fields = fields
        this.decoder = makeDecoder(this.ctx.registry, fields, undefined, this.ctx.rowMode)
        return false
      }
      case 0x31: // ParseComplete
      case 0x32: // BindComplete
      case 0x33: // CloseComplete
      case 0x6e: // NoData
      case 0x74: // ParameterDescription
        return false
      case 0x49: // EmptyQueryResponse
        this.endResult("", undefined)
        return false
      case 0x73: // PortalSuspended: the row limit was reached; the result so far is the result
        this.endResult("SELECT", this.rows.length)
        return false
      case 0x45: {
        this.error = serverError(errorFieldsOf(buf, start, end), this.sql)
        return false
      }
      case 0x47: {
        // CopyInResponse to a statement run through query(): refuse it so the server ends the COPY.
        const w = this.ctx.writer
        encodeCopyFail(w, { _tag: "CopyFail", message: "COPY FROM STDIN is not supported by query(); use copyFrom" })
        this.ctx.wire.send(w.take())
        return false
      }
      case 0x48: // CopyOutResponse: the data is discarded; use copyTo to read it
        this.inCopyOut = true
        return false
      case 0x64: // CopyData
      case 0x63: // CopyDone
        if (!this.inCopyOut) unexpected(type, "outside COPY OUT")
        return false
      case 0x5a: {
        // ReadyForQuery
        this.transactionStatus = buf[start] ?? 0x49
        if (this.sink !== undefined) {
          this.sink.endOfBatch?.()
          this.sink.end?.(this.error)
        }
        const resume = this.resume
        this.resume = undefined
        if (resume !== undefined) {
          resume(
            this.error !== undefined && !this.partial
              ? Exit.fail(this.error)
              : Exit.succeed(this.single ? (this.results[0] ?? EMPTY_RESULT) as never : this.results)
          )
        }
        return true
      }
      default:
        return unexpected(type, "in a query")
    }
  }

  /** After each socket chunk, a streaming sink hands its rows on (and may apply backpressure). */
  afterChunk(): void {
    this.sink?.endOfBatch?.()
  }

  onFail(error: WireError): void {
    const resume = this.resume
    this.resume = undefined
    resume?.(Exit.fail(error))
  }
}

/** Parse + Describe(statement) + Sync: learns parameter types and result columns of a new statement. */
export class PrepareRequest implements Pending {
  private parameterTypes: ReadonlyArray<number> = []
  private fields: ReadonlyArray<FieldDescription> | undefined
  private error: PgServerError | undefined
  private resume: Resume<{ parameterTypes: ReadonlyArray<number>; fields: ReadonlyArray<FieldDescription> | undefined }> | undefined
  private readonly sql: string

  constructor(sql: string, resume: PrepareRequest["resume"] & {}) {
    this.sql = sql
    this.resume = resume
  }

  onFrame(type: number, buf: Uint8Array, start: number, end: number): boolean {
    switch (type) {
      case 0x31: // ParseComplete
      case 0x33: // CloseComplete (statements closed ahead of this one)
        return false
      case 0x74: {
        const r = new Reader(buf, start, end, "t")
        const n = r.count16(4, "parameter count")
        const types = new Array<number>(n)
        for (let i = 0; i < n; i++) types[i] = r.u32()
        this.parameterTypes = types
        return false
      }
      case 0x54:
        this.fields = decodeRowDescription(new Reader(buf, start, end, "T")).fields
        return false
      case 0x6e:
        this.fields = undefined
        return false
      case 0x45:
        this.error = serverError(errorFieldsOf(buf, start, end), this.sql)
        return false
      case 0x5a: {
        const resume = this.resume
        this.resume = undefined
        resume?.(
          this.error !== undefined
            ? Effect.fail(this.error)
            : Effect.succeed({ parameterTypes: this.parameterTypes, fields: this.fields })
        )
        return true
      }
      default:
        return unexpected(type, "while preparing a statement")
    }
  }

  onFail(error: WireError): void {
    const resume = this.resume
    this.resume = undefined
    resume?.(Effect.fail(error))
  }
}

/** Close messages for statements the cache evicted, written ahead of the next request. */
export const writePendingCloses = (w: Writer, names: Array<string>): void => {
  for (const name of names) encodeClose(w, { _tag: "Close", kind: "S", name })
  names.length = 0
}

export const encodeSimpleQuery = (w: Writer, sql: string): Uint8Array => {
  encodeQuery(w, { _tag: "Query", sql })
  return w.take()
}

export const encodePrepare = (w: Writer, name: string, sql: string, parameterTypes: ReadonlyArray<number>): void => {
  encodeParse(w, { _tag: "Parse", name, query: sql, parameterTypes })
  encodeDescribe(w, { _tag: "Describe", kind: "S", name })
  encodeSync(w, { _tag: "Sync" })
}

/**
 * Bind with parameters encoded through the registry: binary where the parameter's type has a binary
 * encoder and the value is not a string (a string is always sent as text, for the server to parse).
 * Written by hand: this runs once per query.
 */
export const encodeBind = (
  w: Writer,
  registry: TypeRegistry,
  portal: string,
  statement: string,
  parameterTypes: ReadonlyArray<number>,
  values: ReadonlyArray<unknown>,
  resultFormats: ReadonlyArray<0 | 1>
): void => {
  const n = values.length
  if (n !== parameterTypes.length) {
    throw new InvalidRequestError({
      reason: "ParameterCount",
      message: `the statement takes ${parameterTypes.length} parameter(s) but ${n} were given`
    })
  }
  const at = w.begin(0x42)
  w.cstring(portal)
  w.cstring(statement)
  // Format codes are written after the values are encoded: reserve them now.
  w.u16(n)
  const formatsAt = w.pos
  w.ensure(2 * n)
  w.pos += 2 * n
  w.u16(n)
  for (let i = 0; i < n; i++) {
    const v = values[i]
    let format = 0
    if (v === null || v === undefined) {
      w.i32(-1)
    } else {
      const oid = parameterTypes[i]!
      // OID 0: the server infers the type, so only text (or raw bytes) can be sent.
      const codec = oid === 0 ? undefined : registry.get(oid)
      const lenAt = w.pos
      w.ensure(4)
      w.pos += 4
      try {
        if (v instanceof Uint8Array && (codec === undefined || oid === 17)) {
          w.bytes(v)
          format = 1
        } else if (typeof v === "string" || codec === undefined || TEXT_TYPES.has(oid)) {
          // A non-string for a text parameter (the server typed `select $1` or a VALUES list as text): its text form.
          w.string(typeof v === "string" ? v : textOf(v))
        } else if (codec.encodeBinary !== undefined) {
          codec.encodeBinary(w, v as never)
          format = 1
        } else {
          w.string(codec.encodeText(v as never))
        }
      } catch (e) {
        throw new InvalidRequestError({
          reason: "ParameterValue",
          message: `parameter $${i + 1} (type ${codec?.name ?? oid}) cannot be encoded: ${e instanceof Error ? e.message : String(e)}`
        })
      }
      const len = w.pos - lenAt - 4
      const b = w.buf
      b[lenAt] = len >>> 24
      b[lenAt + 1] = (len >>> 16) & 0xff
      b[lenAt + 2] = (len >>> 8) & 0xff
      b[lenAt + 3] = len & 0xff
    }
    w.buf[formatsAt + 2 * i] = 0
    w.buf[formatsAt + 2 * i + 1] = format
  }
  const rf = resultFormats.length
  w.u16(rf)
  for (let i = 0; i < rf; i++) w.u16(resultFormats[i]!)
  w.end(at)
}

/** text, varchar, bpchar, name, unknown: any value is sent as its text form. */
const TEXT_TYPES = new Set([25, 1043, 1042, 19, 705])

const textOf = (v: unknown): string => {
  if (typeof v === "bigint" || typeof v === "number" || typeof v === "boolean") return String(v)
  if (v instanceof Date) return v.toISOString()
  return JSON.stringify(v)
}

/** Execute(unnamed portal, all rows) + Sync: the same 15 bytes after every Bind. */
export const EXECUTE_SYNC = new Uint8Array([0x45, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0x53, 0, 0, 0, 4])

export const encodeExecute = (w: Writer, maxRows: number): void => {
  const at = w.begin(0x45)
  w.u8(0)
  w.i32(maxRows)
  w.end(at)
}

/**
 * A cursor: one exclusive request (see Wire.ts) from its Bind to the ReadyForQuery after its Sync, so no
 * other request's message can land between its Executes. Each `fetch` sends Execute(batchSize) + Flush
 * and completes at PortalSuspended (more rows remain) or CommandComplete (done, then Sync); an error
 * makes the server skip to the Sync, which is sent at once. `close` sends the Sync early (the consumer
 * stopped): rows still arriving are dropped, and the request leaves the FIFO at ReadyForQuery.
 */
export class CursorRequest implements Pending {
  readonly exclusive = true
  abandoned = false
  private rows: Array<unknown> = []
  private done = false
  private synced = false
  private error: PgError | undefined
  private waiting: Resume<ReadonlyArray<unknown> | undefined> | undefined
  private readonly ctx: RequestContext
  private readonly decoder: RowDecoderLike | undefined
  private readonly sql: string
  private readonly batchSize: number

  constructor(ctx: RequestContext, decoder: RowDecoderLike | undefined, sql: string, batchSize: number) {
    this.ctx = ctx
    this.decoder = decoder
    this.sql = sql
    this.batchSize = batchSize
  }

  /** The bytes after Bind for one batch. */
  writeFetch(): void {
    encodeExecute(this.ctx.writer, this.batchSize)
    encodeFlush(this.ctx.writer, { _tag: "Flush" })
  }

  private sync(): void {
    if (this.synced) return
    this.synced = true
    encodeSync(this.ctx.writer, { _tag: "Sync" })
    this.ctx.wire.send(this.ctx.writer.take())
  }

  /** Next batch (undefined once the cursor is exhausted). The first batch's Execute went with the Bind. */
  fetch(first: boolean): Effect.Effect<ReadonlyArray<unknown> | undefined, PgError> {
    return Effect.callback((resume) => {
      if (this.error !== undefined) return resume(Effect.fail(this.error))
      if (this.done) return resume(Effect.succeed(undefined))
      this.waiting = resume
      if (!first) {
        this.writeFetch()
        this.ctx.wire.send(this.ctx.writer.take())
      }
    })
  }

  close(): void {
    this.abandoned = true
    this.sync()
  }

  private deliver(effect: Effect.Effect<ReadonlyArray<unknown> | undefined, PgError>): void {
    const w = this.waiting
    this.waiting = undefined
    w?.(effect)
  }

  onFrame(type: number, buf: Uint8Array, start: number, end: number): boolean {
    switch (type) {
      case 0x31: // ParseComplete
      case 0x32: // BindComplete
      case 0x33: // CloseComplete
        return false
      case 0x44:
        if (this.decoder === undefined) return unexpected(type, "from a statement that returns no rows")
        if (!this.abandoned) this.rows.push(this.decoder.decode(buf, start, end))
        return false
      case 0x73: {
        // PortalSuspended: a batch is complete
        const rows = this.rows
        this.rows = []
        this.deliver(Effect.succeed(rows))
        return false
      }
      case 0x43: // CommandComplete
      case 0x49: {
        // EmptyQueryResponse
        this.done = true
        const rows = this.rows
        this.rows = []
        this.sync()
        this.deliver(Effect.succeed(rows.length > 0 ? rows : undefined))
        return false
      }
      case 0x45:
        this.error = serverError(errorFieldsOf(buf, start, end), this.sql)
        this.sync()
        this.deliver(Effect.fail(this.error))
        return false
      case 0x5a:
        if (!this.synced) return unexpected(type, "in a cursor before its Sync")
        this.done = true
        this.deliver(this.error !== undefined ? Effect.fail(this.error) : Effect.succeed(undefined))
        return true
      default:
        return unexpected(type, "in a cursor")
    }
  }

  onFail(error: WireError): void {
    this.error = error
    this.deliver(Effect.fail(error))
  }
}
