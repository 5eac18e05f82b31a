/**
 * The wire: one reader fiber, one writer fiber, and the FIFO of requests in flight on a connection.
 *
 * Invariants:
 * - Replies are routed strictly in order: the server answers requests in the order their bytes were
 *   written, and `submit` appends a request to the FIFO and its bytes to the outbox in one synchronous
 *   step, so FIFO order and wire order cannot diverge.
 * - The reader never waits on the writer: bytes the reader must send (CopyFail for an unexpected COPY,
 *   say) go to the outbox without waiting. The only thing the reader waits on is a slow consumer
 *   (a request's `flush`), and while it waits it stops taking socket events, so the transport pauses the
 *   socket: backpressure reaches the server and memory stays bounded by one chunk per request.
 * - The writer coalesces: it takes everything queued since its last write and writes it at once.
 * - Asynchronous messages (NoticeResponse, NotificationResponse, ParameterStatus) never reach a request;
 *   they go to their own handlers, which must not block.
 * - On any failure (socket closed, protocol violation) every request in flight and every later one fails
 *   with the same error, and the transport is destroyed; nothing waits forever.
 */
import { Effect } from "effect"
import { Framer } from "@pgfx/codec/Frame"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import { ConnectionError } from "./PgError.ts"
import type { Transport } from "./Transport.ts"

export type WireError = ConnectionError | ProtocolError

export interface Pending {
  /** Handles one backend frame; returns true when it was the request's last (the request leaves the FIFO). */
  onFrame(type: number, buf: Uint8Array, start: number, end: number): boolean
  /** The connection failed before the request completed. Called at most once, never after onFrame returned true. */
  onFail(error: WireError): void
  /** Called on the request at the head of the FIFO after each socket chunk (streaming requests hand their batch on). */
  afterChunk?(): void
}

export interface AsyncHandlers {
  readonly onNotice: (buf: Uint8Array, start: number, end: number) => void
  readonly onNotification: (buf: Uint8Array, start: number, end: number) => void
  readonly onParameterStatus: (buf: Uint8Array, start: number, end: number) => void
}

const NOTICE = 0x4e // N
const NOTIFICATION = 0x41 // A
const PARAMETER_STATUS = 0x53 // S

/** A minimal FIFO with O(1) push/shift (arrays' shift is O(n) once large). */
class Fifo<A> {
  private items: Array<A | undefined> = []
  private head = 0
  get size(): number {
    return this.items.length - this.head
  }
  push(a: A): void {
    this.items.push(a)
  }
  peek(): A | undefined {
    return this.items[this.head]
  }
  shift(): A | undefined {
    const a = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return a
  }
  drain(): Array<A> {
    const out = this.items.slice(this.head) as Array<A>
    this.items = []
    this.head = 0
    return out
  }
  /** Position of `a` from the head (0 = head), or -1. */
  indexOf(a: A): number {
    const i = this.items.indexOf(a, this.head)
    return i < 0 ? -1 : i - this.head
  }
}

export class Wire {
  readonly transport: Transport
  readonly framer: Framer
  private readonly pending = new Fifo<Pending>()
  private outbox: Array<Uint8Array> = []
  private outboxBytes = 0
  private writerWaiting: (() => void) | undefined
  /** While > 0 the writer holds queued bytes back (a CancelRequest is in flight: see Cancel.ts). */
  private holds = 0
  /** Requests written to the socket (in order); the tail tells whether a request is the last one on the wire. */
  private written = 0
  private submitted = 0
  /** Effects the reader must run after the current chunk (slow consumers). */
  private flushes: Array<Effect.Effect<void>> = []
  failure: WireError | undefined
  /** Status byte of the last ReadyForQuery: 'I' idle, 'T' in a transaction, 'E' in a failed transaction. */
  transactionStatus: 0x49 | 0x54 | 0x45 = 0x49
  private writableWaiters: Array<() => void> = []
  private readonly onFailure: Array<(error: WireError) => void> = []
  asyncHandlers: AsyncHandlers

  constructor(transport: Transport, framer: Framer, asyncHandlers: AsyncHandlers) {
    this.transport = transport
    this.framer = framer
    this.asyncHandlers = asyncHandlers
  }

