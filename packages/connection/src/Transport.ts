/**
 * The byte transport under a connection: TCP, Unix-domain sockets, and TLS (negotiated after an
 * SSLRequest, or direct with ALPN "postgresql").
 *
 * Invariants:
 * - No exception escapes a socket callback: every socket event is turned into a value on the
 *   transport's inbox (a chunk, an end, or an error) and read by the connection's reader fiber.
 * - The inbox is bounded by a high-water mark: past it the socket is paused, and the reader resumes
 *   it once drained, so a slow consumer pauses the server instead of growing memory.
 * - `write` completes when the kernel accepted the bytes or, if the socket buffer is full, after
 *   'drain': the writer never queues more than one unflushed write on the socket.
 * - A plain (TCP or unix) socket reads into one buffer of the transport's own (net's `onread`; 64 KiB per
 *   connection, for its lifetime), reused for every read: no Node stream machinery and no 64 KiB allocation
 *   per read. Each read is copied into an exactly sized chunk, except while the reader accepts a *lent*
 *   chunk (see `lendable`): the view of the read buffer is then handled at once and nothing of it may be
 *   kept past that call. A TLS socket (set up over the plain one, or direct) delivers its own chunks
 *   through 'data' events.
 * - node:tls is loaded on first use (`tls()`, `process.getBuiltinModule`): a connection without TLS never
 *   loads it (~5 MB of resident memory; node:crypto likewise waits for a password exchange, codec's
 *   `internal/nodeCrypto.ts`).
 * - Read batching (`readBatchingMs`, off unless a replication stream asks for it; plain TCP sockets only,
 *   see `setReadBatching`): after a read of less than `BATCHED_READ_BELOW` bytes that came within
 *   `BUSY_READ_GAP_MS` of the previous read (a busy stream), the socket stops reading for `readBatchingMs`
 *   (at most `MAX_READ_BATCHING_MS`; a timer, the event loop is never blocked). The read itself is handled
 *   at once; what the server sends meanwhile waits in the kernel and arrives in the next reads, many
 *   messages each. It also changes how the server sends: a walsender sends every change on its own, and a
 *   client that reads (and so acknowledges) at once has the kernel put each change in its own TCP
 *   segment; held back, the sends queue up and go out as a few large segments, far cheaper for the server
 *   (measured in B6: 46,000–125,000 segments per 200,000 changes became 10,000–35,000, the walsender's
 *   system time halved). The backpressure pause and the read-batching pause are separate: the socket
 *   reads again only when neither holds it.
 */
import { Buffer } from "node:buffer"
import * as Net from "node:net"
import type * as Tls from "node:tls"
import * as Effect from "effect/Effect"
import { ConnectionError } from "./PgError.ts"

/** node:tls, loaded on first use (see the module header). */
const tls = (): typeof Tls => process.getBuiltinModule("node:tls")

export type TransportEvent =
  | {
    readonly _tag: "Data"
    readonly chunk: Uint8Array
    /** A view of the transport's read buffer, overwritten by the next read: valid during its handling only. */
    readonly lent?: true
  }
  | { readonly _tag: "End" }
  | { readonly _tag: "Error"; readonly error: ConnectionError }

const HIGH_WATER_CHUNKS = 16

/** Read batching applies to reads below this size: larger ones already carry many messages. */
export const BATCHED_READ_BELOW = 16 * 1024
/** The longest read-batching pause accepted (a message arriving during it waits that long at most). */
export const MAX_READ_BATCHING_MS = 100
/**
 * A small read starts a read-batching pause only if the read before it came less than this long before:
 * the stream is busy. After a quiet spell a read is handled and reading goes on, so a message on its own
 * (a trickle of changes) is never held back; only a stream that keeps the client busy is batched.
 */
export const BUSY_READ_GAP_MS = 1

/** Reads below this size are copied into a slice of Node's buffer pool (`Buffer.allocUnsafe`'s 8 KiB slabs). */
const SMALL_READ = 4096

/** The read buffer of a plain socket: the most one read returns (net's own default read size). */
export const READ_BUFFER_SIZE = 64 * 1024

