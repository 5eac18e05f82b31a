/**
 * Arrays of any element type, text and binary.
 *
 * Representation:
 * - All lower bounds 1 (the usual case): plain nested JS arrays, one nesting level per dimension;
 *   NULL elements are `null`; the empty array is `[]`.
 * - Any other lower bound: a `PgArray { dimensions, lowerBounds, elements }`, `elements` nested the same way.
 * Encoders take either. For a plain JS array the dimensions are inferred by descending into first
 * elements, except when the element type's own values are JS arrays (json, jsonb, multiranges): then
 * a plain array is one-dimensional — use `PgArray` for more dimensions. `undefined` encodes as NULL.
 *
 * Invariants:
 * - Text parsing follows array_in: `[lb:ub]…=` dimension prefix, `{…}` nesting, the type's delimiter
 *   (`;` for box, `,` otherwise), double-quoted elements with backslash escapes, unquoted NULL
 *   (any case) as null, whitespace around elements ignored. Ragged input is refused.
 * - Binary decode checks the element OID against the array's element type, the dimension count
 *   (≤ 6, MAXDIM), the element count against the bytes present before allocating, and every length.
 * - The element codec is resolved through the registry once per array value, so a codec registered
 *   later (or replaced) is used by arrays of that type too.
 */
import type { Writer } from "../internal/Writer.ts"
import { encodeInvalid, invalidValue, readI32, show, writeLengthPrefixed, type ValueCodec } from "./ValueCodec.ts"
import { copyRange } from "../internal/copyRange.ts"

const MAXDIM = 6

export class PgArray<A = unknown> {
  readonly dimensions: ReadonlyArray<number>
  readonly lowerBounds: ReadonlyArray<number>
  /** Nested JS arrays, one level per dimension. */
  readonly elements: ReadonlyArray<unknown>
  declare readonly _A: A

  constructor(dimensions: ReadonlyArray<number>, lowerBounds: ReadonlyArray<number>, elements: ReadonlyArray<unknown>) {
    this.dimensions = dimensions
    this.lowerBounds = lowerBounds
    this.elements = elements
  }
}

export type ArrayValue = ReadonlyArray<unknown> | PgArray

export interface ArrayCodecOptions {
  readonly name: string
  readonly oid: number
  readonly elementOid: number
  readonly delimiter: string
  /** The element codec, resolved once per value. */
  readonly element: () => ValueCodec<unknown>
  /** The element type's values are JS arrays themselves (json, jsonb, multiranges). */
  readonly elementIsArray: boolean
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c

/** Nests a flat element list by dimensions. */
const nest = (flat: Array<unknown>, dims: ReadonlyArray<number>): Array<unknown> => {
  let level: Array<unknown> = flat
  for (let d = dims.length - 1; d > 0; d--) {
    const size = dims[d]!
    const next: Array<unknown> = []
    for (let i = 0; i < level.length; i += size) next.push(level.slice(i, i + size))
    level = next
  }
  return level
}

const allOnes = (lbs: ReadonlyArray<number>): boolean => {
  for (const lb of lbs) if (lb !== 1) return false
  return true
}

// ---------------------------------------------------------------------------------------------
// text

class TextParser {
  buf: Uint8Array
  pos: number
  end: number
  readonly delim: number
  readonly name: string
  readonly elem: ValueCodec<unknown>
  scratch: Uint8Array = new Uint8Array(64)
  /** Depth at which scalar elements were found (all must agree). */
  leafDepth = -1

  constructor(name: string, buf: Uint8Array, start: number, end: number, delim: number, elem: ValueCodec<unknown>) {
    this.name = name
    this.buf = buf
    this.pos = start
    this.end = end
    this.delim = delim
    this.elem = elem
  }

  fail(what: string): never {
    return invalidValue(this.name, `${what} at offset ${this.pos}`, this.pos)
  }

  skipSpace(): void {
    while (this.pos < this.end && isSpace(this.buf[this.pos]!)) this.pos++
  }

