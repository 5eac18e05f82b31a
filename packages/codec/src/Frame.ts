/**
 * The incremental framer: arbitrary chunks of a byte stream in, whole frames out.
 *
 * Invariants:
 * - The same frames come out for every split of the stream into chunks (tested at every split point).
 * - Every length is bounded before it is trusted: below 4, or above `maxMessageSize` (untyped
 *   startup packets: above MAX_STARTUP_PACKET_LENGTH) is a `ProtocolError`; nothing is allocated
 *   from a length field: a partial frame is kept as the chunks that arrived, and joined only when whole.
 * - Frames are handed out as views (buf, start, end) of the chunk they arrived in, or of a fresh
 *   buffer when they spanned chunks (holding just that frame once its length is known: the rest of the
 *   chunk is framed in place, never copied); the framer never writes into those bytes again.
 * - After a ProtocolError the framer is poisoned: every later push throws the same error.
 *
 * Modes: "typed" (Byte1 type + Int32 length: every message after startup), "untyped" (Int32
 * length only: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest as read by a server),
 * and "byte" (one byte, the S/N answer to SSLRequest/GSSENCRequest), after which it returns to "typed".
 * The mode may be changed from inside the frame callback and applies to the very next frame.
 *
 * Streamed frames (opt-in, `streamFrames`): a typed frame of the handler's type whose body is longer than
 * its threshold is never joined: its body goes to the handler as it arrives, as `onStart(type, length)`,
 * one or more `onPiece(buf, start, end)` (views, never copies; together exactly the body, in order) and
 * `onEnd()`, whatever the split into chunks, and `onFrame` does not see it. The handler in place when a
 * frame starts receives all of it, even if `streamFrames` changes meanwhile. The length is bounded by
 * `maxMessageSize` as for any other frame. Used by COPY OUT, whose CopyData may be far larger than memory
 * should hold at once.
 */
import { DEFAULT_MAX_MESSAGE_SIZE, MAX_STARTUP_PACKET_LENGTH, MIN_MESSAGE_LENGTH } from "./Limits.ts"
import { ProtocolError } from "./ProtocolError.ts"

export type FrameMode = "typed" | "untyped" | "byte"

/**
 * Receives one frame: `type` is the type byte (0 for an untyped frame; the byte itself in
 * "byte" mode, with an empty body); the body is `buf[start, end)`, without type and length.
 */
export type FrameHandler = (type: number, buf: Uint8Array, start: number, end: number) => void

/** Receives the body of a large frame in pieces (see "Streamed frames" above). */
export interface FrameStreamHandler {
  /** The frame type streamed (e.g. 0x64, CopyData). */
  readonly type: number
  /** Bodies longer than this many bytes are streamed; shorter ones go to `onFrame` as usual. */
  readonly threshold: number
  readonly onStart: (type: number, length: number) => void
  readonly onPiece: (buf: Uint8Array, start: number, end: number) => void
  readonly onEnd: () => void
}

export interface FramerOptions {
  readonly maxMessageSize?: number | undefined
  readonly mode?: FrameMode | undefined
}

const EMPTY = new Uint8Array(0)

export class Framer {
  mode: FrameMode
  readonly maxMessageSize: number
  /** Bytes consumed before the current buffer (for error offsets). */
  private consumed = 0
  private parts: Array<Uint8Array> = []
  private partsLength = 0
  /** Total bytes the frame at the head of `parts` needs, once its header is known (0 = unknown). */
  private need = 0
  private failure: ProtocolError | undefined
  /** Opt-in streaming of large frames of one type; undefined (default) joins every frame. */
  streamFrames: FrameStreamHandler | undefined = undefined
  /** The handler of the streamed frame in progress, and how many body bytes it still expects. */
  private streaming: FrameStreamHandler | undefined
  private streamRemaining = 0
  /** Scratch for a header split between chunks. */
  private readonly header = new Uint8Array(5)

  constructor(options: FramerOptions = {}) {
    this.mode = options.mode ?? "typed"
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
  }

  /** Bytes received but not yet framed (a partial frame, or bytes left after a mode switch). */
  get buffered(): number {
    return this.partsLength
  }

  /** Removes and returns the unframed bytes (e.g. to hand them to a TLS layer, or to prove there are none). */
  drain(): Uint8Array {
    const out = this.join()
    this.consumed += out.length
    this.parts = []
    this.partsLength = 0
    this.need = 0
    return out
  }

