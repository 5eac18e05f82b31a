/**
 * Stateful pgoutput decoding (pure, no I/O): XLogData payloads in, typed `ChangeEvent`s out.
 *
 * Invariants:
 * - The decoder owns the relation and type caches of its stream: Relation and Type messages update
 *   them (a Relation for a known OID replaces the old shape and is reported with it as `previous`),
 *   and a row of a relation the server never described is ProtocolError "UnexpectedMessage".
 * - "Inside a stream" follows Stream Start / Stream Stop; the protocol version (1–4) is fixed at
 *   construction. Messages a version or the stream state does not allow are ProtocolErrors (the
 *   codec's `decodePgoutput` rules, which the row fast path keeps too).
 * - Insert / Update / Delete are decoded by a hand-written path straight from the bytes: no
 *   intermediate TupleData objects, one decode function per column chosen when the Relation arrives
 *   ('t' columns through the codec's text decoder, 'b' columns through its binary decoder). Every
 *   read is bounds-checked against the message; anything malformed throws ProtocolError, nothing else.
 * - Row objects of one relation share one shape: they are built by a per-relation constructor (an
 *   object literal with the column names as constant keys), never by adding keys one by one, which
 *   would leave V8 dictionary-mode objects (several times slower to build and larger to keep).
 * - 'u' (unchanged TOASTed) columns become the `Unchanged` marker, 'n' becomes null. A 'K' old tuple
 *   yields only the key columns (REPLICA IDENTITY DEFAULT / USING INDEX); an 'O' old tuple the whole
 *   old row (FULL).
 * - Values are views decoded at once: nothing returned refers to `buf` (codecs copy bytes they keep),
 *   except `Message.content`, which is copied here.
 */
import { dateFromPgEpochMicros } from "@pgfx/codec/Replication"
import { decodePgoutput, type PgoutputProtocolVersion, type PgoutputRelation } from "@pgfx/codec/Pgoutput"
import { fail } from "@pgfx/codec/ProtocolError"
import { TypeRegistry } from "@pgfx/codec/TypeRegistry"
import type { ValueCodec } from "@pgfx/codec/values/ValueCodec"
import type * as Event from "./ChangeEvent.ts"
import { Unchanged } from "./ChangeEvent.ts"
import type { Lsn } from "./Lsn.ts"

export interface LogicalDecoderOptions {
  /** The `proto_version` given to START_REPLICATION (1–4). */
  readonly protocolVersion: PgoutputProtocolVersion
  /** The value codecs (a fresh `TypeRegistry.make()` when omitted). */
  readonly registry?: TypeRegistry | undefined
  /** "object" (default): rows as `{ column: value }`; "array": values in column order. */
  readonly rowMode?: "object" | "array" | undefined
}

/** What the decoder keeps per relation: the public shape plus one codec per column. */
interface CachedRelation {
  readonly relation: Event.Relation
  readonly names: ReadonlyArray<string>
  readonly codecs: ReadonlyArray<ValueCodec<unknown>>
  readonly isKey: ReadonlyArray<boolean>
  readonly keyCount: number
  /** Builds a whole row object from the decoder's scratch values (one fixed shape per relation). */
  readonly makeRow: (values: ReadonlyArray<unknown>) => Record<string, unknown>
}

/**
 * A row constructor for these column names: an object literal with constant keys, so every row of a
 * relation shares one hidden class and is built without dictionary transitions. Falls back to a loop
 * where code generation is unavailable or a name would be special in a literal (`__proto__`).
 */
const rowMaker = (names: ReadonlyArray<string>): ((values: ReadonlyArray<unknown>) => Record<string, unknown>) => {
  const loop = (values: ReadonlyArray<unknown>) => {
    const row: Record<string, unknown> = {}
    for (let i = 0; i < names.length; i++) row[names[i]!] = values[i]
    return row
  }
  if (names.length > 200 || names.includes("__proto__") || new Set(names).size !== names.length) return loop
  try {
    const body = `return {${names.map((n, i) => `${JSON.stringify(n)}: v[${i}]`).join(", ")}}`
    return new Function("v", body) as (values: ReadonlyArray<unknown>) => Record<string, unknown>
  } catch {
    return loop
  }
}

