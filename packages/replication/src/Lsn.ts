/**
 * Log sequence numbers: byte positions in the write-ahead log.
 *
 * Invariants:
 * - An `Lsn` is a `bigint` in [0, 2^64 - 1], branded so that plain byte counts and LSNs cannot be mixed
 *   up by accident; it is never a float (positions above 2^53 are real on long-lived clusters).
 * - The text form is the server's: `X/X`, the high and low 32-bit halves in upper-case hex without
 *   leading zeros (`0/16B3748`). Parsing accepts either case, and 1–8 hex digits per half.
 * - `invalid` is PostgreSQL's InvalidXLogRecPtr, which is `0/0`: the same value as `zero`. No valid
 *   WAL record starts at 0 (the first page has a header), so the server uses 0 as "none".
 * - Arithmetic is checked: a result outside [0, 2^64 - 1] throws a RangeError (a programming error,
 *   never a server-controlled condition).
 * - WAL segments: segment number = lsn / segmentSize; file names are `TTTTTTTTXXXXXXXXYYYYYYYY`
 *   (timeline, segno / segments-per-4GiB, segno % segments-per-4GiB, 8 upper-case hex digits each),
 *   exactly like the server's XLogFileName.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ord from "effect/Order"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaTransformation from "effect/SchemaTransformation"
import type * as Brand from "effect/Brand"

export type Lsn = bigint & Brand.Brand<"Lsn">

const MAX_U64 = 0xffff_ffff_ffff_ffffn

/** The branded bigint itself (bounds-checked). */
export const LsnFromBigInt = Schema.BigInt.pipe(
  Schema.check(Schema.isBetweenBigInt({ minimum: 0n, maximum: MAX_U64 })),
  Schema.brand("Lsn")
)

export const zero: Lsn = 0n as Lsn
/** InvalidXLogRecPtr (`0/0`). */
export const invalid: Lsn = 0n as Lsn
/** The largest LSN, FFFFFFFF/FFFFFFFF. */
export const maxValue: Lsn = MAX_U64 as Lsn

/** Whether `lsn` is a real position (not InvalidXLogRecPtr). */
export const isValid = (lsn: Lsn): boolean => lsn !== 0n

/** A bigint as an Lsn; throws RangeError outside [0, 2^64 - 1]. */
export const make = (value: bigint): Lsn => {
  if (value < 0n || value > MAX_U64) throw new RangeError(`LSN out of range: ${value}`)
  return value as Lsn
}

/** A non-negative safe integer (e.g. a byte count) as an Lsn. */
export const fromNumber = (value: number): Lsn => {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`LSN out of range: ${value}`)
  return BigInt(value) as Lsn
}

const HALF = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/

/** Parses `X/X`; None when the text is not an LSN. */
export const fromString = (text: string): Option.Option<Lsn> => {
  const m = HALF.exec(text)
  if (m === null) return Option.none()
  return Option.some(((BigInt(`0x${m[1]!}`) << 32n) | BigInt(`0x${m[2]!}`)) as Lsn)
}

/** Parses `X/X`; throws a RangeError naming the text when it is not an LSN. */
export const fromStringUnsafe = (text: string): Lsn => {
  const m = HALF.exec(text)
  if (m === null) throw new RangeError(`not an LSN: ${JSON.stringify(text)} (expected X/X in hex)`)
  return ((BigInt(`0x${m[1]!}`) << 32n) | BigInt(`0x${m[2]!}`)) as Lsn
}

