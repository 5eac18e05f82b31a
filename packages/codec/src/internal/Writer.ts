/**
 * A growable byte writer for building messages.
 *
 * Invariants:
 * - Bytes handed out by `take()` are never written again: growth allocates a new buffer and the
 *   writer only ever appends after the last byte it handed out.
 * - Positions (`pos`, the value `begin` returns) stay valid until the next `take()`: growth copies the
 *   pending bytes to the same offsets of the new buffer.
 * - `begin`/`end` back-patch a message's Int32 length and refuse (ProtocolError "MessageTooLarge")
 *   any message over `maxMessageSize`, so an oversized message is never put on the wire.
 * - Int16/Int32 fields are range-checked ("EncodeInvalid"); C strings may not contain NUL.
 */
import { DEFAULT_MAX_MESSAGE_SIZE } from "../Limits.ts"
import { fail } from "../ProtocolError.ts"
import { encodeUtf8Into } from "./utf8.ts"

const f64Scratch = new DataView(new ArrayBuffer(8))

export class Writer {
  buf: Uint8Array
  /** First byte not yet handed out. */
  start = 0
  pos = 0
  readonly maxMessageSize: number
  private readonly initialSize: number

  constructor(initialSize = 4096, maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE) {
    this.initialSize = initialSize
    this.buf = new Uint8Array(initialSize)
    this.maxMessageSize = maxMessageSize
  }

  /**
   * Makes room for `n` more bytes. Growth keeps every pending byte at the same offset, so positions
   * taken since the last `take()` (a length to back-patch, say) stay valid.
   */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    if (this.pos === this.start) {
      // Nothing pending: no position to preserve, start over in a buffer sized for this message.
      let size = this.initialSize
      while (size < n) size *= 2
      this.buf = new Uint8Array(size)
      this.start = this.pos = 0
      return
    }
    let size = Math.max(this.buf.length, 4096)
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(this.start, this.pos), this.start)
    this.buf = next
  }

  /** Bytes written since the last `take()`; the writer will never touch them again. */
  take(): Uint8Array {
    const out = this.buf.subarray(this.start, this.pos)
    this.start = this.pos
    // Start a fresh buffer once most of this one is handed out, or after a large message grew it.
    if (this.buf.length - this.pos < 256 || this.buf.length > 4 * this.initialSize) {
      this.buf = new Uint8Array(this.initialSize)
      this.start = this.pos = 0
    }
    return out
  }

  /**
   * Starts over in `buf`, which nobody references any more (a buffer whose bytes were handed out
   * and are known to be written). Nothing may be pending.
   */
  reuse(buf: Uint8Array): void {
    this.buf = buf
    this.start = this.pos = 0
  }

  /** Length of what has been written since the last `take()`. */
  get length(): number {
    return this.pos - this.start
  }

  /** Discards what was written since the last `take()` (used when an encode fails midway). */
  rewind(): void {
    this.pos = this.start
  }

  u8(v: number): this {
    this.ensure(1)
    this.buf[this.pos++] = v & 0xff
    return this
  }

  i16(v: number): this {
    if (!Number.isInteger(v) || v < -32768 || v > 32767) fail("EncodeInvalid", `${v} does not fit in an Int16`)
    return this.raw16(v)
  }

  /** An unsigned 16-bit value (protocol version halves, counts known to be non-negative). */
  u16(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 65535) fail("EncodeInvalid", `${v} does not fit in a UInt16`)
    return this.raw16(v)
  }

  private raw16(v: number): this {
    this.ensure(2)
    const b = this.buf
    const p = this.pos
    b[p] = (v >>> 8) & 0xff
    b[p + 1] = v & 0xff
    this.pos = p + 2
    return this
  }

  i32(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) fail("EncodeInvalid", `${v} does not fit in an Int32`)
    return this.raw32(v)
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) fail("EncodeInvalid", `${v} does not fit in a UInt32`)
    return this.raw32(v)
  }

  raw32(v: number): this {
    this.ensure(4)
    const b = this.buf
    const p = this.pos
    b[p] = (v >>> 24) & 0xff
    b[p + 1] = (v >>> 16) & 0xff
    b[p + 2] = (v >>> 8) & 0xff
    b[p + 3] = v & 0xff
    this.pos = p + 4
    return this
  }

  i64(v: bigint): this {
    if (v < -0x8000000000000000n || v > 0x7fffffffffffffffn) fail("EncodeInvalid", `${v} does not fit in an Int64`)
    const u = BigInt.asUintN(64, v)
    this.raw32(Number(u >> 32n))
    return this.raw32(Number(u & 0xffffffffn))
  }

  u64(v: bigint): this {
    if (v < 0n || v > 0xffffffffffffffffn) fail("EncodeInvalid", `${v} does not fit in a UInt64`)
    this.raw32(Number(v >> 32n))
    return this.raw32(Number(v & 0xffffffffn))
  }

  f32(v: number): this {
    this.ensure(4)
    f64Scratch.setFloat32(0, v)
    for (let i = 0; i < 4; i++) this.buf[this.pos++] = f64Scratch.getUint8(i)
    return this
  }

  f64(v: number): this {
    this.ensure(8)
    f64Scratch.setFloat64(0, v)
    for (let i = 0; i < 8; i++) this.buf[this.pos++] = f64Scratch.getUint8(i)
    return this
  }

  bytes(v: Uint8Array): this {
    this.ensure(v.length)
    this.buf.set(v, this.pos)
    this.pos += v.length
    return this
  }

  /** UTF-8 text without a terminator. */
  string(s: string): this {
    this.ensure(s.length * 3)
    this.pos = encodeUtf8Into(s, this.buf, this.pos)
    return this
  }

  /** UTF-8 text and a NUL terminator; a NUL inside `s` would end the field early, so it is refused. */
  cstring(s: string): this {
    if (s.indexOf("\u0000") !== -1) fail("EncodeInvalid", "string contains a NUL character")
    this.ensure(s.length * 3 + 1)
    this.pos = encodeUtf8Into(s, this.buf, this.pos)
    this.buf[this.pos++] = 0
    return this
  }

  /**
   * Starts a message: writes the type byte (none for startup-phase packets) and reserves the
   * length. Returns the length's position for `end`.
   */
  begin(type: number | undefined): number {
    this.ensure(5)
    if (type !== undefined) this.buf[this.pos++] = type
    const at = this.pos
    this.pos += 4
    return at
  }

  /** Back-patches the length written by `begin`, refusing messages over the maximum size. */
  end(lengthAt: number): this {
    const len = this.pos - lengthAt
    if (len > this.maxMessageSize) {
      this.pos = this.start
      fail(
        "MessageTooLarge",
        `message of ${len} bytes exceeds the maximum of ${this.maxMessageSize} (raise maxMessageSize to allow it)`
      )
    }
    const b = this.buf
    b[lengthAt] = (len >>> 24) & 0xff
    b[lengthAt + 1] = (len >>> 16) & 0xff
    b[lengthAt + 2] = (len >>> 8) & 0xff
    b[lengthAt + 3] = len & 0xff
    return this
  }
}
