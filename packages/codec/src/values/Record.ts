/**
 * Composite types (row values), text and binary.
 *
 * Representation: a registered composite decodes to a plain object `{ [field]: value }` with NULL
 * fields as `null`; the anonymous `record` type (OID 2249) decodes to an array of values (binary:
 * each decoded by the OID the server names; text: each field as a string).
 *
 * Invariants:
 * - Binary: Int32 field count, then per field UInt32 type OID, Int32 length (-1 = NULL) and bytes.
 *   A registered composite checks the count and each field's OID against its definition.
 * - Text follows record_in: `(a,"b c",)` — an empty unquoted field is NULL, `""` an empty string,
 *   quotes doubled or backslash-escaped inside quotes.
 * - Field codecs are resolved through the registry once per value.
 */
import type { Writer } from "../internal/Writer.ts"
import { decodeUtf8 } from "../internal/utf8.ts"
import { TypeOid } from "../TypeOid.ts"
import { encodeInvalid, invalidValue, readI32, show, writeLengthPrefixed, type ValueCodec } from "./ValueCodec.ts"
import { copyRange } from "../internal/copyRange.ts"

export interface CompositeField {
  readonly name: string
  readonly typeOid: number
}

type Resolve = (oid: number) => ValueCodec<unknown>

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d

/** Splits record text into field byte ranges, calling `field(buf, start, end)` (undefined range = NULL). */
const parseRecordText = (
  name: string,
  buf: Uint8Array,
  start: number,
  end: number,
  field: (index: number, bytes: Uint8Array | undefined, s: number, e: number) => void
): number => {
  let p = start
  while (p < end && isSpace(buf[p]!)) p++
  if (buf[p] !== 0x28) return invalidValue(name, `expected '(' in ${show(buf, start, end)}`, p)
  p++
  let index = 0
  let scratch = new Uint8Array(0)
  if (buf[p] === 0x29 && end - p === 1) return 0 // zero-column row
  for (;;) {
    const fs = p
    let plain = true
    let inQuote = false
    while (p < end) {
      const c = buf[p]!
      if (!inQuote && (c === 0x2c || c === 0x29)) break
      if (c === 0x5c) {
        plain = false
        p += 2
        continue
      }
      if (c === 0x22) {
        plain = false
        if (inQuote && buf[p + 1] === 0x22 && p + 1 < end) {
          p += 2
          continue
        }
        inQuote = !inQuote
      }
      p++
    }
    if (p >= end) return invalidValue(name, `unterminated record ${show(buf, start, end)}`, p)
    if (p === fs) field(index, undefined, 0, 0)
    else if (plain) field(index, buf, fs, p)
    else {
      if (scratch.length < p - fs) scratch = new Uint8Array(p - fs)
      let n = 0
      let q = false
      for (let i = fs; i < p; i++) {
        const c = buf[i]!
        if (c === 0x5c) scratch[n++] = buf[++i]!
        else if (c === 0x22) {
          if (q && i + 1 < p && buf[i + 1] === 0x22) {
            scratch[n++] = 0x22
            i++
          } else q = !q
        } else scratch[n++] = c
      }
      field(index, scratch, 0, n)
    }
    index++
    const c = buf[p]
    p++
    if (c === 0x29) break
  }
  while (p < end && isSpace(buf[p]!)) p++
  if (p !== end) invalidValue(name, `trailing characters in ${show(buf, start, end)}`, p)
  return index
}

const needsQuotes = (s: string): boolean => {
  if (s === "") return true
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x22 || c === 0x5c || c === 0x2c || c === 0x28 || c === 0x29 || isSpace(c)) return true
  }
  return false
}

