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
 * - `RawRow` validates the layout eagerly (same checks) but decodes a column only when asked; it keeps
 *   a view of the body bytes (not a copy).
 */
import { fail, isProtocolError, ProtocolError } from "./ProtocolError.ts"
import type { TypeRegistry } from "./TypeRegistry.ts"

export interface RowField {
  readonly name: string
  readonly typeOid: number
  readonly format: 0 | 1
}

export interface RowDecoderOptions {
  readonly mode?: "object" | "array"
}

type Decode = (buf: Uint8Array, start: number, end: number) => unknown

const copyBytes: Decode = (buf, start, end) => buf.slice(start, end)

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

const readLength = (buf: Uint8Array, p: number): number => (buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!

export class RowDecoder {
  readonly fields: ReadonlyArray<RowField>
  readonly mode: "object" | "array"
  private readonly decoders: ReadonlyArray<Decode>
  private readonly shape: ((values: ReadonlyArray<unknown>) => Record<string, unknown>) | undefined
  private readonly scratch: Array<unknown>
  private nameIndex: Map<string, number> | undefined

  private constructor(fields: ReadonlyArray<RowField>, registry: TypeRegistry, options: RowDecoderOptions) {
    this.fields = fields
    this.mode = options.mode ?? "object"
    this.decoders = fields.map((f) => {
      const codec = registry.get(f.typeOid)
      if (f.format === 1) return codec.decodeBinary ?? copyBytes
      if (f.format === 0) return codec.decodeText
      return fail("InvalidValue", `column ${JSON.stringify(f.name)} has format code ${f.format as number}`, "T")
    })
    this.shape = this.mode === "object" ? makeShape(fields.map((f) => f.name)) : undefined
    this.scratch = new Array(fields.length).fill(null)
  }

  /** Compiles a decoder for one RowDescription. */
  static make(fields: ReadonlyArray<RowField>, registry: TypeRegistry, options: RowDecoderOptions = {}): RowDecoder {
    return new RowDecoder(fields, registry, options)
  }

  /** Decodes one DataRow body into an object (object mode) or an array (array mode). */
  decode(buf: Uint8Array, start: number, end: number): Record<string, unknown> | Array<unknown> {
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
    if (p !== end) fail("TrailingBytes", `${end - p} unread byte(s) after the last column`, "D", p)
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
    if (p !== end) fail("TrailingBytes", `${end - p} unread byte(s) after the last column`, "D", p)
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
