import { assert, describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { decodeBackend } from "../src/BackendMessage.ts"
import type { FrameMode } from "../src/Frame.ts"
import { Framer } from "../src/Frame.ts"
import { decodeStartupPacket } from "../src/FrontendMessage.ts"
import { MAX_STARTUP_PACKET_LENGTH } from "../src/Limits.ts"
import { ProtocolError } from "../src/ProtocolError.ts"
import { anyBackend, anyTypedFrontend, encodeBackendAll, encodeFrontendAll, frameAll, frontendArbitraries } from "./arbitraries.ts"
import type { RawFrame } from "./arbitraries.ts"

const i32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]

const protocolError = (f: () => unknown): ProtocolError => {
  try {
    f()
  } catch (e) {
    if (e instanceof ProtocolError) return e
    throw e
  }
  throw new Error("expected a ProtocolError, but nothing was thrown")
}

/** Splits `bytes` at the given (sorted, deduplicated) cut points. */
const splitAt = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let prev = 0
  for (const c of cuts) {
    out.push(bytes.subarray(prev, c))
    prev = c
  }
  out.push(bytes.subarray(prev))
  return out
}

const randomCuts = (length: number) =>
  fc.uniqueArray(fc.integer({ min: 0, max: length }), { maxLength: 12 }).map((cuts) => cuts.sort((a, b) => a - b))

/**
 * Frames a client's view of a session: one SSL answer byte, then typed messages.
 * The callback switches the mode back to "typed" implicitly (byte mode does) and counts frames.
 */
const frameWithModes = (chunks: ReadonlyArray<Uint8Array>, initial: FrameMode, switchTo?: (index: number) => FrameMode | undefined) => {
  const framer = new Framer({ mode: initial })
  const out: Array<RawFrame & { mode: FrameMode }> = []
  for (const c of chunks) {
    framer.push(c, (type, buf, start, end) => {
      out.push({ type, body: buf.slice(start, end), mode: framer.mode })
      const next = switchTo?.(out.length)
      if (next !== undefined) framer.mode = next
    })
  }
  return { out, framer }
}

describe("Framer: same frames at every split point", () => {
  it("2-way splits of a stream of backend messages", () => {
    fc.assert(
      fc.property(fc.array(anyBackend, { minLength: 1, maxLength: 8 }), (messages) => {
        const bytes = encodeBackendAll(messages)
        const whole = frameAll([bytes])
        assert.strictEqual(whole.length, messages.length)
        for (let i = 0; i <= bytes.length; i++) {
          expect(frameAll([bytes.subarray(0, i), bytes.subarray(i)])).toEqual(whole)
        }
      }),
      { numRuns: 60 }
    )
  })

  it("random n-way splits, including one byte at a time", () => {
    fc.assert(
      fc.property(
        fc.array(anyBackend, { minLength: 1, maxLength: 20 }).chain((messages) => {
          const bytes = encodeBackendAll(messages)
          return fc.tuple(fc.constant(bytes), randomCuts(bytes.length))
        }),
        ([bytes, cuts]) => {
          const whole = frameAll([bytes])
          expect(frameAll(splitAt(bytes, cuts))).toEqual(whole)
          expect(frameAll(Array.from(bytes, (b) => Uint8Array.of(b)))).toEqual(whole)
        }
      ),
      { numRuns: 200 }
    )
  })

  it("frames decode to the same messages for every split", () => {
    fc.assert(
      fc.property(fc.array(anyBackend, { minLength: 1, maxLength: 10 }), randomCuts(400), (messages, cuts) => {
        const bytes = encodeBackendAll(messages)
        const decoded: Array<unknown> = []
        const framer = new Framer()
        for (const chunk of splitAt(bytes, cuts.filter((c) => c <= bytes.length))) {
          framer.push(chunk, (type, buf, start, end) => decoded.push(decodeBackend(type, buf, start, end)))
        }
        expect(decoded).toEqual(messages)
        assert.strictEqual(framer.buffered, 0)
      }),
      { numRuns: 200 }
    )
  })
})