/** `X/X` in upper-case hex, as the server prints it. */
export const format = (lsn: Lsn): string =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`

/** The `X/X` string form. */
export const Lsn = Schema.String.pipe(
  Schema.decodeTo(
    LsnFromBigInt,
    SchemaTransformation.transformEffect<bigint, string>({
      decode: (s, options) =>
        Option.match(fromString(s), {
          onNone: () => Effect.fail(new SchemaIssue.InvalidValue({ expected: "an LSN (X/X in hex)" }, s, options)),
          onSome: (lsn): Effect.Effect<bigint, SchemaIssue.Issue> => Effect.succeed(lsn)
        }),
      encode: (lsn) => Effect.succeed(format(lsn as Lsn))
    })
  )
)

// --- ordering -------------------------------------------------------------------------------------

export const Order: Ord.Order<Lsn> = Ord.BigInt as Ord.Order<Lsn>

export const compare = (a: Lsn, b: Lsn): -1 | 0 | 1 => (a < b ? -1 : a > b ? 1 : 0)
export const lessThan = (a: Lsn, b: Lsn): boolean => a < b
export const lessThanOrEqualTo = (a: Lsn, b: Lsn): boolean => a <= b
export const greaterThan = (a: Lsn, b: Lsn): boolean => a > b
export const greaterThanOrEqualTo = (a: Lsn, b: Lsn): boolean => a >= b
export const min = (a: Lsn, b: Lsn): Lsn => (a < b ? a : b)
export const max = (a: Lsn, b: Lsn): Lsn => (a > b ? a : b)

// --- arithmetic -----------------------------------------------------------------------------------

/** `lsn + bytes` (bytes may be negative); throws RangeError when the result leaves the LSN range. */
export const add = (lsn: Lsn, bytes: bigint | number): Lsn => make(lsn + BigInt(bytes))

/** `a - b` in bytes (negative when a is before b), like the server's pg_wal_lsn_diff. */
export const diff = (a: Lsn, b: Lsn): bigint => a - b

// --- WAL segments ---------------------------------------------------------------------------------

/** The default (and most common) WAL segment size: 16 MiB. */
export const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024

const checkSegmentSize = (segmentSize: number): bigint => {
  // initdb allows powers of two from 1 MiB to 1 GiB.
  if (!Number.isInteger(segmentSize) || segmentSize < 1 << 20 || segmentSize > 1 << 30 || (segmentSize & (segmentSize - 1)) !== 0) {
    throw new RangeError(`invalid WAL segment size ${segmentSize} (a power of two from 1 MiB to 1 GiB)`)
  }
  return BigInt(segmentSize)
}

/** The number of the segment holding `lsn` (XLByteToSeg). */
export const segmentNumber = (lsn: Lsn, segmentSize: number = DEFAULT_SEGMENT_SIZE): bigint =>
  lsn / checkSegmentSize(segmentSize)

/** The offset of `lsn` inside its segment (XLogSegmentOffset). */
export const segmentOffset = (lsn: Lsn, segmentSize: number = DEFAULT_SEGMENT_SIZE): number =>
  Number(lsn % checkSegmentSize(segmentSize))

/** The first position of segment `segno` (XLogSegNoOffsetToRecPtr with offset 0). */
export const segmentStart = (segno: bigint, segmentSize: number = DEFAULT_SEGMENT_SIZE): Lsn =>
  make(segno * checkSegmentSize(segmentSize))

/** The start of the segment holding `lsn`. */
export const segmentFloor = (lsn: Lsn, segmentSize: number = DEFAULT_SEGMENT_SIZE): Lsn => {
  const size = checkSegmentSize(segmentSize)
  return (lsn - (lsn % size)) as Lsn
}

const hex8 = (n: bigint | number): string => n.toString(16).toUpperCase().padStart(8, "0")

/** The WAL file name of segment `segno` on `timeline` (XLogFileName). */
export const walFileName = (timeline: number, segno: bigint, segmentSize: number = DEFAULT_SEGMENT_SIZE): string => {
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > 0xffff_ffff) throw new RangeError(`invalid timeline ${timeline}`)
  const perId = 0x1_0000_0000n / checkSegmentSize(segmentSize)
  return `${hex8(timeline)}${hex8(segno / perId)}${hex8(segno % perId)}`
}

const WAL_FILE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/

/** Parses a WAL file name (XLogFromFileName); None for anything else (`.partial`, `.history`…). */
export const parseWalFileName = (
  name: string,
  segmentSize: number = DEFAULT_SEGMENT_SIZE
): Option.Option<{ readonly timeline: number; readonly segno: bigint }> => {
  const m = WAL_FILE.exec(name)
  if (m === null) return Option.none()
  const perId = 0x1_0000_0000n / checkSegmentSize(segmentSize)
  const seg = BigInt(`0x${m[3]!}`)
  if (seg >= perId) return Option.none()
  return Option.some({ timeline: Number.parseInt(m[1]!, 16), segno: BigInt(`0x${m[2]!}`) * perId + seg })
}