export interface TypeInfo {
  readonly oid: number
  readonly schema: string
  readonly name: string
}

const INSERT = 0x49 // I
const UPDATE = 0x55 // U
const DELETE = 0x44 // D
const TUPLE_NULL = 0x6e // n
const TUPLE_UNCHANGED = 0x75 // u
const TUPLE_TEXT = 0x74 // t
const TUPLE_BINARY = 0x62 // b
const PART_KEY = 0x4b // K
const PART_OLD = 0x4f // O
const PART_NEW = 0x4e // N

const ZERO = 0n as Lsn
const lsnOf = (v: bigint): Lsn => v as Lsn

export class LogicalDecoder {
  readonly protocolVersion: PgoutputProtocolVersion
  readonly registry: TypeRegistry
  readonly rowMode: "object" | "array"
  /** True between Stream Start and Stream Stop. */
  inStream = false
  /** The xid of the streamed block in progress (valid while `inStream`). */
  streamXid = 0
  /** The xid of the transaction in progress (Begin / Begin Prepare), undefined between transactions. */
  transactionXid: number | undefined = undefined
  private readonly relations = new Map<number, CachedRelation>()
  private readonly types = new Map<number, TypeInfo>()
  // Cursor of the row fast path (kept on the instance so tuple reads need no result object).
  private buf: Uint8Array = new Uint8Array(0)
  private pos = 0
  private end = 0
  private messageType = "I"
  /** Values of the row being decoded (object mode), copied out by the relation's `makeRow`. */
  private readonly scratch: Array<unknown> = []

  constructor(options: LogicalDecoderOptions) {
    const v = options.protocolVersion
    if (v !== 1 && v !== 2 && v !== 3 && v !== 4) {
      fail("InvalidValue", `pgoutput protocol version must be 1–4, got ${String(v)}`)
    }
    this.protocolVersion = v
    this.registry = options.registry ?? TypeRegistry.make()
    this.rowMode = options.rowMode ?? "object"
  }

  /** The latest shape of a relation, if the server described it. */
  relation(oid: number): Event.Relation | undefined {
    return this.relations.get(oid)?.relation
  }

  /** The non-built-in types the server named (Type messages). */
  type(oid: number): TypeInfo | undefined {
    return this.types.get(oid)
  }

  /** Forgets relations, types and stream state (a new START_REPLICATION starts from scratch). */
  reset(): void {
    this.relations.clear()
    this.types.clear()
    this.inStream = false
    this.streamXid = 0
    this.transactionXid = undefined
  }

  /**
   * Decodes one pgoutput message, `buf[start, end)` (an XLogData's data); `lsn` is the XLogData's
   * WAL start, reported as the event's `lsn`.
   */
  decode(buf: Uint8Array, start: number, end: number, lsn: Lsn = ZERO): Event.ChangeEvent {
    if (start < end) {
      const type = buf[start]!
      if (type === INSERT || type === UPDATE || type === DELETE) return this.decodeRow(type, buf, start, end, lsn)
    }
    return this.decodeOther(buf, start, end, lsn)
  }

  // --- rows (the hot path) ------------------------------------------------------------------------

