/**
 * The logical replication message formats of the `pgoutput` plugin (54.9), protocol versions 1–4:
 * the bytes inside each XLogData of a `START_REPLICATION SLOT … LOGICAL` stream (or a row of
 * `pg_logical_slot_get_binary_changes`).
 *
 * Naming: every model's tag is "Pgoutput" + the spec's message name ("PgoutputBegin",
 * "PgoutputInsert", "PgoutputStreamAbort", …); the spec's "Message" ('M', pg_logical_emit_message)
 * is "PgoutputLogicalMessage", since `PgoutputMessage` is the union of all of them.
 *
 * Invariants:
 * - One decoder for every version: the protocol version and whether we are between Stream Start and
 *   Stream Stop are a `PgoutputContext` parameter, not separate types. In a stream, Insert, Update,
 *   Delete, Truncate, Relation, Type and (transactional) Message carry a leading xid, decoded into the
 *   optional `xid` field; outside a stream `xid` is `undefined`.
 * - Optional fields (`xid`, `oldKey`, `oldTuple`, `abortLsn`, `abortTime`) are always present as keys
 *   on decoded objects (`undefined` when absent), so every message of one kind has one shape.
 * - A message the negotiated version does not define (Stream * before v2, two-phase before v3), or one
 *   that cannot occur in the current stream state (Begin inside a stream, Stream Stop outside one), is
 *   ProtocolError "UnexpectedMessage"; an undefined type byte or TupleData/old-tuple tag is
 *   "UnknownMessageType"; counts are checked against the bytes left before anything is allocated
 *   (`count16`/`count32`), column lengths are bounded by the message, trailing bytes are refused.
 * - Column values stay bytes (views into the input, no copy): 'n' → `{ kind: "null" }`, 'u' →
 *   `{ kind: "unchanged" }` (an unchanged TOASTed value, never confused with null), 't' → text bytes,
 *   'b' → binary bytes. Typed decoding happens in the replication package.
 * - Stream Abort's v4 fields (abort LSN and time) are sent only when `streaming = parallel`; the
 *   decoder tells the two layouts apart by the message length (0 or exactly 16 bytes after the xids).
 * - LSNs are unsigned 64-bit `bigint`, timestamps signed 64-bit `bigint` microseconds since
 *   2000-01-01, xids and OIDs unsigned 32-bit `number`.
 */
