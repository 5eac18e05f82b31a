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
 * - Socket events are handled in arrival order by one reader: directly in the socket's event handler
 *   while the reader fiber is idle (no scheduling hop on the hot path), by the reader fiber while it has
 *   work. Handling never throws out of the socket handler: every failure becomes the wire's failure.
 * - The writer coalesces: bytes queued during one turn of the event loop are written with one socket
 *   write at the end of that turn (a microtask), so requests from many fibers share a syscall. The
 *   writer fiber owns the slow path: when the socket's buffer is full it waits for 'drain', and nothing
 *   is written meanwhile (queued bytes wait in the outbox; producers wait on `whenWritable`).
 * - Asynchronous messages (NoticeResponse, NotificationResponse, ParameterStatus) never reach a request;
 *   they go to their own handlers, which must not block.
 * - An exclusive request (COPY, replication: `Pending.exclusive`) has the wire to itself from its submission
 *   until it leaves the FIFO: requests submitted after it keep their FIFO place but their bytes wait
 *   (in order) until then, because a server in a COPY sub-protocol treats any other message as an error;
 *   meanwhile `send` carries only the exclusive request's own messages.
 * - On any failure (socket closed, protocol violation) every request in flight and every later one fails
 *   with the same error, and the transport is destroyed; nothing waits forever.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { Framer } from "@pgfx/codec/Frame"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import { ConnectionError } from "./PgError.ts"
import type { Transport, TransportEvent } from "./Transport.ts"

export type WireError = ConnectionError | ProtocolError

