/**
 * CopyInWriter's buffer recycling: a filled buffer is written into again only once the output says every
 * byte sent from it was written; bytes still in flight are never overwritten.
 */
import { assert, describe, it } from "@effect/vitest"
import { CopyInWriter } from "../src/Copy.ts"

/** An output that records what was sent and declares bytes written up to `writtenUpTo`. */
const recordingOutput = () => {
  const sent: Array<{ view: Uint8Array; copy: Uint8Array; end: number }> = []
  const output = {
    sentPosition: 0,
    writtenUpTo: 0,
    isWritten(position: number) {
      return position <= output.writtenUpTo
    }
  }
  const send = (bytes: Uint8Array) => {
    output.sentPosition += bytes.length
    sent.push({ view: bytes, copy: bytes.slice(), end: output.sentPosition })
  }
  return { output, send, sent }
}

const row = (i: number) => `${i}\t${"x".repeat(200 + (i % 50))}\n`

describe("CopyInWriter", () => {
  it("never reuses a buffer while its bytes are unwritten", () => {
    const { output, send, sent } = recordingOutput()
    const writer = new CopyInWriter(send, 16 * 1024, output)
    for (let i = 0; i < 20_000; i++) writer.string(row(i))
    writer.flush()
    for (const s of sent) assert.deepStrictEqual(s.view, s.copy)
    const buffers = new Set(sent.map((s) => s.view.buffer))
    assert.isAbove(buffers.size, 50, "a new buffer each time, since nothing was ever written")
  })

  it("reuses buffers once written, and only bytes past the written position stay untouched", () => {
    const { output, send, sent } = recordingOutput()
    const writer = new CopyInWriter(send, 16 * 1024, output)
    for (let i = 0; i < 20_000; i++) {
      writer.string(row(i))
      // The socket lags: everything but the last ~200 KB counts as written.
      if (i % 100 === 0) output.writtenUpTo = Math.max(0, output.sentPosition - 200_000)
    }
    writer.flush()
    const inFlight = sent.filter((s) => s.end > output.writtenUpTo)
    assert.isAbove(inFlight.length, 0)
    for (const s of inFlight) assert.deepStrictEqual(s.view, s.copy)
    const buffers = new Set(sent.map((s) => s.view.buffer))
    assert.isBelow(buffers.size, 20, "filled buffers were recycled")
  })
})
