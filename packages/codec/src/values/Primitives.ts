/**
 * Codecs for the scalar built-ins: bool, integers, floats, OID-like types, xid8, pg_lsn, the text
 * family, "char", bytea, uuid, json and jsonb.
 *
 * Representations (decode gives, encode takes):
 * - bool → boolean; int2/int4 → number; int8 → bigint; float4/float8 → number (NaN, ±Infinity and -0
 *   kept; a float4 is the nearest float32, `Math.fround`, in both formats so text and binary agree);
 * - oid, xid, cid → number (binary UInt32); reg* types → number from binary, and from text the server's
 *   name (e.g. "pg_class") unless it prints digits; encoders take the number (text also takes a name);
 * - xid8, pg_lsn → bigint (pg_lsn text is `X/X` in hex);
 * - text, varchar, bpchar, name, unknown, xml, and unregistered types → string;
 *   "char" → a one-character string (U+0000–U+00FF, "" for the zero byte; text form `\ooo` above 127);
 * - bytea → Uint8Array (a copy, never a view of the receive buffer); text input accepts hex `\x…` and the
 *   escape format;
 * - uuid → lowercase canonical string; encoders accept any case, with or without hyphens or braces;
 * - json/jsonb → the `JSON.parse`d value (numbers beyond 2^53 lose precision, as JSON.parse does), or
 *   with the registry's `json: "string"` option the raw text. jsonb binary starts with version byte 1.
 * Integer text is parsed strictly (optional sign, digits); nothing is coerced. Float text is checked
 * byte by byte and, when exact (≤ 15 significant digits, decimal exponent within ±22), computed without a
 * string; the result is always the double `Number()` gives for the text.
 */
import type { Writer } from "../internal/Writer.ts"
import { decodeUtf8 } from "../internal/utf8.ts"
import { TypeOid } from "../TypeOid.ts"
import {
  encodeInvalid,
  expectSize,
  invalidValue,
  readI32,
  readI64,
  readI64Safe,
  show,
  type ValueCodec
} from "./ValueCodec.ts"
import { copyRange } from "../internal/copyRange.ts"

// ---------------------------------------------------------------------------------------------
// bool

export const bool: ValueCodec<boolean> = {
  name: "bool",
  oid: TypeOid.bool,
  decodeText: (buf, start, end) => {
    if (end - start === 1) {
      if (buf[start] === 0x74) return true // t
      if (buf[start] === 0x66) return false // f
    }
    return invalidValue("bool", show(buf, start, end), start)
  },
  decodeBinary: (buf, start, end) => {
    expectSize("bool", start, end, 1)
    const b = buf[start]!
    if (b > 1) invalidValue("bool", `byte ${b}`, start)
    return b === 1
  },
  encodeText: (v) => (typeof v === "boolean" ? (v ? "t" : "f") : encodeInvalid("bool", `${typeof v}`)),
  encodeBinary: (w, v) => {
    if (typeof v !== "boolean") encodeInvalid("bool", `${typeof v}`)
    w.u8(v ? 1 : 0)
  }
}

// ---------------------------------------------------------------------------------------------
// integers

/** Parses a decimal integer in `[min, max]` (optional sign, digits only) without allocating. */
const parseSmallInt = (type: string, buf: Uint8Array, start: number, end: number, min: number, max: number): number => {
  let i = start
  let negative = false
  if (i < end && (buf[i] === 0x2d || buf[i] === 0x2b)) {
    negative = buf[i] === 0x2d
    i++
  }
  if (i === end || end - i > 10) return invalidValue(type, show(buf, start, end), start)
  let n = 0
  for (; i < end; i++) {
    const d = buf[i]! - 0x30
    if (d < 0 || d > 9) return invalidValue(type, show(buf, start, end), start)
    n = n * 10 + d
  }
  if (negative) n = -n
  if (n < min || n > max) return invalidValue(type, `${show(buf, start, end)} is out of range`, start)
  return n === 0 ? 0 : n // never -0
}

const checkInt = (type: string, v: number, min: number, max: number): number => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) encodeInvalid(type, `${String(v)} is not an integer in [${min}, ${max}]`)
  return v
}

