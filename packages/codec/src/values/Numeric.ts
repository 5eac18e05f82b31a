/**
 * numeric ↔ decimal string, exactly.
 *
 * Invariants:
 * - Never goes through a float: binary base-10000 digits are turned into decimal text digit by digit,
 *   and decimal text into base-10000 digits the same way, so any precision and scale round-trips.
 * - The decoded string is what PostgreSQL prints: plain notation, `dscale` fraction digits, "NaN",
 *   "Infinity", "-Infinity".
 * - Encoders accept any decimal string PostgreSQL accepts in plain or exponent notation
 *   ("1.5e-3", ".5", "+7"), plus NaN/Infinity/-Infinity (and "inf"), case-insensitively for the specials.
 *   The binary encoding keeps the input's scale (trailing fraction zeros count).
 */
import type { Writer } from "../internal/Writer.ts"
import { decodeUtf8 } from "../internal/utf8.ts"
import { TypeOid } from "../TypeOid.ts"
import { encodeInvalid, invalidValue, show, type ValueCodec } from "./ValueCodec.ts"

const NUMERIC_POS = 0x0000
const NUMERIC_NEG = 0x4000
const NUMERIC_NAN = 0xc000
const NUMERIC_PINF = 0xd000
const NUMERIC_NINF = 0xf000
const NUMERIC_DSCALE_MAX = 0x3fff

const numericPattern = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

const decodeBinary = (buf: Uint8Array, start: number, end: number): string => {
  if (end - start < 8) return invalidValue("numeric", `binary value is ${end - start} byte(s), need at least 8`, start)
  const ndigits = (buf[start]! << 8) | buf[start + 1]!
  const weight = ((((buf[start + 2]! << 8) | buf[start + 3]!) << 16) >> 16)
  const sign = (buf[start + 4]! << 8) | buf[start + 5]!
  const dscale = (buf[start + 6]! << 8) | buf[start + 7]!
  if (sign === NUMERIC_NAN) return "NaN"
  if (sign === NUMERIC_PINF) return "Infinity"
  if (sign === NUMERIC_NINF) return "-Infinity"
  if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG) return invalidValue("numeric", `sign 0x${sign.toString(16)}`, start + 4)
  if (ndigits > 0x7fff || dscale > NUMERIC_DSCALE_MAX) return invalidValue("numeric", "digit count or scale out of range", start)
  if (end - start !== 8 + ndigits * 2) {
    return invalidValue("numeric", `${ndigits} digit(s) need ${8 + ndigits * 2} bytes, got ${end - start}`, start)
  }
  const d = start + 8
  const digit = (k: number): number => {
    if (k < 0 || k >= ndigits) return 0
    const v = (buf[d + 2 * k]! << 8) | buf[d + 2 * k + 1]!
    if (v > 9999) invalidValue("numeric", `base-10000 digit ${v}`, d + 2 * k)
    return v
  }
  let s = sign === NUMERIC_NEG ? "-" : ""
  if (weight < 0) s += "0"
  else {
    s += String(digit(0))
    for (let k = 1; k <= weight; k++) s += String(digit(k)).padStart(4, "0")
  }
  if (dscale > 0) {
    let frac = ""
    for (let k = weight + 1; frac.length < dscale; k++) frac += String(digit(k)).padStart(4, "0")
    s += "." + frac.slice(0, dscale)
  } else {
    for (let k = weight + 1; k < ndigits; k++) if (digit(k) !== 0) invalidValue("numeric", "digits beyond the scale", start)
  }
  return s
}

interface Parsed {
  readonly special: number | undefined
  readonly negative: boolean
  /** All significant digits, integer part first. */
  readonly digits: string
  /** How many of `digits` are before the decimal point (may be negative or exceed digits.length). */
  readonly pointAt: number
  readonly dscale: number
}

const parse = (s: string): Parsed | undefined => {
  const t = s.trim()
  switch (t.toLowerCase()) {
    case "nan":
      return { special: NUMERIC_NAN, negative: false, digits: "", pointAt: 0, dscale: 0 }
    case "infinity":
    case "+infinity":
    case "inf":
    case "+inf":
      return { special: NUMERIC_PINF, negative: false, digits: "", pointAt: 0, dscale: 0 }
    case "-infinity":
    case "-inf":
      return { special: NUMERIC_NINF, negative: true, digits: "", pointAt: 0, dscale: 0 }
  }
  if (!numericPattern.test(t)) return undefined
  let i = 0
  let negative = false
  if (t[0] === "-" || t[0] === "+") {
    negative = t[0] === "-"
    i = 1
  }
  const e = t.search(/[eE]/)
  const mantissa = t.slice(i, e === -1 ? t.length : e)
  const exponent = e === -1 ? 0 : Number(t.slice(e + 1))
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 1_000_000) return undefined
  const dot = mantissa.indexOf(".")
  const intPart = dot === -1 ? mantissa : mantissa.slice(0, dot)
  const fracPart = dot === -1 ? "" : mantissa.slice(dot + 1)
  return {
    special: undefined,
    negative,
    digits: intPart + fracPart,
    pointAt: intPart.length + exponent,
    dscale: Math.max(0, fracPart.length - exponent)
  }
}