import * as Schema from "effect/Schema"
import { fail } from "./ProtocolError.ts"
import { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"

// --- context --------------------------------------------------------------------------------------

export type PgoutputProtocolVersion = 1 | 2 | 3 | 4

export interface PgoutputContext {
  /** The `proto_version` given to START_REPLICATION. */
  readonly protocolVersion: PgoutputProtocolVersion
  /** True between Stream Start and Stream Stop: row, relation, type and message carry an xid. */
  readonly inStream: boolean
}

// --- TupleData ------------------------------------------------------------------------------------

export const TupleNull = Schema.Struct({ kind: Schema.Literal("null") })
/** An unchanged TOASTed value: the server did not send it; the subscriber keeps what it has. */
export const TupleUnchanged = Schema.Struct({ kind: Schema.Literal("unchanged") })
export const TupleText = Schema.Struct({ kind: Schema.Literal("text"), value: Schema.Uint8Array })
export const TupleBinary = Schema.Struct({ kind: Schema.Literal("binary"), value: Schema.Uint8Array })
export const TupleColumn = Schema.Union([TupleNull, TupleUnchanged, TupleText, TupleBinary])
export type TupleColumn = typeof TupleColumn.Type
export const TupleData = Schema.Array(TupleColumn)
export type TupleData = typeof TupleData.Type

// Shared, frozen: a row of nulls costs no allocation per column.
const NULL_COLUMN: TupleColumn = Object.freeze({ kind: "null" as const })
const UNCHANGED_COLUMN: TupleColumn = Object.freeze({ kind: "unchanged" as const })

// --- models ---------------------------------------------------------------------------------------

const Lsn = Schema.BigInt
const Timestamp = Schema.BigInt
const Xid = Schema.Number
const Oid = Schema.Number
const StreamXid = Schema.optional(Schema.Number)

/** 'B': a transaction starts. */
export const PgoutputBegin = Schema.TaggedStruct("PgoutputBegin", {
  finalLsn: Lsn,
  commitTime: Timestamp,
  xid: Xid
})
export type PgoutputBegin = typeof PgoutputBegin.Type

/** 'M': a `pg_logical_emit_message` message. */
export const PgoutputLogicalMessage = Schema.TaggedStruct("PgoutputLogicalMessage", {
  xid: StreamXid,
  transactional: Schema.Boolean,
  lsn: Lsn,
  prefix: Schema.String,
  content: Schema.Uint8Array
})
export type PgoutputLogicalMessage = typeof PgoutputLogicalMessage.Type

/** 'C': a transaction commits. */
export const PgoutputCommit = Schema.TaggedStruct("PgoutputCommit", {
  commitLsn: Lsn,
  endLsn: Lsn,
  commitTime: Timestamp
})
export type PgoutputCommit = typeof PgoutputCommit.Type

/** 'O': the transaction came from another node (cascaded setups). */
export const PgoutputOrigin = Schema.TaggedStruct("PgoutputOrigin", {
  originLsn: Lsn,
  name: Schema.String
})
export type PgoutputOrigin = typeof PgoutputOrigin.Type

export const ReplicaIdentity = Schema.Literals(["default", "nothing", "full", "index"])
export type ReplicaIdentity = typeof ReplicaIdentity.Type

export const PgoutputRelationColumn = Schema.Struct({
  /** Part of the replica identity key. */
  isKey: Schema.Boolean,
  name: Schema.String,
  typeOid: Oid,
  typeModifier: Schema.Number
})
export type PgoutputRelationColumn = typeof PgoutputRelationColumn.Type

/** 'R': the shape of a relation, sent before its first row and after every change to it. */
export const PgoutputRelation = Schema.TaggedStruct("PgoutputRelation", {
  xid: StreamXid,
  relationOid: Oid,
  /** Empty for pg_catalog. */
  namespace: Schema.String,
  name: Schema.String,
  replicaIdentity: ReplicaIdentity,
  columns: Schema.Array(PgoutputRelationColumn)
})
export type PgoutputRelation = typeof PgoutputRelation.Type

/** 'Y': names a non-built-in type before a Relation uses its OID. */
export const PgoutputType = Schema.TaggedStruct("PgoutputType", {
  xid: StreamXid,
  typeOid: Oid,
  namespace: Schema.String,
  name: Schema.String
})
export type PgoutputType = typeof PgoutputType.Type

/** 'I' */
export const PgoutputInsert = Schema.TaggedStruct("PgoutputInsert", {
  xid: StreamXid,
  relationOid: Oid,
  newTuple: TupleData
})
export type PgoutputInsert = typeof PgoutputInsert.Type

/**
 * 'U': `oldKey` ('K') when the replica identity key changed, `oldTuple` ('O') under REPLICA
 * IDENTITY FULL, never both.
 */
export const PgoutputUpdate = Schema.TaggedStruct("PgoutputUpdate", {
  xid: StreamXid,
  relationOid: Oid,
  oldKey: Schema.optional(TupleData),
  oldTuple: Schema.optional(TupleData),
  newTuple: TupleData
})
export type PgoutputUpdate = typeof PgoutputUpdate.Type

/** 'D': exactly one of `oldKey` ('K') and `oldTuple` ('O'). */
export const PgoutputDelete = Schema.TaggedStruct("PgoutputDelete", {
  xid: StreamXid,
  relationOid: Oid,
  oldKey: Schema.optional(TupleData),
  oldTuple: Schema.optional(TupleData)
})
export type PgoutputDelete = typeof PgoutputDelete.Type

/** 'T' */
export const PgoutputTruncate = Schema.TaggedStruct("PgoutputTruncate", {
  xid: StreamXid,
  cascade: Schema.Boolean,
  restartIdentity: Schema.Boolean,
  relationOids: Schema.Array(Oid)
})
export type PgoutputTruncate = typeof PgoutputTruncate.Type

/** 'S' (v2+): a block of a large in-progress transaction starts. */
export const PgoutputStreamStart = Schema.TaggedStruct("PgoutputStreamStart", {
  xid: Xid,
  /** The first block of this xid. */
  firstSegment: Schema.Boolean
})
export type PgoutputStreamStart = typeof PgoutputStreamStart.Type

/** 'E' (v2+) */
export const PgoutputStreamStop = Schema.TaggedStruct("PgoutputStreamStop", {})
export type PgoutputStreamStop = typeof PgoutputStreamStop.Type

/** 'c' (v2+) */
export const PgoutputStreamCommit = Schema.TaggedStruct("PgoutputStreamCommit", {
  xid: Xid,
  commitLsn: Lsn,
  endLsn: Lsn,
  commitTime: Timestamp
})
export type PgoutputStreamCommit = typeof PgoutputStreamCommit.Type

/** 'A' (v2+); `abortLsn`/`abortTime` only in v4 with `streaming = parallel` (both or neither). */
export const PgoutputStreamAbort = Schema.TaggedStruct("PgoutputStreamAbort", {
  xid: Xid,
  /** Equal to `xid` when the whole transaction aborts. */
  subXid: Xid,
  abortLsn: Schema.optional(Lsn),
  abortTime: Schema.optional(Timestamp)
})
export type PgoutputStreamAbort = typeof PgoutputStreamAbort.Type

const preparedFields = {
  prepareLsn: Lsn,
  endLsn: Lsn,
  prepareTime: Timestamp,
  xid: Xid,
  gid: Schema.String
}

/** 'b' (v3+) */
export const PgoutputBeginPrepare = Schema.TaggedStruct("PgoutputBeginPrepare", preparedFields)
export type PgoutputBeginPrepare = typeof PgoutputBeginPrepare.Type

/** 'P' (v3+) */
export const PgoutputPrepare = Schema.TaggedStruct("PgoutputPrepare", preparedFields)
export type PgoutputPrepare = typeof PgoutputPrepare.Type

/** 'K' (v3+) */
export const PgoutputCommitPrepared = Schema.TaggedStruct("PgoutputCommitPrepared", {
  commitLsn: Lsn,
  endLsn: Lsn,
  commitTime: Timestamp,
  xid: Xid,
  gid: Schema.String
})
export type PgoutputCommitPrepared = typeof PgoutputCommitPrepared.Type

/** 'r' (v3+) */
export const PgoutputRollbackPrepared = Schema.TaggedStruct("PgoutputRollbackPrepared", {
  prepareEndLsn: Lsn,
  rollbackEndLsn: Lsn,
  prepareTime: Timestamp,
  rollbackTime: Timestamp,
  xid: Xid,
  gid: Schema.String
})
export type PgoutputRollbackPrepared = typeof PgoutputRollbackPrepared.Type

/** 'p' (v3+) */
export const PgoutputStreamPrepare = Schema.TaggedStruct("PgoutputStreamPrepare", preparedFields)
export type PgoutputStreamPrepare = typeof PgoutputStreamPrepare.Type

export const PgoutputMessage = Schema.Union([
  PgoutputBegin,
  PgoutputLogicalMessage,
  PgoutputCommit,
  PgoutputOrigin,
  PgoutputRelation,
  PgoutputType,
  PgoutputInsert,
  PgoutputUpdate,
  PgoutputDelete,
  PgoutputTruncate,
  PgoutputStreamStart,
  PgoutputStreamStop,
  PgoutputStreamCommit,
  PgoutputStreamAbort,
  PgoutputBeginPrepare,
  PgoutputPrepare,
  PgoutputCommitPrepared,
  PgoutputRollbackPrepared,
  PgoutputStreamPrepare
])
export type PgoutputMessage = typeof PgoutputMessage.Type

// --- message table --------------------------------------------------------------------------------

/**
 * Per tag: its type byte, the first protocol version that defines it, and where it may appear:
 * "any" (inside or outside a stream), "outside" (never between Stream Start and Stop), "inside".
 */
const MESSAGE_INFO: {
  readonly [K in PgoutputMessage["_tag"]]: {
    readonly type: number
    readonly since: PgoutputProtocolVersion
    readonly where: "any" | "outside" | "inside"
  }
} = {
  PgoutputBegin: { type: 0x42, since: 1, where: "outside" }, // B
  PgoutputLogicalMessage: { type: 0x4d, since: 1, where: "any" }, // M
  PgoutputCommit: { type: 0x43, since: 1, where: "outside" }, // C
  PgoutputOrigin: { type: 0x4f, since: 1, where: "any" }, // O
  PgoutputRelation: { type: 0x52, since: 1, where: "any" }, // R
  PgoutputType: { type: 0x59, since: 1, where: "any" }, // Y
  PgoutputInsert: { type: 0x49, since: 1, where: "any" }, // I
  PgoutputUpdate: { type: 0x55, since: 1, where: "any" }, // U
  PgoutputDelete: { type: 0x44, since: 1, where: "any" }, // D
  PgoutputTruncate: { type: 0x54, since: 1, where: "any" }, // T
  PgoutputStreamStart: { type: 0x53, since: 2, where: "outside" }, // S
  PgoutputStreamStop: { type: 0x45, since: 2, where: "inside" }, // E
  PgoutputStreamCommit: { type: 0x63, since: 2, where: "outside" }, // c
  PgoutputStreamAbort: { type: 0x41, since: 2, where: "outside" }, // A
  PgoutputBeginPrepare: { type: 0x62, since: 3, where: "outside" }, // b
  PgoutputPrepare: { type: 0x50, since: 3, where: "outside" }, // P
  PgoutputCommitPrepared: { type: 0x4b, since: 3, where: "outside" }, // K
  PgoutputRollbackPrepared: { type: 0x72, since: 3, where: "outside" }, // r
  PgoutputStreamPrepare: { type: 0x70, since: 3, where: "outside" } // p
}

/** The tag of each type byte (index = byte). */
const TAG_BY_TYPE: Array<PgoutputMessage["_tag"] | undefined> = new Array(256).fill(undefined)
for (const [tag, info] of Object.entries(MESSAGE_INFO)) TAG_BY_TYPE[info.type] = tag as PgoutputMessage["_tag"]

/** The one-character type byte of a message tag, e.g. "B" for "PgoutputBegin". */
export const pgoutputMessageType = (tag: PgoutputMessage["_tag"]): string => String.fromCharCode(MESSAGE_INFO[tag].type)

const checkLegal = (tag: PgoutputMessage["_tag"], context: PgoutputContext, offset: number | undefined): void => {
  const info = MESSAGE_INFO[tag]
  const type = String.fromCharCode(info.type)
  if (context.protocolVersion < info.since) {
    fail(
      "UnexpectedMessage",
      `${tag} ('${type}') requires pgoutput protocol version ${info.since}, but version ${context.protocolVersion} was negotiated`,
      type,
      offset
    )
  }
  if (info.where === "outside" && context.inStream) {
    fail("UnexpectedMessage", `${tag} ('${type}') cannot appear between Stream Start and Stream Stop`, type, offset)
  }
  if (info.where === "inside" && !context.inStream) {
    fail("UnexpectedMessage", `${tag} ('${type}') outside a streamed block`, type, offset)
  }
}

const checkContext = (context: PgoutputContext, offset: number | undefined): void => {
  if (context.inStream && context.protocolVersion < 2) {
    fail("UnexpectedMessage", "streamed transactions require pgoutput protocol version 2", undefined, offset)
  }
}

// --- decoding -------------------------------------------------------------------------------------

const TUPLE_NULL = 0x6e // n
const TUPLE_UNCHANGED = 0x75 // u
const TUPLE_TEXT = 0x74 // t
const TUPLE_BINARY = 0x62 // b
const PART_KEY = 0x4b // K
const PART_OLD = 0x4f // O
const PART_NEW = 0x4e // N

const charOf = (b: number): string => String.fromCharCode(b)

const decodeTupleData = (r: Reader): TupleData => {
  // Every column takes at least its kind byte.
  const n = r.count16(1, "column count")
  const columns: Array<TupleColumn> = new Array(n)
  for (let i = 0; i < n; i++) {
    const at = r.pos
    const kind = r.u8()
    switch (kind) {
      case TUPLE_NULL:
        columns[i] = NULL_COLUMN
        break
      case TUPLE_UNCHANGED:
        columns[i] = UNCHANGED_COLUMN
        break
      case TUPLE_TEXT:
      case TUPLE_BINARY: {
        const lengthAt = r.pos
        const length = r.i32()
        if (length < 0) fail("LengthOutOfRange", `column ${i} has negative length ${length}`, r.messageType, lengthAt)
        const value = r.bytes(length)
        columns[i] = kind === TUPLE_TEXT ? { kind: "text", value } : { kind: "binary", value }
        break
      }
      default:
        fail(
          "UnknownMessageType",
          `column ${i} has unknown TupleData kind '${charOf(kind)}' (0x${kind.toString(16)})`,
          r.messageType,
          at
        )
    }
  }
  return columns
}

/** Reads a tuple-part tag ('K', 'O', 'N') and fails unless it is one of `allowed`. */
const readPart = (r: Reader, allowed: string): number => {
  const at = r.pos
  const b = r.u8()
  if (allowed.indexOf(charOf(b)) === -1) {
    const known = b === PART_KEY || b === PART_OLD || b === PART_NEW
    fail(
      known ? "UnexpectedMessage" : "UnknownMessageType",
      `expected a tuple part ${allowed.split("").map((c) => `'${c}'`).join(" or ")}, got '${charOf(b)}' (0x${
        b.toString(16)
      })`,
      r.messageType,
      at
    )
  }
  return b
}

const decodeReplicaIdentity = (r: Reader): ReplicaIdentity => {
  const at = r.pos
  const b = r.u8()
  switch (b) {
    case 0x64: // d
      return "default"
    case 0x6e: // n
      return "nothing"
    case 0x66: // f
      return "full"
    case 0x69: // i
      return "index"
  }
  return r.invalid(`unknown replica identity '${charOf(b)}' (0x${b.toString(16)})`, at)
}

const replicaIdentityByte = (ri: ReplicaIdentity): number => {
  switch (ri) {
    case "default":
      return 0x64
    case "nothing":
      return 0x6e
    case "full":
      return 0x66
    case "index":
      return 0x69
  }
}

/**
 * Decodes one pgoutput message from `buf[start, end)` (the `data` of an XLogData). The caller keeps
 * the stream state: it sets `inStream` after a Stream Start and clears it after a Stream Stop.
 */
export const decodePgoutput = (
  buf: Uint8Array,
  start: number,
  end: number,
  context: PgoutputContext
): PgoutputMessage => {
  checkContext(context, start)
  if (start >= end) return fail("Truncated", "empty pgoutput message", undefined, start)
  const type = buf[start]!
  const tag = TAG_BY_TYPE[type]
  if (tag === undefined) {
    return fail(
      "UnknownMessageType",
      `unknown pgoutput message '${charOf(type)}' (0x${type.toString(16)})`,
      charOf(type),
      start
    )
  }
  checkLegal(tag, context, start)
  const r = new Reader(buf, start + 1, end, charOf(type))
  const inStream = context.inStream
  let m: PgoutputMessage
  switch (tag) {
    case "PgoutputBegin": {
      const finalLsn = r.u64()
      const commitTime = r.i64()
      const xid = r.u32()
      m = { _tag: tag, finalLsn, commitTime, xid }
      break
    }
    case "PgoutputLogicalMessage": {
      const xid = inStream ? r.u32() : undefined
      const transactional = (r.u8() & 1) !== 0
      const lsn = r.u64()
      const prefix = r.cstring()
      const lengthAt = r.pos
      const length = r.i32()
      if (length < 0) fail("LengthOutOfRange", `negative content length ${length}`, r.messageType, lengthAt)
      const content = r.bytes(length)
      m = { _tag: tag, xid, transactional, lsn, prefix, content }
      break
    }
    case "PgoutputCommit": {
      r.u8() // flags, unused
      const commitLsn = r.u64()
      const endLsn = r.u64()
      const commitTime = r.i64()
      m = { _tag: tag, commitLsn, endLsn, commitTime }
      break
    }
    case "PgoutputOrigin": {
      const originLsn = r.u64()
      const name = r.cstring()
      m = { _tag: tag, originLsn, name }
      break
    }
    case "PgoutputRelation": {
      const xid = inStream ? r.u32() : undefined
      const relationOid = r.u32()
      const namespace = r.cstring()
      const name = r.cstring()
      const replicaIdentity = decodeReplicaIdentity(r)
      // flags (1) + name (≥ 1, its NUL) + type OID (4) + typmod (4)
      const n = r.count16(10, "column count")
      const columns: Array<PgoutputRelationColumn> = new Array(n)
      for (let i = 0; i < n; i++) {
        const isKey = (r.u8() & 1) !== 0
        const columnName = r.cstring()
        const typeOid = r.u32()
        const typeModifier = r.i32()
        columns[i] = { isKey, name: columnName, typeOid, typeModifier }
      }
      m = { _tag: tag, xid, relationOid, namespace, name, replicaIdentity, columns }
      break
    }
    case "PgoutputType": {
      const xid = inStream ? r.u32() : undefined
      const typeOid = r.u32()
      const namespace = r.cstring()
      const name = r.cstring()
      m = { _tag: tag, xid, typeOid, namespace, name }
      break
    }
    case "PgoutputInsert": {
      const xid = inStream ? r.u32() : undefined
      const relationOid = r.u32()
      readPart(r, "N")
      const newTuple = decodeTupleData(r)
      m = { _tag: tag, xid, relationOid, newTuple }
      break
    }
    case "PgoutputUpdate": {
      const xid = inStream ? r.u32() : undefined
      const relationOid = r.u32()
      let oldKey: TupleData | undefined
      let oldTuple: TupleData | undefined
      const part = readPart(r, "KON")
      if (part !== PART_NEW) {
        const old = decodeTupleData(r)
        if (part === PART_KEY) oldKey = old
        else oldTuple = old
        readPart(r, "N")
      }
      const newTuple = decodeTupleData(r)
      m = { _tag: tag, xid, relationOid, oldKey, oldTuple, newTuple }
      break
    }
    case "PgoutputDelete": {
      const xid = inStream ? r.u32() : undefined
      const relationOid = r.u32()
      const part = readPart(r, "KO")
      const old = decodeTupleData(r)
      m = part === PART_KEY
        ? { _tag: tag, xid, relationOid, oldKey: old, oldTuple: undefined }
        : { _tag: tag, xid, relationOid, oldKey: undefined, oldTuple: old }
      break
    }
    case "PgoutputTruncate": {
      const xid = inStream ? r.u32() : undefined
      const n = r.count32(4, "relation count")
      const options = r.u8()
      const relationOids: Array<number> = new Array(n)
      for (let i = 0; i < n; i++) relationOids[i] = r.u32()
      m = { _tag: tag, xid, cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0, relationOids }
      break
    }
    case "PgoutputStreamStart": {
      const xid = r.u32()
      const at = r.pos
      const first = r.u8()
      if (first > 1) r.invalid(`first-segment flag must be 0 or 1, got ${first}`, at)
      m = { _tag: tag, xid, firstSegment: first === 1 }
      break
    }
    case "PgoutputStreamStop":
      m = STREAM_STOP
      break
    case "PgoutputStreamCommit": {
      const xid = r.u32()
      r.u8() // flags, unused
      const commitLsn = r.u64()
      const endLsn = r.u64()
      const commitTime = r.i64()
      m = { _tag: tag, xid, commitLsn, endLsn, commitTime }
      break
    }
    case "PgoutputStreamAbort": {
      const xid = r.u32()
      const subXid = r.u32()
      let abortLsn: bigint | undefined
      let abortTime: bigint | undefined
      // v4 with streaming = parallel appends the abort LSN and time; otherwise nothing follows.
      if (context.protocolVersion >= 4 && r.remaining > 0) {
        abortLsn = r.u64()
        abortTime = r.i64()
      }
      m = { _tag: tag, xid, subXid, abortLsn, abortTime }
      break
    }
    case "PgoutputBeginPrepare":
    case "PgoutputPrepare":
    case "PgoutputStreamPrepare": {
      if (tag !== "PgoutputBeginPrepare") r.u8() // flags, unused
      const prepareLsn = r.u64()
      const endLsn = r.u64()
      const prepareTime = r.i64()
      const xid = r.u32()
      const gid = r.cstring()
      m = { _tag: tag, prepareLsn, endLsn, prepareTime, xid, gid }
      break
    }
    case "PgoutputCommitPrepared": {
      r.u8() // flags, unused
      const commitLsn = r.u64()
      const endLsn = r.u64()
      const commitTime = r.i64()
      const xid = r.u32()
      const gid = r.cstring()
      m = { _tag: tag, commitLsn, endLsn, commitTime, xid, gid }
      break
    }
    case "PgoutputRollbackPrepared": {
      r.u8() // flags, unused
      const prepareEndLsn = r.u64()
      const rollbackEndLsn = r.u64()
      const prepareTime = r.i64()
      const rollbackTime = r.i64()
      const xid = r.u32()
      const gid = r.cstring()
      m = { _tag: tag, prepareEndLsn, rollbackEndLsn, prepareTime, rollbackTime, xid, gid }
      break
    }
  }
  r.done()
  return m
}

const STREAM_STOP: PgoutputStreamStop = Object.freeze({ _tag: "PgoutputStreamStop" as const })

// --- encoding -------------------------------------------------------------------------------------

const encodeTupleData = (w: Writer, columns: TupleData): void => {
  w.i16(columns.length)
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i]!
    switch (c.kind) {
      case "null":
        w.u8(TUPLE_NULL)
        break
      case "unchanged":
        w.u8(TUPLE_UNCHANGED)
        break
      case "text":
        w.u8(TUPLE_TEXT).i32(c.value.length).bytes(c.value)
        break
      case "binary":
        w.u8(TUPLE_BINARY).i32(c.value.length).bytes(c.value)
        break
    }
  }
}

