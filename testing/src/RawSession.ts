/**
 * RawSession: a minimal promise client over a test server's unix socket, for setup SQL,
 * assertions and fixture capture. Built directly on the codec's Writer and Framer, not on
 * packages/connection, so tests of the connection layer never depend on the layer they test.
 *
 * Invariants:
 * - Trust authentication only: any other authentication request fails `openRawSession` with a
 *   message saying so (the session never answers a challenge).
 * - Every frame the server sends is kept, in order, with its exact bytes (type byte and length
 *   included); `readUntilReady` hands out everything up to and including the next ReadyForQuery.
 * - A closed socket or a framing error rejects the pending read and every later one; nothing hangs
 *   forever: every read has a timeout (default 30 s).
 * - Reads are sequential: await one `query`/`readUntilReady`/`readFrame` before starting the next.
 */
import * as Net from "node:net"
import { Framer } from "@pgfx/codec/Frame"
import { Writer } from "@pgfx/codec/internal/Writer"
import { Reader } from "@pgfx/codec/internal/Reader"
import type { TestServerInfo } from "./TestServer.ts"

export interface RawFrame {
  readonly type: number
  readonly body: Uint8Array
}

/** Every server frame up to and including ReadyForQuery, and the exact raw bytes of those frames. */
export interface RawResult {
  readonly frames: ReadonlyArray<RawFrame>
  readonly bytes: Uint8Array
}

export interface RawParam {
  readonly oid: number
  readonly format: 0 | 1
  readonly value: Uint8Array | null
}

export interface RawSession {
  /** What the server sent from the startup packet to the first ReadyForQuery. */
  readonly startup: RawResult
  /** The server's BackendKeyData (process id), for cancel and termination tests. */
  readonly processId: number
  /** Simple Query. */
  query(sql: string): Promise<RawResult>
  /** Parse (unnamed) / Bind / Describe portal / Execute / Sync. */
  extended(sql: string, params: ReadonlyArray<RawParam>, resultFormat: 0 | 1): Promise<RawResult>
  /** Writes bytes as they are. */
  send(bytes: Uint8Array): void
  /** Reads every frame up to and including the next ReadyForQuery. */
  readUntilReady(): Promise<RawResult>
  /** Reads exactly one frame (COPY and replication streams never reach ReadyForQuery on their own). */
  readFrame(): Promise<RawFrame>
  /** Terminate, then end the socket and wait for it to close. */
  close(): Promise<void>
}

export interface RawSessionOptions {
  readonly user?: string
  readonly database?: string
  readonly replication?: "true" | "database"
  readonly protocol?: "3.0" | "3.2"
  /** Milliseconds every read may wait (default 30 000). */
  readonly timeout?: number
}

const READY_FOR_QUERY = 0x5a // 'Z'
const AUTHENTICATION = 0x52 // 'R'
const ERROR_RESPONSE = 0x45 // 'E'
const BACKEND_KEY_DATA = 0x4b // 'K'
const DATA_ROW = 0x44 // 'D'

interface Received {
  readonly frame: RawFrame
  readonly raw: Uint8Array
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let size = 0
  for (const p of parts) size += p.length
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export const openRawSession = (info: TestServerInfo, options: RawSessionOptions = {}): Promise<RawSession> =>
  new Promise<RawSession>((resolve, reject) => {
    const timeout = options.timeout ?? 30_000
    const socketPath = `${info.socketDir}/.s.PGSQL.${info.port}`
    const socket = Net.createConnection({ path: socketPath })
    const framer = new Framer()
    const inbox: Array<Received> = []
    let waiter: (() => void) | undefined
    let failure: Error | undefined
    let closed = false
    const closedPromise = new Promise<void>((done) => socket.once("close", () => done()))

    const wake = () => {
      const w = waiter
      waiter = undefined
      w?.()
    }
    const failWith = (error: Error) => {
      if (failure === undefined) failure = error
      wake()
    }

    socket.on("data", (chunk: Buffer) => {
      try {
        framer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length), (type, buf, start, end) => {
          // Typed frames carry a 5-byte header right before the body, in the same buffer.
          const raw = buf.slice(start - 5, end)
          inbox.push({ frame: { type, body: raw.subarray(5) }, raw })
        })
      } catch (e) {
        failWith(new Error(`RawSession: framing failed: ${(e as Error).message}`))
        socket.destroy()
      }
      wake()
    })
    socket.on("error", (e) => failWith(new Error(`RawSession (${socketPath}): ${e.message}`)))
    socket.on("close", () => {
      closed = true
      failWith(new Error(`RawSession (${socketPath}): the server closed the connection`))
    })

    const nextReceived = (): Promise<Received> => {
      const head = inbox.shift()
      if (head !== undefined) return Promise.resolve(head)
      if (failure !== undefined) return Promise.reject(failure)
      return new Promise<Received>((res, rej) => {
        const timer = setTimeout(() => {
          waiter = undefined
          rej(new Error(`RawSession: no message from the server within ${timeout} ms`))
        }, timeout)
        waiter = () => {
          clearTimeout(timer)
          nextReceived().then(res, rej)
        }
      })
    }

