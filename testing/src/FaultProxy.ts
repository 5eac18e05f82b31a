/**
 * A fault-injection TCP proxy for tests: listens on 127.0.0.1 (a free port) and forwards every
 * accepted connection to a target (host/port or unix socket), while tests script faults that
 * may change at any moment, per direction ("toServer" = client→server, "toClient" = server→client)
 * and per connection.
 *
 * Invariants:
 * - Bounded: each direction holds at most HIGH_WATER bytes (plus one socket read) that it has
 *   read but not forwarded. Reading pauses when that is reached or when the writing side's
 *   `write` returns false, and resumes on 'drain' — so a slow reader on one side slows the
 *   writer on the other, as it would without the proxy.
 * - Order-preserving: bytes leave in the order they arrived; faults only change timing, chunk
 *   boundaries (rechunk, drip), one byte's value (corrupt) or where the stream ends (cut).
 * - Half-close is forwarded: when one side ends its stream, the other side's write half is
 *   ended after every queued byte has been forwarded (unless the direction is stalled).
 * - Clean: `close()` destroys the listener and every socket and clears every timer; pending
 *   `nextConnection()` / `waitForMessage()` promises reject.
 *
 * Fault scope: a fault set on the proxy applies to every open connection and to every
 * connection accepted later (it is the proxy's current fault state); a fault set on one
 * `ProxyConnection` applies to that connection only. `cut` is a one-shot event: on the proxy
 * it cuts the connections open at the time of the call. `corrupt` counts `atByte` from the
 * start of each connection's stream in that direction and fires at most once per connection.
 *
 * Message tracking: each connection frames the bytes it forwards (startup packets, the one-byte
 * SSL/GSSENC answers, then typed messages) so tests can wait until a message type has passed.
 * Tracking stops silently when the stream stops being framable (TLS, or a corrupted length).
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Framer } from "@pgfx/codec/Frame"
import * as Net from "node:net"

export type Direction = "toServer" | "toClient"
export type DirectionOption = Direction | "both"

export type FaultProxyTarget =
  | { readonly host: string; readonly port: number }
  | { readonly path: string }

export interface FaultProxyOptions {
  /** Seed for the `rechunk` split sizes (default 1); each connection and direction derives its own. */
  readonly seed?: number | undefined
}

/** A chunk as it was forwarded (after faults); `bytes` is a view the listener must not keep or modify. */
export interface TapEvent {
  readonly connection: ProxyConnection
  readonly direction: Direction
  readonly bytes: Uint8Array
}
export type TapListener = (event: TapEvent) => void

/**
 * A message's name for `waitForMessage`: the type byte as a character for typed messages
 * ("D", "Z", "Q"…), or one of the untyped startup packets. The one-byte answers to SSLRequest
 * and GSSENCRequest are reported by their byte ("N", "S", "G").
 */
export type MessageName = string

/** The faults every proxy and every connection can script. */
export interface FaultControls {
  /** Waits `ms` before forwarding each chunk (0 turns it off). Default direction: both. */
  delay(ms: number, direction?: DirectionOption): void
  /** Stops forwarding (sockets stay open; reading pauses once the bound is reached). Default: both. */
  stall(direction?: DirectionOption): void
  /** Undoes `stall`. Default: both. */
  resume(direction?: DirectionOption): void
  /**
   * Destroys both sockets — now, or once `afterBytes` more bytes have been forwarded in
   * `direction` (default "toClient"), which cuts mid-message. `reset: true` sends a TCP RST.
   */
  cut(options?: { readonly afterBytes?: number; readonly direction?: DirectionOption; readonly reset?: boolean }): void
  /** XORs the byte at absolute stream offset `atByte` of `direction` (default "toClient") with `xor` (default 0xff). */
  corrupt(options: { readonly atByte: number; readonly xor?: number; readonly direction?: DirectionOption }): void
  /**
   * Forwards in chunks of 1..maxChunk bytes (sizes drawn from a seeded PRNG, merging arrivals),
   * one chunk per event-loop turn so that the receiver reads them one by one. Default: both.
   */
  rechunk(options: { readonly maxChunk: number; readonly seed?: number; readonly direction?: DirectionOption }): void
  /** Forwards one byte at a time, `intervalMs` apart (0 turns it off). Default: both. */
  dripBytes(intervalMs: number, direction?: DirectionOption): void
  /** Turns every fault off (and resumes stalled directions). */
  reset(): void
}