/** Writes the xid a streamed row/relation/type/message carries, and checks it is there exactly when streaming. */
const encodeStreamXid = (w: Writer, tag: string, xid: number | undefined, inStream: boolean): void => {
  if (inStream) {
    if (xid === undefined) fail("EncodeInvalid", `${tag} inside a stream needs an xid`)
    w.u32(xid!)
  } else if (xid !== undefined) {
    fail("EncodeInvalid", `${tag} outside a stream carries no xid, got ${xid}`)
  }
}

/**
 * Writes one pgoutput message (the XLogData `data`, no framing). Refuses, as ProtocolError,
 * what `decodePgoutput` would refuse under the same context: a message the version or stream state
 * does not allow ("UnexpectedMessage"), and inconsistent optional parts ("EncodeInvalid").
 */
export const encodePgoutput = (w: Writer, m: PgoutputMessage, context: PgoutputContext): void => {
  checkContext(context, undefined)
  checkLegal(m._tag, context, undefined)
  const inStream = context.inStream
  w.u8(MESSAGE_INFO[m._tag].type)
  switch (m._tag) {
    case "PgoutputBegin":
      w.u64(m.finalLsn).i64(m.commitTime).u32(m.xid)
      return
    case "PgoutputLogicalMessage":
      encodeStreamXid(w, m._tag, m.xid, inStream)
      w.u8(m.transactional ? 1 : 0).u64(m.lsn).cstring(m.prefix).i32(m.content.length).bytes(m.content)
      return
    case "PgoutputCommit":
      w.u8(0).u64(m.commitLsn).u64(m.endLsn).i64(m.commitTime)
      return
    case "PgoutputOrigin":
      w.u64(m.originLsn).cstring(m.name)
      return
    case "PgoutputRelation":
      encodeStreamXid(w, m._tag, m.xid, inStream)
      w.u32(m.relationOid).cstring(m.namespace).cstring(m.name).u8(replicaIdentityByte(m.replicaIdentity))
      w.i16(m.columns.length)
      for (const c of m.columns) w.u8(c.isKey ? 1 : 0).cstring(c.name).u32(c.typeOid).i32(c.typeModifier)
      return
    case "PgoutputType":
      encodeStreamXid(w, m._tag, m.xid, inStream)
      w.u32(m.typeOid).cstring(m.namespace).cstring(m.name)
      return
    case "PgoutputInsert":
      encodeStreamXid(w, m._tag, m.xid, inStream)
      w.u32(m.relationOid).u8(PART_NEW)
      encodeTupleData(w, m.newTuple)
      return
    case "PgoutputUpdate":
      encodeStreamXid(w, m._tag, m.xid, inStream)
      w.u32(m.relationOid)
      if (m.oldKey !== undefined && m.oldTuple !== undefined) {
        fail("EncodeInvalid", "an Update carries an old key or an old tuple, never both")
      }
      if (m.oldKey !== undefined) {
        w.u8(PART_KEY)
        encodeTupleData(w, m.oldKey)
      } else if (m.oldTuple !== undefined) {
        w.u8(PART_OLD)
        encodeTupleData(w, m.oldTuple)
      }
      w.u8(PART_NEW)
      encodeTupleData(w, m.newTuple)
      return
    case "PgoutputDelete":
      encodeStreamXid(w, m._tag, m.xid, inStream)
      w.u32(m.relationOid)
      if ((m.oldKey === undefined) === (m.oldTuple === undefined)) {
        fail("EncodeInvalid", "a Delete carries exactly one of an old key and an old tuple")
      }
      if (m.oldKey !== undefined) {
        w.u8(PART_KEY)
        encodeTupleData(w, m.oldKey)
      } else {
        w.u8(PART_OLD)
        encodeTupleData(w, m.oldTuple!)
      }
      return
    case "PgoutputTruncate":
      encodeStreamXid(w, m._tag, m.xid, inStream)
      w.i32(m.relationOids.length).u8((m.cascade ? 1 : 0) | (m.restartIdentity ? 2 : 0))
      for (const oid of m.relationOids) w.u32(oid)
      return
    case "PgoutputStreamStart":
      w.u32(m.xid).u8(m.firstSegment ? 1 : 0)
      return
    case "PgoutputStreamStop":
      return
    case "PgoutputStreamCommit":
      w.u32(m.xid).u8(0).u64(m.commitLsn).u64(m.endLsn).i64(m.commitTime)
      return
    case "PgoutputStreamAbort":
      w.u32(m.xid).u32(m.subXid)
      if ((m.abortLsn === undefined) !== (m.abortTime === undefined)) {
        fail("EncodeInvalid", "a Stream Abort carries both the abort LSN and time, or neither")
      }
      if (m.abortLsn !== undefined) {
        if (context.protocolVersion < 4) {
          fail("EncodeInvalid", "the abort LSN and time of a Stream Abort need protocol version 4")
        }
        w.u64(m.abortLsn).i64(m.abortTime!)
      }
      return
    case "PgoutputBeginPrepare":
      w.u64(m.prepareLsn).u64(m.endLsn).i64(m.prepareTime).u32(m.xid).cstring(m.gid)
      return
    case "PgoutputPrepare":
    case "PgoutputStreamPrepare":
      w.u8(0).u64(m.prepareLsn).u64(m.endLsn).i64(m.prepareTime).u32(m.xid).cstring(m.gid)
      return
    case "PgoutputCommitPrepared":
      w.u8(0).u64(m.commitLsn).u64(m.endLsn).i64(m.commitTime).u32(m.xid).cstring(m.gid)
      return
    case "PgoutputRollbackPrepared":
      w.u8(0).u64(m.prepareEndLsn).u64(m.rollbackEndLsn).i64(m.prepareTime).i64(m.rollbackTime).u32(m.xid).cstring(
        m.gid
      )
      return
  }
}