describe("Framer: lent chunks (one read buffer reused for every chunk)", () => {
  it("ownPending after each push keeps the frames intact while the buffer is overwritten, Buffer or Uint8Array", () => {
    for (const reused of [Buffer.alloc(4096), new Uint8Array(4096)]) {
      fc.assert(
        fc.property(
          fc.array(anyBackend, { minLength: 1, maxLength: 20 }).chain((messages) => {
            const bytes = encodeBackendAll(messages)
            return fc.tuple(fc.constant(bytes), randomCuts(bytes.length))
          }),
          ([bytes, cuts]) => {
            const whole = frameAll([bytes])
            const framer = new Framer()
            const out: Array<RawFrame> = []
            for (const piece of splitAt(bytes, cuts)) {
              for (let at = 0; at < piece.length; at += reused.length) {
                const n = Math.min(reused.length, piece.length - at)
                reused.set(piece.subarray(at, at + n))
                const chunk = reused.subarray(0, n)
                framer.push(chunk, (type, buf, start, end) => out.push({ type, body: new Uint8Array(buf.subarray(start, end)) }))
                framer.ownPending(chunk)
                reused.fill(0x78) // the next read lands here
              }
            }
            expect(out.map((f) => ({ type: f.type, body: Uint8Array.from(f.body) }))).toEqual(
              whole.map((f) => ({ type: f.type, body: Uint8Array.from(f.body) }))
            )
          }
        ),
        { numRuns: 100 }
      )
    }
  })
})

describe("Framer modes", () => {
  it("untyped: a startup packet, then a switch to typed inside the callback, at every split", () => {
    fc.assert(
      fc.property(frontendArbitraries.StartupMessage, fc.array(anyTypedFrontend, { maxLength: 6 }), (startup, rest) => {
        const bytes = encodeFrontendAll([startup, ...rest])
        const whole = frameWithModes([bytes], "untyped", (n) => (n === 1 ? "typed" : undefined)).out
        assert.strictEqual(whole.length, 1 + rest.length)
        assert.strictEqual(whole[0]!.type, 0)
        expect(decodeStartupPacket(whole[0]!.body, 0, whole[0]!.body.length)).toEqual(startup)
        for (let i = 0; i <= bytes.length; i++) {
          const split = frameWithModes([bytes.subarray(0, i), bytes.subarray(i)], "untyped", (n) =>
            n === 1 ? "typed" : undefined
          ).out
          expect(split).toEqual(whole)
        }
      }),
      { numRuns: 40 }
    )
  })

  it("byte: the SSL answer, then typed messages; and a switch back to byte inside a callback", () => {
    fc.assert(
      fc.property(fc.array(anyBackend, { minLength: 1, maxLength: 5 }), (messages) => {
        // 'N', typed messages, then 'S' (mode switched to "byte" after the last typed frame), then a typed message again.
        const typed = encodeBackendAll(messages)
        const tail = encodeBackendAll([{ _tag: "ReadyForQuery", status: "I" }])
        const bytes = Uint8Array.from([0x4e, ...typed, 0x53, ...tail])
        const switchTo = (n: number) => (n === 1 + messages.length ? ("byte" as const) : undefined)
        const whole = frameWithModes([bytes], "byte", switchTo)
        assert.strictEqual(whole.out.length, messages.length + 3)
        assert.strictEqual(whole.out[0]!.type, 0x4e)
        assert.strictEqual(whole.out[0]!.body.length, 0)
        assert.strictEqual(whole.out[messages.length + 1]!.type, 0x53)
        assert.strictEqual(whole.out[messages.length + 2]!.type, 0x5a)
        assert.strictEqual(whole.framer.mode, "typed")
        for (let i = 0; i <= bytes.length; i++) {
          expect(frameWithModes([bytes.subarray(0, i), bytes.subarray(i)], "byte", switchTo).out).toEqual(whole.out)
        }
      }),
      { numRuns: 40 }
    )
  })

  it("bytes left after a switch stay buffered for the new mode, and drain() hands them out", () => {
    const framer = new Framer({ mode: "byte" })
    const seen: Array<number> = []
    // A TLS handshake follows 'S': the callback stops framing (by throwing) so the rest goes to TLS.
    const stop = new Error("stop")
    try {
      framer.push(Uint8Array.of(0x53, 0x16, 0x03, 0x01), (type) => {
        seen.push(type)
        framer.mode = "untyped"
        throw stop
      })
    } catch (e) {
      assert.strictEqual(e, stop)
    }
    expect(seen).toEqual([0x53])
    assert.strictEqual(framer.buffered, 3)
    expect(Array.from(framer.drain())).toEqual([0x16, 0x03, 0x01])
    assert.strictEqual(framer.buffered, 0)
  })
})

