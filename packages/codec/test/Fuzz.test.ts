/**
 * Fuzzing the framer and every decoder with random and mutated frames: the only failure any
 * input may cause is a ProtocolError. A frame that does decode must re-encode (or fail with
 * ProtocolError) to bytes that decode to the same message.
 *
 * PGFX_FUZZ_FRAMES sets the number of cases (default 20000; `npm run test:fuzz` runs 1,000,000).
 * PGFX_FUZZ_SEED fixes the seed; a failure prints the seed and the input bytes to replay it.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import type { PasswordContext } from "../src/Auth.ts"
import type { BackendMessage } from "../src/BackendMessage.ts"
import { decodeBackend, encodeBackend } from "../src/BackendMessage.ts"
import { Framer } from "../src/Frame.ts"
import type { FrontendMessage } from "../src/FrontendMessage.ts"
import { decodeFrontend, decodeStartupPacket, encodeFrontend } from "../src/FrontendMessage.ts"
import { ProtocolError } from "../src/ProtocolError.ts"
import { scanDataRow } from "../src/Query.ts"
import { decodeGssEncResponse, decodeSslResponse } from "../src/Startup.ts"
import { Writer } from "../src/internal/Writer.ts"
import { anyBackend, anyTypedFrontend, encodeBackendAll, encodeFrontendAll, frontendArbitraries } from "./arbitraries.ts"

const FRAMES = Number(process.env.PGFX_FUZZ_FRAMES ?? 20000)
const SEED = Number(process.env.PGFX_FUZZ_SEED ?? Date.now() % 0x7fffffff)

/** xorshift32: fast, seedable, good enough to pick mutations. */
class Rng {
  s: number
  constructor(seed: number) {
    this.s = seed | 0 || 1
  }
  next(): number {
    let x = this.s
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.s = x
    return x >>> 0
  }
  int(n: number): number {
    return this.next() % n
  }
  pick<A>(xs: ReadonlyArray<A>): A {
    return xs[this.int(xs.length)]!
  }
}

/** Values that hit the edges of lengths and counts. */
const INTERESTING_32 = [0, 1, 2, 3, 4, 5, -1, -2, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, -0x80000000, 0x40000000, 0x40000001, 10000, 10001]
const INTERESTING_16 = [0, 1, 2, -1, -2, 0x7fff, 0x8000, 0xffff]
const CONTEXTS: ReadonlyArray<PasswordContext> = ["password", "sasl-initial", "sasl", "gss"]

const mutate = (rng: Rng, input: Uint8Array): Uint8Array => {
  let b = input.slice()
  const rounds = 1 + rng.int(3)
  for (let k = 0; k < rounds; k++) {
    const op = rng.int(8)
    if (b.length === 0 && op !== 6) continue
    switch (op) {
      case 0: // flip a bit
        b[rng.int(b.length)]! ^= 1 << rng.int(8)
        break
      case 1: // random byte
        b[rng.int(b.length)] = rng.int(256)
        break
      case 2: // truncate
        b = b.slice(0, rng.int(b.length))
        break
      case 3: // interesting Int32 (a length or 32-bit count)
      case 4: {
        const at = rng.int(Math.max(1, b.length - 3))
        const v = rng.pick(INTERESTING_32)
        for (let i = 0; i < 4 && at + i < b.length; i++) b[at + i] = (v >>> (24 - 8 * i)) & 0xff
        break
      }
      case 5: {
        // interesting Int16 (a count or format code)
        const at = rng.int(Math.max(1, b.length - 1))
        const v = rng.pick(INTERESTING_16)
        b[at] = (v >>> 8) & 0xff
        if (at + 1 < b.length) b[at + 1] = v & 0xff
        break
      }
      case 6: {
        // insert random bytes
        const at = rng.int(b.length + 1)
        const extra = Uint8Array.from({ length: 1 + rng.int(8) }, () => rng.int(256))
        const out = new Uint8Array(b.length + extra.length)
        out.set(b.subarray(0, at))
        out.set(extra, at)
        out.set(b.subarray(at), at + extra.length)
        b = out
        break
      }
      case 7: {
        // delete a range
        const at = rng.int(b.length)
        const n = 1 + rng.int(Math.min(8, b.length - at))
        const out = new Uint8Array(b.length - n)
        out.set(b.subarray(0, at))
        out.set(b.subarray(at + n), at)
        b = out
        break
      }
    }
  }
  return b
}

const writer = new Writer(256)

/**
 * Runs a step that must succeed. Its ProtocolError is rethrown as a plain Error: the framer's
 * caller swallows ProtocolErrors, and this one would be a real inconsistency.
 */
const mustSucceed = <A>(what: string, f: () => A): A => {
  try {
    return f()
  } catch (e) {
    throw new Error(`${what}: ${String(e)}`)
  }
}