export const int2: ValueCodec<number> = {
  name: "int2",
  oid: TypeOid.int2,
  decodeText: (buf, start, end) => parseSmallInt("int2", buf, start, end, -32768, 32767),
  decodeBinary: (buf, start, end) => {
    expectSize("int2", start, end, 2)
    return (((buf[start]! << 8) | buf[start + 1]!) << 16) >> 16
  },
  encodeText: (v) => String(checkInt("int2", v, -32768, 32767)),
  encodeBinary: (w, v) => {
    w.i16(checkInt("int2", v, -32768, 32767))
  }
}

export const int4: ValueCodec<number> = {
  name: "int4",
  oid: TypeOid.int4,
  decodeText: (buf, start, end) => parseSmallInt("int4", buf, start, end, -2147483648, 2147483647),
  decodeBinary: (buf, start, end) => {
    expectSize("int4", start, end, 4)
    return readI32(buf, start)
  },
  encodeText: (v) => String(checkInt("int4", v, -2147483648, 2147483647)),
  encodeBinary: (w, v) => {
    w.i32(checkInt("int4", v, -2147483648, 2147483647))
  }
}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const UINT64_MAX = 2n ** 64n - 1n

/** Parses a decimal integer as bigint, strictly (BigInt() alone would accept "", " 1", "0x1"). */
const parseBigInt = (type: string, buf: Uint8Array, start: number, end: number, min: bigint, max: bigint): bigint => {
  let i = start
  if (i < end && (buf[i] === 0x2d || buf[i] === 0x2b)) i++
  if (i === end || end - i > 40) return invalidValue(type, show(buf, start, end), start)
  for (; i < end; i++) {
    const d = buf[i]! - 0x30
    if (d < 0 || d > 9) return invalidValue(type, show(buf, start, end), start)
  }
  // Short values fit a double exactly; skip the string round trip's slower path only when safe.
  const v = end - start <= 15 ? BigInt(Number(decodeUtf8(buf, start, end))) : BigInt(decodeUtf8(buf, start, end))
  if (v < min || v > max) return invalidValue(type, `${show(buf, start, end)} is out of range`, start)
  return v
}

const checkBigInt = (type: string, v: bigint, min: bigint, max: bigint): bigint => {
  if (typeof v !== "bigint") {
    if (typeof v === "number" && Number.isInteger(v)) v = BigInt(v)
    else encodeInvalid(type, `${String(v)} is not a bigint`)
  }
  if (v < min || v > max) encodeInvalid(type, `${v} is out of range`)
  return v
}

export const int8: ValueCodec<bigint> = {
  name: "int8",
  oid: TypeOid.int8,
  decodeText: (buf, start, end) => parseBigInt("int8", buf, start, end, INT64_MIN, INT64_MAX),
  decodeBinary: (buf, start, end) => {
    expectSize("int8", start, end, 8)
    const safe = readI64Safe(buf, start)
    return safe !== undefined ? BigInt(safe) : readI64(buf, start)
  },
  encodeText: (v) => String(checkBigInt("int8", v, INT64_MIN, INT64_MAX)),
  encodeBinary: (w, v) => {
    w.i64(checkBigInt("int8", v, INT64_MIN, INT64_MAX))
  }
}

// ---------------------------------------------------------------------------------------------
// floats

/** Exact powers of ten: every 10^k for k ≤ 22 is a double exactly. */
const POW10 = Array.from({ length: 23 }, (_, k) => Number(`1e${k}`))

/**
 * Parses PostgreSQL's float text without a string when it can: the syntax is checked byte by byte
 * (the language of `[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?`), and a value of at most 15
 * significant digits whose decimal exponent is within ±22 is computed as one multiplication or
 * division of two exact doubles — correctly rounded, hence exactly what `Number()` returns
 * (Clinger's fast path). Anything else goes through `Number()` of the validated text.
 */