export interface ProxyConnection extends FaultControls {
  /** 1, 2, 3… in order of acceptance. */
  readonly id: number
  readonly isOpen: boolean
  /** Bytes forwarded (written to the receiving side) in each direction. */
  readonly bytesForwarded: { readonly toServer: number; readonly toClient: number }
  /** Bytes read from the sending side in each direction. */
  readonly bytesReceived: { readonly toServer: number; readonly toClient: number }
  /** Resolves once both sockets are closed. */
  readonly closed: Promise<void>
  /** Listens to every chunk this connection forwards; returns the unsubscribe function. */
  tap(listener: TapListener): () => void
  /** Resolves when the next message named `name` has been forwarded in `direction` (default "toClient"). */
  waitForMessage(name: MessageName, direction?: Direction): Promise<void>
  /** Resolves once at least `n` bytes in total have been forwarded in `direction`. */
  waitForBytes(n: number, direction: Direction): Promise<void>
  /** Destroys both sockets now. */
  destroy(): void
}

export interface FaultProxy extends FaultControls {
  readonly host: string
  readonly port: number
  /** Every accepted (not refused) connection, open or closed, in order. */
  readonly connections: ReadonlyArray<ProxyConnection>
  readonly openConnections: number
  readonly totalConnections: number
  readonly refusedConnections: number
  /**
   * The next accepted connection not yet returned by an earlier call (a cursor over
   * `connections`, so a connection accepted before the call is not missed).
   */
  nextConnection(): Promise<ProxyConnection>
  /** Accepts and immediately closes new connections (until `refuse(false)` or `reset()`). */
  refuse(on?: boolean): void
  /** Listens to every chunk forwarded on any connection; returns the unsubscribe function. */
  tap(listener: TapListener): () => void
  /** Closes the listener and every socket; resolves once the listener is closed. */
  close(): Promise<void>
}

/** Bytes a direction may hold read-but-unforwarded before it stops reading. */
const HIGH_WATER = 64 * 1024

const directionsOf = (d: DirectionOption): ReadonlyArray<Direction> =>
  d === "both" ? ["toServer", "toClient"] : [d]

/** mulberry32: small, fast and good enough to pick chunk sizes reproducibly. */
const prng = (seed: number): () => number => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const seedFor = (seed: number, connectionId: number, direction: Direction): number =>
  (seed ^ Math.imul(connectionId, 0x9e3779b1) ^ (direction === "toServer" ? 0x5bd1e995 : 0)) >>> 0

/** The persistent faults of one direction (everything except the one-shot `cut`). */
interface DirectionFaults {
  delayMs: number
  stalled: boolean
  maxChunk: number
  seed: number | undefined
  dripMs: number
  corrupt: { readonly atByte: number; readonly xor: number } | undefined
}

const noFaults = (): DirectionFaults => ({
  delayMs: 0,
  stalled: false,
  maxChunk: 0,
  seed: undefined,
  dripMs: 0,
  corrupt: undefined
})