/** Decoding any frame either throws ProtocolError or yields a message that survives re-encoding. */
const checkBackend = (type: number, buf: Uint8Array, start: number, end: number): void => {
  let m: BackendMessage
  try {
    m = decodeBackend(type, buf, start, end)
  } catch (e) {
    if (e instanceof ProtocolError) return
    throw e
  }
  if (type === 0x44 && m._tag === "DataRow") {
    mustSucceed("scanDataRow refused a row decodeDataRow accepted", () => scanDataRow(buf, start, end, m.values.length))
  }
  let bytes: Uint8Array
  try {
    encodeBackend(writer, m)
    bytes = writer.take()
  } catch (e) {
    writer.rewind()
    if (e instanceof ProtocolError) return
    throw e
  }
  const again = mustSucceed("re-encoded backend message did not decode", () => decodeBackend(bytes[0]!, bytes, 5, bytes.length))
  expect(again).toEqual(m)
}

const checkFrontend = (type: number, buf: Uint8Array, start: number, end: number, context: PasswordContext): void => {
  let m: FrontendMessage
  try {
    m = type === 0 ? decodeStartupPacket(buf, start, end) : decodeFrontend(type, buf, start, end, context)
  } catch (e) {
    if (e instanceof ProtocolError) return
    throw e
  }
  let bytes: Uint8Array
  try {
    encodeFrontend(writer, m)
    bytes = writer.take()
  } catch (e) {
    writer.rewind()
    if (e instanceof ProtocolError) return
    throw e
  }
  const again = mustSucceed("re-encoded frontend message did not decode", () =>
    type === 0 ? decodeStartupPacket(bytes, 4, bytes.length) : decodeFrontend(bytes[0]!, bytes, 5, bytes.length, context)
  )
  expect(again).toEqual(m)
}

/** Feeds `input` to a framer in 1..3 chunks, decoding every frame both ways. */
const feed = (rng: Rng, input: Uint8Array, untyped: boolean): void => {
  const framer = new Framer({ mode: untyped ? "untyped" : "typed", maxMessageSize: rng.int(4) === 0 ? 64 : undefined })
  const context = rng.pick(CONTEXTS)
  const onFrame = (type: number, buf: Uint8Array, start: number, end: number) => {
    if (type === 0 && untyped) {
      checkFrontend(0, buf, start, end, context)
      framer.mode = "typed"
      return
    }
    checkBackend(type, buf, start, end)
    checkFrontend(type, buf, start, end, context)
  }
  try {
    const cuts = rng.int(3)
    let prev = 0
    for (let i = 0; i < cuts; i++) {
      const at = prev + rng.int(input.length - prev + 1)
      framer.push(input.subarray(prev, at), onFrame)
      prev = at
    }
    framer.push(input.subarray(prev), onFrame)
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e
  }
}

describe("fuzz", () => {
  // A corpus of valid encodings to mutate (generated once, deterministically from the seed).
  const backendCorpus = fc.sample(fc.array(anyBackend, { minLength: 1, maxLength: 3 }), { numRuns: 400, seed: SEED })
    .map((ms) => encodeBackendAll(ms))
  const frontendCorpus = fc.sample(fc.array(anyTypedFrontend, { minLength: 1, maxLength: 3 }), { numRuns: 300, seed: SEED })
    .map((ms) => encodeFrontendAll(ms))
  const startupCorpus = fc
    .sample(
      fc.oneof(
        frontendArbitraries.StartupMessage,
        frontendArbitraries.CancelRequest,
        frontendArbitraries.SSLRequest,
        frontendArbitraries.GSSENCRequest
      ),
      { numRuns: 100, seed: SEED }
    )
    .map((m) => encodeFrontendAll([m]))

  it(`${FRAMES} random and mutated frames: only ProtocolError (seed ${SEED})`, { timeout: 600_000 }, () => {
    const rng = new Rng(SEED)
    let current: Uint8Array = new Uint8Array(0)
    try {
      for (let n = 0; n < FRAMES; n++) {
        const kind = rng.int(10)
        if (kind < 4) {
          current = mutate(rng, rng.pick(backendCorpus))
          feed(rng, current, false)
        } else if (kind < 7) {
          current = mutate(rng, rng.pick(frontendCorpus))
          feed(rng, current, false)
        } else if (kind < 8) {
          current = mutate(rng, rng.pick(startupCorpus))
          feed(rng, current, true)
        } else if (kind < 9) {
          // A random type byte with a random body, straight to the decoders.
          current = Uint8Array.from({ length: rng.int(24) }, () => rng.int(256))
          const type = rng.int(4) === 0 ? rng.int(256) : rng.pick([...`RKvSENA123nstICZTDGHWdcVpQPBDEHXFf`].map((c) => c.charCodeAt(0)))
          checkBackend(type, current, 0, current.length)
          checkFrontend(type, current, 0, current.length, rng.pick(CONTEXTS))
          checkFrontend(0, current, 0, current.length, "password")
        } else {
          // Purely random bytes through the framer, and one-byte answers.
          current = Uint8Array.from({ length: rng.int(40) }, () => rng.int(256))
          feed(rng, current, rng.int(2) === 0)
          const b = rng.int(256)
          for (const f of [decodeSslResponse, decodeGssEncResponse]) {
            try {
              f(b)
            } catch (e) {
              if (!(e instanceof ProtocolError)) throw e
            }
          }
        }
      }
    } catch (e) {
      const hex = Array.from(current, (b) => b.toString(16).padStart(2, "0")).join("")
      assert.fail(`seed ${SEED}: input ${hex} raised ${String(e)}${e instanceof Error ? "\n" + e.stack : ""}`)
    }
  })
})