describe("Framer limits", () => {
  it("a length below 4 is refused", () => {
    for (const len of [0, 3, -1]) {
      const e = protocolError(() => new Framer().push(Uint8Array.from([0x44, ...i32(len)]), () => {}))
      expect(e.reason).toBe("LengthOutOfRange")
      expect(e.messageType).toBe("D")
    }
    const e = protocolError(() => new Framer({ mode: "untyped" }).push(Uint8Array.from(i32(3)), () => {}))
    expect(e.reason).toBe("LengthOutOfRange")
  })

  it("a length above maxMessageSize is refused; exactly the maximum is accepted", () => {
    const framer = new Framer({ maxMessageSize: 100 })
    const frames: Array<number> = []
    framer.push(Uint8Array.from([0x64, ...i32(100), ...new Uint8Array(96)]), (t, _b, s, e) => frames.push(e - s))
    expect(frames).toEqual([96])
    const e = protocolError(() => new Framer({ maxMessageSize: 100 }).push(Uint8Array.from([0x64, ...i32(101)]), () => {}))
    expect(e.reason).toBe("MessageTooLarge")
    expect(e.message).toContain("maxMessageSize")
  })

  it("a startup packet above 10000 bytes is refused; 10000 is accepted", () => {
    const ok = new Uint8Array(MAX_STARTUP_PACKET_LENGTH)
    ok.set(i32(MAX_STARTUP_PACKET_LENGTH))
    let got = -1
    new Framer({ mode: "untyped" }).push(ok, (_t, _b, s, e) => (got = e - s))
    assert.strictEqual(got, MAX_STARTUP_PACKET_LENGTH - 4)
    const e = protocolError(() => new Framer({ mode: "untyped" }).push(Uint8Array.from(i32(10001)), () => {}))
    expect(e.reason).toBe("MessageTooLarge")
  })

  it("is poisoned after an error: every later push throws the same error", () => {
    const framer = new Framer()
    const frames: Array<number> = []
    // One good frame, then a bad length in the same chunk.
    const chunk = Uint8Array.from([0x31, ...i32(4), 0x44, ...i32(2)])
    const first = protocolError(() => framer.push(chunk, (t) => frames.push(t)))
    expect(frames).toEqual([0x31])
    expect(first.offset).toBe(5)
    const good = Uint8Array.from([0x31, ...i32(4)])
    assert.strictEqual(protocolError(() => framer.push(good, (t) => frames.push(t))), first)
    assert.strictEqual(protocolError(() => framer.push(new Uint8Array(0), () => {})), first)
    expect(frames).toEqual([0x31])
  })

  it("a hostile 1 GiB length with a few bytes present allocates nothing large", () => {
    const framer = new Framer()
    const before = process.memoryUsage().arrayBuffers
    let frames = 0
    framer.push(Uint8Array.from([0x44, ...i32(0x40000000), 1, 2, 3]), () => frames++)
    // Many small chunks: each is kept as it arrived, never joined into a 1 GiB buffer.
    for (let i = 0; i < 1000; i++) framer.push(new Uint8Array(100), () => frames++)
    const grown = process.memoryUsage().arrayBuffers - before
    assert.strictEqual(frames, 0)
    assert.strictEqual(framer.buffered, 8 + 100_000)
    assert.isBelow(grown, 16 * 1024 * 1024)
    // Lengths just over the default maximum are refused outright.
    const e = protocolError(() => new Framer().push(Uint8Array.from([0x44, ...i32(0x40000001)]), () => {}))
    expect(e.reason).toBe("MessageTooLarge")
  })

  it("a callback that throws leaves the rest of the chunk for the next push", () => {
    const framer = new Framer()
    const bytes = encodeBackendAll([
      { _tag: "ParseComplete" },
      { _tag: "BindComplete" },
      { _tag: "CloseComplete" }
    ])
    const seen: Array<number> = []
    let thrown = false
    try {
      framer.push(bytes, (t) => {
        seen.push(t)
        if (t === 0x32) throw new Error("boom")
      })
    } catch (e) {
      thrown = (e as Error).message === "boom"
    }
    assert.isTrue(thrown)
    framer.push(new Uint8Array(0), (t) => seen.push(t))
    framer.push(Uint8Array.from([0x6e, ...i32(4)]), (t) => seen.push(t))
    expect(seen).toEqual([0x31, 0x32, 0x33, 0x6e])
  })
})
