/**
 * The streaming replication sub-protocol (54.4): the payloads carried inside CopyData once
 * START_REPLICATION has put the connection in CopyBoth mode.
 *
 * Server → client: XLogData ('w'), PrimaryKeepalive ('k').
 * Client → server: StandbyStatusUpdate ('r'), HotStandbyFeedback ('h').
 *
 * Invariants:
 * - Decoders read exactly the payload range `[start, end)` they are given (the CopyData body) and
 *   reject trailing bytes; an unknown leading byte is ProtocolError "UnknownMessageType".
 * - `XLogData.data` is a view into the input buffer (no copy); it stays valid because the framer never
 *   rewrites bytes it handed out.
 * - LSNs are unsigned 64-bit (`bigint`), timestamps signed 64-bit microseconds since 2000-01-01
 *   (`bigint`), xids and epochs unsigned 32-bit (`number`).
 * - The payload encoders write only the payload; `encodeCopyDataReplication` writes the whole CopyData
 *   'd' frame around a client message, so the connection need not copy it into a second frame.
 */
import * as Schema from "effect/Schema"
import { fail } from "./ProtocolError.ts"
import { Reader } from "./internal/Reader.ts"
import type { Writer } from "./internal/Writer.ts"

// --- models ---------------------------------------------------------------------------------------

/** 'w': a section of the WAL stream (for logical replication: one output plugin message). */
export const XLogData = Schema.TaggedStruct("XLogData", {
  walStart: Schema.BigInt,
  walEnd: Schema.BigInt,
  /** The server's clock, microseconds since 2000-01-01. */
  serverTime: Schema.BigInt,
  data: Schema.Uint8Array
})
export type XLogData = typeof XLogData.Type

/** 'k': the server's heartbeat; `replyRequested` means "answer soon or be disconnected". */
export const PrimaryKeepalive = Schema.TaggedStruct("PrimaryKeepalive", {
  walEnd: Schema.BigInt,
  serverTime: Schema.BigInt,
  replyRequested: Schema.Boolean
})
export type PrimaryKeepalive = typeof PrimaryKeepalive.Type

/** 'r': how far the client has written, flushed and applied the stream (each the last byte + 1). */
export const StandbyStatusUpdate = Schema.TaggedStruct("StandbyStatusUpdate", {
  writeLsn: Schema.BigInt,
  flushLsn: Schema.BigInt,
  applyLsn: Schema.BigInt,
  clientTime: Schema.BigInt,
  replyRequested: Schema.Boolean
})
export type StandbyStatusUpdate = typeof StandbyStatusUpdate.Type

/** 'h': a physical standby's xmin horizons (all zero: feedback switched off). */
export const HotStandbyFeedback = Schema.TaggedStruct("HotStandbyFeedback", {
  clientTime: Schema.BigInt,
  xmin: Schema.Number,
  xminEpoch: Schema.Number,
  catalogXmin: Schema.Number,
  catalogXminEpoch: Schema.Number
})
export type HotStandbyFeedback = typeof HotStandbyFeedback.Type

export const ReplicationServerMessage = Schema.Union([XLogData, PrimaryKeepalive])
export type ReplicationServerMessage = typeof ReplicationServerMessage.Type

export const ReplicationClientMessage = Schema.Union([StandbyStatusUpdate, HotStandbyFeedback])
export type ReplicationClientMessage = typeof ReplicationClientMessage.Type

// --- time -----------------------------------------------------------------------------------------

/** 2000-01-01T00:00:00Z in Unix milliseconds: PostgreSQL's timestamp epoch. */
export const PG_EPOCH_UNIX_MILLIS = 946_684_800_000

/** A Date as microseconds since 2000-01-01 (what every replication timestamp field carries). */
export const pgEpochMicrosFromDate = (date: Date): bigint =>
  BigInt(date.getTime() - PG_EPOCH_UNIX_MILLIS) * 1000n

/** Microseconds since 2000-01-01 as a Date; sub-millisecond precision is floored away. */
export const dateFromPgEpochMicros = (micros: bigint): Date => {
  let millis = micros / 1000n
  if (micros < 0n && millis * 1000n !== micros) millis -= 1n // BigInt division truncates toward zero
  return new Date(Number(millis) + PG_EPOCH_UNIX_MILLIS)
}

// --- decoding -------------------------------------------------------------------------------------

const W = 0x77 // 'w'
const K = 0x6b // 'k'
const R = 0x72 // 'r'
const H = 0x68 // 'h'

const readFlag = (r: Reader, what: string): boolean => {
  const at = r.pos
  const b = r.u8()
  if (b > 1) r.invalid(`${what} must be 0 or 1, got ${b}`, at)
  return b === 1
}

