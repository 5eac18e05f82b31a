/**
 * The fault proxy between a raw TCP client and the real PostgreSQL 18 of the global setup.
 *
 * The client here is deliberately tiny (node:net + the codec's Writer and Framer) and keeps every
 * byte it receives, so each test can compare exactly what crossed the proxy.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { afterEach, inject } from "vitest"
import * as Net from "node:net"
import { Framer } from "@pgfx/codec/Frame"
import { Writer } from "@pgfx/codec/internal/Writer"
import { FaultProxy, startFaultProxy } from "../src/FaultProxy.ts"
import type { FaultProxyTarget, TapEvent } from "../src/FaultProxy.ts"
import "../src/vitest-context.ts"

const pg18 = inject("pg18")
const target: FaultProxyTarget = { host: pg18.host, port: pg18.port }

interface Frame {
  readonly type: string
  readonly body: Uint8Array
}

interface TestClient {
  readonly socket: Net.Socket
  /** Every byte received, in order. */
  received(): Uint8Array
  /** The size of each read, in order. */
  readonly reads: ReadonlyArray<number>
  readonly bytesWritten: () => number
  /** Resolves when the socket closes, with whether it closed because of an error. */
  readonly closed: Promise<{ readonly error: Error | undefined }>
  /** Frames received since the last call, up to and including the next ReadyForQuery. */
  readUntilReady(timeoutMs?: number): Promise<Array<Frame>>
  query(sql: string): Promise<Array<Frame>>
  send(bytes: Uint8Array): void
  terminate(): Promise<void>
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const queryMessage = (sql: string): Uint8Array => {
  const w = new Writer()
  const at = w.begin(0x51)
  w.cstring(sql)
  w.end(at)
  return w.take()
}

/** Connects to `port`, sends a StartupMessage for the trusted superuser, and waits for ReadyForQuery. */
const connect = async (port: number): Promise<TestClient> => {
  const socket = Net.connect({ host: "127.0.0.1", port })
  const chunks: Array<Uint8Array> = []
  const framer = new Framer()
  const frames: Array<Frame> = []
  let written = 0
  let wake: (() => void) | undefined
  let failure: Error | undefined
  const readSizes: Array<number> = []
  socket.on("data", (chunk: Buffer) => {
    readSizes.push(chunk.length)
    chunks.push(Uint8Array.from(chunk))
    try {
      framer.push(Uint8Array.from(chunk), (type, buf, start, end) => {
        frames.push({ type: String.fromCharCode(type), body: buf.slice(start, end) })
      })
    } catch (e) {
      failure = e as Error
    }
    wake?.()
  })
  const closed = new Promise<{ error: Error | undefined }>((resolve) => {
    let error: Error | undefined
    socket.on("error", (e) => (error = e))
    socket.on("close", () => {
      failure ??= new Error("connection closed")
      wake?.()
      resolve({ error })
    })
  })
  const send = (bytes: Uint8Array) => {
    written += bytes.length
    socket.write(bytes)
  }
  const readUntilReady = (timeoutMs = 20_000): Promise<Array<Frame>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        wake = undefined
        reject(new Error(`no ReadyForQuery within ${timeoutMs} ms`))
      }, timeoutMs)
      const check = () => {
        const z = frames.findIndex((f) => f.type === "Z")
        if (z >= 0) {
          clearTimeout(timer)
          wake = undefined
          resolve(frames.splice(0, z + 1))
        } else if (failure !== undefined) {
          clearTimeout(timer)
          wake = undefined
          reject(failure)
        }
      }
      wake = check
      check()
    })
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve)
    socket.once("error", reject)
  })
  const w = new Writer()
  const at = w.begin(undefined)
  w.u16(3).u16(0)
  w.cstring("user").cstring(pg18.superuser).cstring("database").cstring(pg18.database)
  w.cstring("client_encoding").cstring("UTF8").u8(0)
  w.end(at)
  send(w.take())
  const startup = await readUntilReady()
  assert.strictEqual(startup[0]!.type, "R")
  return {
    socket,
    received: () => concat(chunks),
    reads: readSizes,
    bytesWritten: () => written,
    closed,
    readUntilReady,
    query: (sql) => {
      send(queryMessage(sql))
      return readUntilReady()
    },
    send,
    terminate: async () => {
      const t = new Writer()
      t.end(t.begin(0x58))
      written += 5
      socket.end(t.take())
      await closed
    }
  }
}

const textOf = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

