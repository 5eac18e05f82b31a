/**
 * A bounds-checked cursor over one message body: `buf[pos, end)`.
 *
 * Invariants:
 * - Nothing is ever read at or beyond `end`, so a value can never come from the bytes of a
 *   neighbouring message; every overrun throws `ProtocolError` ("Truncated").
 * - Counts read from the wire are checked against the bytes actually left before anything is
 *   allocated from them (`count16`/`count32`), so a hostile count cannot drive an allocation.
 * - `bytes(n)` returns a view (no copy); the framer never overwrites bytes it handed out, so views stay valid.
 */
import { fail } from "../ProtocolError.ts"
import { decodeUtf8 } from "./utf8.ts"

const f64Scratch = new DataView(new ArrayBuffer(8))

export class Reader {
  buf: Uint8Array
  pos: number
  end: number
  /** Names the message being read in errors (e.g. "D" or "XLogData"). */
  messageType: string | undefined

  constructor(buf: Uint8Array, pos = 0, end = buf.length, messageType?: string) {
    this.buf = buf
    this.pos = pos
    this.end = end
    this.messageType = messageType
  }

  get remaining(): number {
    return this.end - this.pos
  }

  truncated(need: number): never {
    return fail(
      "Truncated",
      `needed ${need} more byte(s) at offset ${this.pos}, but the message has ${this.end - this.pos} left`,
      this.messageType,
      this.pos
    )
  }

  invalid(message: string, at = this.pos): never {
    return fail("InvalidValue", message, this.messageType, at)
  }

  u8(): number {
    if (this.pos + 1 > this.end) this.truncated(1)
    return this.buf[this.pos++]!
  }

  i16(): number {
    const p = this.pos
    if (p + 2 > this.end) this.truncated(2)
    this.pos = p + 2
    const v = (this.buf[p]! << 8) | this.buf[p + 1]!
    return (v << 16) >> 16
  }

  u16(): number {
    const p = this.pos
    if (p + 2 > this.end) this.truncated(2)
    this.pos = p + 2
    return (this.buf[p]! << 8) | this.buf[p + 1]!
  }

  i32(): number {
    const p = this.pos
    if (p + 4 > this.end) this.truncated(4)
    this.pos = p + 4
    const b = this.buf
    return (b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!
  }

  u32(): number {
    return this.i32() >>> 0
  }

  // 64-bit integers go through one scratch DataView read: a single BigInt allocation, where combining two
  // 32-bit halves costs four (this is per replication message and per LSN).
  i64(): bigint {
    this.load8()
    return f64Scratch.getBigInt64(0)
  }

  u64(): bigint {
    this.load8()
    return f64Scratch.getBigUint64(0)
  }

  private load8(): void {
    const p = this.pos
    if (p + 8 > this.end) this.truncated(8)
    this.pos = p + 8
    const b = this.buf
    for (let i = 0; i < 8; i++) f64Scratch.setUint8(i, b[p + i]!)
  }

  f32(): number {
    const p = this.pos
    if (p + 4 > this.end) this.truncated(4)
    this.pos = p + 4
    for (let i = 0; i < 4; i++) f64Scratch.setUint8(i, this.buf[p + i]!)
    return f64Scratch.getFloat32(0)
  }

  f64(): number {
    const p = this.pos
    if (p + 8 > this.end) this.truncated(8)
    this.pos = p + 8
    for (let i = 0; i < 8; i++) f64Scratch.setUint8(i, this.buf[p + i]!)
    return f64Scratch.getFloat64(0)
  }

  /** A view of the next `n` bytes (no copy). */
  bytes(n: number): Uint8Array {
    if (n < 0) fail("LengthOutOfRange", `negative byte length ${n}`, this.messageType, this.pos)
    const p = this.pos
    if (p + n > this.end) this.truncated(n)
    this.pos = p + n
    return this.buf.subarray(p, p + n)
  }

  /** The rest of the message (no copy). */
  rest(): Uint8Array {
    const p = this.pos
    this.pos = this.end
    return this.buf.subarray(p, this.end)
  }

  /** A NUL-terminated UTF-8 string; the terminator must lie inside the message. */
  cstring(): string {
    const b = this.buf
    const start = this.pos
    const end = this.end
    let i = start
    while (i < end && b[i] !== 0) i++
    if (i >= end) {
      fail("UnterminatedString", `string starting at offset ${start} has no terminator`, this.messageType, start)
    }
    this.pos = i + 1
    return decodeUtf8(b, start, i)
  }

  /** `n` bytes as UTF-8 text (no terminator). */
  string(n: number): string {
    if (n < 0) fail("LengthOutOfRange", `negative string length ${n}`, this.messageType, this.pos)
    const p = this.pos
    if (p + n > this.end) this.truncated(n)
    this.pos = p + n
    return decodeUtf8(this.buf, p, p + n)
  }

  /** The rest of the message as UTF-8 text. */
  restString(): string {
    const p = this.pos
    this.pos = this.end
    return decodeUtf8(this.buf, p, this.end)
  }

  /**
   * An Int16 count of elements that take at least `minElementSize` bytes each; fails unless
   * that many could fit in what is left, so arrays are never sized by a hostile count.
   */
  count16(minElementSize: number, what = "count"): number {
    const at = this.pos
    const n = this.i16()
    this.checkCount(n, minElementSize, what, at)
    return n
  }

  count32(minElementSize: number, what = "count"): number {
    const at = this.pos
    const n = this.i32()
    this.checkCount(n, minElementSize, what, at)
    return n
  }

  private checkCount(n: number, minElementSize: number, what: string, at: number): void {
    if (n < 0) fail("LengthOutOfRange", `negative ${what} ${n}`, this.messageType, at)
    if (n * minElementSize > this.end - this.pos) {
      fail(
        "LengthOutOfRange",
        `${what} ${n} needs at least ${n * minElementSize} bytes but only ${this.end - this.pos} remain`,
        this.messageType,
        at
      )
    }
  }

  /** Fails unless every byte of the message was consumed. */
  done(): void {
    if (this.pos !== this.end) {
      fail("TrailingBytes", `${this.end - this.pos} unread byte(s) at the end of the message`, this.messageType, this.pos)
    }
  }
}