  /**
   * Copies the unframed bytes that are still views of `chunk`'s memory. For a caller that reuses a chunk's
   * memory once `push` returned (a socket's read buffer): call it right after that push.
   */
  ownPending(chunk: Uint8Array): void {
    const parts = this.parts
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!
      // A copy (not `slice`, which on a Node Buffer is a view).
      if (part.buffer === chunk.buffer) parts[i] = new Uint8Array(part)
    }
  }

  push(chunk: Uint8Array, onFrame: FrameHandler): void {
    if (this.failure !== undefined) throw this.failure
    if (chunk.length === 0) return
    let buf: Uint8Array
    if (this.streaming !== undefined) {
      // The body of a streamed frame continues: hand this chunk's share on as a view.
      const handler = this.streaming
      const take = Math.min(chunk.length, this.streamRemaining)
      this.streamRemaining -= take
      this.consumed += take
      if (this.streamRemaining === 0) this.streaming = undefined
      handler.onPiece(chunk, 0, take)
      if (this.streaming === undefined) handler.onEnd()
      if (take === chunk.length) return
      buf = take === 0 ? chunk : chunk.subarray(take)
    } else if (this.partsLength > 0) {
      // A header split between chunks is read across them, so the frame's size is known here too.
      const need = this.need > 0 ? this.need : this.pendingFrameSize(chunk)
      if (need > 0 && this.partsLength + chunk.length >= need) {
        // The frame at the head completes in this chunk: copy only that frame, then go on in the chunk.
        this.completeFrame(chunk, need, onFrame)
        return
      }
      this.need = need
      this.parts.push(chunk)
      this.partsLength += chunk.length
      // Still short of a known frame size: keep the chunk as it is, no copy.
      if (need > 0 && this.partsLength < need) return
      if (need === 0 && this.partsLength < this.headerSize()) return
      buf = this.join()
      this.parts = []
      this.partsLength = 0
      this.need = 0
    } else {
      buf = chunk
    }
    this.run(buf, 0, onFrame)
  }

  /**
   * Joins the pending bytes and the first bytes of `chunk` into the frame of `need` bytes they
   * complete, frames it, and frames the rest of `chunk` in place: only the frame that spans
   * chunks is copied, never the rest of the chunk.
   */
  private completeFrame(chunk: Uint8Array, need: number, onFrame: FrameHandler): void {
    const out = new Uint8Array(need)
    let at = 0
    for (const p of this.parts) {
      out.set(p, at)
      at += p.length
    }
    const from = need - at
    out.set(from === chunk.length ? chunk : chunk.subarray(0, from), at)
    this.parts = []
    this.partsLength = 0
    this.need = 0
    try {
      // `run` re-reads the header in the current mode, so a mode or `streamFrames` changed between
      // pushes is honoured; `out` then may not end on a frame boundary (handled below).
      this.run(out, 0, onFrame)
    } catch (e) {
      // A handler threw (or the framer is poisoned): leave the rest of the chunk exactly where
      // framing it together with `out` would have left it, for the next push or `drain()`.
      if (this.failure === undefined && from < chunk.length) this.keepAfterThrow(chunk, from)
      throw e
    }
    if (from === chunk.length) return
    if (this.partsLength > 0 || this.streaming !== undefined) this.push(chunk.subarray(from), onFrame)
    else this.run(chunk, from, onFrame)
  }

  /** `chunk[from..]` after a handler threw in `completeFrame`: a streamed body swallows its share. */
  private keepAfterThrow(chunk: Uint8Array, from: number): void {
    if (this.streaming !== undefined) {
      const take = Math.min(chunk.length - from, this.streamRemaining)
      this.streamRemaining -= take
      this.consumed += take
      from += take
      if (this.streamRemaining === 0) this.streaming = undefined
      if (from === chunk.length) return
    }
    const rest = chunk.subarray(from)
    this.parts.push(rest)
    this.partsLength += rest.length
  }

  /**
   * The size of the frame whose header starts the pending bytes, read across them and `chunk`; 0 when
   * the header is still incomplete, or when the general path must decide (a length out of range, which
   * it reports; a frame to stream; "byte" mode).
   */
  private pendingFrameSize(chunk: Uint8Array): number {
    const mode = this.mode
    if (mode === "byte") return 0
    const typed = mode === "typed"
    const header = typed ? 5 : 4
    if (this.partsLength + chunk.length < header) return 0
    const h = this.header
    let n = 0
    for (let k = 0; k < this.parts.length && n < header; k++) {
      const p = this.parts[k]!
      for (let i = 0; i < p.length && n < header; i++) h[n++] = p[i]!
    }
    for (let i = 0; n < header; i++) h[n++] = chunk[i]!
    const lp = typed ? 1 : 0
    const length = (h[lp]! << 24) | (h[lp + 1]! << 16) | (h[lp + 2]! << 8) | h[lp + 3]!
    if (length < MIN_MESSAGE_LENGTH || length > (typed ? this.maxMessageSize : MAX_STARTUP_PACKET_LENGTH)) return 0
    const stream = this.streamFrames
    if (typed && stream !== undefined && h[0] === stream.type && length - 4 > stream.threshold) return 0
    return typed ? length + 1 : length
  }

  private headerSize(): number {
    return this.mode === "typed" ? 5 : this.mode === "untyped" ? 4 : 1
  }

  private join(): Uint8Array {
    if (this.parts.length === 0) return EMPTY
    if (this.parts.length === 1) return this.parts[0]!
    const out = new Uint8Array(this.partsLength)
    let at = 0
    for (const p of this.parts) {
      out.set(p, at)
      at += p.length
    }
    return out
  }

  /** Frames `buf[from..]`. */
  private run(buf: Uint8Array, from: number, onFrame: FrameHandler): void {
    let pos = from
    const len = buf.length
    this.need = 0
    try {
      frames: while (pos < len) {
        if (this.mode === "typed" && this.streamFrames === undefined) {
          // The steady state, in a tight loop: typed frames, none streamed. Re-checked after every
          // frame, since the handler may change either.
          const max = this.maxMessageSize
          do {
            if (len - pos < 5) break frames // header incomplete: `need` stays 0
            const length = (buf[pos + 1]! << 24) | (buf[pos + 2]! << 16) | (buf[pos + 3]! << 8) | buf[pos + 4]!
            if (length < MIN_MESSAGE_LENGTH || length > max) this.poison(length, max, buf[pos]!, this.consumed + pos - from)
            if (len - pos <= length) {
              this.need = length + 1
              break frames
            }
            const type = buf[pos]!
            const start = pos + 5
            pos += length + 1
            onFrame(type, buf, start, pos)
          } while (pos < len && this.mode === "typed" && this.streamFrames === undefined)
          continue
        }
        const mode = this.mode
        if (mode === "byte") {
          const b = buf[pos]!
          pos += 1
          this.mode = "typed"
          onFrame(b, buf, pos, pos)
          continue
        }
        const typed = mode === "typed"
        const header = typed ? 5 : 4
        if (len - pos < header) break // header incomplete: `need` stays 0
        const lp = typed ? pos + 1 : pos
        const length = (buf[lp]! << 24) | (buf[lp + 1]! << 16) | (buf[lp + 2]! << 8) | buf[lp + 3]!
        const max = typed ? this.maxMessageSize : MAX_STARTUP_PACKET_LENGTH
        if (length < MIN_MESSAGE_LENGTH || length > max) {
          this.poison(length, max, typed ? buf[pos]! : undefined, this.consumed + pos - from)
        }
        const total = typed ? length + 1 : length
        const stream = this.streamFrames
        if (typed && stream !== undefined && buf[pos] === stream.type && length - 4 > stream.threshold) {
          const bodyStart = pos + 5
          const body = length - 4
          const available = Math.min(len - bodyStart, body)
          pos = bodyStart + available
          if (available < body) {
            this.streaming = stream
            this.streamRemaining = body - available
          }
          stream.onStart(buf[bodyStart - 5]!, body)
          if (available > 0) stream.onPiece(buf, bodyStart, pos)
          if (available === body) stream.onEnd()
          continue
        }
        if (len - pos < total) {
          this.need = total
          break
        }
        const type = typed ? buf[pos]! : 0
        const start = pos + header
        pos += total
        onFrame(type, buf, start, pos)
      }
    } finally {
      // Keep what is left (a view, not a copy) for the next chunk; also reached when onFrame throws.
      if (this.failure === undefined && pos < len) {
        const rest = pos === 0 ? buf : buf.subarray(pos)
        this.parts = [rest]
        this.partsLength = rest.length
      }
      this.consumed += pos - from
    }
  }

  private poison(length: number, max: number, type: number | undefined, offset: number): never {
    const name = type === undefined ? "startup packet" : `message '${String.fromCharCode(type)}'`
    this.failure = new ProtocolError({
      reason: length < MIN_MESSAGE_LENGTH ? "LengthOutOfRange" : "MessageTooLarge",
      message: length < MIN_MESSAGE_LENGTH
        ? `${name} has length ${length}, below the minimum of ${MIN_MESSAGE_LENGTH}`
        : `${name} has length ${length}, above the maximum of ${max}` +
          (type === undefined ? "" : " (raise maxMessageSize to accept larger messages)"),
      ...(type === undefined ? {} : { messageType: String.fromCharCode(type) }),
      offset
    })
    throw this.failure
  }
}