/** The text columns of the DataRows among `frames`. */
const rows = (frames: ReadonlyArray<Frame>): Array<Array<string | null>> =>
  frames.filter((f) => f.type === "D").map((f) => {
    const view = new DataView(f.body.buffer, f.body.byteOffset, f.body.length)
    const n = view.getInt16(0)
    const out: Array<string | null> = []
    let at = 2
    for (let i = 0; i < n; i++) {
      const len = view.getInt32(at)
      at += 4
      if (len < 0) out.push(null)
      else {
        out.push(textOf(f.body.subarray(at, at + len)))
        at += len
      }
    }
    return out
  })

/** Resolves with the rejection's message; fails when the promise resolves. */
const rejection = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => {
      throw new Error("expected a rejection")
    },
    (e: Error) => e.message
  )

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const proxies: Array<FaultProxy> = []
const clients: Array<TestClient> = []
const start = async () => {
  const proxy = await startFaultProxy(target)
  proxies.push(proxy)
  return proxy
}
const open = async (proxy: FaultProxy) => {
  const client = await connect(proxy.port)
  clients.push(client)
  return client
}
afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy()
  await Promise.all(proxies.splice(0).map((p) => p.close()))
})

describe("FaultProxy against PostgreSQL 18", () => {
  it("forwards a startup and SELECT 1 untouched, and counts connections and bytes", async () => {
    const proxy = await start()
    const accepted = proxy.nextConnection()
    const client = await open(proxy)
    const connection = await accepted
    assert.strictEqual(connection.id, 1)
    assert.strictEqual(proxy.openConnections, 1)
    assert.strictEqual(proxy.totalConnections, 1)
    assert.deepStrictEqual(rows(await client.query("SELECT 1")), [["1"]])
    assert.deepStrictEqual(connection.bytesForwarded, {
      toServer: client.bytesWritten(),
      toClient: client.received().length
    })
    assert.deepStrictEqual(connection.bytesReceived, connection.bytesForwarded)
    await client.terminate()
    await connection.closed
    assert.strictEqual(connection.isOpen, false)
    assert.strictEqual(proxy.openConnections, 0)
    assert.strictEqual(proxy.totalConnections, 1)
    assert.strictEqual(connection.bytesForwarded.toServer, client.bytesWritten())
  })

  it("counts several connections, open and total, and hands each out once", async () => {
    const proxy = await start()
    const a = await open(proxy)
    const b = await open(proxy)
    assert.strictEqual(proxy.openConnections, 2)
    const first = await proxy.nextConnection()
    const second = await proxy.nextConnection()
    assert.deepStrictEqual([first.id, second.id], [1, 2])
    await a.terminate()
    await first.closed
    assert.strictEqual(proxy.openConnections, 1)
    assert.deepStrictEqual(rows(await b.query("SELECT 2")), [["2"]])
    await b.terminate()
    await second.closed
    assert.strictEqual(proxy.openConnections, 0)
    assert.strictEqual(proxy.totalConnections, 2)
  })

  it("works with rechunk({ maxChunk: 1 }): every forwarded chunk is one byte", async () => {
    const proxy = await start()
    proxy.rechunk({ maxChunk: 1 })
    const sizes = new Set<number>()
    proxy.tap((e) => sizes.add(e.bytes.length))
    const client = await open(proxy)
    assert.deepStrictEqual(rows(await client.query("SELECT 1, 'é'")), [["1", "é"]])
    assert.deepStrictEqual([...sizes], [1])
    // The client read them one by one too (the proxy yields between pieces).
    assert.deepStrictEqual([...new Set(client.reads)], [1])
  })

  it("rechunk splits and merges with sizes drawn from the seed, without changing the bytes", async () => {
    const proxy = await start()
    const accepted = proxy.nextConnection()
    const client = await open(proxy)
    const connection = await accepted
    const sql = "SELECT g, repeat('x', g) FROM generate_series(1, 200) g"
    const before = client.received().length
    await client.query(sql)
    const clean = client.received().slice(before)
    // Holds the whole response in the proxy, then releases it rechunked: the split depends only on the seed.
    const run = async (seed: number) => {
      connection.stall("toClient")
      const from = client.received().length
      const target = connection.bytesReceived.toClient + clean.length
      client.send(queryMessage(sql))
      while (connection.bytesReceived.toClient < target) await sleep(10)
      const sizes: Array<number> = []
      const stop = connection.tap((e) => {
        if (e.direction === "toClient") sizes.push(e.bytes.length)
      })
      connection.rechunk({ maxChunk: 700, seed, direction: "toClient" })
      connection.resume("toClient")
      const frames = await client.readUntilReady()
      stop()
      connection.reset()
      assert.strictEqual(rows(frames).length, 200)
      assert.deepStrictEqual(client.received().slice(from), clean)
      assert.isTrue(sizes.every((n) => n >= 1 && n <= 700))
      assert.strictEqual(sizes.reduce((a, b) => a + b, 0), clean.length)
      return sizes
    }
    const first = await run(7)
    assert.isAbove(first.length, 20) // about 22 KB in chunks of 350 bytes on average
    assert.isAbove(new Set(first).size, 10)
    assert.deepStrictEqual(await run(7), first)
    assert.notDeepEqual(await run(8), first)
  })

  it("delays every chunk by the given time in both directions", async () => {
    const proxy = await start()
    const client = await open(proxy)
    proxy.delay(300)
    const started = performance.now()
    assert.deepStrictEqual(rows(await client.query("SELECT 1")), [["1"]])
    // One chunk each way, each held 300 ms.
    assert.isAtLeast(performance.now() - started, 590)
    proxy.delay(0)
    const again = performance.now()
    await client.query("SELECT 1")
    assert.isBelow(performance.now() - again, 300)
  })

  it("drips bytes one at a time", async () => {
    const proxy = await start()
    const client = await open(proxy)
    const sizes: Array<number> = []
    proxy.tap((e) => {
      if (e.direction === "toClient") sizes.push(e.bytes.length)
    })
    proxy.dripBytes(1, "toClient")
    const before = client.received().length
    assert.deepStrictEqual(rows(await client.query("SELECT 42")), [["42"]])
    const responseLength = client.received().length - before
    assert.strictEqual(sizes.length, responseLength)
    assert.isTrue(sizes.every((n) => n === 1))
  })

  it("cut({ afterBytes }) ends the client socket mid-response, after exactly that many bytes", async () => {
    const proxy = await start()
    const accepted = proxy.nextConnection()
    const client = await open(proxy)
    const connection = await accepted
    const before = client.received().length
    connection.cut({ afterBytes: 10, direction: "toClient" })
    client.send(queryMessage("SELECT repeat('x', 100000)"))
    assert.match(await rejection(client.readUntilReady()), /connection closed/)
    const { error } = await client.closed
    assert.isUndefined(error)
    assert.strictEqual(client.received().length - before, 10)
    // The first 10 bytes of the response: RowDescription's type byte and length, then its start.
    assert.strictEqual(String.fromCharCode(client.received()[before]!), "T")
    await connection.closed
    assert.strictEqual(proxy.openConnections, 0)
  })

  it("cut() with reset: the client sees ECONNRESET", async () => {
    const proxy = await start()
    const client = await open(proxy)
    proxy.cut({ reset: true })
    const { error } = await client.closed
    assert.strictEqual((error as NodeJS.ErrnoException | undefined)?.code, "ECONNRESET")
  })

  it("corrupt changes exactly one byte of the stream, at the given offset", async () => {
    const proxy = await start()
    const accepted = proxy.nextConnection()
    const client = await open(proxy)
    const connection = await accepted
    const sql = "SELECT repeat('abc', 400)"
    const start1 = client.received().length
    await client.query(sql)
    const clean = client.received().subarray(start1)
    // The same query again, with one byte flipped deep inside the DataRow's text.
    const start2 = client.received().length
    assert.strictEqual(connection.bytesForwarded.toClient, start2)
    const offsetInResponse = clean.length - 100
    connection.corrupt({ atByte: start2 + offsetInResponse, xor: 0x20 })
    await client.query(sql)
    const dirty = client.received().subarray(start2)
    assert.strictEqual(dirty.length, clean.length)
    const differing: Array<number> = []
    for (let i = 0; i < clean.length; i++) if (clean[i] !== dirty[i]) differing.push(i)
    assert.deepStrictEqual(differing, [offsetInResponse])
    assert.strictEqual(dirty[offsetInResponse], clean[offsetInResponse]! ^ 0x20)
    // A one-shot: a third run is clean again.
    const start3 = client.received().length
    await client.query(sql)
    assert.deepStrictEqual(client.received().subarray(start3), clean)
  })

  it("corrupt toServer: the server executes the changed query", async () => {
    const proxy = await start()
    const accepted = proxy.nextConnection()
    const client = await open(proxy)
    const connection = await accepted
    const message = queryMessage("SELECT 1")
    // "1" is the byte before the NUL at the end; '1' ^ 0x03 is '2'.
    connection.corrupt({ atByte: client.bytesWritten() + message.length - 2, xor: 0x03, direction: "toServer" })
    client.send(message)
    assert.deepStrictEqual(rows(await client.readUntilReady()), [["2"]])
  })

  it("stall holds the response (sockets stay open) until resume", async () => {
    const proxy = await start()
    const accepted = proxy.nextConnection()
    const client = await open(proxy)
    const connection = await accepted
    proxy.stall("toClient")
    const before = client.received().length
    client.send(queryMessage("SELECT 1"))
    await connection.waitForMessage("Q", "toServer")
    // The server answered; the proxy holds it.
    await sleep(200)
    assert.strictEqual(client.received().length, before)
    assert.isAbove(connection.bytesReceived.toClient, connection.bytesForwarded.toClient)
    assert.isTrue(connection.isOpen)
    const ready = connection.waitForMessage("Z")
    proxy.resume("toClient")
    await ready
    assert.deepStrictEqual(rows(await client.readUntilReady()), [["1"]])
  })

  it("a stall in the client direction keeps the query from the server", async () => {
    const proxy = await start()
    const accepted = proxy.nextConnection()
    const client = await open(proxy)
    const connection = await accepted
    connection.stall("toServer")
    const toServer = connection.bytesForwarded.toServer
    client.send(queryMessage("SELECT 1"))
    await sleep(150)
    assert.strictEqual(connection.bytesForwarded.toServer, toServer)
    assert.strictEqual(connection.bytesReceived.toServer, toServer + queryMessage("SELECT 1").length)
    connection.resume()
    assert.deepStrictEqual(rows(await client.readUntilReady()), [["1"]])
  })

  it("refuse accepts and closes new connections until reset", async () => {
    const proxy = await start()
    proxy.refuse()
    const socket = Net.connect({ host: "127.0.0.1", port: proxy.port })
    let got = 0
    socket.on("data", (d) => (got += d.length))
    await new Promise<void>((resolve) => socket.on("close", () => resolve()))
    assert.strictEqual(got, 0)
    assert.strictEqual(proxy.refusedConnections, 1)
    assert.strictEqual(proxy.totalConnections, 0)
    proxy.reset()
    const client = await open(proxy)
    assert.deepStrictEqual(rows(await client.query("SELECT 1")), [["1"]])
    assert.strictEqual(proxy.totalConnections, 1)
  })

  it("waitForMessage names startup packets and typed messages in both directions", async () => {
    const proxy = await start()
    const seen: Array<string> = []
    proxy.nextConnection().then((c) => {
      c.waitForMessage("StartupMessage", "toServer").then(() => seen.push("StartupMessage"))
      c.waitForMessage("K").then(() => seen.push("K"))
    })
    const client = await open(proxy)
    const connection = (proxy.connections[0])!
    const query = connection.waitForMessage("Q", "toServer")
    const complete = connection.waitForMessage("C")
    client.send(queryMessage("SELECT 1"))
    await query
    await complete
    await client.readUntilReady()
    assert.deepStrictEqual(seen, ["StartupMessage", "K"])
    // Waits reject when the connection closes before the message passes.
    const never = rejection(connection.waitForMessage("D"))
    await client.terminate()
    assert.match(await never, /closed/)
  })

  it("honours backpressure: a client that stops reading stops the server, with a bounded queue", async () => {
    const proxy = await start()
    const accepted = proxy.nextConnection()
    const client = await open(proxy)
    const connection = await accepted
    const rowCount = 40_000
    client.socket.pause()
    client.send(queryMessage(`SELECT repeat('x', 1000) FROM generate_series(1, ${rowCount})`))
    // Let every buffer between the server and the paused client fill up.
    let last = -1
    while (connection.bytesReceived.toClient !== last) {
      last = connection.bytesReceived.toClient
      await sleep(300)
    }
    const held = connection.bytesReceived.toClient - connection.bytesForwarded.toClient
    assert.isAtMost(held, 64 * 1024 + 64 * 1024)
    // The result is about 40 MB; far less has left the server.
    assert.isBelow(connection.bytesReceived.toClient, rowCount * 1000)
    client.socket.resume()
    const frames = await client.readUntilReady(60_000)
    assert.strictEqual(frames.filter((f) => f.type === "D").length, rowCount)
  })

  it("close() destroys every socket and leaves no handles or timers behind", async () => {
    const kinds = () => {
      const counts: Record<string, number> = {}
      for (const k of process.getActiveResourcesInfo()) counts[k] = (counts[k] ?? 0) + 1
      return counts
    }
    await sleep(50) // earlier tests' client sockets finish closing
    const before = kinds()
    const proxy = await startFaultProxy(target)
    const client = await connect(proxy.port)
    const accepted = await proxy.nextConnection()
    proxy.delay(10_000, "toClient")
    proxy.stall("toServer")
    client.send(queryMessage("SELECT 1"))
    const waiting = rejection(proxy.nextConnection())
    await proxy.close()
    assert.match(await waiting, /closed/)
    await client.closed
    assert.isFalse(accepted.isOpen)
    assert.strictEqual(proxy.openConnections, 0)
    await sleep(20)
    assert.deepStrictEqual(kinds(), before)
  })

  it.live("FaultProxy.scoped closes the proxy with its scope", () =>
    Effect.gen(function*() {
      const closedConnection = yield* Effect.scoped(
        Effect.gen(function*() {
          const proxy = yield* FaultProxy.scoped(target)
          const client = yield* Effect.promise(() => open(proxy))
          const frames = yield* Effect.promise(() => client.query("SELECT 3"))
          assert.deepStrictEqual(rows(frames), [["3"]])
          return { proxy, client }
        })
      )
      const { client, proxy } = closedConnection
      yield* Effect.promise(() => client.closed)
      assert.strictEqual(proxy.openConnections, 0)
      const refused = yield* Effect.promise(
        () =>
          new Promise<string>((resolve) => {
            const s = Net.connect({ host: "127.0.0.1", port: proxy.port })
            s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"))
            s.on("connect", () => {
              s.destroy()
              resolve("connected")
            })
          })
      )
      assert.strictEqual(refused, "ECONNREFUSED")
    }))

  it("forwards to a unix socket target", async () => {
    const proxy = await startFaultProxy({ path: `${pg18.socketDir}/.s.PGSQL.${pg18.port}` })
    proxies.push(proxy)
    const client = await open(proxy)
    assert.deepStrictEqual(rows(await client.query("SELECT 'via unix'")), [["via unix"]])
  })

  it("faults set on the proxy apply to connections accepted later", async () => {
    const proxy = await start()
    // 'R' (AuthenticationOk's type byte, the first byte the server sends) becomes 'S'.
    proxy.corrupt({ atByte: 0, xor: 0x01 })
    proxy.rechunk({ maxChunk: 3, direction: "toClient" })
    const socket = Net.connect({ host: "127.0.0.1", port: proxy.port })
    const w = new Writer()
    const at = w.begin(undefined)
    w.u16(3).u16(0).cstring("user").cstring(pg18.superuser).cstring("database").cstring(pg18.database).u8(0)
    w.end(at)
    socket.write(w.take())
    const first = await new Promise<Uint8Array>((resolve) => socket.once("data", (d: Buffer) => resolve(Uint8Array.from(d))))
    socket.destroy()
    assert.strictEqual(first[0], 0x53)
    assert.isAtMost(first.length, 3)
  })

  it("closes the client when the target refuses the connection", async () => {
    const unused = await new Promise<number>((resolve) => {
      const probe = Net.createServer().listen(0, "127.0.0.1", () => {
        const port = (probe.address() as Net.AddressInfo).port
        probe.close(() => resolve(port))
      })
    })
    const proxy = await startFaultProxy({ host: "127.0.0.1", port: unused })
    proxies.push(proxy)
    const socket = Net.connect({ host: "127.0.0.1", port: proxy.port })
    socket.on("error", () => {})
    await new Promise<void>((resolve) => socket.on("close", () => resolve()))
    const connection = await proxy.nextConnection()
    await connection.closed
    assert.strictEqual(proxy.openConnections, 0)
    assert.deepStrictEqual(connection.bytesForwarded, { toServer: 0, toClient: 0 })
  })

  it("tap events carry the connection and direction", async () => {
    const proxy = await start()
    const events: Array<TapEvent> = []
    const stop = proxy.tap((e) => events.push({ ...e, bytes: Uint8Array.from(e.bytes) }))
    const client = await open(proxy)
    await client.query("SELECT 1")
    stop()
    const toServer = concat(events.filter((e) => e.direction === "toServer").map((e) => e.bytes))
    const toClient = concat(events.filter((e) => e.direction === "toClient").map((e) => e.bytes))
    assert.strictEqual(toServer.length, client.bytesWritten())
    assert.deepStrictEqual(toClient, client.received())
    assert.isTrue(events.every((e) => e.connection.id === 1))
    const count = events.length
    await client.query("SELECT 1")
    assert.strictEqual(events.length, count)
  })
})