const parseFloatText = (type: string, buf: Uint8Array, start: number, end: number): number => {
  let i = start
  let negative = false
  if (i < end && (buf[i] === 0x2d || buf[i] === 0x2b)) {
    negative = buf[i] === 0x2d
    i++
  }
  let mantissa = 0
  let significant = 0
  let digits = 0
  let scale = 0
  for (; i < end; i++) {
    const d = buf[i]! - 0x30
    if (d < 0 || d > 9) break
    mantissa = mantissa * 10 + d
    if (mantissa !== 0) significant++
    digits++
  }
  if (i < end && buf[i] === 0x2e) {
    for (i++; i < end; i++) {
      const d = buf[i]! - 0x30
      if (d < 0 || d > 9) break
      mantissa = mantissa * 10 + d
      if (mantissa !== 0) significant++
      digits++
      scale--
    }
  }
  if (digits === 0) return parseFloatSpecial(type, buf, start, end)
  if (i < end && (buf[i] === 0x65 || buf[i] === 0x45)) {
    i++
    let expNegative = false
    if (i < end && (buf[i] === 0x2d || buf[i] === 0x2b)) {
      expNegative = buf[i] === 0x2d
      i++
    }
    let exp = 0
    let expDigits = 0
    for (; i < end; i++) {
      const d = buf[i]! - 0x30
      if (d < 0 || d > 9) break
      if (exp < 100000) exp = exp * 10 + d
      expDigits++
    }
    if (expDigits === 0) return invalidValue(type, show(buf, start, end), start)
    scale += expNegative ? -exp : exp
  }
  if (i !== end) return invalidValue(type, show(buf, start, end), start)
  if (significant <= 15 && scale >= -22 && scale <= 22) {
    const v = scale === 0 ? mantissa : scale > 0 ? mantissa * POW10[scale]! : mantissa / POW10[-scale]!
    return negative ? -v : v
  }
  return Number(decodeUtf8(buf, start, end))
}

/** The non-numeric spellings PostgreSQL prints; anything else is invalid. */
const parseFloatSpecial = (type: string, buf: Uint8Array, start: number, end: number): number => {
  switch (decodeUtf8(buf, start, end)) {
    case "NaN":
      return NaN
    case "Infinity":
      return Infinity
    case "-Infinity":
      return -Infinity
  }
  return invalidValue(type, show(buf, start, end), start)
}

const checkFloat = (type: string, v: number): number =>
  typeof v === "number" ? v : encodeInvalid(type, `${typeof v} is not a number`)

const floatText = (v: number): string =>
  v !== v ? "NaN" : v === Infinity ? "Infinity" : v === -Infinity ? "-Infinity" : Object.is(v, -0) ? "-0" : String(v)

/** The shortest decimal that reads back as the same float32 (what PostgreSQL prints too). */
const float4Text = (v: number): string => {
  if (v !== v || v === Infinity || v === -Infinity || v === 0) return floatText(v)
  const f = Math.fround(v)
  for (let p = 1; p < 9; p++) {
    const s = f.toPrecision(p)
    if (Math.fround(Number(s)) === f) return String(Number(s))
  }
  return String(Number(f.toPrecision(9)))
}

export const float4: ValueCodec<number> = {
  name: "float4",
  oid: TypeOid.float4,
  decodeText: (buf, start, end) => Math.fround(parseFloatText("float4", buf, start, end)),
  decodeBinary: (buf, start, end) => {
    expectSize("float4", start, end, 4)
    f32View.setInt32(0, readI32(buf, start))
    return f32View.getFloat32(0)
  },
  encodeText: (v) => float4Text(checkFloat("float4", v)),
  encodeBinary: (w, v) => {
    w.f32(checkFloat("float4", v))
  }
}

const f32View = new DataView(new ArrayBuffer(8))

export const float8: ValueCodec<number> = {
  name: "float8",
  oid: TypeOid.float8,
  decodeText: (buf, start, end) => parseFloatText("float8", buf, start, end),
  decodeBinary: (buf, start, end) => {
    expectSize("float8", start, end, 8)
    f32View.setInt32(0, readI32(buf, start))
    f32View.setInt32(4, readI32(buf, start + 4))
    return f32View.getFloat64(0)
  },
  encodeText: (v) => floatText(checkFloat("float8", v)),
  encodeBinary: (w, v) => {
    w.f64(checkFloat("float8", v))
  }
}