  get inFlight(): number {
    return this.pending.size
  }

  /** Sequence number the next submitted request gets (1-based). */
  get submittedCount(): number {
    return this.submitted
  }

  /** Whether every request up to and including sequence `seq` has been written and nothing after it has. */
  isLastWritten(seq: number): boolean {
    return this.written === seq && this.submitted === seq
  }

  /**
   * Queues a request: its bytes go to the writer and the request joins the reply FIFO, atomically.
   * Returns the request's sequence number. If the wire has failed, the request fails at once.
   */
  submit(request: Pending, bytes: Uint8Array | undefined): number {
    if (this.failure !== undefined) {
      request.onFail(this.failure)
      return -1
    }
    this.pending.push(request)
    this.submitted++
    if (bytes !== undefined && bytes.length > 0) this.enqueue(bytes, this.submitted)
    else this.written = this.submitted
    return this.submitted
  }

  /** Queues bytes that expect no reply of their own (Terminate, CopyData, CopyDone, CopyFail…). */
  send(bytes: Uint8Array): void {
    if (this.failure !== undefined) return
    this.enqueue(bytes, this.submitted)
  }

  private seqs: Array<number> = []

  private enqueue(bytes: Uint8Array, seq: number): void {
    this.outbox.push(bytes)
    this.seqs.push(seq)
    this.outboxBytes += bytes.length
    const w = this.writerWaiting
    if (w !== undefined && this.holds === 0) {
      this.writerWaiting = undefined
      w()
    }
  }

  /** Bytes queued but not yet written (used by COPY producers for backpressure). */
  get queuedBytes(): number {
    return this.outboxBytes
  }

