/**
 * Helpers for the robustness suites: raw backend byte builders (for messages the codec's encoders
 * refuse to produce), a mock-server connection config, outcome classification, and health probes
 * (event-loop delay, uncaught exceptions, forced GC for memory measurements).
 *
 * Invariants: nothing here talks to a real server; the builders produce exactly the bytes asked for,
 * including wrong lengths, so tests can lie to the client on purpose.
 */
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as V8 from "node:v8"
import * as Vm from "node:vm"
import { Effect, Exit, Option } from "effect"
import type { Cause } from "effect"
import type { PgConfigInput } from "../src/PgConfig.ts"

const enc = new TextEncoder()

/** Concatenates byte arrays. */
export const cat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export const i16 = (v: number): Uint8Array => {
  const b = new Uint8Array(2)
  new DataView(b.buffer).setInt16(0, v)
  return b
}

export const i32 = (v: number): Uint8Array => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setInt32(0, v)
  return b
}

/** A NUL-terminated string. */
export const cstr = (s: string): Uint8Array => cat(enc.encode(s), Uint8Array.of(0))

export const text = (s: string): Uint8Array => enc.encode(s)

/** A typed backend message; `length` overrides the length field (default: the true length). */
export const frame = (type: string | number, body: Uint8Array, length = body.length + 4): Uint8Array =>
  cat(Uint8Array.of(typeof type === "string" ? type.charCodeAt(0) : type), i32(length), body)

/** A RowDescription of text columns (type OID 25, text format). */
export const rowDescription = (...names: ReadonlyArray<string>): Uint8Array =>
  frame("T", cat(i16(names.length), ...names.map((n) => cat(cstr(n), i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(0))))
  )

/** A DataRow of text values (null = SQL NULL). */
export const dataRow = (...values: ReadonlyArray<string | null>): Uint8Array =>
  frame(
    "D",
    cat(i16(values.length), ...values.map((v) => (v === null ? i32(-1) : cat(i32(text(v).length), text(v)))))
  )

export const commandComplete = (tag: string): Uint8Array => frame("C", cstr(tag))

export const readyForQuery = (status = "I"): Uint8Array => frame("Z", text(status))

export const notice = (message: string): Uint8Array =>
  frame("N", cat(text("S"), cstr("NOTICE"), text("V"), cstr("NOTICE"), text("C"), cstr("00000"), text("M"), cstr(message), Uint8Array.of(0)))

export const errorResponse = (code: string, message: string, severity = "ERROR"): Uint8Array =>
  frame("E", cat(text("S"), cstr(severity), text("V"), cstr(severity), text("C"), cstr(code), text("M"), cstr(message), Uint8Array.of(0)))

export const notification = (pid: number, channel: string, payload: string): Uint8Array =>
  frame("A", cat(i32(pid), cstr(channel), cstr(payload)))

export const parameterStatus = (name: string, value: string): Uint8Array => frame("S", cat(cstr(name), cstr(value)))

/** Repeats `bytes` `n` times in one buffer. */
export const repeat = (bytes: Uint8Array, n: number): Uint8Array => {
  const out = new Uint8Array(bytes.length * n)
  for (let i = 0; i < n; i++) out.set(bytes, i * bytes.length)
  return out
}

/** A connection config for a mock server on 127.0.0.1 (no TLS, no password). */
export const mockConfig = (port: number, extra: PgConfigInput = {}): PgConfigInput => ({
  host: "127.0.0.1",
  port,
  user: "mallory",
  database: "evil",
  sslMode: "disable",
  passfile: "/nonexistent/pgpass",
  connectTimeout: 5,
  ...extra
})

/** The tags a broken server may cause: anything else reaching the caller is a bug. */
export const TYPED_ERRORS = new Set([
  "ProtocolError",
  "ConnectionError",
  "AuthenticationError",
  "TimeoutError",
  "PgServerError"
])

export type Outcome<A> =
  | { readonly _tag: "Success"; readonly value: A }
  | { readonly _tag: "Failure"; readonly error: { readonly _tag: string; readonly reason?: string; readonly message: string } }
  | { readonly _tag: "Defect"; readonly cause: Cause.Cause<unknown> }
  | { readonly _tag: "Hung" }

/**
 * Runs `effect` with a wall-clock deadline and classifies how it ended. A defect (a throw that became
 * a die) and a hang are the two outcomes a robust connection must never produce.
 */
export const outcome = <A, E extends { readonly _tag: string; readonly message: string }, R>(
  effect: Effect.Effect<A, E, R>,
  deadlineMs: number
): Effect.Effect<Outcome<A>, never, R> =>
  Effect.map(Effect.timeoutOption(Effect.exit(effect), deadlineMs), (o): Outcome<A> => {
    if (Option.isNone(o)) return { _tag: "Hung" }
    const exit = o.value
    if (Exit.isSuccess(exit)) return { _tag: "Success", value: exit.value }
    const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
    if (failure !== undefined && failure._tag === "Fail") return { _tag: "Failure", error: failure.error as never }
    return { _tag: "Defect", cause: exit.cause }
  })

/** Describes an outcome for assertion messages. */
export const show = (o: Outcome<unknown>): string =>
  o._tag === "Failure"
    ? `Failure ${o.error._tag}${o.error.reason === undefined ? "" : `(${o.error.reason})`}: ${o.error.message}`
    : o._tag === "Defect"
    ? `Defect ${String(o.cause)}`
    : o._tag

/** Watches the process for the length of a suite: uncaught exceptions, unhandled rejections, event-loop delay. */
export const healthMonitor = () => {
  const uncaught: Array<unknown> = []
  const onUncaught = (e: unknown) => uncaught.push(e)
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  return {
    start: () => {
      process.on("uncaughtException", onUncaught)
      process.on("unhandledRejection", onUncaught)
      histogram.enable()
    },
    stop: () => {
      histogram.disable()
      process.off("uncaughtException", onUncaught)
      process.off("unhandledRejection", onUncaught)
    },
    uncaught,
    /** Largest event-loop delay seen since the last reset, in milliseconds. */
    maxDelayMs: () => histogram.max / 1e6,
    p99DelayMs: () => histogram.percentile(99) / 1e6,
    reset: () => histogram.reset()
  }
}

let gcFn: (() => void) | undefined

/** Runs a full garbage collection (exposing `gc` on first use), so heap figures measure what is retained. */
export const forceGc = (): void => {
  if (gcFn === undefined) {
    V8.setFlagsFromString("--expose-gc")
    gcFn = Vm.runInNewContext("gc") as () => void
  }
  gcFn()
  gcFn()
}

/** Heap in use after a full collection, in bytes. */
export const retainedHeap = (): number => {
  forceGc()
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers
}