// ---------------------------------------------------------------------------------------------
// OID-like unsigned 32-bit types

const uint32Codec = (name: string, oid: number): ValueCodec<number> => ({
  name,
  oid,
  decodeText: (buf, start, end) => parseSmallInt(name, buf, start, end, 0, 4294967295),
  decodeBinary: (buf, start, end) => {
    expectSize(name, start, end, 4)
    return readI32(buf, start) >>> 0
  },
  encodeText: (v) => String(checkInt(name, v, 0, 4294967295)),
  encodeBinary: (w, v) => {
    w.u32(checkInt(name, v, 0, 4294967295))
  }
})

export const oid = uint32Codec("oid", TypeOid.oid)
export const xid = uint32Codec("xid", TypeOid.xid)
export const cid = uint32Codec("cid", TypeOid.cid)

/**
 * reg* types: binary is the OID; text is a name, which is returned as is (digits give a number,
 * as the server prints an OID it cannot name).
 */
const regCodec = (name: string, oid: number): ValueCodec<number | string> => ({
  name,
  oid,
  decodeText: (buf, start, end) => {
    let digits = end > start && end - start <= 10
    for (let i = start; digits && i < end; i++) digits = buf[i]! >= 0x30 && buf[i]! <= 0x39
    return digits ? parseSmallInt(name, buf, start, end, 0, 4294967295) : decodeUtf8(buf, start, end)
  },
  decodeBinary: (buf, start, end) => {
    expectSize(name, start, end, 4)
    return readI32(buf, start) >>> 0
  },
  encodeText: (v) => (typeof v === "string" ? v : String(checkInt(name, v, 0, 4294967295))),
  encodeBinary: (w, v) => {
    if (typeof v === "string") encodeInvalid(name, "binary format needs the OID as a number")
    w.u32(checkInt(name, v as number, 0, 4294967295))
  }
})

export const regTypes: ReadonlyArray<ValueCodec<number | string>> = [
  regCodec("regproc", TypeOid.regproc),
  regCodec("regprocedure", TypeOid.regprocedure),
  regCodec("regoper", TypeOid.regoper),
  regCodec("regoperator", TypeOid.regoperator),
  regCodec("regclass", TypeOid.regclass),
  regCodec("regtype", TypeOid.regtype),
  regCodec("regrole", TypeOid.regrole),
  regCodec("regnamespace", TypeOid.regnamespace),
  regCodec("regconfig", TypeOid.regconfig),
  regCodec("regdictionary", TypeOid.regdictionary),
  regCodec("regcollation", TypeOid.regcollation)
]

// ---------------------------------------------------------------------------------------------
// 64-bit unsigned: xid8, pg_lsn

export const xid8: ValueCodec<bigint> = {
  name: "xid8",
  oid: TypeOid.xid8,
  decodeText: (buf, start, end) => parseBigInt("xid8", buf, start, end, 0n, UINT64_MAX),
  decodeBinary: (buf, start, end) => {
    expectSize("xid8", start, end, 8)
    return BigInt.asUintN(64, readI64(buf, start))
  },
  encodeText: (v) => String(checkBigInt("xid8", v, 0n, UINT64_MAX)),
  encodeBinary: (w, v) => {
    w.u64(checkBigInt("xid8", v, 0n, UINT64_MAX))
  }
}

const hexDigit = (c: number): number =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1

/** Parses `X/X` (each half 1–8 hex digits). */
const parseLsn = (buf: Uint8Array, start: number, end: number): bigint => {
  let hi = 0
  let lo = 0
  let i = start
  let n = 0
  for (; i < end && buf[i] !== 0x2f; i++, n++) {
    const d = hexDigit(buf[i]!)
    if (d < 0 || n >= 8) return invalidValue("pg_lsn", show(buf, start, end), start)
    hi = hi * 16 + d
  }
  if (n === 0 || i === end) return invalidValue("pg_lsn", show(buf, start, end), start)
  n = 0
  for (i++; i < end; i++, n++) {
    const d = hexDigit(buf[i]!)
    if (d < 0 || n >= 8) return invalidValue("pg_lsn", show(buf, start, end), start)
    lo = lo * 16 + d
  }
  if (n === 0) return invalidValue("pg_lsn", show(buf, start, end), start)
  return (BigInt(hi) << 32n) | BigInt(lo)
}