  /** `[lb:ub]` repeated then `=`; returns the bounds. */
  dimensionPrefix(): { dims: Array<number>; lbs: Array<number> } {
    const dims: Array<number> = []
    const lbs: Array<number> = []
    const b = this.buf
    while (this.pos < this.end && b[this.pos] === 0x5b) {
      this.pos++
      const lb = this.integer()
      if (b[this.pos] !== 0x3a) this.fail("expected ':' in dimensions")
      this.pos++
      const ub = this.integer()
      if (b[this.pos] !== 0x5d) this.fail("expected ']' in dimensions")
      this.pos++
      if (ub < lb - 1) this.fail("upper bound below lower bound")
      dims.push(ub - lb + 1)
      lbs.push(lb)
      if (dims.length > MAXDIM) this.fail(`more than ${MAXDIM} dimensions`)
    }
    if (b[this.pos] !== 0x3d) this.fail("expected '=' after dimensions")
    this.pos++
    return { dims, lbs }
  }

  integer(): number {
    const b = this.buf
    const start = this.pos
    if (b[this.pos] === 0x2d || b[this.pos] === 0x2b) this.pos++
    while (this.pos < this.end && b[this.pos]! >= 0x30 && b[this.pos]! <= 0x39) this.pos++
    const s = String.fromCharCode(...b.subarray(start, this.pos))
    const n = Number(s)
    if (s === "" || s === "-" || s === "+" || !Number.isSafeInteger(n) || Math.abs(n) > 2147483647) this.fail("bad dimension bound")
    return n
  }

  /** `{…}` at the current position; returns its elements (nested) and checks the shape as it goes. */
  level(depth: number, shape: Array<number>): Array<unknown> {
    const b = this.buf
    if (b[this.pos] !== 0x7b) this.fail("expected '{'")
    if (depth >= MAXDIM) this.fail(`more than ${MAXDIM} dimensions`)
    this.pos++
    const out: Array<unknown> = []
    this.skipSpace()
    if (this.pos < this.end && b[this.pos] === 0x7d) {
      this.pos++
      if (depth > 0) this.fail("empty sub-array")
      return out
    }
    let nested: boolean | undefined
    for (;;) {
      this.skipSpace()
      if (this.pos >= this.end) this.fail("unterminated array")
      const isNested = b[this.pos] === 0x7b
      if (nested === undefined) nested = isNested
      else if (nested !== isNested) this.fail("mixed sub-arrays and elements")
      out.push(isNested ? this.level(depth + 1, shape) : this.element())
      this.skipSpace()
      if (this.pos >= this.end) this.fail("unterminated array")
      const c = b[this.pos]!
      this.pos++
      if (c === 0x7d) break
      if (c !== this.delim) {
        this.pos--
        this.fail("expected a delimiter or '}'")
      }
    }
    if (shape[depth] === undefined) shape[depth] = out.length
    else if (shape[depth] !== out.length) this.fail("sub-arrays of different sizes")
    if (!nested) {
      if (this.leafDepth === -1) this.leafDepth = depth
      else if (this.leafDepth !== depth) this.fail("sub-arrays of different depths")
    }
    return out
  }

  element(): unknown {
    const b = this.buf
    const delim = this.delim
    if (b[this.pos] === 0x22) {
      this.pos++
      const start = this.pos
      let escapes = false
      while (this.pos < this.end && b[this.pos] !== 0x22) {
        if (b[this.pos] === 0x5c) {
          escapes = true
          this.pos++
        }
        this.pos++
      }
      if (this.pos >= this.end) this.fail("unterminated quoted element")
      const end = this.pos
      this.pos++
      return escapes ? this.unescaped(start, end) : this.elem.decodeText(b, start, end)
    }
    const start = this.pos
    let escapes = false
    let lastNonSpace = start
    while (this.pos < this.end) {
      const c = b[this.pos]!
      if (c === delim || c === 0x7d) break
      if (c === 0x7b || c === 0x22) this.fail("unexpected character in unquoted element")
      if (c === 0x5c) {
        escapes = true
        this.pos++
        if (this.pos >= this.end) this.fail("backslash at end of array")
        lastNonSpace = this.pos + 1
      } else if (!isSpace(c)) lastNonSpace = this.pos + 1
      this.pos++
    }
    const end = lastNonSpace
    if (end === start) this.fail("empty unquoted element")
    if (!escapes && end - start === 4) {
      const n = b[start]! | 0x20
      if (n === 0x6e && (b[start + 1]! | 0x20) === 0x75 && (b[start + 2]! | 0x20) === 0x6c && (b[start + 3]! | 0x20) === 0x6c) return null
    }
    return escapes ? this.unescaped(start, end) : this.elem.decodeText(b, start, end)
  }