    const readUntilReady = async (): Promise<RawResult> => {
      const frames: Array<RawFrame> = []
      const raws: Array<Uint8Array> = []
      for (;;) {
        let next: Received
        try {
          next = await nextReceived()
        } catch (e) {
          // Name the server's error when it explains why the connection ended.
          const error = frames.find((f) => f.type === ERROR_RESPONSE)
          if (error !== undefined) throw new Error(`${(e as Error).message}: ${errorMessage(error)}`)
          throw e
        }
        frames.push(next.frame)
        raws.push(next.raw)
        if (next.frame.type === READY_FOR_QUERY) return { frames, bytes: concat(raws) }
      }
    }

    const writer = new Writer()
    const send = (bytes: Uint8Array) => {
      socket.write(bytes)
    }

    const startupPacket = (): Uint8Array => {
      const at = writer.begin(undefined)
      writer.u16(3).u16(options.protocol === "3.2" ? 2 : 0)
      writer.cstring("user").cstring(options.user ?? info.superuser)
      writer.cstring("database").cstring(options.database ?? info.database)
      writer.cstring("client_encoding").cstring("UTF8")
      if (options.replication !== undefined) writer.cstring("replication").cstring(options.replication)
      writer.u8(0)
      writer.end(at)
      return writer.take()
    }

    const session = (startup: RawResult): RawSession => {
      const key = startup.frames.find((f) => f.type === BACKEND_KEY_DATA)
      const processId = key === undefined ? 0 : new Reader(key.body).i32()
      return {
        startup,
        processId,
        send,
        readUntilReady,
        readFrame: () => nextReceived().then((r) => r.frame),
        query: (sql) => {
          const at = writer.begin(0x51) // 'Q'
          writer.cstring(sql)
          writer.end(at)
          send(writer.take())
          return readUntilReady()
        },
        extended: (sql, params, resultFormat) => {
          let at = writer.begin(0x50) // 'P' Parse, unnamed statement
          writer.cstring("").cstring(sql).i16(params.length)
          for (const p of params) writer.u32(p.oid)
          writer.end(at)
          at = writer.begin(0x42) // 'B' Bind, unnamed portal
          writer.cstring("").cstring("").i16(params.length)
          for (const p of params) writer.i16(p.format)
          writer.i16(params.length)
          for (const p of params) {
            if (p.value === null) writer.i32(-1)
            else writer.i32(p.value.length).bytes(p.value)
          }
          writer.i16(1).i16(resultFormat)
          writer.end(at)
          at = writer.begin(0x44) // 'D' Describe portal
          writer.u8(0x50).cstring("")
          writer.end(at)
          at = writer.begin(0x45) // 'E' Execute, no row limit
          writer.cstring("").i32(0)
          writer.end(at)
          writer.end(writer.begin(0x53)) // 'S' Sync
          send(writer.take())
          return readUntilReady()
        },
        close: async () => {
          if (!closed) {
            writer.end(writer.begin(0x58)) // 'X' Terminate
            socket.end(writer.take())
          }
          await closedPromise
        }
      }
    }

    // Before the startup exchange begins, a failed connect is the only thing that can happen.
    const onConnectError = (e: Error) => reject(new Error(`RawSession: cannot connect to ${socketPath}: ${e.message}`))
    socket.once("error", onConnectError)
    socket.once("connect", () => {
      socket.removeListener("error", onConnectError)
      send(startupPacket())
      readUntilReady().then(
        (startup) => {
          const auth = startup.frames.find((f) => f.type === AUTHENTICATION && new Reader(f.body).i32() !== 0)
          if (auth !== undefined) {
            socket.destroy()
            reject(new Error(`RawSession supports trust authentication only (server asked for method ${new Reader(auth.body).i32()})`))
            return
          }
          resolve(session(startup))
        },
        (e) => {
          socket.destroy()
          reject(e)
        }
      )
    })
  })

/** The fields of an ErrorResponse or NoticeResponse, keyed by their field type character. */
export const errorFields = (frame: RawFrame): Record<string, string> => {
  const r = new Reader(frame.body)
  const fields: Record<string, string> = {}
  while (r.remaining > 0) {
    const code = r.u8()
    if (code === 0) break
    fields[String.fromCharCode(code)] = r.cstring()
  }
  return fields
}

/** "SEVERITY SQLSTATE: message" of an ErrorResponse or NoticeResponse. */
export const errorMessage = (frame: RawFrame): string => {
  const f = errorFields(frame)
  return `${f["V"] ?? f["S"] ?? "ERROR"} ${f["C"] ?? "?????"}: ${f["M"] ?? "(no message)"}`
}

/** A DataRow's columns as text (null for SQL NULL); meaningful for text-format results. */
export const dataRowText = (frame: RawFrame): Array<string | null> => {
  const r = new Reader(frame.body)
  const n = r.i16()
  const out: Array<string | null> = []
  for (let i = 0; i < n; i++) {
    const len = r.i32()
    out.push(len < 0 ? null : r.string(len))
  }
  return out
}

/** The text rows of a result, after failing with the server's message if it holds an ErrorResponse. */
export const rowsOf = (result: RawResult): Array<Array<string | null>> => {
  const error = result.frames.find((f) => f.type === ERROR_RESPONSE)
  if (error !== undefined) throw new Error(errorMessage(error))
  return result.frames.filter((f) => f.type === DATA_ROW).map(dataRowText)
}
