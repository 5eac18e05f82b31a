/**
 * COPY BINARY (the file format of PostgreSQL's COPY … (FORMAT binary)): typed rows to bytes and back,
 * through the connection's binary value codecs.
 *
 * Invariants:
 * - The encoder writes the 19-byte header once, then per row an Int16 field count and per field an Int32
 *   length (-1 for NULL) and the value's binary form, then the Int16 -1 trailer; values go through
 *   `ValueCodec.encodeBinary` of the column's type, written straight into the COPY message (no copy per row).
 * - The parser accepts any split of the stream into pieces: a tuple that spans pieces is the only thing
 *   it copies (into its carry buffer); everything else is decoded from the pieces where they are.
 * - Malformed input (bad signature, a field count that does not match the columns, a length past the data,
 *   data after the trailer, the stream ending mid-tuple or without the trailer) throws ProtocolError;
 *   a value its codec rejects throws a ProtocolError naming the column (as a DataRow's would).
 */
import { fail } from "@pgfx/codec/ProtocolError"
import { RowDecoder } from "@pgfx/codec/RowDecoder"
import type { Writer } from "@pgfx/codec/internal/Writer"
import type { ValueCodec } from "@pgfx/codec/values/ValueCodec"

/** "PGCOPY\n\377\r\n\0", flags 0, header extension length 0. */
export const BINARY_HEADER = new Uint8Array([
  0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0
])
const SIGNATURE_LENGTH = 11

export interface BinaryColumn {
  readonly name: string
  readonly typeOid: number
  readonly codec: ValueCodec<unknown>
}

export type RowMode = "object" | "array"

/** Writes one row; `row` is an array in column order or an object keyed by column name. */
export const encodeBinaryRow = (w: Writer, columns: ReadonlyArray<BinaryColumn>, row: unknown): void => {
  const n = columns.length
  const isArray = Array.isArray(row)
  if (isArray && (row as Array<unknown>).length !== n) {
    fail("EncodeInvalid", `a COPY row has ${(row as Array<unknown>).length} value(s) for ${n} column(s)`)
  }
  const rowStart = w.pos - w.start
  w.ensure(2)
  w.buf[w.pos++] = n >>> 8
  w.buf[w.pos++] = n & 0xff
  for (let i = 0; i < n; i++) {
    const column = columns[i]!
    const v = isArray ? (row as Array<unknown>)[i] : (row as Record<string, unknown>)[column.name]
    if (v === null || v === undefined) {
      w.raw32(-1 >>> 0)
      continue
    }
    w.ensure(4)
    // Relative to `start`: the writer may move pending bytes when it grows.
    const at = w.pos - w.start
    w.pos += 4
    try {
      column.codec.encodeBinary!(w, v)
    } catch (e) {
      w.pos = w.start + rowStart
      throw e
    }
    const len = w.pos - w.start - at - 4
    const b = w.buf
    const p = w.start + at
    b[p] = len >>> 24
    b[p + 1] = (len >>> 16) & 0xff
    b[p + 2] = (len >>> 8) & 0xff
    b[p + 3] = len & 0xff
  }
}

export const writeBinaryTrailer = (w: Writer): void => {
  w.ensure(2)
  w.buf[w.pos++] = 0xff
  w.buf[w.pos++] = 0xff
}

const EMPTY = new Uint8Array(0)

/** Incremental COPY BINARY parser: pieces in, rows out. */
export class BinaryRowParser {
  private readonly columns: ReadonlyArray<BinaryColumn>
  private carry: Uint8Array = EMPTY
  private carryLength = 0
  private headerDone = false
  private ended = false

  /** Decodes one tuple (a DataRow body's layout) into an object or array: a generated function per column set. */
  private readonly decoder: RowDecoder

  constructor(columns: ReadonlyArray<BinaryColumn>, mode: RowMode = "object") {
    this.columns = columns
    const codecs = new Map(columns.map((c) => [c.typeOid, c.codec]))
    this.decoder = RowDecoder.make(
      columns.map((c) => ({ name: c.name, typeOid: c.typeOid, format: 1 as const })),
      { get: (oid: number) => codecs.get(oid)! },
      { mode }
    )
  }

  /** Whether the trailer was read. */
  get done(): boolean {
    return this.ended
  }