/**
 * A plain socket's `onread` option, routed to the transport once it exists. Nothing arrives before
 * 'connect' (the server speaks only after the client's first message), so the route is set in time.
 */
class ReadRoute {
  transport: Transport | undefined
  readonly option = {
    buffer: Buffer.allocUnsafeSlow(READ_BUFFER_SIZE),
    callback: (n: number, buf: Uint8Array): boolean => {
      this.transport?.onRead(n, buf)
      return true
    }
  }
}

export interface Endpoint {
  readonly kind: "tcp" | "unix"
  readonly host: string
  readonly port: number
}

export class Transport {
  socket: Net.Socket
  readonly endpoint: Endpoint
  private inbox: Array<TransportEvent> = []
  private waiter: (() => void) | undefined
  private paused = false
  private ended = false
  tls = false
  peerCertificate: Uint8Array | undefined

  constructor(socket: Net.Socket, endpoint: Endpoint, route?: ReadRoute) {
    this.socket = socket
    this.endpoint = endpoint
    if (route !== undefined) {
      route.transport = this
      this.route = route
    }
    this.attach(socket)
  }

  /** Set while the socket reads into the route's buffer (a plain socket, not yet upgraded to TLS). */
  private route: ReadRoute | undefined

  private attach(socket: Net.Socket): void {
    socket.setNoDelay?.(true)
    if (this.route === undefined) socket.on("data", this.onData)
    socket.on("end", this.onEnd)
    socket.on("close", this.onEnd)
    socket.on("error", this.onError)
  }

  private detach(socket: Net.Socket): void {
    socket.off("data", this.onData)
    socket.off("end", this.onEnd)
    socket.off("close", this.onEnd)
    socket.off("error", this.onError)
  }

  /**
   * When set (by the wire, after the handshake), events are offered to it first, synchronously; it
   * returns false when its reader is busy, and the event then waits in the inbox in order.
   */
  direct: ((event: TransportEvent) => boolean) | undefined

  /**
   * Set by the wire: true while every request in flight takes lent chunks (copies whatever it keeps before
   * returning), so a read may be handed on as a view of the read buffer instead of a copy.
   */
  lendable: (() => boolean) | undefined

  /** Reads handed on as lent views (for tests and diagnostics). */
  lentReads = 0

  /** Read batching (see the module header): 0 is off. Set through `setReadBatching`. */
  private readBatchingMs = 0
  /** Set while reading is held back after a small read (read batching). */
  private batchPause: ReturnType<typeof setTimeout> | undefined
  /** When the previous read arrived (performance.now(); read batching only). */
  private lastReadAt = -Infinity
  /** Small reads followed by a read-batching pause (for tests and diagnostics). */
  batchedReads = 0

