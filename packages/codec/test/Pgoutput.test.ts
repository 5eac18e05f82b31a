/**
 * pgoutput (54.9): round trips of every message under every protocol version / stream state where
 * it is legal, exact bytes for a hand-assembled message, the refusals (unknown type, version- and
 * stream-gated messages, truncation, hostile counts and lengths, bad tags), and a live logical
 * replication stream from PostgreSQL 18 decoded end to end and cross-checked against test_decoding.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { inject } from "vitest"
import { openRawSession, rowsOf } from "@pgfx/testing/RawSession"
import type { RawFrame, RawSession } from "@pgfx/testing/RawSession"
import { decodePgoutput, encodePgoutput, pgoutputMessageType } from "../src/Pgoutput.ts"
import type {
  PgoutputContext,
  PgoutputMessage,
  PgoutputProtocolVersion,
  PgoutputRelation,
  TupleColumn,
  TupleData
} from "../src/Pgoutput.ts"
import { isProtocolError } from "../src/ProtocolError.ts"
import { decodeReplicationServerMessage, encodeCopyDataReplication, pgEpochMicrosFromDate } from "../src/Replication.ts"
import { parseTestDecodingLine } from "../src/TestDecoding.ts"
import type { TestDecodingColumn } from "../src/TestDecoding.ts"
import { Writer } from "../src/internal/Writer.ts"
import { decodeUtf8 } from "../src/internal/utf8.ts"

// --- arbitraries ----------------------------------------------------------------------------------

const lsn = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn })
const timestamp = fc.bigInt({ min: -0x8000000000000000n, max: 0x7fffffffffffffffn })
const uint32 = fc.integer({ min: 0, max: 0xffffffff })
const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff })
const cstring = fc.string({ maxLength: 12, unit: "grapheme" }).map((s) => s.replace(/\0/g, ""))
const bytes = fc.uint8Array({ maxLength: 24 })

const column: fc.Arbitrary<TupleColumn> = fc.oneof(
  fc.constant({ kind: "null" as const }),
  fc.constant({ kind: "unchanged" as const }),
  fc.record({ kind: fc.constant("text" as const), value: bytes }),
  fc.record({ kind: fc.constant("binary" as const), value: bytes })
)
const tuple: fc.Arbitrary<TupleData> = fc.array(column, { maxLength: 8 })

const ALL_TAGS: ReadonlyArray<PgoutputMessage["_tag"]> = [
  "PgoutputBegin",
  "PgoutputLogicalMessage",
  "PgoutputCommit",
  "PgoutputOrigin",
  "PgoutputRelation",
  "PgoutputType",
  "PgoutputInsert",
  "PgoutputUpdate",
  "PgoutputDelete",
  "PgoutputTruncate",
  "PgoutputStreamStart",
  "PgoutputStreamStop",
  "PgoutputStreamCommit",
  "PgoutputStreamAbort",
  "PgoutputBeginPrepare",
  "PgoutputPrepare",
  "PgoutputCommitPrepared",
  "PgoutputRollbackPrepared",
  "PgoutputStreamPrepare"
]

/** Where the spec allows each message: first version, and inside/outside a streamed block. */
const SINCE: Record<PgoutputMessage["_tag"], PgoutputProtocolVersion> = {
  PgoutputBegin: 1,
  PgoutputLogicalMessage: 1,
  PgoutputCommit: 1,
  PgoutputOrigin: 1,
  PgoutputRelation: 1,
  PgoutputType: 1,
  PgoutputInsert: 1,
  PgoutputUpdate: 1,
  PgoutputDelete: 1,
  PgoutputTruncate: 1,
  PgoutputStreamStart: 2,
  PgoutputStreamStop: 2,
  PgoutputStreamCommit: 2,
  PgoutputStreamAbort: 2,
  PgoutputBeginPrepare: 3,
  PgoutputPrepare: 3,
  PgoutputCommitPrepared: 3,
  PgoutputRollbackPrepared: 3,
  PgoutputStreamPrepare: 3
}
const IN_STREAM_ONLY = new Set<string>(["PgoutputStreamStop"])
const ANYWHERE = new Set<string>([
  "PgoutputLogicalMessage",
  "PgoutputOrigin",
  "PgoutputRelation",
  "PgoutputType",
  "PgoutputInsert",
  "PgoutputUpdate",
  "PgoutputDelete",
  "PgoutputTruncate"
])

const isLegal = (tag: PgoutputMessage["_tag"], ctx: PgoutputContext): boolean =>
  ctx.protocolVersion >= SINCE[tag] &&
  (ctx.inStream ? IN_STREAM_ONLY.has(tag) || ANYWHERE.has(tag) : !IN_STREAM_ONLY.has(tag))

const CONTEXTS: ReadonlyArray<PgoutputContext> = [
  { protocolVersion: 1, inStream: false },
  { protocolVersion: 2, inStream: false },
  { protocolVersion: 2, inStream: true },
  { protocolVersion: 3, inStream: false },
  { protocolVersion: 3, inStream: true },
  { protocolVersion: 4, inStream: false },
  { protocolVersion: 4, inStream: true }
]