  /**
   * Decodes every complete row in `piece[start, end)` (plus what was carried over); copies the rest for the
   * next piece, so `piece` need not outlive the call (COPY OUT passes socket chunks, valid during it only).
   */
  push(piece: Uint8Array, out: Array<unknown>, start = 0, end = piece.length): void {
    let from = start
    // Complete a carried unit first, appending only what it needs (up to its next length field until its size is known).
    while (this.carryLength > 0) {
      const size = this.pendingSize(this.carry, 0, this.carryLength)
      if (size === this.carryLength) {
        this.parse(this.carry, 0, this.carryLength, out)
        this.carryLength = 0
        break
      }
      if (from === end) return
      const take = Math.min(Math.abs(size) - this.carryLength, end - from)
      this.append(piece, from, from + take)
      from += take
    }
    if (from === end) return
    const used = this.parse(piece, from, end, out)
    if (used < end) this.append(piece, used, end)
  }

  /** Checks the stream ended where it should (after the trailer). */
  end(): void {
    if (!this.ended) {
      fail("Truncated", this.carryLength > 0 ? "COPY BINARY data ends inside a tuple" : "COPY BINARY data ends without its trailer")
    }
  }

  private append(buf: Uint8Array, from: number, to: number): void {
    const n = to - from
    if (this.carryLength + n > this.carry.length) {
      const next = new Uint8Array(Math.max(this.carryLength + n, this.carry.length * 2, 256))
      next.set(this.carry.subarray(0, this.carryLength))
      this.carry = next
    }
    this.carry.set(buf.subarray(from, to), this.carryLength)
    this.carryLength += n
  }

  /**
   * Size of the unit (header or tuple) starting at `pos`: positive when the bytes present tell it, else
   * minus the number of bytes needed to read its next length field.
   */
  private pendingSize(buf: Uint8Array, pos: number, end: number): number {
    if (!this.headerDone) {
      if (end - pos < 19) return -19
      return 19 + Math.max(0, readI32(buf, pos + 15))
    }
    if (end - pos < 2) return -2
    const count = (buf[pos]! << 8) | buf[pos + 1]!
    if (count === 0xffff) return 2
    let p = pos + 2
    for (let i = 0; i < count; i++) {
      if (end - p < 4) return -(p + 4 - pos)
      const len = readI32(buf, p)
      p += 4 + (len > 0 ? len : 0)
    }
    return p - pos
  }

  /** Decodes complete units from `buf[pos, end)`; returns where the first incomplete one starts. */
  private parse(buf: Uint8Array, pos: number, end: number, out: Array<unknown>): number {
    const columns = this.columns
    const n = columns.length
    if (this.ended && pos < end) fail("InvalidValue", "COPY BINARY data after the trailer")
    while (pos < end) {
      if (!this.headerDone) {
        if (end - pos < 19) return pos
        for (let i = 0; i < SIGNATURE_LENGTH; i++) {
          if (buf[pos + i] !== BINARY_HEADER[i]) fail("InvalidValue", "COPY BINARY data does not start with the PGCOPY signature")
        }
        const extension = readI32(buf, pos + 15)
        if (extension < 0) fail("InvalidValue", "COPY BINARY header extension length is negative")
        if (end - pos < 19 + extension) return pos
        pos += 19 + extension
        this.headerDone = true
        continue
      }
      if (end - pos < 2) return pos
      const count = (buf[pos]! << 8) | buf[pos + 1]!
      if (count === 0xffff) {
        this.ended = true
        pos += 2
        if (pos < end) fail("InvalidValue", "COPY BINARY data after the trailer")
        return pos
      }
      if (count !== n) fail("InvalidValue", `a COPY BINARY tuple has ${count} field(s), expected ${n}`)
      // First check the whole tuple is here, then decode it.
      let p = pos + 2
      for (let i = 0; i < n; i++) {
        if (end - p < 4) return pos
        const len = readI32(buf, p)
        if (len < -1) fail("InvalidValue", `a COPY BINARY field has length ${len}`)
        p += 4
        if (len > 0) {
          if (end - p < len) return pos
          p += len
        }
      }
      // A tuple has a DataRow body's layout: the compiled row decoder reads it.
      out.push(this.decoder.decode(buf, pos, p))
      pos = p
    }
    return pos
  }
}

const readI32 = (b: Uint8Array, p: number): number => (b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!