export interface Pending {
  /** Handles one backend frame; returns true when it was the request's last (the request leaves the FIFO). */
  onFrame(type: number, buf: Uint8Array, start: number, end: number): boolean
  /** The connection failed before the request completed. Called at most once, never after onFrame returned true. */
  onFail(error: WireError): void
  /** Called on the request at the head of the FIFO after each socket chunk (streaming requests hand their batch on). */
  afterChunk?(): void
  /** True for a request that must have the wire to itself until it completes (see the module header). */
  readonly exclusive?: boolean
  /**
   * True for a request that copies whatever it keeps of a frame before `onFrame` / `afterChunk` return: its
   * socket reads may then be lent (views of the transport's read buffer, see Transport.ts) instead of copied,
   * while every request in the FIFO says so. Read once, at submission: it must not change.
   */
  readonly takesLentChunks?: boolean
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
  /** Requests in the FIFO that do not take lent chunks: reads are lent only while there are none. */
  private notLending = 0
  private outbox: Array<Uint8Array> = []
  private outboxBytes = 0
  private writerWaiting: (() => void) | undefined
  private flushScheduled = false
  /** A write returned false: the writer fiber waits for 'drain' before anything more is written. */
  private socketBlocked = false
  /** While > 0 the writer holds queued bytes back (a CancelRequest is in flight: see Cancel.ts). */
  private holds = 0
  /** Requests written to the socket (in order); the tail tells whether a request is the last one on the wire. */
  private written = 0
  private submitted = 0
  /** The exclusive request in flight, its sequence number, and the requests submitted after it (bytes held). */
  private exclusiveOwner: Pending | undefined
  private exclusiveSeq = 0
  private deferred: Array<{ readonly request: Pending; readonly bytes: Uint8Array | undefined; readonly seq: number }> = []
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
    if (request.takesLentChunks !== true) this.notLending++
    this.submitted++
    if (this.exclusiveOwner !== undefined) this.deferred.push({ request, bytes, seq: this.submitted })
    else this.write(request, bytes, this.submitted)
    return this.submitted
  }

  private write(request: Pending, bytes: Uint8Array | undefined, seq: number): void {
    if (request.exclusive === true) {
      this.exclusiveOwner = request
      this.exclusiveSeq = seq
    }
    if (bytes !== undefined && bytes.length > 0) this.enqueue(bytes, seq)
    else this.written = seq
  }

  /** The exclusive request whose bytes are on (or queued for) the wire now, if any. */
  get exclusiveRequest(): Pending | undefined {
    return this.exclusiveOwner
  }

  /** The exclusive request left the FIFO: the requests behind it go out, up to the next exclusive one. */
  private releaseExclusive(): void {
    this.exclusiveOwner = undefined
    let i = 0
    while (i < this.deferred.length && this.exclusiveOwner === undefined) {
      const d = this.deferred[i++]!
      this.write(d.request, d.bytes, d.seq)
    }
    this.deferred = i === this.deferred.length ? [] : this.deferred.slice(i)
  }

  /** Queues bytes that expect no reply of their own (Terminate, CopyData, CopyDone, CopyFail…). */
  send(bytes: Uint8Array): void {
    if (this.failure !== undefined) return
    // While an exclusive request runs, whatever is sent belongs to it (later requests are not written yet).
    this.enqueue(bytes, this.exclusiveOwner !== undefined ? this.exclusiveSeq : this.submitted)
  }

  private seqs: Array<number> = []

  /** Every byte ever queued (a position for `isWritten`). */
  private queuedTotal = 0
  /** Every byte handed to the socket so far (counted once its write call returned). */
  private handedTotal = 0

  /** The position after the last byte queued so far. */
  get sentPosition(): number {
    return this.queuedTotal
  }

  /**
   * Whether every byte queued before `position` has been written to the kernel, so no buffer holding them
   * is referenced any more (COPY IN recycles its buffers on this). Conservative: bytes the socket holds
   * count as unwritten whoever wrote them.
   */
  isWritten(position: number): boolean {
    return this.handedTotal - this.transport.pendingBytes >= position
  }

  private enqueue(bytes: Uint8Array, seq: number): void {
    this.queuedTotal += bytes.length
    this.outbox.push(bytes)
    this.seqs.push(seq)
    this.outboxBytes += bytes.length
    this.scheduleFlush()
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.holds > 0 || this.socketBlocked || this.failure !== undefined) return
    this.flushScheduled = true
    queueMicrotask(this.flush)
  }

  /** Writes everything queued in one call; on a full socket buffer hands over to the writer fiber. */
  private readonly flush = (): void => {
    this.flushScheduled = false
    if (this.failure !== undefined || this.holds > 0 || this.socketBlocked || this.outbox.length === 0) return
    const total = this.outboxBytes
    const bufs = this.takeOutbox()
    // Large views (COPY IN data sent as it came) go out in one corked writev, not copied into one buffer;
    // many small messages are still joined (one copy is cheaper than many iovecs).
    const written = bufs.length === 1
      ? this.transport.writeNow(bufs[0]!)
      : total >= WRITEV_MIN_BYTES && bufs.length <= WRITEV_MAX_BUFFERS
      ? this.transport.writeManyNow(bufs)
      : this.transport.writeNow(concat(bufs))
    // Only now does the socket account for these bytes (see isWritten): a waiter woken by takeOutbox may
    // already be running, and must not see them as written.
    this.handedTotal += total
    if (!written) {
      this.socketBlocked = true
      const w = this.writerWaiting
      this.writerWaiting = undefined
      w?.()
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
    if (this.holds === 0 && this.outbox.length > 0) this.scheduleFlush()
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
    this.notLending = 0
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
    this.exclusiveOwner = undefined
    this.deferred = []
    const w = this.writerWaiting
    this.writerWaiting = undefined
    w?.()
    const r = this.readerWaiting
    this.readerWaiting = undefined
    r?.()
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
    if (head.onFrame(type, buf, start, end)) {
      this.pending.shift()
      if (head.takesLentChunks !== true) this.notLending--
      if (head === this.exclusiveOwner) this.releaseExclusive()
    }
  }

  onUnsolicitedError: ((buf: Uint8Array, start: number, end: number) => void) | undefined

  /** Handles one socket event: frames go to their requests. Never throws. */
  private handleEvent(ev: TransportEvent): void {
    if (this.failure !== undefined) return
    if (ev._tag === "Data") {
      try {
        this.framer.push(ev.chunk, this.onFrame)
        this.pending.peek()?.afterChunk?.()
        if (ev.lent === true) this.framer.ownPending(ev.chunk)
      } catch (e) {
        this.fail(toWireError(e))
      }
    } else if (ev._tag === "End") {
      this.fail(this.transport.closedError())
    } else {
      this.fail(ev.error)
    }
  }

  /** True while the reader fiber has work (flushes to run, events queued): events then wait in order. */
  private readerBusy = true
  private readerWaiting: (() => void) | undefined

  /**
   * The fast path, called from the socket's event handler: when the reader fiber is idle, the event is
   * handled at once (same thread, same order, no scheduling hop). If that leaves flushes to run (a slow
   * consumer), the reader fiber takes over and later events queue behind it.
   */
  private readonly direct = (ev: TransportEvent): boolean => {
    if (this.readerBusy) return false
    this.handleEvent(ev)
    if (this.flushes.length > 0 && this.failure === undefined) {
      this.readerBusy = true
      const w = this.readerWaiting
      this.readerWaiting = undefined
      w?.()
    }
    return true
  }

  /**
   * The transport may lend its read buffer while every request in flight copies what it keeps: a chunk may
   * hold the replies of any of them (and asynchronous messages, which are decoded at once).
   */
  private readonly lendable = (): boolean => this.failure === undefined && this.notLending === 0 && this.pending.size > 0

  private readonly readerWork: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.readerBusy || this.failure !== undefined) return resume(Effect.void)
    this.readerWaiting = () => resume(Effect.void)
    return Effect.sync(() => {
      this.readerWaiting = undefined
    })
  })

  /**
   * The reader fiber: runs slow consumers' flushes (backpressure: while it waits, events queue in the
   * transport, which pauses the socket past its high-water mark), then handles queued events, then
   * hands the fast path back to the socket handler. Ends when the wire fails.
   */
  readonly readLoop: Effect.Effect<void> = Effect.suspend(() => {
    this.transport.direct = this.direct
    this.transport.lendable = this.lendable
    const drain: Effect.Effect<void> = Effect.suspend(() => {
      if (this.failure !== undefined) return Effect.void
      if (this.flushes.length > 0) {
        const fs = this.flushes
        this.flushes = []
        return Effect.flatMap(Effect.forEach(fs, (f) => f, { discard: true }), () => drain)
      }
      const ev = this.transport.takeOne()
      if (ev === undefined) {
        this.readerBusy = false
        return wait
      }
      // One event at a time, its flushes before the next: rows wait for their consumer as briefly as
      // possible (they die young instead of being promoted), and at most one chunk is decoded ahead.
      this.handleEvent(ev)
      return drain
    })
    const wait: Effect.Effect<void> = Effect.flatMap(this.readerWork, () => drain)
    return drain
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

  /** Completes when the socket reported a full buffer (or the wire failed). */
  private readonly blocked: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.socketBlocked || this.failure !== undefined) return resume(Effect.void)
    this.writerWaiting = () => resume(Effect.void)
    return Effect.sync(() => {
      this.writerWaiting = undefined
    })
  })

  /** The writer fiber: waits out full socket buffers ('drain'), then writes what queued meanwhile. */
  readonly writeLoop: Effect.Effect<void> = Effect.suspend(() => {
    const step: Effect.Effect<void> = Effect.flatMap(this.blocked, () => {
      if (this.failure !== undefined) return Effect.void
      return Effect.matchEffect(this.transport.drained, {
        onFailure: (e) => Effect.sync(() => this.fail(e)),
        onSuccess: () => {
          this.socketBlocked = false
          this.flush()
          return step
        }
      })
    })
    return step
  })
}

