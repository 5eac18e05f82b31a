import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { Writer } from "@pgfx/codec/internal/Writer"
import { encodePgoutput, type PgoutputMessage, type PgoutputProtocolVersion, type TupleColumn } from "@pgfx/codec/Pgoutput"
import { isProtocolError, type ProtocolError } from "@pgfx/codec/ProtocolError"
import { TypeOid } from "@pgfx/codec/TypeOid"
import { TypeRegistry } from "@pgfx/codec/TypeRegistry"
import type * as Event from "../src/ChangeEvent.ts"
import { isUnchanged, Unchanged } from "../src/ChangeEvent.ts"
import { LogicalDecoder } from "../src/LogicalDecoder.ts"
import type { Lsn } from "../src/Lsn.ts"

const encoder = new TextEncoder()
const text = (s: string): TupleColumn => ({ kind: "text", value: encoder.encode(s) })
const NULL: TupleColumn = { kind: "null" }
const UNCHANGED: TupleColumn = { kind: "unchanged" }

const bytesOf = (m: PgoutputMessage, version: PgoutputProtocolVersion = 4, inStream = false): Uint8Array => {
  const w = new Writer(256)
  encodePgoutput(w, m, { protocolVersion: version, inStream })
  return w.take()
}

const feed = (d: LogicalDecoder, m: PgoutputMessage, lsn = 0n): Event.ChangeEvent => {
  const b = bytesOf(m, d.protocolVersion, d.inStream)
  return d.decode(b, 0, b.length, lsn as Lsn)
}

const relation = (overrides: Partial<Extract<PgoutputMessage, { _tag: "PgoutputRelation" }>> = {}): PgoutputMessage => ({
  _tag: "PgoutputRelation",
  xid: undefined,
  relationOid: 16400,
  namespace: "public",
  name: "orders",
  replicaIdentity: "default",
  columns: [
    { isKey: true, name: "id", typeOid: TypeOid.int4, typeModifier: -1 },
    { isKey: false, name: "note", typeOid: TypeOid.text, typeModifier: -1 },
    { isKey: false, name: "amount", typeOid: TypeOid.numeric, typeModifier: -1 },
    { isKey: false, name: "at", typeOid: TypeOid.timestamptz, typeModifier: -1 }
  ],
  ...overrides
})

const expectProtocolError = (f: () => unknown, reason?: ProtocolError["reason"]): ProtocolError => {
  try {
    f()
  } catch (e) {
    assert.isTrue(isProtocolError(e), `expected a ProtocolError, got ${String(e)}`)
    if (reason !== undefined) assert.strictEqual((e as ProtocolError).reason, reason)
    return e as ProtocolError
  }
  return assert.fail("expected a ProtocolError")
}


/** Asserts the event's tag (and narrows it). */
function assertTag<T extends Event.ChangeEvent["_tag"]>(
  e: Event.ChangeEvent,
  tag: T
): asserts e is Extract<Event.ChangeEvent, { _tag: T }> {
  assert.strictEqual(e._tag, tag)
}