export const formatLsn = (v: bigint): string =>
  `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`

export const pg_lsn: ValueCodec<bigint> = {
  name: "pg_lsn",
  oid: TypeOid.pg_lsn,
  decodeText: parseLsn,
  decodeBinary: (buf, start, end) => {
    expectSize("pg_lsn", start, end, 8)
    return BigInt.asUintN(64, readI64(buf, start))
  },
  encodeText: (v) => formatLsn(checkBigInt("pg_lsn", v, 0n, UINT64_MAX)),
  encodeBinary: (w, v) => {
    w.u64(checkBigInt("pg_lsn", v, 0n, UINT64_MAX))
  }
}

// ---------------------------------------------------------------------------------------------
// text family

const checkString = (type: string, v: string): string => {
  if (typeof v !== "string") encodeInvalid(type, `${typeof v} is not a string`)
  if (v.indexOf("\u0000") !== -1) encodeInvalid(type, "PostgreSQL text cannot contain NUL")
  return v
}

/** A codec whose text and binary forms are both the UTF-8 text. */
export const textLike = (name: string, oid: number): ValueCodec<string> => ({
  name,
  oid,
  decodeText: decodeUtf8,
  decodeBinary: decodeUtf8,
  encodeText: (v) => checkString(name, v),
  encodeBinary: (w: Writer, v: string) => {
    w.string(checkString(name, v))
  }
})

export const textTypes: ReadonlyArray<ValueCodec<string>> = [
  textLike("text", TypeOid.text),
  textLike("varchar", TypeOid.varchar),
  textLike("bpchar", TypeOid.bpchar),
  textLike("name", TypeOid.name),
  textLike("unknown", TypeOid.unknown),
  textLike("xml", TypeOid.xml)
]

export const char: ValueCodec<string> = {
  name: "char",
  oid: TypeOid.char,
  decodeText: (buf, start, end) => {
    const n = end - start
    if (n === 0) return ""
    if (n === 1 && buf[start]! < 0x80) return String.fromCharCode(buf[start]!)
    if (n === 4 && buf[start] === 0x5c) {
      let c = 0
      for (let i = start + 1; i < end; i++) {
        const d = buf[i]! - 0x30
        if (d < 0 || d > 7) return invalidValue("char", show(buf, start, end), start)
        c = c * 8 + d
      }
      if (c < 256) return String.fromCharCode(c)
    }
    // A multibyte character: the server stores only its first byte, but prints valid input back.
    const s = decodeUtf8(buf, start, end)
    return s.length === 1 ? s : invalidValue("char", show(buf, start, end), start)
  },
  decodeBinary: (buf, start, end) => {
    const n = end - start
    if (n === 0) return ""
    expectSize("char", start, end, 1)
    return buf[start] === 0 ? "" : String.fromCharCode(buf[start]!)
  },
  encodeText: (v) => {
    if (typeof v !== "string" || v.length > 1) return encodeInvalid("char", `${JSON.stringify(v)} is not one character`)
    if (v === "") return ""
    const c = v.charCodeAt(0)
    if (c === 0 || c > 255) return encodeInvalid("char", `U+${c.toString(16)} is not a single byte`)
    return c < 128 ? v : "\\" + c.toString(8).padStart(3, "0")
  },
  encodeBinary: (w, v) => {
    if (typeof v !== "string" || v.length > 1) return encodeInvalid("char", `${JSON.stringify(v)} is not one character`)
    const c = v === "" ? 0 : v.charCodeAt(0)
    if (c > 255) encodeInvalid("char", `U+${c.toString(16)} is not a single byte`)
    w.u8(c)
  }
}

// ---------------------------------------------------------------------------------------------
// bytea

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