const quoteField = (s: string): string => (needsQuotes(s) ? '"' + s.replace(/[\\"]/g, "\\$&") + '"' : s)

export const compositeCodec = (
  name: string,
  oid: number,
  fields: ReadonlyArray<CompositeField>,
  resolve: Resolve
): ValueCodec<Record<string, unknown>> => ({
  name,
  oid,
  decodeText: (buf, start, end) => {
    const codecs = fields.map((f) => resolve(f.typeOid))
    const out: Record<string, unknown> = {}
    const n = parseRecordText(name, buf, start, end, (i, bytes, s, e) => {
      if (i >= fields.length) invalidValue(name, `more than ${fields.length} field(s)`, start)
      out[fields[i]!.name] = bytes === undefined ? null : codecs[i]!.decodeText(bytes, s, e)
    })
    if (n !== fields.length) invalidValue(name, `${n} field(s), expected ${fields.length}`, start)
    return out
  },
  decodeBinary: (buf, start, end) => {
    if (end - start < 4) return invalidValue(name, "binary value too short", start)
    const count = readI32(buf, start)
    if (count !== fields.length) return invalidValue(name, `${count} field(s), expected ${fields.length}`, start)
    let p = start + 4
    const out: Record<string, unknown> = {}
    for (let i = 0; i < count; i++) {
      if (p + 8 > end) return invalidValue(name, "truncated field header", p)
      const fieldOid = readI32(buf, p) >>> 0
      const len = readI32(buf, p + 4)
      const f = fields[i]!
      if (fieldOid !== f.typeOid) return invalidValue(name, `field ${f.name} has type OID ${fieldOid}, expected ${f.typeOid}`, p)
      p += 8
      if (len === -1) {
        out[f.name] = null
        continue
      }
      if (len < 0 || p + len > end) return invalidValue(name, `field length ${len} runs past the value`, p - 4)
      const codec = resolve(fieldOid)
      out[f.name] = codec.decodeBinary === undefined ? copyRange(buf, p, p + len) : codec.decodeBinary(buf, p, p + len)
      p += len
    }
    return p === end ? out : invalidValue(name, `${end - p} trailing byte(s)`, p)
  },
  encodeText: (v) => {
    if (v === null || typeof v !== "object") return encodeInvalid(name, "expected an object")
    const parts = fields.map((f) => {
      const x = v[f.name]
      return x === null || x === undefined ? "" : quoteField(resolve(f.typeOid).encodeText(x))
    })
    return "(" + parts.join(",") + ")"
  },
  encodeBinary: (w: Writer, v) => {
    if (v === null || typeof v !== "object") return encodeInvalid(name, "expected an object")
    w.i32(fields.length)
    for (const f of fields) {
      w.u32(f.typeOid)
      const x = v[f.name]
      if (x === null || x === undefined) {
        w.i32(-1)
        continue
      }
      const codec = resolve(f.typeOid)
      const enc = codec.encodeBinary ?? encodeInvalid(name, `field ${f.name} (${codec.name}) has no binary format`)
      writeLengthPrefixed(w, () => enc(w, x))
    }
  }
})

/** The anonymous `record` type: arrays of field values. Output only (PostgreSQL cannot read `record` input). */
export const recordCodec = (resolve: Resolve): ValueCodec<ReadonlyArray<unknown>> => ({
  name: "record",
  oid: TypeOid.record,
  decodeText: (buf, start, end) => {
    const out: Array<unknown> = []
    parseRecordText("record", buf, start, end, (_, bytes, s, e) => out.push(bytes === undefined ? null : decodeUtf8(bytes, s, e)))
    return out
  },
  decodeBinary: (buf, start, end) => {
    if (end - start < 4) return invalidValue("record", "binary value too short", start)
    const count = readI32(buf, start)
    let p = start + 4
    if (count < 0 || count * 8 > end - p) return invalidValue("record", `field count ${count}`, start)
    const out: Array<unknown> = new Array(count)
    for (let i = 0; i < count; i++) {
      if (p + 8 > end) return invalidValue("record", "truncated field header", p)
      const fieldOid = readI32(buf, p) >>> 0
      const len = readI32(buf, p + 4)
      p += 8
      if (len === -1) {
        out[i] = null
        continue
      }
      if (len < 0 || p + len > end) return invalidValue("record", `field length ${len} runs past the value`, p - 4)
      const codec = resolve(fieldOid)
      out[i] = codec.decodeBinary === undefined ? copyRange(buf, p, p + len) : codec.decodeBinary(buf, p, p + len)
      p += len
    }
    return p === end ? out : invalidValue("record", `${end - p} trailing byte(s)`, p)
  },
  encodeText: () => encodeInvalid("record", "anonymous records cannot be sent; register a composite type"),
  encodeBinary: undefined
})
