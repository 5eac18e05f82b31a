/**
 * The streaming replication payloads (54.4): round trips of every message at any offset inside a
 * larger buffer, the CopyData framing helper, the PostgreSQL-epoch time helpers, and the refusals
 * (unknown type, truncation at every cut, trailing bytes, bad flags). The live stream from a real
 * server is exercised in Pgoutput.test.ts, which decodes XLogData/keepalives and answers with
 * StandbyStatusUpdate built here.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { isProtocolError } from "../src/ProtocolError.ts"
import {
  dateFromPgEpochMicros,
  decodeReplicationClientMessage,
  decodeReplicationServerMessage,
  encodeCopyDataReplication,
  encodeReplicationClientMessage,
  encodeReplicationServerMessage,
  pgEpochMicrosFromDate
} from "../src/Replication.ts"
import type { ReplicationClientMessage, ReplicationServerMessage } from "../src/Replication.ts"
import { Reader } from "../src/internal/Reader.ts"
import { Writer } from "../src/internal/Writer.ts"

const lsn = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn })
const timestamp = fc.bigInt({ min: -0x8000000000000000n, max: 0x7fffffffffffffffn })
const uint32 = fc.integer({ min: 0, max: 0xffffffff })

const serverMessage: fc.Arbitrary<ReplicationServerMessage> = fc.oneof(
  fc.record({
    _tag: fc.constant("XLogData" as const),
    walStart: lsn,
    walEnd: lsn,
    serverTime: timestamp,
    data: fc.uint8Array({ maxLength: 200 })
  }),
  fc.record({
    _tag: fc.constant("PrimaryKeepalive" as const),
    walEnd: lsn,
    serverTime: timestamp,
    replyRequested: fc.boolean()
  })
)

const clientMessage: fc.Arbitrary<ReplicationClientMessage> = fc.oneof(
  fc.record({
    _tag: fc.constant("StandbyStatusUpdate" as const),
    writeLsn: lsn,
    flushLsn: lsn,
    applyLsn: lsn,
    clientTime: timestamp,
    replyRequested: fc.boolean()
  }),
  fc.record({
    _tag: fc.constant("HotStandbyFeedback" as const),
    clientTime: timestamp,
    xmin: uint32,
    xminEpoch: uint32,
    catalogXmin: uint32,
    catalogXminEpoch: uint32
  })
)

/** `payload` placed between junk bytes, so decoders must honour start and end. */
const embed = (payload: Uint8Array, before: Uint8Array, after: Uint8Array) => {
  const buf = new Uint8Array(before.length + payload.length + after.length)
  buf.set(before)
  buf.set(payload, before.length)
  buf.set(after, before.length + payload.length)
  return { buf, start: before.length, end: before.length + payload.length }
}

const encodeWith = (f: (w: Writer) => void): Uint8Array => {
  const w = new Writer(16)
  f(w)
  return w.take()
}

/** The ProtocolError reason `f` throws; fails the test on success or on any other exception. */
const reasonOf = (f: () => unknown): string => {
  try {
    f()
  } catch (e) {
    if (isProtocolError(e)) return e.reason
    throw e
  }
  return assert.fail("expected a ProtocolError")
}

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)))