  private decodeRow(type: number, buf: Uint8Array, start: number, end: number, lsn: Lsn): Event.ChangeEvent {
    this.buf = buf
    this.pos = start + 1
    this.end = end
    this.messageType = String.fromCharCode(type)
    const xid = this.inStream ? this.u32() : this.transactionXid
    const oid = this.u32()
    const cached = this.relations.get(oid)
    if (cached === undefined) {
      return fail("UnexpectedMessage", `row for relation ${oid}, which the server has not described`, this.messageType, start)
    }
    let event: Event.ChangeEvent
    if (type === INSERT) {
      this.expectPart(PART_NEW)
      const row = this.tuple(cached, false)
      event = { _tag: "Insert", lsn, xid, relation: cached.relation, new: row }
    } else if (type === UPDATE) {
      let key: Event.Row | undefined
      let old: Event.Row | undefined
      let part = this.u8()
      if (part === PART_KEY) {
        key = this.tuple(cached, true)
        part = this.u8()
      } else if (part === PART_OLD) {
        old = this.tuple(cached, false)
        part = this.u8()
      }
      if (part !== PART_NEW) this.badPart(part, "'N'")
      const row = this.tuple(cached, false)
      event = { _tag: "Update", lsn, xid, relation: cached.relation, key, old, new: row }
    } else {
      const part = this.u8()
      let key: Event.Row | undefined
      let old: Event.Row | undefined
      if (part === PART_KEY) key = this.tuple(cached, true)
      else if (part === PART_OLD) old = this.tuple(cached, false)
      else this.badPart(part, "'K' or 'O'")
      event = { _tag: "Delete", lsn, xid, relation: cached.relation, key, old }
    }
    if (this.pos !== end) {
      fail("TrailingBytes", `${end - this.pos} byte(s) after the row`, this.messageType, this.pos)
    }
    return event
  }

