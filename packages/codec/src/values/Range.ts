/**
 * Ranges and multiranges over any subtype, text and binary.
 *
 * Representation: `PgRange<A> { lower, upper, lowerInclusive, upperInclusive, empty }`, an unbounded
 * end is `undefined` (and never inclusive); the empty range has both ends undefined and `empty: true`.
 * A multirange is a `ReadonlyArray<PgRange<A>>`.
 *
 * Invariants:
 * - Binary range: a flags byte (0x01 empty, 0x02 lower inclusive, 0x04 upper inclusive, 0x08 lower
 *   infinite, 0x10 upper infinite), then each present bound as Int32 length + subtype bytes.
 *   Binary multirange: Int32 count, then each range as Int32 length + range bytes.
 * - Text follows range_in: `empty`, `[a,b)`, `(,b]`, bounds quoted with `"` (doubled `""` or `\"`
 *   inside) or unquoted with backslash escapes; an empty unquoted bound is unbounded, `""` an empty value.
 * - Values are not normalised: what the server sends is what you get (it canonicalises discrete
 *   ranges to `[a,b)` itself).
 * - The subtype codec is resolved through the registry once per value.
 */
import type { Writer } from "../internal/Writer.ts"
import { encodeInvalid, invalidValue, readI32, show, writeLengthPrefixed, type ValueCodec } from "./ValueCodec.ts"
import { copyRange } from "../internal/copyRange.ts"

export interface PgRange<A> {
  readonly lower: A | undefined
  readonly upper: A | undefined
  readonly lowerInclusive: boolean
  readonly upperInclusive: boolean
  readonly empty: boolean
}

export const emptyRange: PgRange<never> = {
  lower: undefined,
  upper: undefined,
  lowerInclusive: false,
  upperInclusive: false,
  empty: true
}

/** A non-empty range; `"[)"`-style bounds, unbounded ends never inclusive. */
export const makeRange = <A>(lower: A | undefined, upper: A | undefined, bounds: "[)" | "[]" | "(]" | "()" = "[)"): PgRange<A> => ({
  lower,
  upper,
  lowerInclusive: lower !== undefined && bounds[0] === "[",
  upperInclusive: upper !== undefined && bounds[1] === "]",
  empty: false
})

const RANGE_EMPTY = 0x01
const RANGE_LB_INC = 0x02
const RANGE_UB_INC = 0x04
const RANGE_LB_INF = 0x08
const RANGE_UB_INF = 0x10

// ---------------------------------------------------------------------------------------------
// text

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c

/** Parses one range at `pos`; returns the range and the position after it. */
const parseRangeText = (
  name: string,
  sub: ValueCodec<unknown>,
  buf: Uint8Array,
  pos: number,
  end: number
): [PgRange<unknown>, number] => {
  const fail = (what: string): never => invalidValue(name, `${what} in ${show(buf, pos, end)}`, pos)
  let p = pos
  while (p < end && isSpace(buf[p]!)) p++
  if (
    end - p >= 5 && (buf[p]! | 0x20) === 0x65 && (buf[p + 1]! | 0x20) === 0x6d && (buf[p + 2]! | 0x20) === 0x70 &&
    (buf[p + 3]! | 0x20) === 0x74 && (buf[p + 4]! | 0x20) === 0x79
  ) {
    return [emptyRange, p + 5]
  }
  const open = buf[p]
  if (open !== 0x5b && open !== 0x28) fail("expected '[' or '('")
  p++
  let scratch: Uint8Array | undefined
  const bound = (): [value: unknown, present: boolean] => {
    // Reads until an unquoted ',' ')' or ']'; quotes and backslashes escape.
    const start = p
    let quoted = false
    let plain = true
    while (p < end) {
      const c = buf[p]!
      if (!quoted && (c === 0x2c || c === 0x29 || c === 0x5d)) break
      if (c === 0x5c) {
        plain = false
        p += 2
        continue
      }
      if (c === 0x22) {
        plain = false
        if (quoted && p + 1 < end && buf[p + 1] === 0x22) {
          p += 2
          continue
        }
        quoted = !quoted
        p++
        continue
      }
      p++
    }
    if (p >= end || quoted) fail("unterminated range")
    if (p === start) return [undefined, false]
    if (plain) return [sub.decodeText(buf, start, p), true]
    if (scratch === undefined || scratch.length < p - start) scratch = new Uint8Array(p - start)
    let n = 0
    let inQuote = false
    for (let i = start; i < p; i++) {
      const c = buf[i]!
      if (c === 0x5c) {
        scratch[n++] = buf[++i]!
      } else if (c === 0x22) {
        if (inQuote && i + 1 < p && buf[i + 1] === 0x22) {
          scratch[n++] = 0x22
          i++
        } else inQuote = !inQuote
      } else scratch[n++] = c
    }
    return [sub.decodeText(scratch, 0, n), true]
  }
  const [lower, hasLower] = bound()
  if (buf[p] !== 0x2c) fail("expected ','")
  p++
  const [upper, hasUpper] = bound()
  const close = buf[p]
  if (close !== 0x5d && close !== 0x29) fail("expected ']' or ')'")
  p++
  return [
    {
      lower: hasLower ? lower : undefined,
      upper: hasUpper ? upper : undefined,
      lowerInclusive: hasLower && open === 0x5b,
      upperInclusive: hasUpper && close === 0x5d,
      empty: false
    },
    p
  ]
}