describe("Replication", () => {
  it("round-trips server messages at any offset", () => {
    fc.assert(
      fc.property(serverMessage, fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (m, a, b) => {
        const payload = encodeWith((w) => encodeReplicationServerMessage(w, m))
        const { buf, start, end } = embed(payload, a, b)
        assert.deepStrictEqual(decodeReplicationServerMessage(buf, start, end), m)
      })
    )
  })

  it("round-trips client messages at any offset", () => {
    fc.assert(
      fc.property(clientMessage, fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (m, a, b) => {
        const payload = encodeWith((w) => encodeReplicationClientMessage(w, m))
        const { buf, start, end } = embed(payload, a, b)
        assert.deepStrictEqual(decodeReplicationClientMessage(buf, start, end), m)
      })
    )
  })

  it("encodes the exact bytes of 54.4", () => {
    const keepalive = encodeWith((w) =>
      encodeReplicationServerMessage(w, {
        _tag: "PrimaryKeepalive",
        walEnd: 0x0000000116a3c0d8n,
        serverTime: 0x0002c3a4b5c6d7e8n,
        replyRequested: true
      })
    )
    assert.deepStrictEqual(keepalive, hex("6b 00000001 16a3c0d8 0002c3a4 b5c6d7e8 01"))
    const status = encodeWith((w) =>
      encodeReplicationClientMessage(w, {
        _tag: "StandbyStatusUpdate",
        writeLsn: 1n,
        flushLsn: 2n,
        applyLsn: 3n,
        clientTime: -1n,
        replyRequested: false
      })
    )
    assert.deepStrictEqual(
      status,
      hex("72 0000000000000001 0000000000000002 0000000000000003 ffffffffffffffff 00")
    )
    const feedback = encodeWith((w) =>
      encodeReplicationClientMessage(w, {
        _tag: "HotStandbyFeedback",
        clientTime: 0n,
        xmin: 0xfffffffe,
        xminEpoch: 1,
        catalogXmin: 2,
        catalogXminEpoch: 3
      })
    )
    assert.deepStrictEqual(feedback, hex("68 0000000000000000 fffffffe 00000001 00000002 00000003"))
  })

  it("hands out XLogData's data as a view of the input", () => {
    const payload = encodeWith((w) =>
      encodeReplicationServerMessage(w, {
        _tag: "XLogData",
        walStart: 10n,
        walEnd: 20n,
        serverTime: 30n,
        data: Uint8Array.of(1, 2, 3)
      })
    )
    const m = decodeReplicationServerMessage(payload, 0, payload.length)
    assert.strictEqual(m._tag, "XLogData")
    if (m._tag !== "XLogData") return
    assert.strictEqual(m.data.buffer, payload.buffer)
    assert.strictEqual(m.data.byteOffset, payload.byteOffset + 25)
    assert.deepStrictEqual(Array.from(m.data), [1, 2, 3])
  })

  it("frames a replication message in CopyData", () => {
    fc.assert(
      fc.property(fc.oneof(clientMessage, serverMessage), (m) => {
        const frame = encodeWith((w) => encodeCopyDataReplication(w, m))
        assert.strictEqual(frame[0], 0x64)
        const r = new Reader(frame, 1)
        assert.strictEqual(r.i32(), frame.length - 1)
        const decoded = m._tag === "StandbyStatusUpdate" || m._tag === "HotStandbyFeedback"
          ? decodeReplicationClientMessage(frame, 5, frame.length)
          : decodeReplicationServerMessage(frame, 5, frame.length)
        assert.deepStrictEqual(decoded, m)
      })
    )
  })

  it("refuses unknown types, empty payloads and the other direction's messages", () => {
    const status = encodeWith((w) =>
      encodeReplicationClientMessage(w, {
        _tag: "StandbyStatusUpdate",
        writeLsn: 0n,
        flushLsn: 0n,
        applyLsn: 0n,
        clientTime: 0n,
        replyRequested: false
      })
    )
    assert.strictEqual(reasonOf(() => decodeReplicationServerMessage(status, 0, status.length)), "UnknownMessageType")
    const keepalive = encodeWith((w) =>
      encodeReplicationServerMessage(w, { _tag: "PrimaryKeepalive", walEnd: 0n, serverTime: 0n, replyRequested: false })
    )
    assert.strictEqual(reasonOf(() => decodeReplicationClientMessage(keepalive, 0, keepalive.length)), "UnknownMessageType")
    assert.strictEqual(reasonOf(() => decodeReplicationServerMessage(Uint8Array.of(0x78, 0), 0, 2)), "UnknownMessageType")
    assert.strictEqual(reasonOf(() => decodeReplicationServerMessage(Uint8Array.of(0x77), 1, 1)), "Truncated")
    assert.strictEqual(reasonOf(() => decodeReplicationClientMessage(new Uint8Array(0), 0, 0)), "Truncated")
  })

  it("refuses every truncation of fixed-size messages, and trailing bytes", () => {
    fc.assert(
      fc.property(fc.oneof(clientMessage, serverMessage), (m) => {
        const isClient = m._tag === "StandbyStatusUpdate" || m._tag === "HotStandbyFeedback"
        const payload = encodeWith((w) =>
          isClient
            ? encodeReplicationClientMessage(w, m as ReplicationClientMessage)
            : encodeReplicationServerMessage(w, m as ReplicationServerMessage)
        )
        const decode = (buf: Uint8Array, end: number) =>
          isClient ? decodeReplicationClientMessage(buf, 0, end) : decodeReplicationServerMessage(buf, 0, end)
        // XLogData's data runs to the end, so only its 25-byte header can be cut short.
        const fixed = m._tag === "XLogData" ? 25 : payload.length
        for (let cut = 1; cut < fixed; cut++) assert.strictEqual(reasonOf(() => decode(payload, cut)), "Truncated")
        if (m._tag !== "XLogData") {
          const longer = new Uint8Array(payload.length + 1)
          longer.set(payload)
          assert.strictEqual(reasonOf(() => decode(longer, longer.length)), "TrailingBytes")
        }
      })
    )
  })

  it("refuses a reply-requested byte other than 0 or 1", () => {
    const keepalive = encodeWith((w) =>
      encodeReplicationServerMessage(w, { _tag: "PrimaryKeepalive", walEnd: 1n, serverTime: 2n, replyRequested: true })
    )
    keepalive[keepalive.length - 1] = 2
    assert.strictEqual(reasonOf(() => decodeReplicationServerMessage(keepalive, 0, keepalive.length)), "InvalidValue")
  })

  it("never throws anything but ProtocolError on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        for (const decode of [decodeReplicationServerMessage, decodeReplicationClientMessage]) {
          try {
            decode(bytes, 0, bytes.length)
          } catch (e) {
            assert.isTrue(isProtocolError(e), String(e))
          }
        }
      })
    )
  })

  it("refuses values that do not fit their fields", () => {
    const w = new Writer()
    assert.strictEqual(
      reasonOf(() =>
        encodeReplicationClientMessage(w, {
          _tag: "HotStandbyFeedback",
          clientTime: 0n,
          xmin: -1,
          xminEpoch: 0,
          catalogXmin: 0,
          catalogXminEpoch: 0
        })
      ),
      "EncodeInvalid"
    )
    w.rewind()
    assert.strictEqual(
      reasonOf(() =>
        encodeReplicationServerMessage(w, { _tag: "PrimaryKeepalive", walEnd: -1n, serverTime: 0n, replyRequested: false })
      ),
      "EncodeInvalid"
    )
  })

  describe("PostgreSQL epoch", () => {
    it("is 2000-01-01T00:00:00Z", () => {
      assert.strictEqual(pgEpochMicrosFromDate(new Date("2000-01-01T00:00:00Z")), 0n)
      assert.strictEqual(pgEpochMicrosFromDate(new Date("2000-01-01T00:00:01.5Z")), 1_500_000n)
      assert.strictEqual(pgEpochMicrosFromDate(new Date("1999-12-31T23:59:59Z")), -1_000_000n)
      // 2024-02-29 12:00:00 UTC: 8825 days and 12 hours after the epoch.
      assert.strictEqual(pgEpochMicrosFromDate(new Date("2024-02-29T12:00:00Z")), (8825n * 86400n + 43200n) * 1_000_000n)
      assert.strictEqual(dateFromPgEpochMicros(0n).toISOString(), "2000-01-01T00:00:00.000Z")
    })

    it("round-trips dates at millisecond precision and floors microseconds", () => {
      fc.assert(
        fc.property(fc.date({ min: new Date("1900-01-01"), max: new Date("2200-01-01"), noInvalidDate: true }), (d) => {
          assert.strictEqual(dateFromPgEpochMicros(pgEpochMicrosFromDate(d)).getTime(), d.getTime())
        })
      )
      assert.strictEqual(dateFromPgEpochMicros(1_999n).toISOString(), "2000-01-01T00:00:00.001Z")
      assert.strictEqual(dateFromPgEpochMicros(-1n).toISOString(), "1999-12-31T23:59:59.999Z")
      assert.strictEqual(dateFromPgEpochMicros(-1_000n).toISOString(), "1999-12-31T23:59:59.999Z")
    })
  })
})