const decodeByteaText = (buf: Uint8Array, start: number, end: number): Uint8Array => {
  if (end - start >= 2 && buf[start] === 0x5c && buf[start + 1] === 0x78) {
    // hex format: \x then pairs of hex digits (whitespace between pairs is allowed on input)
    const out = new Uint8Array((end - start - 2) >>> 1)
    let n = 0
    for (let i = start + 2; i < end; ) {
      const c = buf[i]!
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        i++
        continue
      }
      const hi = hexDigit(c)
      const lo = i + 1 < end ? hexDigit(buf[i + 1]!) : -1
      if (hi < 0 || lo < 0) return invalidValue("bytea", `bad hex digit at ${i - start}`, i)
      out[n++] = (hi << 4) | lo
      i += 2
    }
    return n === out.length ? out : out.slice(0, n)
  }
  // escape format: \\ is a backslash, \ooo an octal byte, anything else literal
  const out = new Uint8Array(end - start)
  let n = 0
  for (let i = start; i < end; ) {
    const c = buf[i]!
    if (c !== 0x5c) {
      out[n++] = c
      i++
    } else if (i + 1 < end && buf[i + 1] === 0x5c) {
      out[n++] = 0x5c
      i += 2
    } else if (
      i + 3 < end &&
      buf[i + 1]! >= 0x30 && buf[i + 1]! <= 0x33 &&
      buf[i + 2]! >= 0x30 && buf[i + 2]! <= 0x37 &&
      buf[i + 3]! >= 0x30 && buf[i + 3]! <= 0x37
    ) {
      out[n++] = ((buf[i + 1]! - 0x30) << 6) | ((buf[i + 2]! - 0x30) << 3) | (buf[i + 3]! - 0x30)
      i += 4
    } else {
      return invalidValue("bytea", `bad escape at ${i - start}`, i)
    }
  }
  return out.slice(0, n)
}

const checkBytes = (v: Uint8Array): Uint8Array => (v instanceof Uint8Array ? v : encodeInvalid("bytea", "not a Uint8Array"))

export const bytea: ValueCodec<Uint8Array> = {
  name: "bytea",
  oid: TypeOid.bytea,
  decodeText: decodeByteaText,
  decodeBinary: (buf, start, end) => copyRange(buf, start, end),
  encodeText: (v) => {
    checkBytes(v)
    let s = "\\x"
    for (let i = 0; i < v.length; i++) s += HEX[v[i]!]
    return s
  },
  encodeBinary: (w, v) => {
    w.bytes(checkBytes(v))
  }
}

// ---------------------------------------------------------------------------------------------
// uuid

const formatUuid = (buf: Uint8Array, p: number): string =>
  HEX[buf[p]!]! + HEX[buf[p + 1]!]! + HEX[buf[p + 2]!]! + HEX[buf[p + 3]!]! + "-" +
  HEX[buf[p + 4]!]! + HEX[buf[p + 5]!]! + "-" + HEX[buf[p + 6]!]! + HEX[buf[p + 7]!]! + "-" +
  HEX[buf[p + 8]!]! + HEX[buf[p + 9]!]! + "-" + HEX[buf[p + 10]!]! + HEX[buf[p + 11]!]! +
  HEX[buf[p + 12]!]! + HEX[buf[p + 13]!]! + HEX[buf[p + 14]!]! + HEX[buf[p + 15]!]!

/** Parses 32 hex digits, ignoring hyphens and one pair of braces; undefined if malformed. */
const parseUuid = (s: string): Uint8Array | undefined => {
  let t = s
  if (t.startsWith("{") && t.endsWith("}")) t = t.slice(1, -1)
  t = t.replace(/-/g, "")
  if (!/^[0-9a-fA-F]{32}$/.test(t)) return undefined
  const out = new Uint8Array(16)
  for (let i = 0; i < 16; i++) out[i] = parseInt(t.slice(2 * i, 2 * i + 2), 16)
  return out
}

