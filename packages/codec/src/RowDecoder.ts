/**
 * The per-row hot path: DataRow bodies straight to values, with the codecs chosen once per
 * RowDescription.
 *
 * Invariants:
 * - `decode(buf, start, end)` reads one DataRow body (after type byte and length) and nothing outside
 *   `[start, end)`. It throws ProtocolError, never anything else: "InvalidValue" when the column count
 *   differs from the RowDescription's (naming both), "LengthOutOfRange" for a column length below -1,
 *   "Truncated" for a column running past the message, "TrailingBytes" for bytes after the last column;
 *   a codec's failure is re-thrown naming the column. Length -1 is SQL NULL → `null`.
 * - The decode function of each column (text or binary per its format code) is picked at `make` time.
 *   A binary column whose codec has no binary decoder yields a copy of the bytes.
 * - Object mode builds every row with one generated object literal, so all rows of a result share one
 *   V8 hidden class. Duplicate column names: the later column wins (as in most drivers), the earlier
 *   value is not reachable in object mode — use array mode or RawRow to see both.
 * - For up to MAX_COMPILED_COLUMNS columns the whole row is read by one generated function per shape
 *   (column count, names, mode; cached), unrolled per column so every codec call site sees one codec;
 *   it makes exactly the checks, in the same order, with the same errors, as the generic loop used
 *   otherwise (wider rows, a `__proto__` column, or no code generation available).
 * - `RawRow` validates the layout eagerly (same checks) but decodes a column only when asked; it keeps
 *   a view of the body bytes (not a copy).
 */
import { fail, isProtocolError, ProtocolError } from "./ProtocolError.ts"
import type { TypeRegistry } from "./TypeRegistry.ts"
import { copyRange } from "./internal/copyRange.ts"

export interface RowField {
  readonly name: string
  readonly typeOid: number
  readonly format: 0 | 1
}

export interface RowDecoderOptions {
  readonly mode?: "object" | "array"
  /** false: always the generic loop, never a generated row function (for tests; same results). */
  readonly compiled?: boolean
}

type Decode = (buf: Uint8Array, start: number, end: number) => unknown


const columnError = (e: unknown, field: RowField, index: number): never => {
  const what = `column ${index} ${JSON.stringify(field.name)} (type OID ${field.typeOid}, ${field.format === 1 ? "binary" : "text"})`
  if (isProtocolError(e)) {
    throw new ProtocolError({
      reason: e.reason,
      message: `${what}: ${e.message}`,
      messageType: "D",
      ...(e.offset === undefined ? {} : { offset: e.offset })
    })
  }
  return fail("InvalidValue", `${what}: ${e instanceof Error ? e.message : String(e)}`, "D")
}

/** Builds `(values) => ({ name0: values[0], ... })` so every row gets the same shape. */
const makeShape = (names: ReadonlyArray<string>): ((values: ReadonlyArray<unknown>) => Record<string, unknown>) => {
  const props: Array<string> = []
  let hasProto = false
  const last = new Map<string, number>()
  names.forEach((n, i) => last.set(n, i))
  for (const [name, i] of last) {
    if (name === "__proto__") hasProto = true
    else props.push(`${JSON.stringify(name)}: v[${i}]`)
  }
  const body = `return { ${props.join(", ")} }`
  try {
    const build = new Function("v", body) as (v: ReadonlyArray<unknown>) => Record<string, unknown>
    if (!hasProto) return build
    const protoIndex = last.get("__proto__")!
    return (v) => {
      const o = build(v)
      Object.defineProperty(o, "__proto__", { value: v[protoIndex], enumerable: true, writable: true, configurable: true })
      return o
    }
  } catch {
    // No code generation available (a locked-down runtime): assign in order instead.
    return (v) => {
      const o: Record<string, unknown> = {}
      for (const [name, i] of last) Object.defineProperty(o, name, { value: v[i], enumerable: true, writable: true, configurable: true })
      return o
    }
  }
}

type DecodeRow = (buf: Uint8Array, start: number, end: number) => Record<string, unknown> | Array<unknown>

/** What a compiled row function calls for its checks' failures (the RowDecoder's own error paths). */
interface RowErrors {
  readonly checkCount: (buf: Uint8Array, start: number, end: number) => number
  readonly truncated: (i: number, p: number, need: number, end: number) => never
  readonly badLength: (i: number, len: number, at: number) => never
  readonly columnFailed: (e: unknown, i: number) => never
  readonly trailing: (p: number, end: number) => never
}

type RowFactory = (decoders: ReadonlyArray<Decode>, errors: RowErrors) => DecodeRow

/** Wider rows use the generic loop: one unrolled function would grow past what V8 optimizes. */
const MAX_COMPILED_COLUMNS = 64
const MAX_CACHED_FACTORIES = 256
/** Factories by shape: a query run again (a simple query, say) does not generate code again. */
const factories = new Map<string, RowFactory | null>()