  /** Reads one TupleData; `keysOnly` keeps the replica identity key columns only. */
  private tuple(cached: CachedRelation, keysOnly: boolean): Event.Row {
    const buf = this.buf
    const end = this.end
    let p = this.pos
    if (p + 2 > end) this.truncated(2)
    const n = (buf[p]! << 8) | buf[p + 1]!
    p += 2
    const names = cached.names
    const codecs = cached.codecs
    if (n !== names.length) {
      fail(
        "InvalidValue",
        `row has ${n} column(s), relation ${cached.relation.qualifiedName} has ${names.length}`,
        this.messageType,
        p - 2
      )
    }
    const isKey = cached.isKey
    const asArray = this.rowMode === "array"
    // Arrays are built directly; whole objects through the relation's row maker; key-only objects by hand.
    const array: Array<unknown> = asArray ? new Array(keysOnly ? cached.keyCount : n) : this.scratch
    const object: Record<string, unknown> | undefined = !asArray && keysOnly ? {} : undefined
    let k = 0
    for (let i = 0; i < n; i++) {
      if (p >= end) {
        this.pos = p
        this.truncated(1)
      }
      const kind = buf[p++]!
      let value: unknown
      if (kind === TUPLE_NULL) {
        value = null
      } else if (kind === TUPLE_TEXT || kind === TUPLE_BINARY) {
        if (p + 4 > end) {
          this.pos = p
          this.truncated(4)
        }
        const length = (buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!
        p += 4
        if (length < 0) fail("LengthOutOfRange", `column ${i} has negative length ${length}`, this.messageType, p - 4)
        const valueEnd = p + length
        if (valueEnd > end) {
          this.pos = p
          this.truncated(length)
        }
        if (keysOnly && !isKey[i]) {
          value = null
        } else if (kind === TUPLE_TEXT) {
          value = codecs[i]!.decodeText(buf, p, valueEnd)
        } else {
          const codec = codecs[i]!
          value = codec.decodeBinary === undefined ? buf.slice(p, valueEnd) : codec.decodeBinary(buf, p, valueEnd)
        }
        p = valueEnd
      } else if (kind === TUPLE_UNCHANGED) {
        value = Unchanged
      } else {
        return fail(
          "UnknownMessageType",
          `column ${i} has unknown TupleData kind '${String.fromCharCode(kind)}' (0x${kind.toString(16)})`,
          this.messageType,
          p - 1
        )
      }
      if (keysOnly && !isKey[i]) continue
      if (object !== undefined) object[names[i]!] = value
      else array[k++] = value
    }
    this.pos = p
    if (asArray) return array
    if (object !== undefined) return object
    // The scratch keeps its length (and last values) for the next row: no regrowth per row.
    return cached.makeRow(array)
  }

  private u8(): number {
    if (this.pos >= this.end) this.truncated(1)
    return this.buf[this.pos++]!
  }

  private u32(): number {
    const p = this.pos
    if (p + 4 > this.end) this.truncated(4)
    this.pos = p + 4
    const b = this.buf
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0
  }

  private expectPart(part: number): void {
    const b = this.u8()
    if (b !== part) this.badPart(b, `'${String.fromCharCode(part)}'`)
  }

  private badPart(b: number, expected: string): never {
    const known = b === PART_KEY || b === PART_OLD || b === PART_NEW
    return fail(
      known ? "UnexpectedMessage" : "UnknownMessageType",
      `expected a tuple part ${expected}, got '${String.fromCharCode(b)}' (0x${b.toString(16)})`,
      this.messageType,
      this.pos - 1
    )
  }

  private truncated(need: number): never {
    return fail(
      "Truncated",
      `needed ${need} more byte(s) at offset ${this.pos}, but the message has ${this.end - this.pos} left`,
      this.messageType,
      this.pos
    )
  }

  // --- everything else ----------------------------------------------------------------------------

  private decodeOther(buf: Uint8Array, start: number, end: number, lsn: Lsn): Event.ChangeEvent {
    const m = decodePgoutput(buf, start, end, { protocolVersion: this.protocolVersion, inStream: this.inStream })
    switch (m._tag) {
      case "PgoutputBegin":
        this.transactionXid = m.xid
        return {
          _tag: "Begin",
          lsn,
          xid: m.xid,
          finalLsn: lsnOf(m.finalLsn),
          commitTime: dateFromPgEpochMicros(m.commitTime)
        }
      case "PgoutputCommit": {
        const xid = this.transactionXid ?? 0
        this.transactionXid = undefined
        return {
          _tag: "Commit",
          lsn,
          xid,
          commitLsn: lsnOf(m.commitLsn),
          endLsn: lsnOf(m.endLsn),
          commitTime: dateFromPgEpochMicros(m.commitTime)
        }
      }
      case "PgoutputLogicalMessage":
        return {
          _tag: "Message",
          lsn,
          xid: m.xid ?? (m.transactional ? this.transactionXid : undefined),
          transactional: m.transactional,
          messageLsn: lsnOf(m.lsn),
          prefix: m.prefix,
          content: m.content.slice()
        }
      case "PgoutputOrigin":
        return { _tag: "Origin", lsn, originLsn: lsnOf(m.originLsn), name: m.name }
      case "PgoutputRelation": {
        const previous = this.relations.get(m.relationOid)?.relation
        const relation = this.cacheRelation(m)
        return { _tag: "Relation", lsn, xid: m.xid ?? this.transactionXid, relation, previous }
      }
      case "PgoutputType": {
        const schema = m.namespace === "" ? "pg_catalog" : m.namespace
        this.types.set(m.typeOid, { oid: m.typeOid, schema, name: m.name })
        return { _tag: "Type", lsn, xid: m.xid ?? this.transactionXid, typeOid: m.typeOid, schema, name: m.name }
      }
      case "PgoutputTruncate": {
        const relations = m.relationOids.map((oid) => {
          const cached = this.relations.get(oid)
          return cached === undefined
            ? fail("UnexpectedMessage", `truncate of relation ${oid}, which the server has not described`, "T", start)
            : cached.relation
        })
        return {
          _tag: "Truncate",
          lsn,
          xid: m.xid ?? this.transactionXid,
          relations,
          cascade: m.cascade,
          restartIdentity: m.restartIdentity
        }
      }
      case "PgoutputStreamStart":
        this.inStream = true
        this.streamXid = m.xid
        return { _tag: "StreamStart", lsn, xid: m.xid, firstSegment: m.firstSegment }
      case "PgoutputStreamStop":
        this.inStream = false
        return { _tag: "StreamStop", lsn, xid: this.streamXid }
      case "PgoutputStreamCommit":
        return {
          _tag: "StreamCommit",
          lsn,
          xid: m.xid,
          commitLsn: lsnOf(m.commitLsn),
          endLsn: lsnOf(m.endLsn),
          commitTime: dateFromPgEpochMicros(m.commitTime)
        }
      case "PgoutputStreamAbort":
        return {
          _tag: "StreamAbort",
          lsn,
          xid: m.xid,
          subXid: m.subXid,
          abortLsn: m.abortLsn === undefined ? undefined : lsnOf(m.abortLsn),
          abortTime: m.abortTime === undefined ? undefined : dateFromPgEpochMicros(m.abortTime)
        }
      case "PgoutputBeginPrepare":
        this.transactionXid = m.xid
        return { _tag: "BeginPrepare", lsn, ...preparedFields(m) }
      case "PgoutputPrepare":
        this.transactionXid = undefined
        return { _tag: "Prepare", lsn, ...preparedFields(m) }
      case "PgoutputStreamPrepare":
        return { _tag: "StreamPrepare", lsn, ...preparedFields(m) }
      case "PgoutputCommitPrepared":
        return {
          _tag: "CommitPrepared",
          lsn,
          xid: m.xid,
          gid: m.gid,
          commitLsn: lsnOf(m.commitLsn),
          endLsn: lsnOf(m.endLsn),
          commitTime: dateFromPgEpochMicros(m.commitTime)
        }
      case "PgoutputRollbackPrepared":
        return {
          _tag: "RollbackPrepared",
          lsn,
          xid: m.xid,
          gid: m.gid,
          prepareEndLsn: lsnOf(m.prepareEndLsn),
          rollbackEndLsn: lsnOf(m.rollbackEndLsn),
          prepareTime: dateFromPgEpochMicros(m.prepareTime),
          rollbackTime: dateFromPgEpochMicros(m.rollbackTime)
        }
      case "PgoutputInsert":
      case "PgoutputUpdate":
      case "PgoutputDelete":
        // Unreachable: `decode` sends these to the fast path.
        return fail("UnexpectedMessage", "row message outside the row path", undefined, start)
    }
  }

  private cacheRelation(m: PgoutputRelation): Event.Relation {
    const schema = m.namespace === "" ? "pg_catalog" : m.namespace
    const columns: Array<Event.RelationColumn> = m.columns.map((c) => ({
      name: c.name,
      typeOid: c.typeOid,
      typeModifier: c.typeModifier,
      isKey: c.isKey
    }))
    const relation: Event.Relation = {
      oid: m.relationOid,
      schema,
      name: m.name,
      qualifiedName: `${schema}.${m.name}`,
      replicaIdentity: m.replicaIdentity,
      columns
    }
    const isKey = columns.map((c) => c.isKey)
    const names = columns.map((c) => c.name)
    this.relations.set(m.relationOid, {
      relation,
      names,
      makeRow: rowMaker(names),
      codecs: columns.map((c) => this.registry.get(c.typeOid)),
      isKey,
      keyCount: isKey.filter((k) => k).length
    })
    return relation
  }
}

const preparedFields = (m: {
  readonly prepareLsn: bigint
  readonly endLsn: bigint
  readonly prepareTime: bigint
  readonly xid: number
  readonly gid: string
}) => ({
  xid: m.xid,
  gid: m.gid,
  prepareLsn: lsnOf(m.prepareLsn),
  endLsn: lsnOf(m.endLsn),
  prepareTime: dateFromPgEpochMicros(m.prepareTime)
})