  /**
   * Turns read batching on (`ms` > 0, at most MAX_READ_BATCHING_MS) or off (0). Plain TCP sockets only: a
   * unix socket's buffer is small (~200 KiB), so a pause there soon fills it and stalls the server for
   * the rest of the pause (measured: 50 k changes/s instead of 210 k), and its sends are cheap anyway.
   */
  setReadBatching(ms: number): void {
    this.readBatchingMs = this.endpoint.kind === "tcp" && Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_READ_BATCHING_MS) : 0
    if (this.readBatchingMs === 0) this.endBatchPause()
  }

  /** Ends a read-batching pause: the socket reads again unless backpressure holds it. */
  private readonly endBatchPause = (): void => {
    if (this.batchPause === undefined) return
    clearTimeout(this.batchPause)
    this.batchPause = undefined
    if (!this.paused && !this.ended) this.socket.resume()
  }

  /** The inbox drained enough: the socket reads again unless a read-batching pause holds it. */
  private endBackpressure(): void {
    this.paused = false
    if (this.batchPause === undefined) this.socket.resume()
  }

  /** A plain socket's read of `n` bytes into the route's buffer `buf`. */
  onRead(n: number, buf: Uint8Array): void {
    if (this.readBatchingMs > 0) {
      const now = performance.now()
      if (n < BATCHED_READ_BELOW && this.batchPause === undefined && now - this.lastReadAt < BUSY_READ_GAP_MS) {
        // What the server sends meanwhile waits in the kernel; this read is handled now.
        this.batchPause = setTimeout(this.endBatchPause, this.readBatchingMs)
        this.batchedReads++
        this.socket.pause()
      }
      this.lastReadAt = now
    }
    if (this.inbox.length === 0 && this.direct !== undefined && this.lendable?.() === true) {
      // Handled now or not at all: a lent view must not wait in the inbox for the next read to overwrite it.
      if (this.direct({ _tag: "Data", chunk: buf.subarray(0, n), lent: true })) {
        this.lentReads++
        return
      }
      // The reader waits for its consumer (a file being written): copy this read and pause at once, instead
      // of copying up to the high-water mark — the kernel's buffer holds the rest until the reader is back.
      this.copyAndQueue(n, buf)
      this.pause()
      return
    }
    this.copyAndQueue(n, buf)
  }

  private copyAndQueue(n: number, buf: Uint8Array): void {
    // Small reads: a slice of Node's shared pool (no allocation of its own). Larger ones: a buffer of their
    // own, zero-filled then overwritten — measured (2 GB COPY OUT) to use less CPU and peak memory than
    // Buffer.allocUnsafe's or Node's own read path, whose chunks' memory the allocator keeps longer.
    const chunk = n < SMALL_READ ? Buffer.allocUnsafe(n) : Buffer.alloc(n)
    chunk.set(n === buf.length ? buf : buf.subarray(0, n))
    this.onData(chunk)
  }

  private readonly onData = (chunk: Uint8Array): void => {
    const ev: TransportEvent = { _tag: "Data", chunk }
    if (this.inbox.length === 0 && this.direct !== undefined && this.direct(ev)) return
    this.inbox.push(ev)
    if (this.inbox.length >= HIGH_WATER_CHUNKS && !this.paused) {
      this.paused = true
      this.socket.pause()
    }
    this.wake()
  }

  private readonly onEnd = (): void => {
    if (this.ended) return
    this.ended = true
    this.endBatchPause()
    this.deliver({ _tag: "End" })
  }

  private deliver(ev: TransportEvent): void {
    if (this.inbox.length === 0 && this.direct !== undefined && this.direct(ev)) return
    this.inbox.push(ev)
    this.wake()
  }

  private readonly onError = (err: Error): void => {
    if (this.ended) return
    this.ended = true
    this.endBatchPause()
    this.deliver({
      _tag: "Error",
      error: new ConnectionError({
        reason: "SocketError",
        message: `socket error: ${err.message}`,
        host: this.endpoint.host,
        port: this.endpoint.port,
        cause: err
      })
    })
  }

  private wake(): void {
    const w = this.waiter
    if (w !== undefined) {
      this.waiter = undefined
      w()
    }
  }

  /** Takes every event that arrived (waits for at least one); resumes a paused socket once drained. */
  readonly take: Effect.Effect<Array<TransportEvent>> = Effect.callback<Array<TransportEvent>>((resume) => {
    if (this.inbox.length > 0) {
      resume(Effect.succeed(this.takeNow()))
      return
    }
    this.waiter = () => resume(Effect.succeed(this.takeNow()))
    return Effect.sync(() => {
      this.waiter = undefined
    })
  })

  /** Synchronous variant for the handshake's small reads: the events already here (maybe none). */
  takeNow(): Array<TransportEvent> {
    const out = this.inbox
    this.inbox = []
    if (this.paused) this.endBackpressure()
    return out
  }

  /** Takes the oldest waiting event, if any; resumes a paused socket once the inbox has drained below half. */
  takeOne(): TransportEvent | undefined {
    const ev = this.inbox.shift()
    if (this.paused && this.inbox.length < HIGH_WATER_CHUNKS / 2) this.endBackpressure()
    return ev
  }

  /** Pauses reading without taking events (used while the consumer is slow). */
  pause(): void {
    if (!this.paused) {
      this.paused = true
      this.socket.pause()
    }
  }

  /** Bytes handed to the socket that it has not yet written to the kernel (it still references them). */
  get pendingBytes(): number {
    return this.socket.writableLength
  }

  /** Writes, then waits for 'drain' if the socket's buffer is full. */
  write(data: Uint8Array): Effect.Effect<void, ConnectionError> {
    return Effect.suspend(() => {
      if (this.ended || this.socket.destroyed) return Effect.fail(this.closedError())
      return this.writeNow(data) ? Effect.void : this.drained
    })
  }

  /**
   * Writes without waiting. Returns false when the socket's buffer is full: the caller must then wait
   * for `drained` before writing more. Never throws (a failed write surfaces as a socket error event).
   */
  writeNow(data: Uint8Array): boolean {
    if (this.ended || this.socket.destroyed) return true
    try {
      return this.socket.write(data)
    } catch {
      return true
    }
  }

  /** `writeNow` for several buffers, written as they are in one corked writev (no copy to join them). */
  writeManyNow(bufs: ReadonlyArray<Uint8Array>): boolean {
    if (this.ended || this.socket.destroyed) return true
    let ok = true
    try {
      this.socket.cork()
      for (let i = 0; i < bufs.length; i++) ok = this.socket.write(bufs[i]!)
    } catch {
      return true
    } finally {
      this.socket.uncork()
    }
    return ok
  }

  /** Completes when the socket's write buffer drained (or fails when the socket closed first). */
  readonly drained: Effect.Effect<void, ConnectionError> = Effect.callback<void, ConnectionError>((resume) => {
    if (this.ended || this.socket.destroyed) return resume(Effect.fail(this.closedError()))
    if (!this.socket.writableNeedDrain) return resume(Effect.void)
    const onDrain = () => {
      cleanup()
      resume(Effect.void)
    }
    const onClose = () => {
      cleanup()
      resume(Effect.fail(this.closedError()))
    }
    const cleanup = () => {
      this.socket.off("drain", onDrain)
      this.socket.off("close", onClose)
    }
    this.socket.on("drain", onDrain)
    this.socket.on("close", onClose)
    return Effect.sync(cleanup)
  })

  closedError(cause?: unknown): ConnectionError {
    return new ConnectionError({
      reason: "Closed",
      message: "the connection is closed",
      host: this.endpoint.host,
      port: this.endpoint.port,
      ...(cause === undefined ? {} : { cause })
    })
  }

  /**
   * Replaces the plain socket by a TLS socket over it (after the server accepted SSLRequest).
   * Bytes that arrived before the handshake would be a man-in-the-middle injection (CVE-2021-23222):
   * the caller checks that none are buffered before calling this.
   */
  upgradeTls(options: Tls.ConnectionOptions, timeoutMs: number | undefined): Effect.Effect<void, ConnectionError> {
    return Effect.callback<void, ConnectionError>((resume) => {
      const plain = this.socket
      this.detach(plain)
      // From here TLS reads the plain socket; the transport gets TLS's chunks through 'data' events.
      if (this.route !== undefined) this.route.transport = undefined
      this.route = undefined
      let done = false
      let timer: ReturnType<typeof setTimeout> | undefined
      const secure = tls().connect({ ...options, socket: plain })
      const finish = (error: ConnectionError | undefined) => {
        if (done) return
        done = true
        if (timer !== undefined) clearTimeout(timer)
        secure.off("secureConnect", onSecure)
        secure.off("error", onFail)
        if (error !== undefined) {
          secure.destroy()
          plain.destroy()
          resume(Effect.fail(error))
        } else {
          this.socket = secure
          this.tls = true
          const cert = secure.getPeerX509Certificate?.()
          if (cert !== undefined) this.peerCertificate = new Uint8Array(cert.raw)
          this.attach(secure)
          resume(Effect.void)
        }
      }
      const onSecure = () => finish(undefined)
      const onFail = (err: Error) =>
        finish(
          new ConnectionError({
            reason: "TlsFailed",
            message: `TLS negotiation failed: ${err.message}`,
            host: this.endpoint.host,
            port: this.endpoint.port,
            cause: err
          })
        )
      secure.once("secureConnect", onSecure)
      secure.once("error", onFail)
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => onFail(new Error(`no TLS handshake within ${timeoutMs} ms`)),
          timeoutMs
        )
      }
      return Effect.sync(() => finish(new ConnectionError({ reason: "TlsFailed", message: "TLS negotiation interrupted" })))
    })
  }

  /** Ends the socket (after the caller wrote Terminate) and destroys it if it does not close promptly. */
  close(): void {
    const s = this.socket
    if (s.destroyed) return
    s.end()
    const t = setTimeout(() => s.destroy(), 1000)
    t.unref?.()
    s.once("close", () => clearTimeout(t))
  }

  destroy(): void {
    this.socket.destroy()
  }
}