  /** Decodes `buf[start, end)` with backslash escapes removed. */
  unescaped(start: number, end: number): unknown {
    if (this.scratch.length < end - start) this.scratch = new Uint8Array(end - start)
    const s = this.scratch
    const b = this.buf
    let n = 0
    for (let i = start; i < end; i++) {
      if (b[i] === 0x5c) i++
      s[n++] = b[i]!
    }
    return this.elem.decodeText(s, 0, n)
  }
}

const decodeText = (o: ArrayCodecOptions) => (buf: Uint8Array, start: number, end: number): ArrayValue => {
  const p = new TextParser(o.name, buf, start, end, o.delimiter.charCodeAt(0), o.element())
  let explicit: { dims: Array<number>; lbs: Array<number> } | undefined
  if (buf[start] === 0x5b) explicit = p.dimensionPrefix()
  p.skipSpace()
  const shape: Array<number> = []
  const elements = p.level(0, shape)
  p.skipSpace()
  if (p.pos !== end) p.fail("trailing characters after the array")
  if (explicit === undefined) return elements
  const same = explicit.dims.length === shape.length && explicit.dims.every((d, i) => d === shape[i])
  if (!same && !(elements.length === 0 && explicit.dims.every((d) => d === 0))) {
    return invalidValue(o.name, `dimensions [${explicit.dims}] do not match the elements [${shape}] in ${show(buf, start, end)}`, start)
  }
  return allOnes(explicit.lbs) || elements.length === 0 ? elements : new PgArray(explicit.dims, explicit.lbs, elements)
}

// ---------------------------------------------------------------------------------------------
// binary

const decodeBinary = (o: ArrayCodecOptions) => (buf: Uint8Array, start: number, end: number): ArrayValue => {
  const name = o.name
  if (end - start < 12) return invalidValue(name, "binary value too short", start)
  const ndim = readI32(buf, start)
  const flags = readI32(buf, start + 4)
  const elemOid = readI32(buf, start + 8) >>> 0
  if (ndim < 0 || ndim > MAXDIM) return invalidValue(name, `${ndim} dimensions`, start)
  if (flags !== 0 && flags !== 1) return invalidValue(name, `flags ${flags}`, start + 4)
  if (elemOid !== o.elementOid) return invalidValue(name, `element type OID ${elemOid}, expected ${o.elementOid}`, start + 8)
  let p = start + 12
  if (ndim === 0) {
    if (p !== end) invalidValue(name, "bytes after an empty array", p)
    return []
  }
  if (end - p < ndim * 8) return invalidValue(name, "truncated dimensions", p)
  const dims: Array<number> = []
  const lbs: Array<number> = []
  let total = 1
  for (let d = 0; d < ndim; d++) {
    const size = readI32(buf, p)
    const lb = readI32(buf, p + 4)
    if (size < 0) return invalidValue(name, `dimension size ${size}`, p)
    dims.push(size)
    lbs.push(lb)
    total *= size
    p += 8
  }
  // Every element takes at least its 4-byte length: refuse counts the bytes cannot hold.
  if (total * 4 > end - p) return invalidValue(name, `${total} elements cannot fit in ${end - p} bytes`, p)
  const elem = o.element()
  const decode = elem.decodeBinary
  const flat: Array<unknown> = new Array(total)
  for (let i = 0; i < total; i++) {
    if (p + 4 > end) return invalidValue(name, "truncated element length", p)
    const len = readI32(buf, p)
    p += 4
    if (len === -1) {
      flat[i] = null
      continue
    }
    if (len < 0 || p + len > end) return invalidValue(name, `element length ${len} runs past the value`, p - 4)
    flat[i] = decode === undefined ? copyRange(buf, p, p + len) : decode(buf, p, p + len)
    p += len
  }
  if (p !== end) return invalidValue(name, `${end - p} trailing byte(s)`, p)
  if (total === 0) return []
  const elements = nest(flat, dims)
  return allOnes(lbs) ? elements : new PgArray(dims, lbs, elements)
}

// ---------------------------------------------------------------------------------------------
// encoding

interface Shape {
  readonly dims: ReadonlyArray<number>
  readonly lbs: ReadonlyArray<number>
  readonly flat: Array<unknown>
}

const shapeOf = (o: ArrayCodecOptions, v: ArrayValue): Shape => {
  let dims: Array<number>
  let lbs: Array<number>
  let root: ReadonlyArray<unknown>
  if (v instanceof PgArray) {
    dims = v.dimensions.slice()
    lbs = v.lowerBounds.slice()
    root = v.elements
    if (dims.length !== lbs.length) encodeInvalid(o.name, "dimensions and lowerBounds differ in length")
  } else if (Array.isArray(v)) {
    root = v
    dims = []
    let x: unknown = v
    while (Array.isArray(x)) {
      dims.push(x.length)
      if (x.length === 0 || o.elementIsArray) break
      x = x[0]
    }
    lbs = dims.map(() => 1)
  } else {
    return encodeInvalid(o.name, "expected an array or PgArray")
  }
  if (dims.length > MAXDIM) encodeInvalid(o.name, `more than ${MAXDIM} dimensions`)
  if (dims.some((d) => d === 0)) {
    if (!isAllEmpty(root)) encodeInvalid(o.name, "a dimension of size 0 with elements")
    return { dims: [], lbs: [], flat: [] }
  }
  const flat: Array<unknown> = []
  const walk = (x: unknown, depth: number): void => {
    if (depth === dims.length) {
      flat.push(x)
      return
    }
    if (!Array.isArray(x) || x.length !== dims[depth]) {
      encodeInvalid(o.name, `not rectangular: expected ${dims[depth]} element(s) at depth ${depth}`)
    }
    for (const y of x as ReadonlyArray<unknown>) walk(y, depth + 1)
  }
  walk(root, 0)
  return { dims, lbs, flat }
}

const isAllEmpty = (x: ReadonlyArray<unknown>): boolean => x.every((y) => Array.isArray(y) && isAllEmpty(y))

const needsQuotes = (s: string, delim: string): boolean => {
  if (s === "") return true
  if (s.length === 4 && s.toLowerCase() === "null") return true
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x22 || c === 0x5c || c === 0x7b || c === 0x7d || isSpace(c) || s[i] === delim) return true
  }
  return false
}