/** Canonical decimal text for a parsed value (what the server would print). */
const format = (p: Parsed): string => {
  if (p.special !== undefined) return p.special === NUMERIC_NAN ? "NaN" : p.special === NUMERIC_PINF ? "Infinity" : "-Infinity"
  let { digits, pointAt } = p
  if (pointAt < 0) {
    digits = "0".repeat(-pointAt) + digits
    pointAt = 0
  }
  if (pointAt > digits.length) digits = digits + "0".repeat(pointAt - digits.length)
  let intPart = digits.slice(0, pointAt).replace(/^0+/, "")
  if (intPart === "") intPart = "0"
  const frac = digits.slice(pointAt).padEnd(p.dscale, "0").slice(0, p.dscale)
  const isZero = /^0*$/.test(intPart) && /^0*$/.test(frac)
  return (p.negative && !isZero ? "-" : "") + intPart + (p.dscale > 0 ? "." + frac : "")
}

/**
 * Decimal strings are taken as they are (lossless). A JS number or bigint is accepted too, as the
 * decimal its value prints as (a number is already a binary double: encoding it loses nothing more).
 */
const parseOrFail = (input: string | number | bigint): Parsed => {
  const v = typeof input === "string"
    ? input
    : typeof input === "bigint"
    ? input.toString()
    : typeof input === "number"
    ? (Number.isNaN(input) ? "NaN" : input === Infinity ? "Infinity" : input === -Infinity ? "-Infinity" : String(input))
    : encodeInvalid("numeric", `${typeof input} is not a decimal string, number or bigint`)
  const p = parse(v)
  if (p === undefined) return encodeInvalid("numeric", JSON.stringify(v))
  if (p.dscale > NUMERIC_DSCALE_MAX) encodeInvalid("numeric", `scale ${p.dscale} exceeds ${NUMERIC_DSCALE_MAX}`)
  return p
}

const encodeBinary = (w: Writer, v: string): void => {
  const p = parseOrFail(v)
  if (p.special !== undefined) {
    w.i16(0).i16(0).u16(p.special).u16(0)
    return
  }
  // Align the digits to base-10000 groups around the decimal point.
  let digits = p.digits
  let pointAt = p.pointAt
  const lead = ((4 - (pointAt % 4)) % 4 + 4) % 4
  digits = "0".repeat(lead) + digits
  pointAt += lead
  digits = digits.padEnd(Math.ceil(digits.length / 4) * 4, "0")
  if (pointAt > digits.length) {
    // Exponent pushes the point past the digits: pad whole groups of zeros (multiple of 4 by construction).
    digits = digits + "0".repeat(pointAt - digits.length)
  }
  const groups: Array<number> = []
  for (let k = 0; k < digits.length; k += 4) groups.push(Number(digits.slice(k, k + 4)))
  let weight = pointAt / 4 - 1
  let first = 0
  while (first < groups.length && groups[first] === 0) {
    first++
    weight--
  }
  let last = groups.length
  while (last > first && groups[last - 1] === 0) last--
  const ndigits = last - first
  if (ndigits > 0x7fff) encodeInvalid("numeric", "too many digits")
  if (ndigits === 0) weight = 0
  if (weight > 0x7fff || weight < -0x8000) encodeInvalid("numeric", "exponent out of range")
  w.i16(ndigits).i16(weight).u16(ndigits === 0 || !p.negative ? NUMERIC_POS : NUMERIC_NEG).u16(p.dscale)
  for (let k = first; k < last; k++) w.i16(groups[k]!)
}

export const numeric: ValueCodec<string> = {
  name: "numeric",
  oid: TypeOid.numeric,
  decodeText: (buf, start, end) => {
    const s = decodeUtf8(buf, start, end)
    if (s !== "NaN" && s !== "Infinity" && s !== "-Infinity" && !numericPattern.test(s)) {
      return invalidValue("numeric", show(buf, start, end), start)
    }
    return s
  },
  decodeBinary,
  encodeText: (v) => format(parseOrFail(v)),
  encodeBinary
}

/** The canonical text PostgreSQL would print for a decimal string (exponents expanded). */
export const canonicalNumeric = (v: string): string => format(parseOrFail(v))