/** Outbox sizes from which a flush writes the buffers as they are (writev) instead of joining them. */
const WRITEV_MIN_BYTES = 32 * 1024
const WRITEV_MAX_BUFFERS = 64

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

/**
 * Hands batches from the reader to a consumer's bounded queue, in order: at once while the queue has room,
 * else through the wire's `deferFlush` (the reader then waits, and the socket pauses: backpressure). Later
 * batches and the end queue behind an offer that waits, so the consumer sees them in the order given.
 */
export class ReaderQueue<A, E> {
  private readonly wire: Wire
  private readonly queue: Queue.Queue<A, E | Cause.Done>
  /** Offers (or the end) waiting in the reader. */
  private waiting = 0
  private readonly settle = Effect.sync(() => {
    this.waiting--
  })

  constructor(wire: Wire, queue: Queue.Queue<A, E | Cause.Done>) {
    this.wire = wire
    this.queue = queue
  }

  offer(a: A): void {
    if (this.waiting > 0 || !Queue.offerUnsafe(this.queue, a)) this.defer(Queue.offer(this.queue, a))
  }

  /** Ends the queue after everything offered (with `error`, it fails instead). */
  end(error?: E): void {
    if (this.waiting > 0) this.defer(error === undefined ? Queue.end(this.queue) : Queue.fail(this.queue, error))
    else if (error === undefined) Queue.endUnsafe(this.queue)
    else Queue.failCauseUnsafe(this.queue, Cause.fail(error))
  }

  private defer(effect: Effect.Effect<unknown>): void {
    this.waiting++
    this.wire.deferFlush(Effect.ensuring(Effect.asVoid(effect), this.settle))
  }
}