/** Messages of one tag, shaped as the decoder builds them (optional keys present, `undefined` when absent). */
const messageOf = (tag: PgoutputMessage["_tag"], ctx: PgoutputContext): fc.Arbitrary<PgoutputMessage> => {
  const xid = ctx.inStream ? uint32 : fc.constant(undefined)
  const prepared = { prepareLsn: lsn, endLsn: lsn, prepareTime: timestamp, xid: uint32, gid: cstring }
  switch (tag) {
    case "PgoutputBegin":
      return fc.record({ _tag: fc.constant(tag), finalLsn: lsn, commitTime: timestamp, xid: uint32 })
    case "PgoutputLogicalMessage":
      return fc.record({
        _tag: fc.constant(tag),
        xid,
        transactional: fc.boolean(),
        lsn,
        prefix: cstring,
        content: bytes
      })
    case "PgoutputCommit":
      return fc.record({ _tag: fc.constant(tag), commitLsn: lsn, endLsn: lsn, commitTime: timestamp })
    case "PgoutputOrigin":
      return fc.record({ _tag: fc.constant(tag), originLsn: lsn, name: cstring })
    case "PgoutputRelation":
      return fc.record({
        _tag: fc.constant(tag),
        xid,
        relationOid: uint32,
        namespace: cstring,
        name: cstring,
        replicaIdentity: fc.constantFrom("default" as const, "nothing" as const, "full" as const, "index" as const),
        columns: fc.array(
          fc.record({ isKey: fc.boolean(), name: cstring, typeOid: uint32, typeModifier: int32 }),
          { maxLength: 6 }
        )
      })
    case "PgoutputType":
      return fc.record({ _tag: fc.constant(tag), xid, typeOid: uint32, namespace: cstring, name: cstring })
    case "PgoutputInsert":
      return fc.record({ _tag: fc.constant(tag), xid, relationOid: uint32, newTuple: tuple })
    case "PgoutputUpdate":
      return fc.oneof(
        fc.record({
          _tag: fc.constant(tag),
          xid,
          relationOid: uint32,
          oldKey: fc.constant(undefined),
          oldTuple: fc.constant(undefined),
          newTuple: tuple
        }),
        fc.record({
          _tag: fc.constant(tag),
          xid,
          relationOid: uint32,
          oldKey: tuple,
          oldTuple: fc.constant(undefined),
          newTuple: tuple
        }),
        fc.record({
          _tag: fc.constant(tag),
          xid,
          relationOid: uint32,
          oldKey: fc.constant(undefined),
          oldTuple: tuple,
          newTuple: tuple
        })
      )
    case "PgoutputDelete":
      return fc.oneof(
        fc.record({ _tag: fc.constant(tag), xid, relationOid: uint32, oldKey: tuple, oldTuple: fc.constant(undefined) }),
        fc.record({ _tag: fc.constant(tag), xid, relationOid: uint32, oldKey: fc.constant(undefined), oldTuple: tuple })
      )
    case "PgoutputTruncate":
      return fc.record({
        _tag: fc.constant(tag),
        xid,
        cascade: fc.boolean(),
        restartIdentity: fc.boolean(),
        relationOids: fc.array(uint32, { maxLength: 6 })
      })
    case "PgoutputStreamStart":
      return fc.record({ _tag: fc.constant(tag), xid: uint32, firstSegment: fc.boolean() })
    case "PgoutputStreamStop":
      return fc.constant({ _tag: tag })
    case "PgoutputStreamCommit":
      return fc.record({ _tag: fc.constant(tag), xid: uint32, commitLsn: lsn, endLsn: lsn, commitTime: timestamp })
    case "PgoutputStreamAbort": {
      const plain = fc.record({
        _tag: fc.constant(tag),
        xid: uint32,
        subXid: uint32,
        abortLsn: fc.constant(undefined),
        abortTime: fc.constant(undefined)
      })
      if (ctx.protocolVersion < 4) return plain
      return fc.oneof(plain, fc.record({ _tag: fc.constant(tag), xid: uint32, subXid: uint32, abortLsn: lsn, abortTime: timestamp }))
    }
    case "PgoutputBeginPrepare":
    case "PgoutputPrepare":
    case "PgoutputStreamPrepare":
      return fc.record({ _tag: fc.constant(tag), ...prepared })
    case "PgoutputCommitPrepared":
      return fc.record({
        _tag: fc.constant(tag),
        commitLsn: lsn,
        endLsn: lsn,
        commitTime: timestamp,
        xid: uint32,
        gid: cstring
      })
    case "PgoutputRollbackPrepared":
      return fc.record({
        _tag: fc.constant(tag),
        prepareEndLsn: lsn,
        rollbackEndLsn: lsn,
        prepareTime: timestamp,
        rollbackTime: timestamp,
        xid: uint32,
        gid: cstring
      })
  }
}

// --- helpers --------------------------------------------------------------------------------------