export const uuid: ValueCodec<string> = {
  name: "uuid",
  oid: TypeOid.uuid,
  decodeText: (buf, start, end) => {
    const bytes = end - start === 36 ? parseUuid(decodeUtf8(buf, start, end)) : undefined
    return bytes === undefined ? invalidValue("uuid", show(buf, start, end), start) : formatUuid(bytes, 0)
  },
  decodeBinary: (buf, start, end) => {
    expectSize("uuid", start, end, 16)
    return formatUuid(buf, start)
  },
  encodeText: (v) => {
    const bytes = typeof v === "string" ? parseUuid(v) : undefined
    return bytes === undefined ? encodeInvalid("uuid", JSON.stringify(v)) : formatUuid(bytes, 0)
  },
  encodeBinary: (w, v) => {
    const bytes = typeof v === "string" ? parseUuid(v) : undefined
    w.bytes(bytes === undefined ? encodeInvalid("uuid", JSON.stringify(v)) : bytes)
  }
}

// ---------------------------------------------------------------------------------------------
// json / jsonb

const parseJson = (type: string, buf: Uint8Array, start: number, end: number): unknown => {
  try {
    return JSON.parse(decodeUtf8(buf, start, end))
  } catch (e) {
    return invalidValue(type, String((e as Error).message), start)
  }
}

const jsonText = (type: string, v: unknown): string => {
  let s: string | undefined
  try {
    s = JSON.stringify(v)
  } catch (e) {
    return encodeInvalid(type, String((e as Error).message))
  }
  return s === undefined ? encodeInvalid(type, `${typeof v} has no JSON form`) : s
}

const JSONB_VERSION = 1

const jsonbPayload = (type: string, buf: Uint8Array, start: number, end: number): number => {
  if (end - start < 1 || buf[start] !== JSONB_VERSION) {
    return invalidValue(type, `unsupported jsonb version ${end > start ? buf[start] : "(none)"}`, start)
  }
  return start + 1
}

export const json: ValueCodec<unknown> = {
  name: "json",
  oid: TypeOid.json,
  decodeText: (buf, start, end) => parseJson("json", buf, start, end),
  decodeBinary: (buf, start, end) => parseJson("json", buf, start, end),
  encodeText: (v) => jsonText("json", v),
  encodeBinary: (w, v) => {
    w.string(jsonText("json", v))
  }
}

export const jsonb: ValueCodec<unknown> = {
  name: "jsonb",
  oid: TypeOid.jsonb,
  decodeText: (buf, start, end) => parseJson("jsonb", buf, start, end),
  decodeBinary: (buf, start, end) => parseJson("jsonb", buf, jsonbPayload("jsonb", buf, start, end), end),
  encodeText: (v) => jsonText("jsonb", v),
  encodeBinary: (w, v) => {
    const s = jsonText("jsonb", v)
    w.u8(JSONB_VERSION)
    w.string(s)
  }
}

/** json kept as its text (registry option `json: "string"`). */
export const jsonString: ValueCodec<string> = { ...textLike("json", TypeOid.json) }

export const jsonbString: ValueCodec<string> = {
  name: "jsonb",
  oid: TypeOid.jsonb,
  decodeText: decodeUtf8,
  decodeBinary: (buf, start, end) => decodeUtf8(buf, jsonbPayload("jsonb", buf, start, end), end),
  encodeText: (v) => checkString("jsonb", v),
  encodeBinary: (w, v) => {
    w.u8(JSONB_VERSION)
    w.string(checkString("jsonb", v))
  }
}

// ---------------------------------------------------------------------------------------------
// fallbacks for types without a codec

/** Any type without a codec: text decodes to the string; binary to a copy of the bytes. */
export const unknownType = (oid: number, name = `oid ${oid}`): ValueCodec<unknown> => ({
  name,
  oid,
  decodeText: decodeUtf8,
  decodeBinary: (buf, start, end) => copyRange(buf, start, end),
  encodeText: (v) =>
    typeof v === "string" ? checkString(name, v) : encodeInvalid(name, "values of a type without a codec must be strings"),
  encodeBinary: (w, v) => {
    if (v instanceof Uint8Array) w.bytes(v)
    else encodeInvalid(name, "binary values of a type without a codec must be Uint8Array")
  }
})

export { hexDigit, HEX }