const encodeText = (o: ArrayCodecOptions) => (v: ArrayValue): string => {
  const { dims, lbs, flat } = shapeOf(o, v)
  if (dims.length === 0) return "{}"
  const elem = o.element()
  const delim = o.delimiter
  let i = 0
  const level = (depth: number): string => {
    const parts: Array<string> = []
    for (let k = 0; k < dims[depth]!; k++) {
      if (depth + 1 < dims.length) parts.push(level(depth + 1))
      else {
        const x = flat[i++]
        if (x === null || x === undefined) parts.push("NULL")
        else {
          const s = elem.encodeText(x)
          parts.push(needsQuotes(s, delim) ? '"' + s.replace(/[\\"]/g, "\\$&") + '"' : s)
        }
      }
    }
    return "{" + parts.join(delim) + "}"
  }
  const body = level(0)
  return allOnes(lbs) ? body : lbs.map((lb, d) => `[${lb}:${lb + dims[d]! - 1}]`).join("") + "=" + body
}

const encodeBinary = (o: ArrayCodecOptions) => (w: Writer, v: ArrayValue): void => {
  const { dims, lbs, flat } = shapeOf(o, v)
  const elem = o.element()
  const enc = elem.encodeBinary ?? encodeInvalid(o.name, `element type ${elem.name} has no binary format`)
  let hasNull = false
  for (const x of flat) if (x === null || x === undefined) hasNull = true
  w.i32(dims.length).i32(hasNull ? 1 : 0).u32(o.elementOid)
  for (let d = 0; d < dims.length; d++) w.i32(dims[d]!).i32(lbs[d]!)
  for (const x of flat) {
    if (x === null || x === undefined) w.i32(-1)
    else writeLengthPrefixed(w, () => enc(w, x))
  }
}

export const arrayCodec = (o: ArrayCodecOptions): ValueCodec<ArrayValue> => ({
  name: o.name,
  oid: o.oid,
  decodeText: decodeText(o),
  decodeBinary: decodeBinary(o),
  encodeText: encodeText(o),
  encodeBinary: encodeBinary(o)
})