/**
 * The source of `(decoders, errors) => decodeRow`: reads each column in turn into a local and returns
 * one object literal (later duplicate names win, properties in first-occurrence order, exactly as
 * `makeShape`) or one array literal.
 */
const rowFactorySource = (names: ReadonlyArray<string>, mode: "object" | "array"): string => {
  const n = names.length
  const lines: Array<string> = ["\"use strict\";"]
  for (let i = 0; i < n; i++) lines.push(`const d${i} = decoders[${i}];`)
  lines.push("return function decodeRow(buf, start, end) {")
  lines.push("let p = errors.checkCount(buf, start, end);")
  lines.push("let len = 0;")
  for (let i = 0; i < n; i++) {
    lines.push(
      `let v${i} = null;`,
      `if (p + 4 > end) errors.truncated(${i}, p, 4, end);`,
      "len = (buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3];",
      "p += 4;",
      `if (len < 0) { if (len !== -1) errors.badLength(${i}, len, p - 4); } else {`,
      `if (p + len > end) errors.truncated(${i}, p, len, end);`,
      `try { v${i} = d${i}(buf, p, p + len); } catch (e) { errors.columnFailed(e, ${i}); }`,
      "p += len; }"
    )
  }
  lines.push("if (p !== end) errors.trailing(p, end);")
  if (mode === "array") {
    lines.push(`return [${names.map((_, i) => `v${i}`).join(", ")}];`)
  } else {
    const last = new Map<string, number>()
    names.forEach((name, i) => last.set(name, i))
    lines.push(`return { ${Array.from(last, ([name, i]) => `${JSON.stringify(name)}: v${i}`).join(", ")} };`)
  }
  lines.push("};")
  return lines.join("\n")
}

/** The cached factory for this shape, or null when the generic loop must be used. */
const rowFactory = (names: ReadonlyArray<string>, mode: "object" | "array"): RowFactory | null => {
  if (names.length > MAX_COMPILED_COLUMNS || (mode === "object" && names.includes("__proto__"))) return null
  const key = `${mode}\u0000${names.length}\u0000${names.join("\u0000")}`
  let factory = factories.get(key)
  if (factory === undefined) {
    try {
      factory = new Function("decoders", "errors", rowFactorySource(names, mode)) as RowFactory
    } catch {
      factory = null // no code generation available (a locked-down runtime)
    }
    if (factories.size >= MAX_CACHED_FACTORIES) factories.clear()
    factories.set(key, factory)
  }
  return factory
}

const trailingBytes = (p: number, end: number): never =>
  fail("TrailingBytes", `${end - p} unread byte(s) after the last column`, "D", p)