  /**
   * Completes once fewer than `limit` bytes wait for the writer (or the wire failed): producers of
   * unbounded data (COPY) call it between messages, so memory stays bounded by `limit` plus what the
   * socket itself buffers.
   */
  whenWritable(limit: number): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (this.outboxBytes < limit || this.failure !== undefined) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      this.writableWaiters.push(wake)
      return Effect.sync(() => {
        const i = this.writableWaiters.indexOf(wake)
        if (i >= 0) this.writableWaiters.splice(i, 1)
      })
    })
  }

  private wakeWritable(): void {
    if (this.writableWaiters.length === 0) return
    const ws = this.writableWaiters
    this.writableWaiters = []
    for (const w of ws) w()
  }

  hold(): void {
    this.holds++
  }

  release(): void {
    if (this.holds > 0) this.holds--
    if (this.holds === 0 && this.outbox.length > 0) {
      const w = this.writerWaiting
      if (w !== undefined) {
        this.writerWaiting = undefined
        w()
      }
    }
  }

  /** Registers an effect for the reader to run once the current chunk is handled (a slow consumer's offer). */
  deferFlush(effect: Effect.Effect<void>): void {
    this.flushes.push(effect)
  }

  onFail(f: (error: WireError) => void): void {
    this.onFailure.push(f)
  }

  /** Fails the wire: every request in flight fails with `error`, the socket is destroyed. Idempotent. */
  fail(error: WireError): void {
    if (this.failure !== undefined) return
    this.failure = error
    for (const p of this.pending.drain()) {
      try {
        p.onFail(error)
      } catch {
        // a request's failure handler must not stop the others from being failed
      }
    }
    this.outbox = []
    this.seqs = []
    this.outboxBytes = 0
    const w = this.writerWaiting
    this.writerWaiting = undefined
    w?.()
    this.wakeWritable()
    for (const f of this.onFailure) f(error)
    this.transport.destroy()
  }

  private readonly onFrame = (type: number, buf: Uint8Array, start: number, end: number): void => {
    switch (type) {
      case NOTICE:
        this.asyncHandlers.onNotice(buf, start, end)
        return
      case NOTIFICATION:
        this.asyncHandlers.onNotification(buf, start, end)
        return
      case PARAMETER_STATUS:
        this.asyncHandlers.onParameterStatus(buf, start, end)
        return
    }
    if (type === 0x5a) {
      const status = end - start === 1 ? buf[start] : -1
      if (status !== 0x49 && status !== 0x54 && status !== 0x45) {
        throw new ProtocolError({
          reason: "InvalidValue",
          message: `ReadyForQuery with an invalid transaction status ${status === -1 ? "(bad length)" : `0x${status!.toString(16)}`}`,
          messageType: "Z"
        })
      }
      this.transactionStatus = status
    }
    const head = this.pending.peek()
    if (head === undefined) {
      if (type === 0x45 /* E */) {
        // An error with no request: the server is about to close the session (admin shutdown, idle
        // timeout…). Reported as the wire's failure by the caller of `fail` through `onUnsolicitedError`.
        this.onUnsolicitedError?.(buf, start, end)
        return
      }
      throw new ProtocolError({
        reason: "UnexpectedMessage",
        message: `message '${String.fromCharCode(type)}' arrived with no request in flight`,
        messageType: String.fromCharCode(type)
      })
    }
    if (head.onFrame(type, buf, start, end)) this.pending.shift()
  }

  onUnsolicitedError: ((buf: Uint8Array, start: number, end: number) => void) | undefined

  /** The reader fiber: socket events → frames → requests. Ends when the wire fails. */
  readonly readLoop: Effect.Effect<void> = Effect.suspend(() => {
    const step: Effect.Effect<void> = Effect.flatMap(this.transport.take, (events) => {
      for (const ev of events) {
        if (this.failure !== undefined) return Effect.void
        if (ev._tag === "Data") {
          try {
            this.framer.push(ev.chunk, this.onFrame)
            this.pending.peek()?.afterChunk?.()
          } catch (e) {
            this.fail(toWireError(e))
            return Effect.void
          }
        } else if (ev._tag === "End") {
          this.fail(this.transport.closedError())
          return Effect.void
        } else {
          this.fail(ev.error)
          return Effect.void
        }
      }
      if (this.flushes.length === 0) return step
      const fs = this.flushes
      this.flushes = []
      return Effect.flatMap(Effect.forEach(fs, (f) => f, { discard: true }), () => step)
    })
    return step
  })

  private readonly nextBatch: Effect.Effect<Array<Uint8Array> | undefined> = Effect.callback((resume) => {
    if (this.failure !== undefined) return resume(Effect.succeed(undefined))
    if (this.outbox.length > 0 && this.holds === 0) return resume(Effect.succeed(this.takeOutbox()))
    this.writerWaiting = () => resume(Effect.succeed(this.failure !== undefined ? undefined : this.takeOutbox()))
    return Effect.sync(() => {
      this.writerWaiting = undefined
    })
  })

  private takeOutbox(): Array<Uint8Array> {
    const out = this.outbox
    const seqs = this.seqs
    this.written = Math.max(this.written, seqs[seqs.length - 1] ?? this.written)
    this.outbox = []
    this.seqs = []
    this.outboxBytes = 0
    this.wakeWritable()
    return out
  }

  /** The writer fiber: takes everything queued, writes it in one call, waits for the socket to drain. */
  readonly writeLoop: Effect.Effect<void> = Effect.suspend(() => {
    const step: Effect.Effect<void> = Effect.flatMap(this.nextBatch, (bufs) => {
      if (bufs === undefined) return Effect.void
      const data = bufs.length === 1 ? bufs[0]! : concat(bufs)
      return Effect.matchEffect(this.transport.write(data), {
        onFailure: (e) => Effect.sync(() => this.fail(e)),
        onSuccess: () => step
      })
    })
    return step
  })
}

export const concat = (bufs: ReadonlyArray<Uint8Array>): Uint8Array => {
  let n = 0
  for (const b of bufs) n += b.length
  const out = new Uint8Array(n)
  let at = 0
  for (const b of bufs) {
    out.set(b, at)
    at += b.length
  }
  return out
}

export const toWireError = (e: unknown): WireError => {
  if (e instanceof ProtocolError || e instanceof ConnectionError) return e
  // Anything else thrown while handling server bytes is a bug or a malformed message the decoders
  // did not anticipate; it is reported as a protocol error, never allowed to escape.
  return new ProtocolError({
    reason: "InvalidValue",
    message: `failed to handle a server message: ${e instanceof Error ? e.message : String(e)}`
  })
}