describe("LogicalDecoder", () => {
  it("decodes typed rows through the relation cache, with the Begin's xid and the XLogData LSN", () => {
    const d = new LogicalDecoder({ protocolVersion: 1 })
    const begin = feed(d, { _tag: "PgoutputBegin", finalLsn: 0x1_0000_0100n, commitTime: 0n, xid: 777 }, 10n)
    assertTag(begin, "Begin")
    assert.strictEqual(begin.commitTime.toISOString(), "2000-01-01T00:00:00.000Z")
    assert.strictEqual(begin.finalLsn, 0x1_0000_0100n)
    assert.strictEqual(begin.lsn, 10n)
    const rel = feed(d, relation())
    assertTag(rel, "Relation")
    assert.strictEqual(rel.relation.qualifiedName, "public.orders")
    assert.isUndefined(rel.previous)
    assert.strictEqual(rel.xid, 777)
    const ins = feed(d, {
      _tag: "PgoutputInsert",
      xid: undefined,
      relationOid: 16400,
      newTuple: [text("42"), text("hé 'quoted'"), text("123.4500"), text("2024-05-06 07:08:09.5+00")]
    }, 20n)
    assertTag(ins, "Insert")
    assert.strictEqual(ins.xid, 777)
    assert.strictEqual(ins.lsn, 20n)
    assert.deepStrictEqual(ins.new, { id: 42, note: "hé 'quoted'", amount: "123.4500", at: new Date("2024-05-06T07:08:09.500Z") })
    assert.strictEqual(ins.relation, d.relation(16400))
    const commit = feed(d, { _tag: "PgoutputCommit", commitLsn: 0x1_0000_0100n, endLsn: 0x1_0000_0130n, commitTime: 1_000_000n })
    assertTag(commit, "Commit")
    assert.strictEqual(commit.xid, 777)
    assert.strictEqual(commit.endLsn, 0x1_0000_0130n)
    assert.strictEqual(commit.commitTime.toISOString(), "2000-01-01T00:00:01.000Z")
    assert.isUndefined(d.transactionXid)
  })

  it("keeps unchanged TOAST explicit, old keys to the key columns, old rows whole", () => {
    const d = new LogicalDecoder({ protocolVersion: 2 })
    feed(d, relation())
    const upd = feed(d, {
      _tag: "PgoutputUpdate",
      xid: undefined,
      relationOid: 16400,
      oldKey: [text("1"), NULL, NULL, NULL],
      oldTuple: undefined,
      newTuple: [text("2"), UNCHANGED, NULL, text("infinity")]
    })
    assertTag(upd, "Update")
    assert.deepStrictEqual(upd.key, { id: 1 })
    assert.isUndefined(upd.old)
    const row = upd.new as Record<string, unknown>
    assert.strictEqual(row["note"], Unchanged)
    assert.isTrue(isUnchanged(row["note"]))
    assert.isNull(row["amount"])
    assert.strictEqual(row["at"], Infinity)
    // REPLICA IDENTITY FULL: the Relation says so, the old tuple is the whole row.
    const rel = feed(d, relation({ replicaIdentity: "full" }))
    assertTag(rel, "Relation")
    assert.strictEqual(rel.previous?.replicaIdentity, "default")
    const del = feed(d, {
      _tag: "PgoutputDelete",
      xid: undefined,
      relationOid: 16400,
      oldKey: undefined,
      oldTuple: [text("2"), text("n"), UNCHANGED, NULL]
    })
    assertTag(del, "Delete")
    assert.isUndefined(del.key)
    assert.deepStrictEqual(del.old, { id: 2, note: "n", amount: Unchanged, at: null })
  })

  it("array row mode and binary values through the registry", () => {
    const d = new LogicalDecoder({ protocolVersion: 1, rowMode: "array", registry: TypeRegistry.make() })
    feed(d, relation({
      columns: [
        { isKey: true, name: "id", typeOid: TypeOid.int8, typeModifier: -1 },
        { isKey: false, name: "f", typeOid: TypeOid.float8, typeModifier: -1 },
        { isKey: false, name: "opaque", typeOid: 99999, typeModifier: -1 }
      ]
    }))
    const int8 = new Uint8Array([0, 0, 0, 0, 0, 0, 1, 0])
    const float8 = new Uint8Array(new Float64Array([2.5]).buffer).reverse()
    const ins = feed(d, {
      _tag: "PgoutputInsert",
      xid: undefined,
      relationOid: 16400,
      newTuple: [{ kind: "binary", value: int8 }, { kind: "binary", value: float8 }, { kind: "binary", value: new Uint8Array([7, 8]) }]
    })
    assertTag(ins, "Insert")
    assert.deepStrictEqual(ins.new, [256n, 2.5, new Uint8Array([7, 8])])
    const del = feed(d, { _tag: "PgoutputDelete", xid: undefined, relationOid: 16400, oldKey: [{ kind: "binary", value: int8 }, NULL, NULL], oldTuple: undefined })
    assertTag(del, "Delete")
    assert.deepStrictEqual(del.key, [256n])
  })

  it("tracks streamed blocks: xids from the stream, Stream Stop closes it", () => {
    const d = new LogicalDecoder({ protocolVersion: 2 })
    feed(d, relation())
    const start = feed(d, { _tag: "PgoutputStreamStart", xid: 900, firstSegment: true })
    assert.isTrue(d.inStream)
    assertTag(start, "StreamStart")
    assert.isTrue(start.firstSegment)
    const ins = feed(d, { _tag: "PgoutputInsert", xid: 901, relationOid: 16400, newTuple: [text("1"), NULL, NULL, NULL] })
    assertTag(ins, "Insert")
    assert.strictEqual(ins.xid, 901)
    const stop = feed(d, { _tag: "PgoutputStreamStop" })
    assert.isFalse(d.inStream)
    assertTag(stop, "StreamStop")
    assert.strictEqual(stop.xid, 900)
    const abort = feed(d, { _tag: "PgoutputStreamAbort", xid: 900, subXid: 901, abortLsn: undefined, abortTime: undefined })
    assertTag(abort, "StreamAbort")
    assert.strictEqual(abort.subXid, 901)
    const commit = feed(d, { _tag: "PgoutputStreamCommit", xid: 900, commitLsn: 5n, endLsn: 9n, commitTime: 0n })
    assertTag(commit, "StreamCommit")
    assert.strictEqual(commit.endLsn, 9n)
    // Version 1 has no streaming: a Stream Start is a protocol error.
    const v1 = new LogicalDecoder({ protocolVersion: 1 })
    const bytes = bytesOf({ _tag: "PgoutputStreamStart", xid: 1, firstSegment: true }, 2)
    expectProtocolError(() => v1.decode(bytes, 0, bytes.length), "UnexpectedMessage")
  })

  it("two-phase messages, truncates, types and messages", () => {
    const d = new LogicalDecoder({ protocolVersion: 3 })
    const bp = feed(d, { _tag: "PgoutputBeginPrepare", prepareLsn: 100n, endLsn: 120n, prepareTime: 0n, xid: 55, gid: "g1" })
    assert.strictEqual(d.transactionXid, 55)
    assertTag(bp, "BeginPrepare")
    assert.strictEqual(bp.gid, "g1")
    const type = feed(d, { _tag: "PgoutputType", xid: undefined, typeOid: 70000, namespace: "public", name: "mood" })
    assertTag(type, "Type")
    assert.strictEqual(type.xid, 55)
    assert.deepStrictEqual(d.type(70000), { oid: 70000, schema: "public", name: "mood" })
    feed(d, relation({ namespace: "" }))
    assert.strictEqual(d.relation(16400)?.schema, "pg_catalog")
    const tr = feed(d, { _tag: "PgoutputTruncate", xid: undefined, cascade: true, restartIdentity: false, relationOids: [16400] })
    assertTag(tr, "Truncate")
    assert.deepStrictEqual(tr.relations.map((r) => r.oid), [16400])
    assert.isTrue(tr.cascade)
    const content = encoder.encode("payload")
    const buf = bytesOf({ _tag: "PgoutputLogicalMessage", xid: undefined, transactional: true, lsn: 110n, prefix: "p", content }, 3)
    const msg = d.decode(buf, 0, buf.length)
    assertTag(msg, "Message")
    assert.deepStrictEqual(msg.content, content)
    buf.fill(0)
    assert.deepStrictEqual(msg.content, content, "content is a copy")
    assert.strictEqual(msg.xid, 55)
    const p = feed(d, { _tag: "PgoutputPrepare", prepareLsn: 100n, endLsn: 120n, prepareTime: 0n, xid: 55, gid: "g1" })
    assert.strictEqual(p._tag, "Prepare")
    assert.isUndefined(d.transactionXid)
    const cp = feed(d, { _tag: "PgoutputCommitPrepared", commitLsn: 200n, endLsn: 230n, commitTime: 0n, xid: 55, gid: "g1" })
    assertTag(cp, "CommitPrepared")
    assert.strictEqual(cp.endLsn, 230n)
    const rp = feed(d, { _tag: "PgoutputRollbackPrepared", prepareEndLsn: 120n, rollbackEndLsn: 260n, prepareTime: 0n, rollbackTime: 0n, xid: 56, gid: "g2" })
    assertTag(rp, "RollbackPrepared")
    assert.strictEqual(rp.rollbackEndLsn, 260n)
  })

  it("refuses rows it cannot place, with ProtocolError", () => {
    const d = new LogicalDecoder({ protocolVersion: 1 })
    const unknown = bytesOf({ _tag: "PgoutputInsert", xid: undefined, relationOid: 1, newTuple: [text("1")] }, 1)
    expectProtocolError(() => d.decode(unknown, 0, unknown.length), "UnexpectedMessage")
    feed(d, relation())
    const short = bytesOf({ _tag: "PgoutputInsert", xid: undefined, relationOid: 16400, newTuple: [text("1")] }, 1)
    expectProtocolError(() => d.decode(short, 0, short.length), "InvalidValue")
    const bad = bytesOf({ _tag: "PgoutputInsert", xid: undefined, relationOid: 16400, newTuple: [text("x"), NULL, NULL, NULL] }, 1)
    expectProtocolError(() => d.decode(bad, 0, bad.length), "InvalidValue")
    const good = bytesOf({ _tag: "PgoutputInsert", xid: undefined, relationOid: 16400, newTuple: [text("1"), NULL, NULL, NULL] }, 1)
    const trailing = new Uint8Array([...good, 0])
    expectProtocolError(() => d.decode(trailing, 0, trailing.length), "TrailingBytes")
    // Every truncation of a valid row is a ProtocolError.
    for (let end = 0; end < good.length; end++) expectProtocolError(() => d.decode(good, 0, end))
    assert.throws(() => new LogicalDecoder({ protocolVersion: 5 as never }))
  })

  it("any bytes: an event or a ProtocolError, nothing else", () => {
    const d = new LogicalDecoder({ protocolVersion: 4 })
    feed(d, relation())
    const row = bytesOf({ _tag: "PgoutputUpdate", xid: undefined, relationOid: 16400, oldKey: [text("1"), NULL, NULL, NULL], oldTuple: undefined, newTuple: [text("2"), text("n"), text("1.5"), NULL] })
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          // Mutations of a valid Update keep the relation OID plausible, so the row path runs deep.
          fc.tuple(fc.nat({ max: row.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
            const copy = row.slice()
            copy[i] = b
            return copy
          })
        ),
        (bytes) => {
          try {
            d.decode(bytes, 0, bytes.length)
          } catch (e) {
            if (!isProtocolError(e)) throw e
          }
          d.inStream = false
        }
      ),
      { numRuns: 3000 }
    )
  })
})