const needsQuotes = (s: string): boolean => {
  if (s === "") return true
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x22 || c === 0x5c || c === 0x2c || c === 0x28 || c === 0x29 || c === 0x5b || c === 0x5d || isSpace(c)) return true
  }
  return false
}

const checkRange = (name: string, r: PgRange<unknown>): PgRange<unknown> =>
  r !== null && typeof r === "object" && typeof r.empty === "boolean" ? r : encodeInvalid(name, "expected a PgRange")

const rangeText = (name: string, sub: ValueCodec<unknown>, r: PgRange<unknown>): string => {
  checkRange(name, r)
  if (r.empty) return "empty"
  const b = (v: unknown): string => {
    if (v === undefined || v === null) return ""
    const s = sub.encodeText(v)
    return needsQuotes(s) ? '"' + s.replace(/[\\"]/g, "\\$&") + '"' : s
  }
  const lower = r.lower === undefined || r.lower === null
  const upper = r.upper === undefined || r.upper === null
  return `${r.lowerInclusive && !lower ? "[" : "("}${b(r.lower)},${b(r.upper)}${r.upperInclusive && !upper ? "]" : ")"}`
}

// ---------------------------------------------------------------------------------------------
// binary

const decodeRangeBinary = (name: string, sub: ValueCodec<unknown>, buf: Uint8Array, start: number, end: number): PgRange<unknown> => {
  if (end - start < 1) return invalidValue(name, "empty binary value", start)
  const flags = buf[start]!
  let p = start + 1
  if (flags & RANGE_EMPTY) {
    if (p !== end) invalidValue(name, "bytes after an empty range", p)
    return emptyRange
  }
  const decode = sub.decodeBinary
  const bound = (): unknown => {
    if (p + 4 > end) invalidValue(name, "truncated bound length", p)
    const len = readI32(buf, p)
    p += 4
    if (len < 0 || p + len > end) invalidValue(name, `bound length ${len} runs past the value`, p - 4)
    const v = decode === undefined ? copyRange(buf, p, p + len) : decode(buf, p, p + len)
    p += len
    return v
  }
  const lower = flags & RANGE_LB_INF ? undefined : bound()
  const upper = flags & RANGE_UB_INF ? undefined : bound()
  if (p !== end) invalidValue(name, `${end - p} trailing byte(s)`, p)
  return {
    lower,
    upper,
    lowerInclusive: lower !== undefined && (flags & RANGE_LB_INC) !== 0,
    upperInclusive: upper !== undefined && (flags & RANGE_UB_INC) !== 0,
    empty: false
  }
}

const encodeRangeBinary = (name: string, sub: ValueCodec<unknown>, w: Writer, r: PgRange<unknown>): void => {
  checkRange(name, r)
  if (r.empty) {
    w.u8(RANGE_EMPTY)
    return
  }
  const enc = sub.encodeBinary ?? encodeInvalid(name, `subtype ${sub.name} has no binary format`)
  const noLower = r.lower === undefined || r.lower === null
  const noUpper = r.upper === undefined || r.upper === null
  w.u8(
    (noLower ? RANGE_LB_INF : r.lowerInclusive ? RANGE_LB_INC : 0) |
      (noUpper ? RANGE_UB_INF : r.upperInclusive ? RANGE_UB_INC : 0)
  )
  if (!noLower) writeLengthPrefixed(w, () => enc(w, r.lower))
  if (!noUpper) writeLengthPrefixed(w, () => enc(w, r.upper))
}

// ---------------------------------------------------------------------------------------------
// codecs

export const rangeCodec = (name: string, oid: number, subtype: () => ValueCodec<unknown>): ValueCodec<PgRange<unknown>> => ({
  name,
  oid,
  decodeText: (buf, start, end) => {
    const [r, p] = parseRangeText(name, subtype(), buf, start, end)
    let q = p
    while (q < end && isSpace(buf[q]!)) q++
    return q === end ? r : invalidValue(name, `trailing characters in ${show(buf, start, end)}`, q)
  },
  decodeBinary: (buf, start, end) => decodeRangeBinary(name, subtype(), buf, start, end),
  encodeText: (r) => rangeText(name, subtype(), r),
  encodeBinary: (w, r) => encodeRangeBinary(name, subtype(), w, r)
})

export const multirangeCodec = (
  name: string,
  oid: number,
  subtype: () => ValueCodec<unknown>
): ValueCodec<ReadonlyArray<PgRange<unknown>>> => ({
  name,
  oid,
  decodeText: (buf, start, end) => {
    const sub = subtype()
    const out: Array<PgRange<unknown>> = []
    let p = start
    const skip = () => {
      while (p < end && isSpace(buf[p]!)) p++
    }
    skip()
    if (buf[p] !== 0x7b) return invalidValue(name, `expected '{' in ${show(buf, start, end)}`, p)
    p++
    skip()
    if (buf[p] === 0x7d) p++
    else {
      for (;;) {
        const [r, q] = parseRangeText(name, sub, buf, p, end)
        if (!r.empty) out.push(r) // PostgreSQL drops empty ranges from multiranges
        p = q
        skip()
        const c = buf[p]
        p++
        if (c === 0x7d) break
        if (c !== 0x2c) return invalidValue(name, `expected ',' or '}' in ${show(buf, start, end)}`, p - 1)
      }
    }
    skip()
    return p === end ? out : invalidValue(name, `trailing characters in ${show(buf, start, end)}`, p)
  },
  decodeBinary: (buf, start, end) => {
    const sub = subtype()
    if (end - start < 4) return invalidValue(name, "binary value too short", start)
    const count = readI32(buf, start)
    let p = start + 4
    if (count < 0 || count * 5 > end - p) return invalidValue(name, `range count ${count}`, start)
    const out: Array<PgRange<unknown>> = new Array(count)
    for (let i = 0; i < count; i++) {
      if (p + 4 > end) return invalidValue(name, "truncated range length", p)
      const len = readI32(buf, p)
      p += 4
      if (len < 1 || p + len > end) return invalidValue(name, `range length ${len} runs past the value`, p - 4)
      out[i] = decodeRangeBinary(name, sub, buf, p, p + len)
      p += len
    }
    return p === end ? out : invalidValue(name, `${end - p} trailing byte(s)`, p)
  },
  encodeText: (v) => {
    if (!Array.isArray(v)) return encodeInvalid(name, "expected an array of PgRange")
    const sub = subtype()
    return "{" + v.map((r) => rangeText(name, sub, r)).join(",") + "}"
  },
  encodeBinary: (w, v) => {
    if (!Array.isArray(v)) return encodeInvalid(name, "expected an array of PgRange")
    const sub = subtype()
    w.i32(v.length)
    for (const r of v) writeLengthPrefixed(w, () => encodeRangeBinary(name, sub, w, r))
  }
})