export interface ConnectOptions {
  readonly endpoint: Endpoint
  /** Direct TLS (sslnegotiation=direct): TLS starts at once, with ALPN "postgresql". */
  readonly directTls?: Tls.ConnectionOptions | undefined
  readonly timeoutMs?: number | undefined
  /** TCP keepalive (libpq's keepalives / keepalives_idle); 0 keeps the system's idle time. */
  readonly keepAlive?: { readonly initialDelayMs: number } | undefined
}

/** Opens a socket to one endpoint; fails with ConnectionError (or on timeout) and never leaves a socket behind. */
export const connect = (options: ConnectOptions): Effect.Effect<Transport, ConnectionError> =>
  Effect.callback<Transport, ConnectionError>((resume) => {
    const { endpoint } = options
    const path = endpoint.kind === "unix" ? `${endpoint.host}/.s.PGSQL.${endpoint.port}` : undefined
    let socket: Net.Socket
    let route: ReadRoute | undefined
    let done = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const where = path ?? `${endpoint.host}:${endpoint.port}`
    const fail = (message: string, cause?: unknown) => {
      if (done) return
      done = true
      if (timer !== undefined) clearTimeout(timer)
      socket.destroy()
      resume(
        Effect.fail(
          new ConnectionError({
            reason: options.directTls !== undefined && cause !== undefined ? "TlsFailed" : "ConnectFailed",
            message: `could not connect to ${where}: ${message}`,
            host: endpoint.host,
            port: endpoint.port,
            ...(cause === undefined ? {} : { cause })
          })
        )
      )
    }
    const onConnect = () => {
      if (done) return
      done = true
      if (timer !== undefined) clearTimeout(timer)
      socket.off("error", onError)
      if (options.keepAlive !== undefined) socket.setKeepAlive(true, options.keepAlive.initialDelayMs)
      const t = new Transport(socket, endpoint, route)
      if (options.directTls !== undefined) {
        t.tls = true
        const cert = (socket as Tls.TLSSocket).getPeerX509Certificate?.()
        if (cert !== undefined) t.peerCertificate = new Uint8Array(cert.raw)
      }
      resume(Effect.succeed(t))
    }
    const onError = (err: Error) => fail(err.message, err)
    try {
      if (options.directTls !== undefined) {
        socket = tls().connect({
          ...options.directTls,
          ...(path === undefined ? { host: endpoint.host, port: endpoint.port } : { path }),
          ALPNProtocols: ["postgresql"]
        })
        socket.once("secureConnect", onConnect)
      } else {
        route = new ReadRoute()
        socket = path === undefined
          ? Net.connect({ host: endpoint.host, port: endpoint.port, onread: route.option })
          : Net.connect({ path, onread: route.option })
        socket.once("connect", onConnect)
      }
    } catch (err) {
      resume(
        Effect.fail(
          new ConnectionError({
            reason: "ConnectFailed",
            message: `could not connect to ${where}: ${(err as Error).message}`,
            host: endpoint.host,
            port: endpoint.port,
            cause: err
          })
        )
      )
      return
    }
    socket.once("error", onError)
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => fail(`timed out after ${options.timeoutMs} ms`), options.timeoutMs)
    }
    return Effect.sync(() => {
      if (!done) {
        done = true
        if (timer !== undefined) clearTimeout(timer)
        socket.destroy()
      }
    })
  })
