import { assert, describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { Framer, type FrameStreamHandler } from "../src/Frame.ts"
import { ProtocolError } from "../src/ProtocolError.ts"

type Event =
  | { readonly kind: "frame"; readonly type: number; readonly body: Array<number> }
  | { readonly kind: "streamed"; readonly type: number; readonly length: number; readonly body: Array<number>; readonly pieces: number }

const frame = (type: number, body: Uint8Array): Uint8Array => {
  const out = new Uint8Array(5 + body.length)
  out[0] = type
  new DataView(out.buffer).setInt32(1, body.length + 4)
  out.set(body, 5)
  return out
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

/** Frames `chunks` with streaming of `type` above `threshold`; records whole frames and streamed ones. */
const run = (chunks: ReadonlyArray<Uint8Array>, type: number, threshold: number, framer = new Framer()) => {
  const events: Array<Event> = []
  let current: { type: number; length: number; body: Array<number>; pieces: number } | undefined
  const handler: FrameStreamHandler = {
    type,
    threshold,
    onStart: (t, length) => {
      assert.isUndefined(current, "a streamed frame starts before the previous one ended")
      current = { type: t, length, body: [], pieces: 0 }
    },
    onPiece: (buf, start, end) => {
      assert.isDefined(current)
      assert.isTrue(end > start, "pieces are never empty")
      current!.body.push(...buf.subarray(start, end))
      current!.pieces++
    },
    onEnd: () => {
      assert.isDefined(current)
      events.push({ kind: "streamed", ...current! })
      current = undefined
    }
  }
  framer.streamFrames = handler
  for (const c of chunks) {
    framer.push(c, (t, buf, start, end) => {
      events.push({ kind: "frame", type: t, body: [...buf.subarray(start, end)] })
    })
  }
  return { events, inProgress: current }
}

const message = fc.record({
  type: fc.constantFrom(0x64, 0x44, 0x43),
  body: fc.uint8Array({ maxLength: 200 })
})

describe("Framer: streamed frames", () => {
  it("a streamed frame's pieces are exactly its body, for every split; other frames are unchanged", () => {
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 0, max: 100 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 2200 }), { maxLength: 12 }),
        (messages, threshold, rawCuts) => {
          const bytes = concat(messages.map((m) => frame(m.type, m.body)))
          const cuts = rawCuts.filter((c) => c <= bytes.length).sort((a, b) => a - b)
          const { events, inProgress } = run(splitAt(bytes, cuts), 0x64, threshold)
          assert.isUndefined(inProgress)
          const expected = messages.map((m): Event =>
            m.type === 0x64 && m.body.length > threshold
              ? { kind: "streamed", type: 0x64, length: m.body.length, body: [...m.body], pieces: 0 }
              : { kind: "frame", type: m.type, body: [...m.body] }
          )
          expect(events.map((e) => (e.kind === "streamed" ? { ...e, pieces: 0 } : e))).toEqual(expected)
        }
      ),
      { numRuns: 300 }
    )
  })

  it("a large frame is delivered in one piece per chunk, as views of the chunks (never joined)", () => {
    const body = new Uint8Array(1_000_000).map((_, i) => i & 0xff)
    const bytes = frame(0x64, body)
    const chunks: Array<Uint8Array> = []
    for (let at = 0; at < bytes.length; at += 65536) chunks.push(bytes.slice(at, at + 65536))
    const seen: Array<Uint8Array> = []
    const framer = new Framer()
    let ended = 0
    framer.streamFrames = {
      type: 0x64,
      threshold: 1024,
      onStart: (_, length) => assert.strictEqual(length, body.length),
      onPiece: (buf) => seen.push(buf),
      onEnd: () => ended++
    }
    for (const c of chunks) framer.push(c, () => assert.fail("no whole frame expected"))
    assert.strictEqual(ended, 1)
    assert.strictEqual(seen.length, chunks.length)
    // Every piece is backed by the chunk it arrived in: nothing was copied into a new buffer.
    for (let i = 0; i < chunks.length; i++) assert.strictEqual(seen[i]!.buffer, chunks[i]!.buffer)
    assert.strictEqual(framer.buffered, 0)
  })

  it("the handler in place at a frame's start gets all of it; turning streaming off applies to the next frame", () => {
    const big = new Uint8Array(500).fill(7)
    const bytes = concat([frame(0x64, big), frame(0x64, big), frame(0x5a, new Uint8Array([0x49]))])
    const framer = new Framer()
    const pieces: Array<number> = []
    const frames: Array<number> = []
    framer.streamFrames = {
      type: 0x64,
      threshold: 100,
      onStart: () => {},
      onPiece: (_b, s, e) => {
        pieces.push(e - s)
        framer.streamFrames = undefined // mid-frame: this frame still streams to the end
      },
      onEnd: () => {}
    }
    for (const c of splitAt(bytes, [50, 300, 700])) framer.push(c, (t, _b, s, e) => frames.push(t, e - s))
    assert.strictEqual(pieces.reduce((a, b) => a + b, 0), 500)
    assert.deepStrictEqual(frames, [0x64, 500, 0x5a, 1])
  })

  it("lengths are still bounded by maxMessageSize", () => {
    const framer = new Framer({ maxMessageSize: 1000 })
    framer.streamFrames = { type: 0x64, threshold: 10, onStart: () => {}, onPiece: () => {}, onEnd: () => {} }
    const header = new Uint8Array([0x64, 0, 0, 0x10, 0])
    assert.throws(() => framer.push(header, () => {}), ProtocolError)
  })

  it("frames after a streamed frame in the same chunk are framed as usual", () => {
    const bytes = concat([frame(0x64, new Uint8Array(300).fill(1)), frame(0x43, new Uint8Array([65, 0])), frame(0x5a, new Uint8Array([0x49]))])
    const { events } = run([bytes.subarray(0, 100), bytes.subarray(100)], 0x64, 200)
    assert.deepStrictEqual(events.map((e) => e.kind), ["streamed", "frame", "frame"])
  })
})