const checkNonNegativeInteger = (name: string, n: number): void => {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${n}`)
}

/** Forwards one direction of one connection, applying that direction's faults. */
class Pump {
  readonly faults: DirectionFaults = noFaults()
  received = 0
  forwarded = 0
  private readonly queue: Array<Uint8Array> = []
  private headOffset = 0
  private queued = 0
  private random: () => number = Math.random
  private timer: ReturnType<typeof setTimeout> | undefined
  /** Set while rechunked pieces wait one event-loop turn each (so the receiver reads them separately). */
  private immediate: ReturnType<typeof setImmediate> | undefined
  private turnReady = false
  /** The delay before the next piece has elapsed. */
  private waited = false
  private waitingDrain = false
  private sourceEnded = false
  private destEnded = false
  private dead = false
  private cutAfter: number | undefined
  private cutReset = false
  private byteWaiters: Array<{ readonly n: number; readonly resolve: () => void }> = []

  readonly connection: Connection
  readonly direction: Direction
  readonly source: Net.Socket
  readonly dest: Net.Socket
  private readonly baseSeed: number

  constructor(connection: Connection, direction: Direction, source: Net.Socket, dest: Net.Socket, baseSeed: number) {
    this.connection = connection
    this.direction = direction
    this.source = source
    this.dest = dest
    this.baseSeed = baseSeed
    this.reseed(undefined)
  }

  reseed(seed: number | undefined): void {
    this.random = prng(seedFor(seed ?? this.baseSeed, this.connection.id, this.direction))
  }

  onData(chunk: Uint8Array): void {
    if (this.dead) return
    this.received += chunk.length
    this.queue.push(chunk)
    this.queued += chunk.length
    this.flush()
  }

  onEnd(): void {
    this.sourceEnded = true
    this.flush()
  }

  armCut(afterBytes: number, reset: boolean): void {
    this.cutAfter = afterBytes
    this.cutReset = reset
    this.flush()
  }

  disarmCut(): void {
    this.cutAfter = undefined
  }

  waitForBytes(n: number): Promise<void> {
    if (this.forwarded >= n) return Promise.resolve()
    return new Promise((resolve) => this.byteWaiters.push({ n, resolve }))
  }

  /** Stops forwarding for good and drops what is queued (the connection is going away). */
  kill(): void {
    this.dead = true
    this.queue.length = 0
    this.queued = 0
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    if (this.immediate !== undefined) {
      clearImmediate(this.immediate)
      this.immediate = undefined
    }
    // Keep reading (and dropping) so the source's FIN and close are still seen.
    if (this.source.isPaused()) this.source.resume()
  }

  /** Forwards as much as faults, backpressure and timers allow, then decides whether to keep reading. */
  flush(): void {
    while (
      !this.dead && !this.faults.stalled && this.timer === undefined && this.immediate === undefined &&
      !this.waitingDrain
    ) {
      if (this.queued === 0) {
        if (this.sourceEnded && !this.destEnded) {
          this.destEnded = true
          this.dest.end()
        }
        break
      }
      const wait = this.faults.delayMs + this.faults.dripMs
      if (wait > 0 && !this.waited) {
        this.timer = setTimeout(() => {
          this.timer = undefined
          this.waited = true
          this.flush()
        }, wait)
        break
      }
      // Pieces written back to back are coalesced into one read by the receiver: rechunked
      // pieces go out one per event-loop turn, always from the check phase, so a receiver in
      // this process reads each one (in the poll phase) before the next is written.
      if (this.faults.maxChunk > 0 && this.faults.dripMs === 0 && !this.turnReady) {
        this.immediate = setImmediate(() => {
          this.immediate = undefined
          this.turnReady = true
          this.flush()
        })
        break
      }
      this.turnReady = false
      this.waited = false
      this.forward(this.take(this.pieceSize()))
    }
    if (this.dead) return
    const shouldRead = this.queued < HIGH_WATER && !this.waitingDrain
    if (shouldRead && this.source.isPaused()) this.source.resume()
    else if (!shouldRead && !this.source.isPaused()) this.source.pause()
  }

  private pieceSize(): number {
    let n: number
    if (this.faults.dripMs > 0) n = 1
    else if (this.faults.maxChunk > 0) n = Math.min(this.queued, 1 + Math.floor(this.random() * this.faults.maxChunk))
    else n = this.queue[0]!.length - this.headOffset
    if (this.cutAfter !== undefined && this.cutAfter < n) n = this.cutAfter
    return n
  }

  /** Removes `n` queued bytes: a view when they lie in one chunk, a copy when they span several. */
  private take(n: number): Uint8Array {
    const head = this.queue[0]!
    let out: Uint8Array
    if (head.length - this.headOffset >= n) {
      out = head.subarray(this.headOffset, this.headOffset + n)
      this.headOffset += n
      if (this.headOffset === head.length) {
        this.queue.shift()
        this.headOffset = 0
      }
    } else {
      out = new Uint8Array(n)
      let at = 0
      while (at < n) {
        const chunk = this.queue[0]!
        const count = Math.min(n - at, chunk.length - this.headOffset)
        out.set(chunk.subarray(this.headOffset, this.headOffset + count), at)
        at += count
        this.headOffset += count
        if (this.headOffset === chunk.length) {
          this.queue.shift()
          this.headOffset = 0
        }
      }
    }
    this.queued -= n
    return out
  }

  private forward(piece: Uint8Array): void {
    const corrupt = this.faults.corrupt
    if (corrupt !== undefined && corrupt.atByte >= this.forwarded && corrupt.atByte < this.forwarded + piece.length) {
      // A copy: the piece may be a view of a buffer the socket still shares.
      piece = Uint8Array.from(piece)
      piece[corrupt.atByte - this.forwarded] ^= corrupt.xor
      this.faults.corrupt = undefined
    } else if (corrupt !== undefined && corrupt.atByte < this.forwarded) {
      this.faults.corrupt = undefined // already passed: a one-shot that can no longer fire
    }
    this.forwarded += piece.length
    let cutNow = false
    if (this.cutAfter !== undefined && piece.length >= this.cutAfter) {
      cutNow = true
      this.cutAfter = undefined
    } else if (this.cutAfter !== undefined) {
      this.cutAfter -= piece.length
    }
    if (cutNow) {
      // Stop everything now, but let this last piece reach the peer before the sockets go.
      const reset = this.cutReset
      this.connection.stopForwarding()
      if (piece.length === 0) this.connection.destroy(reset)
      else this.dest.write(piece, () => this.connection.destroy(reset))
      this.connection.observe(this.direction, piece)
      return
    }
    if (piece.length === 0) return
    if (!this.dest.write(piece)) {
      this.waitingDrain = true
      this.dest.once("drain", () => {
        this.waitingDrain = false
        this.flush()
      })
    }
    this.connection.observe(this.direction, piece)
    if (this.byteWaiters.length > 0) {
      const ready = this.byteWaiters.filter((w) => this.forwarded >= w.n)
      this.byteWaiters = this.byteWaiters.filter((w) => this.forwarded < w.n)
      for (const w of ready) w.resolve()
    }
  }
}

const SSL_REQUEST_CODE = 80877103
const GSSENC_REQUEST_CODE = 80877104
const CANCEL_REQUEST_CODE = 80877102

/** Frames both directions of a connection to name the messages that pass (see the header). */
class MessageTracker {
  private readonly toServer = new Framer({ mode: "untyped" })
  private readonly toClient = new Framer({ mode: "typed" })
  private stopped = false
  private waiters: Array<{ name: MessageName; direction: Direction; resolve: () => void }> = []

  push(direction: Direction, bytes: Uint8Array): void {
    if (this.stopped) return
    try {
      if (direction === "toServer") this.toServer.push(bytes, this.onServerFrame)
      else this.toClient.push(bytes, this.onClientFrame)
    } catch {
      this.stopped = true // a corrupted length, or bytes that are not the protocol (TLS)
    }
  }

  waitFor(name: MessageName, direction: Direction): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ name, direction, resolve }))
  }

  private readonly onServerFrame = (type: number, buf: Uint8Array, start: number, end: number): void => {
    if (type !== 0) return this.seen("toServer", String.fromCharCode(type))
    const code = end - start >= 4
      ? ((buf[start]! << 24) | (buf[start + 1]! << 16) | (buf[start + 2]! << 8) | buf[start + 3]!) >>> 0
      : -1
    if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
      this.toClient.mode = "byte"
      this.seen("toServer", code === SSL_REQUEST_CODE ? "SSLRequest" : "GSSENCRequest")
    } else if (code === CANCEL_REQUEST_CODE) {
      this.seen("toServer", "CancelRequest")
    } else {
      this.toServer.mode = "typed"
      this.seen("toServer", "StartupMessage")
    }
  }

  private readonly onClientFrame = (type: number, _buf: Uint8Array, start: number, end: number): void => {
    const name = String.fromCharCode(type)
    // An accepted SSL/GSSENC request: what follows is TLS/GSS, not messages.
    if (start === end && (name === "S" || name === "G") && this.toClient.mode === "typed") {
      this.seen("toClient", name)
      this.stopped = true
      return
    }
    this.seen("toClient", name)
  }

  private seen(direction: Direction, name: MessageName): void {
    if (this.waiters.length === 0) return
    const matching = this.waiters.filter((w) => w.direction === direction && w.name === name)
    if (matching.length === 0) return
    this.waiters = this.waiters.filter((w) => !(w.direction === direction && w.name === name))
    for (const w of matching) w.resolve()
  }
}

class Connection implements ProxyConnection {
  readonly closed: Promise<void>
  private readonly up: Pump
  private readonly down: Pump
  private readonly tracker = new MessageTracker()
  private readonly taps = new Set<TapListener>()
  private readonly pending = new Set<(error: Error) => void>()
  private clientClosed = false
  private serverClosed = false
  private resolveClosed!: () => void

  readonly id: number
  private readonly proxy: Proxy
  private readonly client: Net.Socket
  private readonly server: Net.Socket

  constructor(
    id: number,
    proxy: Proxy,
    client: Net.Socket,
    server: Net.Socket,
    seed: number,
    faults: Record<Direction, DirectionFaults>
  ) {
    this.id = id
    this.proxy = proxy
    this.client = client
    this.server = server
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve
    })
    this.up = new Pump(this, "toServer", client, server, seed)
    this.down = new Pump(this, "toClient", server, client, seed)
    for (const pump of [this.up, this.down]) {
      Object.assign(pump.faults, faults[pump.direction])
      if (pump.faults.seed !== undefined) pump.reseed(pump.faults.seed)
    }
    client.on("data", (chunk: Uint8Array) => this.up.onData(chunk))
    server.on("data", (chunk: Uint8Array) => this.down.onData(chunk))
    client.on("end", () => this.up.onEnd())
    server.on("end", () => this.down.onEnd())
    // An error on either side (refused upstream, reset) ends the whole connection.
    client.on("error", () => this.destroy(false))
    server.on("error", () => this.destroy(false))
    client.on("close", () => this.onSocketClose("client"))
    server.on("close", () => this.onSocketClose("server"))
  }

  get isOpen(): boolean {
    return !(this.clientClosed && this.serverClosed)
  }

  get bytesForwarded() {
    return { toServer: this.up.forwarded, toClient: this.down.forwarded }
  }

  get bytesReceived() {
    return { toServer: this.up.received, toClient: this.down.received }
  }

  pump(direction: Direction): Pump {
    return direction === "toServer" ? this.up : this.down
  }

  private onSocketClose(which: "client" | "server"): void {
    if (which === "client") {
      this.clientClosed = true
      // Nothing more can reach the client; what the client sent still drains to the server, then ends it.
      this.down.kill()
      this.up.onEnd()
    } else {
      this.serverClosed = true
      this.up.kill()
      this.down.onEnd()
    }
    if (this.clientClosed && this.serverClosed) {
      this.up.kill()
      this.down.kill()
      this.proxy.onConnectionClosed(this)
      for (const reject of this.pending) reject(new Error(`proxy connection ${this.id} closed`))
      this.pending.clear()
      this.resolveClosed()
    }
  }

  /** Called by a pump with each forwarded piece. */
  observe(direction: Direction, bytes: Uint8Array): void {
    this.tracker.push(direction, bytes)
    if (this.taps.size > 0 || this.proxy.taps.size > 0) {
      const event: TapEvent = { connection: this, direction, bytes }
      for (const listener of this.taps) listener(event)
      for (const listener of this.proxy.taps) listener(event)
    }
  }

  stopForwarding(): void {
    this.up.kill()
    this.down.kill()
  }

  destroy(reset = false): void {
    this.stopForwarding()
    for (const socket of [this.client, this.server]) {
      if (socket.destroyed) continue
      if (!reset || socket.readyState !== "open") {
        socket.destroy()
        continue
      }
      try {
        socket.resetAndDestroy()
      } catch {
        // Only TCP sockets can be reset (a unix socket throws): close it instead.
        socket.destroy()
      }
    }
  }

  tap(listener: TapListener): () => void {
    this.taps.add(listener)
    return () => this.taps.delete(listener)
  }

  waitForMessage(name: MessageName, direction: Direction = "toClient"): Promise<void> {
    return this.guard(this.tracker.waitFor(name, direction))
  }

  waitForBytes(n: number, direction: Direction): Promise<void> {
    return this.guard(this.pump(direction).waitForBytes(n))
  }

  /** Makes a wait reject when the connection closes before it is satisfied. */
  private guard(wait: Promise<void>): Promise<void> {
    if (!this.isOpen) return Promise.race([wait, Promise.reject(new Error(`proxy connection ${this.id} is closed`))])
    return new Promise((resolve, reject) => {
      this.pending.add(reject)
      wait.then(() => {
        this.pending.delete(reject)
        resolve()
      })
    })
  }

  delay(ms: number, direction: DirectionOption = "both"): void {
    checkNonNegativeInteger("delay", ms)
    this.apply(direction, (f) => (f.delayMs = ms))
  }

  stall(direction: DirectionOption = "both"): void {
    this.apply(direction, (f) => (f.stalled = true))
  }

  resume(direction: DirectionOption = "both"): void {
    this.apply(direction, (f) => (f.stalled = false))
  }

  rechunk(options: { readonly maxChunk: number; readonly seed?: number; readonly direction?: DirectionOption }): void {
    if (!Number.isInteger(options.maxChunk) || options.maxChunk < 1) {
      throw new RangeError(`maxChunk must be a positive integer, got ${options.maxChunk}`)
    }
    for (const d of directionsOf(options.direction ?? "both")) {
      const pump = this.pump(d)
      pump.faults.maxChunk = options.maxChunk
      pump.faults.seed = options.seed
      pump.reseed(options.seed)
      pump.flush()
    }
  }

  dripBytes(intervalMs: number, direction: DirectionOption = "both"): void {
    checkNonNegativeInteger("dripBytes interval", intervalMs)
    this.apply(direction, (f) => (f.dripMs = intervalMs))
  }

  corrupt(options: { readonly atByte: number; readonly xor?: number; readonly direction?: DirectionOption }): void {
    checkNonNegativeInteger("atByte", options.atByte)
    const xor = options.xor ?? 0xff
    if (!Number.isInteger(xor) || xor < 1 || xor > 255) throw new RangeError(`xor must be in 1..255, got ${xor}`)
    this.apply(options.direction ?? "toClient", (f) => (f.corrupt = { atByte: options.atByte, xor }))
  }

  cut(options: { readonly afterBytes?: number; readonly direction?: DirectionOption; readonly reset?: boolean } = {}): void {
    const reset = options.reset ?? false
    if (options.afterBytes === undefined || options.afterBytes === 0) return this.destroy(reset)
    checkNonNegativeInteger("afterBytes", options.afterBytes)
    for (const d of directionsOf(options.direction ?? "toClient")) this.pump(d).armCut(options.afterBytes, reset)
  }

  reset(): void {
    for (const pump of [this.up, this.down]) {
      Object.assign(pump.faults, noFaults())
      pump.disarmCut()
      pump.flush()
    }
  }

  private apply(direction: DirectionOption, change: (faults: DirectionFaults) => void): void {
    for (const d of directionsOf(direction)) {
      const pump = this.pump(d)
      change(pump.faults)
      pump.flush()
    }
  }
}

class Proxy implements FaultProxy {
  readonly connections: Array<Connection> = []
  readonly taps = new Set<TapListener>()
  refusedConnections = 0
  openConnections = 0
  port = 0
  readonly host = "127.0.0.1"
  private readonly server: Net.Server
  private readonly faults: Record<Direction, DirectionFaults> = { toServer: noFaults(), toClient: noFaults() }
  private refusing = false
  private closing = false
  private handedOut = 0
  private connectionWaiters: Array<{ resolve: (c: ProxyConnection) => void; reject: (e: Error) => void }> = []

  private readonly target: FaultProxyTarget
  private readonly seed: number

  constructor(target: FaultProxyTarget, seed: number) {
    this.target = target
    this.seed = seed
    // allowHalfOpen: a FIN from one side is forwarded as a FIN, after the queued bytes.
    this.server = Net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => this.accept(client))
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject)
      this.server.listen(0, this.host, () => {
        this.server.off("error", reject)
        this.port = (this.server.address() as Net.AddressInfo).port
        resolve()
      })
    })
  }

  get totalConnections(): number {
    return this.connections.length
  }

  private accept(client: Net.Socket): void {
    if (this.refusing || this.closing) {
      this.refusedConnections++
      client.on("error", () => {})
      client.destroy()
      return
    }
    const server = "path" in this.target
      ? Net.connect({ path: this.target.path, allowHalfOpen: true })
      : Net.connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true })
    const connection = new Connection(this.connections.length + 1, this, client, server, this.seed, this.faults)
    this.connections.push(connection)
    this.openConnections++
    const waiter = this.connectionWaiters.shift()
    if (waiter !== undefined) {
      this.handedOut++
      waiter.resolve(connection)
    }
  }

  onConnectionClosed(_connection: Connection): void {
    this.openConnections--
  }

  nextConnection(): Promise<ProxyConnection> {
    if (this.handedOut < this.connections.length) return Promise.resolve(this.connections[this.handedOut++]!)
    if (this.closing) return Promise.reject(new Error("fault proxy is closed"))
    return new Promise((resolve, reject) => this.connectionWaiters.push({ resolve, reject }))
  }

  refuse(on = true): void {
    this.refusing = on
  }

  tap(listener: TapListener): () => void {
    this.taps.add(listener)
    return () => this.taps.delete(listener)
  }

  private open(): Array<Connection> {
    return this.connections.filter((c) => c.isOpen)
  }

  delay(ms: number, direction: DirectionOption = "both"): void {
    checkNonNegativeInteger("delay", ms)
    for (const d of directionsOf(direction)) this.faults[d].delayMs = ms
    for (const c of this.open()) c.delay(ms, direction)
  }

  stall(direction: DirectionOption = "both"): void {
    for (const d of directionsOf(direction)) this.faults[d].stalled = true
    for (const c of this.open()) c.stall(direction)
  }

  resume(direction: DirectionOption = "both"): void {
    for (const d of directionsOf(direction)) this.faults[d].stalled = false
    for (const c of this.open()) c.resume(direction)
  }

  cut(options: { readonly afterBytes?: number; readonly direction?: DirectionOption; readonly reset?: boolean } = {}): void {
    for (const c of this.open()) c.cut(options)
  }

  corrupt(options: { readonly atByte: number; readonly xor?: number; readonly direction?: DirectionOption }): void {
    for (const c of this.open()) c.corrupt(options)
    const xor = options.xor ?? 0xff
    for (const d of directionsOf(options.direction ?? "toClient")) this.faults[d].corrupt = { atByte: options.atByte, xor }
  }

  rechunk(options: { readonly maxChunk: number; readonly seed?: number; readonly direction?: DirectionOption }): void {
    for (const c of this.open()) c.rechunk(options)
    for (const d of directionsOf(options.direction ?? "both")) {
      this.faults[d].maxChunk = options.maxChunk
      this.faults[d].seed = options.seed
    }
  }

  dripBytes(intervalMs: number, direction: DirectionOption = "both"): void {
    checkNonNegativeInteger("dripBytes interval", intervalMs)
    for (const d of directionsOf(direction)) this.faults[d].dripMs = intervalMs
    for (const c of this.open()) c.dripBytes(intervalMs, direction)
  }

  reset(): void {
    this.refusing = false
    this.faults.toServer = noFaults()
    this.faults.toClient = noFaults()
    for (const c of this.open()) c.reset()
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closing = true
      for (const w of this.connectionWaiters) w.reject(new Error("fault proxy closed"))
      this.connectionWaiters = []
      for (const c of this.connections) c.destroy()
    }
    return new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve()
      this.server.close(() => resolve())
    }).then(() => Promise.all(this.connections.map((c) => c.closed))).then(() => undefined)
  }
}

/** Starts a proxy on 127.0.0.1 (a free port) forwarding to `target`. */
export const startFaultProxy = async (target: FaultProxyTarget, options: FaultProxyOptions = {}): Promise<FaultProxy> => {
  const proxy = new Proxy(target, options.seed ?? 1)
  await proxy.listen()
  return proxy
}

/** A proxy for the life of the current Scope (for `@effect/vitest`'s `it.effect` / `it.layer`). */
const scoped = (target: FaultProxyTarget, options?: FaultProxyOptions): Effect.Effect<FaultProxy, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => startFaultProxy(target, options)),
    (proxy) => Effect.promise(() => proxy.close())
  )

export const FaultProxy = { start: startFaultProxy, scoped } as const