const encode = (m: PgoutputMessage, ctx: PgoutputContext): Uint8Array => {
  const w = new Writer(16)
  encodePgoutput(w, m, ctx)
  return w.take()
}

const reasonOf = (f: () => unknown): string => {
  try {
    f()
  } catch (e) {
    if (isProtocolError(e)) return e.reason
    throw e
  }
  return assert.fail("expected a ProtocolError")
}

const decodeAll = (buf: Uint8Array, ctx: PgoutputContext) => decodePgoutput(buf, 0, buf.length, ctx)

const text = (s: string): TupleColumn => ({ kind: "text", value: new TextEncoder().encode(s) })

// --- properties -----------------------------------------------------------------------------------

describe("Pgoutput", () => {
  for (const ctx of CONTEXTS) {
    const legal = ALL_TAGS.filter((tag) => isLegal(tag, ctx))
    it(`round-trips every legal message under v${ctx.protocolVersion}${ctx.inStream ? " in a stream" : ""}`, () => {
      fc.assert(
        fc.property(
          fc.oneof(...legal.map((tag) => messageOf(tag, ctx))),
          fc.uint8Array({ maxLength: 6 }),
          fc.uint8Array({ maxLength: 6 }),
          (m, before, after) => {
            const payload = encode(m, ctx)
            assert.strictEqual(payload[0], pgoutputMessageType(m._tag).charCodeAt(0))
            const buf = new Uint8Array(before.length + payload.length + after.length)
            buf.set(before)
            buf.set(payload, before.length)
            buf.set(after, before.length + payload.length)
            assert.deepStrictEqual(decodePgoutput(buf, before.length, before.length + payload.length, ctx), m)
          }
        ),
        { numRuns: 300 }
      )
    })

    it(`refuses messages not legal under v${ctx.protocolVersion}${ctx.inStream ? " in a stream" : ""}`, () => {
      const illegal = ALL_TAGS.filter((tag) => !isLegal(tag, ctx))
      for (const tag of illegal) {
        // Build the bytes under a context where the message is legal, then decode under this one.
        const where = CONTEXTS.find((c) => isLegal(tag, c))!
        const m = fc.sample(messageOf(tag, where), { numRuns: 1, seed: 42 })[0]!
        const payload = encode(m, where)
        assert.strictEqual(reasonOf(() => decodeAll(payload, ctx)), "UnexpectedMessage", tag)
        assert.strictEqual(reasonOf(() => encode(m, ctx)), "UnexpectedMessage", tag)
      }
    })
  }

  it("encodes the exact bytes of 54.9", () => {
    const ctx: PgoutputContext = { protocolVersion: 2, inStream: true }
    const update: PgoutputMessage = {
      _tag: "PgoutputUpdate",
      xid: 0x01020304,
      relationOid: 16384,
      oldKey: [text("7"), { kind: "null" }],
      oldTuple: undefined,
      newTuple: [text("8"), { kind: "unchanged" }, { kind: "binary", value: Uint8Array.of(0xff) }]
    }
    const expected = [
      0x55, 1, 2, 3, 4, 0, 0, 0x40, 0,
      0x4b, 0, 2, 0x74, 0, 0, 0, 1, 0x37, 0x6e,
      0x4e, 0, 3, 0x74, 0, 0, 0, 1, 0x38, 0x75, 0x62, 0, 0, 0, 1, 0xff
    ]
    assert.deepStrictEqual(Array.from(encode(update, ctx)), expected)
    const abort = encode(
      { _tag: "PgoutputStreamAbort", xid: 5, subXid: 6, abortLsn: 0x10n, abortTime: -2n },
      { protocolVersion: 4, inStream: false }
    )
    assert.deepStrictEqual(
      Array.from(abort),
      [0x41, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0x10, 255, 255, 255, 255, 255, 255, 255, 254]
    )
  })

  it("represents an unchanged TOASTed value explicitly, never as null, and shares no bytes", () => {
    const payload = Uint8Array.of(0x49, 0, 0, 0, 9, 0x4e, 0, 3, 0x75, 0x6e, 0x74, 0, 0, 0, 2, 0x68, 0x69)
    const m = decodeAll(payload, { protocolVersion: 1, inStream: false })
    assert.strictEqual(m._tag, "PgoutputInsert")
    if (m._tag !== "PgoutputInsert") return
    assert.deepStrictEqual(m.newTuple[0], { kind: "unchanged" })
    assert.deepStrictEqual(m.newTuple[1], { kind: "null" })
    const value = m.newTuple[2]!
    assert.strictEqual(value.kind, "text")
    if (value.kind !== "text") return
    assert.strictEqual(value.value.buffer, payload.buffer) // a view, not a copy
    assert.strictEqual(decodeUtf8(value.value, 0, value.value.length), "hi")
  })

  it("decodes Stream Abort with and without the parallel-streaming fields under v4", () => {
    const v4: PgoutputContext = { protocolVersion: 4, inStream: false }
    const plain = Uint8Array.of(0x41, 0, 0, 0, 5, 0, 0, 0, 6)
    assert.deepStrictEqual(decodeAll(plain, v4), {
      _tag: "PgoutputStreamAbort",
      xid: 5,
      subXid: 6,
      abortLsn: undefined,
      abortTime: undefined
    })
    const partial = Uint8Array.of(...plain, 0, 0, 0, 0, 0, 0, 0, 1)
    assert.strictEqual(reasonOf(() => decodeAll(partial, v4)), "Truncated")
    const parallel = Uint8Array.of(...partial, 0, 0, 0, 0, 0, 0, 0, 2)
    assert.strictEqual(reasonOf(() => decodeAll(parallel, { protocolVersion: 3, inStream: false })), "TrailingBytes")
    assert.strictEqual(
      reasonOf(() =>
        encode(
          { _tag: "PgoutputStreamAbort", xid: 1, subXid: 1, abortLsn: 1n, abortTime: 1n },
          { protocolVersion: 3, inStream: false }
        )
      ),
      "EncodeInvalid"
    )
  })

  describe("refusals", () => {
    const v1: PgoutputContext = { protocolVersion: 1, inStream: false }
    const v4: PgoutputContext = { protocolVersion: 4, inStream: false }
    const insert = (columns: TupleData) =>
      encode({ _tag: "PgoutputInsert", xid: undefined, relationOid: 1, newTuple: columns }, v1)

    it("refuses an unknown message type", () => {
      for (const b of [0x00, 0x5a, 0x7a, 0x61, 0xff]) {
        assert.strictEqual(reasonOf(() => decodeAll(Uint8Array.of(b, 0, 0), v4)), "UnknownMessageType")
      }
      assert.strictEqual(reasonOf(() => decodeAll(new Uint8Array(0), v4)), "Truncated")
    })

    it("refuses a stream context under protocol version 1", () => {
      const payload = insert([])
      assert.strictEqual(reasonOf(() => decodeAll(payload, { protocolVersion: 1, inStream: true })), "UnexpectedMessage")
    })

    it("refuses every truncation of every message", () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...CONTEXTS).chain((ctx) =>
            fc.tuple(fc.constant(ctx), fc.oneof(...ALL_TAGS.filter((t) => isLegal(t, ctx)).map((t) => messageOf(t, ctx))))
          ),
          ([ctx, m]) => {
            const payload = encode(m, ctx)
            // Under v4 a Stream Abort cut right after its xids is the other (non-parallel) layout.
            const validCut = m._tag === "PgoutputStreamAbort" && ctx.protocolVersion >= 4 ? 9 : -1
            for (let cut = 1; cut < payload.length; cut++) {
              if (cut === validCut) continue
              const reason = reasonOf(() => decodePgoutput(payload, 0, cut, ctx))
              // A cut inside a tuple can make a count too large for what is left: also a refusal.
              assert.include(["Truncated", "UnterminatedString", "LengthOutOfRange"], reason)
            }
            if (m._tag !== "PgoutputStreamAbort" || ctx.protocolVersion < 4) {
              const longer = Uint8Array.of(...payload, 0)
              assert.strictEqual(reasonOf(() => decodeAll(longer, ctx)), "TrailingBytes")
            }
          }
        ),
        { numRuns: 200 }
      )
    })

    it("refuses a truncated tuple", () => {
      const payload = insert([text("hello")])
      assert.strictEqual(reasonOf(() => decodeAll(payload.subarray(0, payload.length - 2), v1)), "Truncated")
    })

    it("refuses a column count larger than the bytes left", () => {
      // Insert, relation 1, 'N', 1000 columns declared, one present.
      const payload = Uint8Array.of(0x49, 0, 0, 0, 1, 0x4e, 0x03, 0xe8, 0x6e)
      assert.strictEqual(reasonOf(() => decodeAll(payload, v1)), "LengthOutOfRange")
      // Relation with 5 columns declared but room for none.
      const relation = Uint8Array.of(0x52, 0, 0, 0, 1, 0x70, 0, 0x74, 0, 0x64, 0, 5, 0)
      assert.strictEqual(reasonOf(() => decodeAll(relation, v1)), "LengthOutOfRange")
      // Truncate with 2^30 relations declared.
      const truncate = Uint8Array.of(0x54, 0x40, 0, 0, 0, 0)
      assert.strictEqual(reasonOf(() => decodeAll(truncate, v1)), "LengthOutOfRange")
      // A negative column count.
      assert.strictEqual(reasonOf(() => decodeAll(Uint8Array.of(0x49, 0, 0, 0, 1, 0x4e, 0xff, 0xff), v1)), "LengthOutOfRange")
    })

    it("refuses column lengths that are negative or run past the message", () => {
      const negative = Uint8Array.of(0x49, 0, 0, 0, 1, 0x4e, 0, 1, 0x74, 0xff, 0xff, 0xff, 0xff)
      assert.strictEqual(reasonOf(() => decodeAll(negative, v1)), "LengthOutOfRange")
      const huge = Uint8Array.of(0x49, 0, 0, 0, 1, 0x4e, 0, 1, 0x62, 0x7f, 0xff, 0xff, 0xff, 1, 2)
      assert.strictEqual(reasonOf(() => decodeAll(huge, v1)), "Truncated")
      const message = Uint8Array.of(0x4d, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x70, 0, 0xff, 0xff, 0xff, 0xfe)
      assert.strictEqual(reasonOf(() => decodeAll(message, v1)), "LengthOutOfRange")
    })

    it("refuses a bad tuple kind and bad tuple-part tags", () => {
      const badKind = Uint8Array.of(0x49, 0, 0, 0, 1, 0x4e, 0, 1, 0x78)
      assert.strictEqual(reasonOf(() => decodeAll(badKind, v1)), "UnknownMessageType")
      const insertWithoutN = Uint8Array.of(0x49, 0, 0, 0, 1, 0x4b, 0, 0)
      assert.strictEqual(reasonOf(() => decodeAll(insertWithoutN, v1)), "UnexpectedMessage")
      const deleteWithN = Uint8Array.of(0x44, 0, 0, 0, 1, 0x4e, 0, 0)
      assert.strictEqual(reasonOf(() => decodeAll(deleteWithN, v1)), "UnexpectedMessage")
      const updateKeyThenOld = Uint8Array.of(0x55, 0, 0, 0, 1, 0x4b, 0, 0, 0x4f, 0, 0)
      assert.strictEqual(reasonOf(() => decodeAll(updateKeyThenOld, v1)), "UnexpectedMessage")
      const updateUnknownPart = Uint8Array.of(0x55, 0, 0, 0, 1, 0x51, 0, 0)
      assert.strictEqual(reasonOf(() => decodeAll(updateUnknownPart, v1)), "UnknownMessageType")
    })

    it("refuses an unknown replica identity and a bad first-segment flag", () => {
      const relation = Uint8Array.of(0x52, 0, 0, 0, 1, 0x70, 0, 0x74, 0, 0x78, 0, 0)
      assert.strictEqual(reasonOf(() => decodeAll(relation, v1)), "InvalidValue")
      const start = Uint8Array.of(0x53, 0, 0, 0, 1, 2)
      assert.strictEqual(reasonOf(() => decodeAll(start, v4)), "InvalidValue")
    })

    it("refuses inconsistent messages on encode", () => {
      const w = new Writer()
      const both: PgoutputMessage = {
        _tag: "PgoutputUpdate",
        xid: undefined,
        relationOid: 1,
        oldKey: [],
        oldTuple: [],
        newTuple: []
      }
      assert.strictEqual(reasonOf(() => encodePgoutput(w, both, v1)), "EncodeInvalid")
      w.rewind()
      const neither: PgoutputMessage = { _tag: "PgoutputDelete", xid: undefined, relationOid: 1, oldKey: undefined, oldTuple: undefined }
      assert.strictEqual(reasonOf(() => encodePgoutput(w, neither, v1)), "EncodeInvalid")
      w.rewind()
      const noXid: PgoutputMessage = { _tag: "PgoutputInsert", xid: undefined, relationOid: 1, newTuple: [] }
      assert.strictEqual(reasonOf(() => encodePgoutput(w, noXid, { protocolVersion: 2, inStream: true })), "EncodeInvalid")
      w.rewind()
      const strayXid: PgoutputMessage = { _tag: "PgoutputInsert", xid: 9, relationOid: 1, newTuple: [] }
      assert.strictEqual(reasonOf(() => encodePgoutput(w, strayXid, v1)), "EncodeInvalid")
    })

    it("never throws anything but ProtocolError on arbitrary bytes", () => {
      fc.assert(
        fc.property(fc.constantFrom(...CONTEXTS), fc.uint8Array({ maxLength: 48 }), fc.nat(255), (ctx, body, type) => {
          const buf = Uint8Array.of(type, ...body)
          try {
            decodeAll(buf, ctx)
          } catch (e) {
            assert.isTrue(isProtocolError(e), String(e))
          }
        }),
        { numRuns: 2000 }
      )
    })
  })

  describe("against PostgreSQL 18", () => {
    it("decodes a live pgoutput v4 stream and agrees with test_decoding", async () => {
      const info = inject("pg18")
      const suffix = `${process.pid}_${Date.now().toString(36)}`
      const table = `h2_items_${suffix}`
      const publication = `h2_pub_${suffix}`
      const slot = `h2_pgo_${suffix}`
      const tdSlot = `h2_td_${suffix}`
      const prefix = `h2-${suffix}`
      const sql = await openRawSession(info)
      const q = async (statement: string) => rowsOf(await sql.query(statement))
      let repl: RawSession | undefined
      try {
        // The server runs with synchronous_commit off; decoding only sees flushed WAL, so flush ours.
        await q(`SET synchronous_commit = on`)
        await q(`CREATE TABLE ${table} (id int PRIMARY KEY, name text, big text, flag boolean)`)
        // Out of line, uncompressed: an UPDATE that leaves `big` alone sends it as unchanged TOAST.
        await q(`ALTER TABLE ${table} ALTER COLUMN big SET STORAGE EXTERNAL`)
        await q(`CREATE PUBLICATION ${publication} FOR TABLE ${table}`)
        await q(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`)
        await q(`SELECT pg_create_logical_replication_slot('${tdSlot}', 'test_decoding')`)
        const [[oid]] = await q(`SELECT '${table}'::regclass::oid`) as [[string]]
        const relationOid = Number(oid)

        await q(`INSERT INTO ${table} VALUES (1, 'one', repeat('x', 10000), true), (2, 'it''s', 'small', false)`)
        await q(`UPDATE ${table} SET name = 'uno' WHERE id = 1`)
        await q(`UPDATE ${table} SET id = 3 WHERE id = 2`)
        await q(`DELETE FROM ${table} WHERE id = 3`)
        await q(`SELECT pg_logical_emit_message(false, '${prefix}-nt', 'xyz')`)
        // A transaction larger than logical_decoding_work_mem (64kB here): sent as a stream.
        await q(
          `INSERT INTO ${table} SELECT g, 'bulk', repeat(md5(g::text), 4), null FROM generate_series(100, 1099) g`
        )
        // A streamed transaction whose large subtransaction is rolled back: Stream Abort (xid ≠ subXid).
        await q(
          `BEGIN; INSERT INTO ${table} VALUES (4000, 'kept', 'k', true); SAVEPOINT s; ` +
            `INSERT INTO ${table} SELECT g, 'gone', repeat(md5(g::text), 4), null FROM generate_series(5000, 5999) g; ` +
            `ROLLBACK TO SAVEPOINT s; COMMIT`
        )
        await q(`TRUNCATE ${table} RESTART IDENTITY CASCADE`)
        await q(`SELECT pg_logical_emit_message(true, '${prefix}', 'abc')`)

        repl = await openRawSession(info, { replication: "database" })
        rowsOf(await repl.query(`SET logical_decoding_work_mem = '64kB'`))
        const w = new Writer()
        const at = w.begin(0x51) // Q
        w.cstring(
          `START_REPLICATION SLOT ${slot} LOGICAL 0/0 (proto_version '4', publication_names '${publication}', messages 'true', streaming 'on')`
        )
        w.end(at)
        repl.send(w.take())
        const first = await repl.readFrame()
        assert.strictEqual(String.fromCharCode(first.type), "W", describeFrame(first))

        const ctx = { protocolVersion: 4 as const, inStream: false }
        const messages: Array<PgoutputMessage> = []
        let keepalives = 0
        let lastEnd = 0n
        // Read until the Commit of the transaction that emitted our final transactional message.
        let sawFinal = false
        for (;;) {
          const frame = await repl.readFrame()
          assert.strictEqual(String.fromCharCode(frame.type), "d", describeFrame(frame))
          const payload = decodeReplicationServerMessage(frame.body, 0, frame.body.length)
          if (payload._tag === "PrimaryKeepalive") {
            keepalives++
            if (payload.replyRequested) {
              encodeCopyDataReplication(w, {
                _tag: "StandbyStatusUpdate",
                writeLsn: lastEnd,
                flushLsn: lastEnd,
                applyLsn: lastEnd,
                clientTime: pgEpochMicrosFromDate(new Date()),
                replyRequested: false
              })
              repl.send(w.take())
            }
            continue
          }
          assert.isTrue(payload.walStart <= payload.walEnd || payload.walStart === 0n)
          const m = decodePgoutput(payload.data, 0, payload.data.length, ctx)
          if (m._tag === "PgoutputStreamStart") ctx.inStream = true
          if (m._tag === "PgoutputStreamStop") ctx.inStream = false
          messages.push(m)
          if (m._tag === "PgoutputLogicalMessage" && m.prefix === prefix) sawFinal = true
          if (m._tag === "PgoutputCommit") {
            lastEnd = m.endLsn
            if (sawFinal) break
          }
        }
        // Confirm what we consumed, ask for a reply, and the server answers with a keepalive.
        encodeCopyDataReplication(w, {
          _tag: "StandbyStatusUpdate",
          writeLsn: lastEnd,
          flushLsn: lastEnd,
          applyLsn: lastEnd,
          clientTime: pgEpochMicrosFromDate(new Date()),
          replyRequested: true
        })
        repl.send(w.take())
        for (;;) {
          const frame = await repl.readFrame()
          assert.strictEqual(String.fromCharCode(frame.type), "d", describeFrame(frame))
          const payload = decodeReplicationServerMessage(frame.body, 0, frame.body.length)
          if (payload._tag === "PrimaryKeepalive") {
            assert.isTrue(payload.walEnd >= lastEnd)
            keepalives++
            break
          }
        }
        assert.isAtLeast(keepalives, 1)

        // --- what we expect, transaction by transaction (other tests may add their own messages) ---
        const ours = messages.filter((m) =>
          ("relationOid" in m && m.relationOid === relationOid) ||
          (m._tag === "PgoutputRelation" && m.relationOid === relationOid) ||
          (m._tag === "PgoutputTruncate" && m.relationOids.includes(relationOid)) ||
          (m._tag === "PgoutputLogicalMessage" && m.prefix.startsWith(prefix))
        )
        // Rows of the rolled-back subtransaction were streamed before its abort; set them apart.
        const firstValue = (m: PgoutputMessage) =>
          m._tag === "PgoutputInsert" && m.newTuple[0]?.kind === "text" ? Number(decodeUtf8(m.newTuple[0].value, 0, m.newTuple[0].value.length)) : -1
        const abortedRows = ours.filter((m) => firstValue(m) >= 5000)
        assert.isAbove(abortedRows.length, 0)
        const abortedXid = (abortedRows[0] as { xid?: number }).xid
        const streamAbort = messages.find((m) => m._tag === "PgoutputStreamAbort")
        assert.isDefined(streamAbort)
        if (streamAbort?._tag !== "PgoutputStreamAbort") return
        // Streamed rows carry their (sub)transaction's xid; the abort names the top one and the sub one.
        assert.strictEqual(streamAbort.subXid, abortedXid)
        assert.notStrictEqual(streamAbort.subXid, streamAbort.xid)
        assert.strictEqual(streamAbort.abortLsn, undefined) // streaming 'on', not 'parallel'
        assert.isTrue(messages.some((m) => m._tag === "PgoutputStreamCommit" && m.xid === streamAbort.xid))
        ours.splice(0, ours.length, ...ours.filter((m) => firstValue(m) < 5000))

        const relation = ours.find((m): m is PgoutputRelation => m._tag === "PgoutputRelation")!
        assert.strictEqual(relation.name, table)
        assert.strictEqual(relation.namespace, "public")
        assert.strictEqual(relation.replicaIdentity, "default")
        assert.deepStrictEqual(
          relation.columns.map((c) => [c.name, c.isKey, c.typeOid, c.typeModifier]),
          [["id", true, 23, -1], ["name", false, 25, -1], ["big", false, 25, -1], ["flag", false, 16, -1]]
        )
        const changes = ours.filter((m) => m._tag !== "PgoutputRelation")
        const kinds = changes.map((m) => m._tag)
        const bulk = kinds.filter((k) => k === "PgoutputInsert").length - 3
        assert.strictEqual(bulk, 1000)
        assert.deepStrictEqual(kinds.filter((k) => k !== "PgoutputInsert"), [
          "PgoutputUpdate",
          "PgoutputUpdate",
          "PgoutputDelete",
          "PgoutputLogicalMessage",
          "PgoutputTruncate",
          "PgoutputLogicalMessage"
        ])
        const [ins1, ins2, upd1, upd2, del, nt] = changes
        assert.deepStrictEqual(show(ins1!), "I N[1,one,<10000 bytes>,t]")
        assert.deepStrictEqual(show(ins2!), "I N[2,it's,small,f]")
        assert.deepStrictEqual(show(upd1!), "U N[1,uno,<unchanged>,t]")
        assert.deepStrictEqual(show(upd2!), "U K[2,<null>,<null>,<null>] N[3,it's,small,f]")
        assert.deepStrictEqual(show(del!), "D K[3,<null>,<null>,<null>]")
        assert.deepStrictEqual(show(nt!), `M nt ${prefix}-nt xyz`)
        const truncate = changes.find((m) => m._tag === "PgoutputTruncate")!
        assert.deepStrictEqual(truncate, {
          _tag: "PgoutputTruncate",
          xid: undefined,
          cascade: true,
          restartIdentity: true,
          relationOids: [relationOid]
        })
        assert.deepStrictEqual(show(changes[changes.length - 1]!), `M tx ${prefix} abc`)

        // The bulk insert came as a stream: Stream Start … Stream Stop blocks, then Stream Commit,
        // and every row inside carries the streamed transaction's xid.
        const bulkRows = changes.filter((m) => m._tag === "PgoutputInsert").slice(2, 1002)
        const streamedXids = new Set(bulkRows.map((m) => (m as { xid?: number }).xid))
        assert.strictEqual(streamedXids.size, 1)
        const [streamXid] = streamedXids
        assert.isNumber(streamXid)
        const starts = messages.filter((m) => m._tag === "PgoutputStreamStart" && m.xid === streamXid)
        assert.isAtLeast(starts.length, 1)
        assert.strictEqual(starts[0]!._tag === "PgoutputStreamStart" && starts[0]!.firstSegment, true)
        assert.isTrue(messages.some((m) => m._tag === "PgoutputStreamCommit" && m.xid === streamXid))
        // Every non-streamed transaction is bracketed by Begin … Commit.
        assert.strictEqual(
          messages.filter((m) => m._tag === "PgoutputBegin").length,
          messages.filter((m) => m._tag === "PgoutputCommit").length
        )

        // --- cross-check against test_decoding over the same WAL ---
        const lines = (await q(
          `SELECT data FROM pg_logical_slot_peek_changes('${tdSlot}', NULL, NULL, 'include-xids', '1', 'skip-empty-xacts', '1')`
        )).map((r) => r[0]!)
        const records = lines.map(parseTestDecodingLine)
        const tdRows = records.flatMap((r) => {
          switch (r._tag) {
            case "TestDecodingInsert":
              return r.table.name === table ? [`I N${tdTuple(r.newTuple!)}`] : []
            case "TestDecodingUpdate":
              return r.table.name === table
                ? [`U${r.oldKey === undefined ? "" : ` K${tdTuple(r.oldKey)}`} N${tdTuple(r.newTuple!)}`]
                : []
            case "TestDecodingDelete":
              return r.table.name === table ? [`D K${tdTuple(r.oldKey!)}`] : []
            default:
              return []
          }
        })
        // test_decoding skips the nulls of an old key; pgoutput sends the non-key columns as 'n'.
        const pgoRows = changes
          .filter((m) => m._tag === "PgoutputInsert" || m._tag === "PgoutputUpdate" || m._tag === "PgoutputDelete")
          .map((m) =>
            show(
              m._tag === "PgoutputUpdate" || m._tag === "PgoutputDelete"
                ? { ...m, oldKey: m.oldKey?.filter((c) => c.kind !== "null") }
                : m
            )
          )
        assert.deepStrictEqual(tdRows, pgoRows)
        const tdTruncate = records.find((r) => r._tag === "TestDecodingTruncate" && r.tables[0]?.name === table)
        assert.deepStrictEqual(tdTruncate, {
          _tag: "TestDecodingTruncate",
          tables: [{ schema: "public", name: table }],
          restartSeqs: true,
          cascade: true
        })
        const tdMessages = records.filter((r) => r._tag === "TestDecodingMessage" && r.prefix.startsWith(prefix))
        assert.deepStrictEqual(tdMessages, [
          { _tag: "TestDecodingMessage", streaming: false, transactional: false, prefix: `${prefix}-nt`, size: 3, content: "xyz" },
          { _tag: "TestDecodingMessage", streaming: false, transactional: true, prefix, size: 3, content: "abc" }
        ])

        // Stop streaming: CopyDone, the server ends COPY and the command, and the slot is released.
        w.end(w.begin(0x63)) // c
        repl.send(w.take())
        const tail = await repl.readUntilReady()
        assert.isFalse(tail.frames.some((f) => f.type === 0x45), tail.frames.map(describeFrame).join(", "))
      } finally {
        await repl?.close().catch(() => undefined)
        for (const s of [slot, tdSlot]) {
          await dropSlot(q, s)
        }
        await q(`DROP PUBLICATION IF EXISTS ${publication}`).catch(() => undefined)
        await q(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined)
        await sql.close()
      }
    })
  })
})

// --- live-test helpers ----------------------------------------------------------------------------

const describeFrame = (f: RawFrame): string =>
  `${String.fromCharCode(f.type)}(${f.type === 0x45 ? decodeUtf8(f.body, 0, f.body.length).replace(/\0/g, " ") : f.body.length})`

const showColumn = (c: TupleColumn): string => {
  switch (c.kind) {
    case "null":
      return "<null>"
    case "unchanged":
      return "<unchanged>"
    case "binary":
      return `<binary ${c.value.length}>`
    case "text":
      return c.value.length > 100 ? `<${c.value.length} bytes>` : decodeUtf8(c.value, 0, c.value.length)
  }
}

const showTuple = (t: TupleData) => `[${t.map(showColumn).join(",")}]`

/** A compact, comparable rendering of a row change or message. */
const show = (m: PgoutputMessage): string => {
  switch (m._tag) {
    case "PgoutputInsert":
      return `I N${showTuple(m.newTuple)}`
    case "PgoutputUpdate":
      return `U${m.oldKey ? ` K${showTuple(m.oldKey)}` : ""}${m.oldTuple ? ` O${showTuple(m.oldTuple)}` : ""} N${
        showTuple(m.newTuple)
      }`
    case "PgoutputDelete":
      return `D${m.oldKey ? ` K${showTuple(m.oldKey)}` : ""}${m.oldTuple ? ` O${showTuple(m.oldTuple)}` : ""}`
    case "PgoutputLogicalMessage":
      return `M ${m.transactional ? "tx" : "nt"} ${m.prefix} ${decodeUtf8(m.content, 0, m.content.length)}`
    default:
      return m._tag
  }
}

const tdTuple = (columns: ReadonlyArray<TestDecodingColumn>): string =>
  `[${
    columns.map((c) =>
      c.value.kind === "null"
        ? "<null>"
        : c.value.kind === "unchanged"
        ? "<unchanged>"
        : c.value.text.length > 100
        ? `<${c.value.text.length} bytes>`
        : c.value.text
    ).join(",")
  }]`

/** Drops a slot, waiting briefly for a walsender that is still releasing it. */
const dropSlot = async (q: (sql: string) => Promise<Array<Array<string | null>>>, slot: string): Promise<void> => {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      await q(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}'`)
      return
    } catch (e) {
      if (!/is active/.test((e as Error).message)) throw e
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