/** Decodes the payload of a CopyData the server sent during replication: XLogData or PrimaryKeepalive. */
export const decodeReplicationServerMessage = (
  buf: Uint8Array,
  start: number,
  end: number
): ReplicationServerMessage => {
  if (start >= end) return fail("Truncated", "empty replication message", "CopyData", start)
  const type = buf[start]!
  if (type === W) {
    const r = new Reader(buf, start + 1, end, "XLogData")
    const walStart = r.u64()
    const walEnd = r.u64()
    const serverTime = r.i64()
    return { _tag: "XLogData", walStart, walEnd, serverTime, data: r.rest() }
  }
  if (type === K) {
    const r = new Reader(buf, start + 1, end, "PrimaryKeepalive")
    const walEnd = r.u64()
    const serverTime = r.i64()
    const replyRequested = readFlag(r, "reply-requested flag")
    r.done()
    return { _tag: "PrimaryKeepalive", walEnd, serverTime, replyRequested }
  }
  return fail(
    "UnknownMessageType",
    `unknown replication server message '${String.fromCharCode(type)}' (0x${type.toString(16)})`,
    String.fromCharCode(type),
    start
  )
}

/** Decodes the payload of a CopyData a client sent during replication: StandbyStatusUpdate or HotStandbyFeedback. */
export const decodeReplicationClientMessage = (
  buf: Uint8Array,
  start: number,
  end: number
): ReplicationClientMessage => {
  if (start >= end) return fail("Truncated", "empty replication message", "CopyData", start)
  const type = buf[start]!
  if (type === R) {
    const r = new Reader(buf, start + 1, end, "StandbyStatusUpdate")
    const writeLsn = r.u64()
    const flushLsn = r.u64()
    const applyLsn = r.u64()
    const clientTime = r.i64()
    const replyRequested = readFlag(r, "reply-requested flag")
    r.done()
    return { _tag: "StandbyStatusUpdate", writeLsn, flushLsn, applyLsn, clientTime, replyRequested }
  }
  if (type === H) {
    const r = new Reader(buf, start + 1, end, "HotStandbyFeedback")
    const clientTime = r.i64()
    const xmin = r.u32()
    const xminEpoch = r.u32()
    const catalogXmin = r.u32()
    const catalogXminEpoch = r.u32()
    r.done()
    return { _tag: "HotStandbyFeedback", clientTime, xmin, xminEpoch, catalogXmin, catalogXminEpoch }
  }
  return fail(
    "UnknownMessageType",
    `unknown replication client message '${String.fromCharCode(type)}' (0x${type.toString(16)})`,
    String.fromCharCode(type),
    start
  )
}

// --- encoding -------------------------------------------------------------------------------------

/** Writes the CopyData payload of a server message (no CopyData header). */
export const encodeReplicationServerMessage = (w: Writer, m: ReplicationServerMessage): void => {
  switch (m._tag) {
    case "XLogData":
      w.u8(W).u64(m.walStart).u64(m.walEnd).i64(m.serverTime).bytes(m.data)
      return
    case "PrimaryKeepalive":
      w.u8(K).u64(m.walEnd).i64(m.serverTime).u8(m.replyRequested ? 1 : 0)
      return
  }
}

/** Writes the CopyData payload of a client message (no CopyData header). */
export const encodeReplicationClientMessage = (w: Writer, m: ReplicationClientMessage): void => {
  switch (m._tag) {
    case "StandbyStatusUpdate":
      w.u8(R).u64(m.writeLsn).u64(m.flushLsn).u64(m.applyLsn).i64(m.clientTime).u8(m.replyRequested ? 1 : 0)
      return
    case "HotStandbyFeedback":
      w.u8(H).i64(m.clientTime).u32(m.xmin).u32(m.xminEpoch).u32(m.catalogXmin).u32(m.catalogXminEpoch)
      return
  }
}

const COPY_DATA = 0x64 // 'd'

/**
 * Writes a whole CopyData ('d') frame carrying a replication message, in place. Accepts both
 * directions: clients send 'r'/'h', a server (or the test mock) sends 'w'/'k'.
 */
export const encodeCopyDataReplication = (w: Writer, m: ReplicationClientMessage | ReplicationServerMessage): void => {
  const at = w.begin(COPY_DATA)
  if (m._tag === "StandbyStatusUpdate" || m._tag === "HotStandbyFeedback") encodeReplicationClientMessage(w, m)
  else encodeReplicationServerMessage(w, m)
  w.end(at)
}