const readLength = (buf: Uint8Array, p: number): number => (buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!

export class RowDecoder {
  readonly fields: ReadonlyArray<RowField>
  readonly mode: "object" | "array"
  /** Decodes one DataRow body into an object (object mode) or an array (array mode). */
  readonly decode: DecodeRow
  private readonly decoders: ReadonlyArray<Decode>
  private readonly shape: ((values: ReadonlyArray<unknown>) => Record<string, unknown>) | undefined
  private readonly scratch: Array<unknown>
  private nameIndex: Map<string, number> | undefined

  private constructor(fields: ReadonlyArray<RowField>, registry: Pick<TypeRegistry, "get">, options: RowDecoderOptions) {
    this.fields = fields
    this.mode = options.mode ?? "object"
    this.decoders = fields.map((f) => {
      const codec = registry.get(f.typeOid)
      if (f.format === 1) return codec.decodeBinary ?? copyRange
      if (f.format === 0) return codec.decodeText
      return fail("InvalidValue", `column ${JSON.stringify(f.name)} has format code ${f.format as number}`, "T")
    })
    const names = fields.map((f) => f.name)
    const factory = options.compiled === false ? null : rowFactory(names, this.mode)
    if (factory !== null) {
      this.shape = undefined
      this.scratch = []
      this.decode = factory(this.decoders, {
        checkCount: (buf, start, end) => this.checkCount(buf, start, end),
        truncated: (i, p, need, end) => this.truncated(i, p, need, end),
        badLength: (i, len, at) => this.badLength(i, len, at),
        columnFailed: (e, i) => columnError(e, this.fields[i]!, i),
        trailing: (p, end) => trailingBytes(p, end)
      })
    } else {
      this.shape = this.mode === "object" ? makeShape(names) : undefined
      this.scratch = new Array(fields.length).fill(null)
      this.decode = (buf, start, end) => this.decodeGeneric(buf, start, end)
    }
  }

  /** Compiles a decoder for one RowDescription. */
  static make(fields: ReadonlyArray<RowField>, registry: Pick<TypeRegistry, "get">, options: RowDecoderOptions = {}): RowDecoder {
    return new RowDecoder(fields, registry, options)
  }

  /** The loop `decode` uses when no compiled row function is available. */
  private decodeGeneric(buf: Uint8Array, start: number, end: number): Record<string, unknown> | Array<unknown> {
    const n = this.decoders.length
    const values = this.mode === "array" ? new Array<unknown>(n) : this.scratch
    this.decodeInto(buf, start, end, values)
    return this.shape === undefined ? values : this.shape(values)
  }

  private decodeInto(buf: Uint8Array, start: number, end: number, values: Array<unknown>): void {
    const decoders = this.decoders
    const n = decoders.length
    let p = this.checkCount(buf, start, end)
    for (let i = 0; i < n; i++) {
      if (p + 4 > end) this.truncated(i, p, 4, end)
      const len = readLength(buf, p)
      p += 4
      if (len < 0) {
        if (len !== -1) this.badLength(i, len, p - 4)
        values[i] = null
        continue
      }
      if (p + len > end) this.truncated(i, p, len, end)
      try {
        values[i] = decoders[i]!(buf, p, p + len)
      } catch (e) {
        columnError(e, this.fields[i]!, i)
      }
      p += len
    }
    if (p !== end) trailingBytes(p, end)
  }

  private checkCount(buf: Uint8Array, start: number, end: number): number {
    if (end - start < 2) fail("Truncated", "DataRow has no column count", "D", start)
    const count = (buf[start]! << 8) | buf[start + 1]!
    if (count !== this.decoders.length) {
      fail("InvalidValue", `DataRow has ${count} column(s) but the RowDescription has ${this.decoders.length}`, "D", start)
    }
    return start + 2
  }

  private truncated(i: number, p: number, need: number, end: number): never {
    return fail(
      "Truncated",
      `column ${i} ${JSON.stringify(this.fields[i]!.name)} needs ${need} byte(s) at offset ${p} but the message has ${end - p} left`,
      "D",
      p
    )
  }

  private badLength(i: number, len: number, at: number): never {
    return fail("LengthOutOfRange", `column ${i} ${JSON.stringify(this.fields[i]!.name)} has length ${len}`, "D", at)
  }

  /** Validates one DataRow body and returns a row that decodes columns on demand. */
  raw(buf: Uint8Array, start: number, end: number): RawRow {
    const n = this.decoders.length
    const offsets = new Int32Array(n * 2)
    let p = this.checkCount(buf, start, end)
    for (let i = 0; i < n; i++) {
      if (p + 4 > end) this.truncated(i, p, 4, end)
      const len = readLength(buf, p)
      p += 4
      if (len < -1) this.badLength(i, len, p - 4)
      if (len > 0 && p + len > end) this.truncated(i, p, len, end)
      offsets[2 * i] = p
      offsets[2 * i + 1] = len
      if (len > 0) p += len
    }
    if (p !== end) trailingBytes(p, end)
    return new RawRow(this, buf, offsets)
  }

  /** Index of the last column with this name (the one object mode keeps), or -1. */
  indexOf(name: string): number {
    if (this.nameIndex === undefined) {
      this.nameIndex = new Map()
      this.fields.forEach((f, i) => this.nameIndex!.set(f.name, i))
    }
    return this.nameIndex.get(name) ?? -1
  }

  /** @internal */
  decodeColumn(i: number, buf: Uint8Array, start: number, len: number): unknown {
    if (len === -1) return null
    try {
      return this.decoders[i]!(buf, start, start + len)
    } catch (e) {
      return columnError(e, this.fields[i]!, i)
    }
  }
}

/** A DataRow whose columns are decoded only when read. */
export class RawRow {
  private readonly decoder: RowDecoder
  /** The DataRow body's bytes (a view, not a copy). */
  readonly buf: Uint8Array
  /** Per column: start offset in `buf`, then length (-1 for NULL). */
  readonly offsets: Int32Array

  constructor(decoder: RowDecoder, buf: Uint8Array, offsets: Int32Array) {
    this.decoder = decoder
    this.buf = buf
    this.offsets = offsets
  }

  get length(): number {
    return this.offsets.length / 2
  }

  isNull(i: number): boolean {
    return this.offsets[2 * this.check(i) + 1] === -1
  }

  /** Column `i` decoded (null for SQL NULL). */
  get(i: number): unknown {
    this.check(i)
    return this.decoder.decodeColumn(i, this.buf, this.offsets[2 * i]!, this.offsets[2 * i + 1]!)
  }

  /** The column named `name` decoded (the last one, if the name repeats); undefined if there is none. */
  getByName(name: string): unknown {
    const i = this.decoder.indexOf(name)
    return i === -1 ? undefined : this.get(i)
  }

  /** The raw bytes of column `i` (a view), or null. */
  bytes(i: number): Uint8Array | null {
    this.check(i)
    const len = this.offsets[2 * i + 1]!
    return len === -1 ? null : this.buf.subarray(this.offsets[2 * i]!, this.offsets[2 * i]! + len)
  }

  private check(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`column index ${i} out of range 0..${this.length - 1}`)
    return i
  }
}
