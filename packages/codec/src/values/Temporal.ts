/**
 * Date and time values: lossless representations, and codecs for date, time, timetz, timestamp,
 * timestamptz and interval in both formats.
 *
 * Representations:
 * - `PgTimestamp`: microseconds since 1970-01-01T00:00:00Z as bigint, or "infinity" / "-infinity".
 *   For `timestamp` (without time zone) the wall-clock time is read as if it were UTC.
 * - `PgDate`: days since 1970-01-01 (a number; ±Infinity for ±infinity).
 * - `PgTime`: microseconds since midnight (0 … 86 400 000 000, "24:00:00" included).
 * - `PgTimeTz`: microseconds since midnight plus the UTC offset in seconds, east positive (ISO sign;
 *   the binary format stores it west-positive and is negated on the wire).
 * - `PgInterval`: { months, days, microseconds: bigint }, kept apart as PostgreSQL keeps them; the
 *   infinite intervals of PostgreSQL 17+ are `PgInterval.infinity` / `PgInterval.negativeInfinity`.
 * Registry option `temporal`:
 * - "date" (default): timestamptz, timestamp and date decode to JS `Date` (microseconds are truncated
 *   toward the past to milliseconds; `date` is UTC midnight) and ±infinity decodes to the numbers
 *   `Infinity` / `-Infinity`. A finite value outside JS Date's range (±275 760 years) throws
 *   ProtocolError "InvalidValue" — use "lossless" for such data.
 * - "lossless": they decode to `PgTimestamp` / `PgDate`.
 * time, timetz and interval decode to PgTime / PgTimeTz / PgInterval in both modes.
 * Encoders take a Date, the Pg class, an ISO 8601 or PostgreSQL-format string, or ±Infinity.
 * Text parsing handles DateStyle ISO output (the server's default "ISO, MDY"), " BC" years, years above
 * 9999, fractions of 1–6 digits (more are rounded to microseconds), offsets such as `+05:30`, `-03`,
 * `+00:09:21` and `Z`. A seconds field of 60 (leap second) is refused; PostgreSQL never prints one.
 * Intervals parse IntervalStyle "postgres" (the default) and ISO 8601 durations.
 * The common server output (`YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]]`) is read from the bytes by a
 * fast path that only ever accepts what the regex parser accepts, with the same result, and defers
 * every other input to it (tested against it in FastPaths.test.ts).
 */
import type { Writer } from "../internal/Writer.ts"
import { decodeUtf8 } from "../internal/utf8.ts"
import { TypeOid } from "../TypeOid.ts"
import { encodeInvalid, expectSize, invalidValue, readI32, readI64, readI64Safe, type ValueCodec } from "./ValueCodec.ts"

const US_PER_DAY = 86_400_000_000
const US_PER_DAY_N = 86_400_000_000n
/** 2000-01-01 (PostgreSQL's epoch) minus 1970-01-01, in days and microseconds. */
const PG_EPOCH_DAYS = 10957
const PG_EPOCH_US = 946_684_800_000_000n
const PG_EPOCH_MS = 946_684_800_000
const INT64_MAX = 2n ** 63n - 1n
const INT64_MIN = -(2n ** 63n)
const INT32_MAX = 2147483647
const INT32_MIN = -2147483648
/** JS Date's range, in ms. */
const DATE_MAX_MS = 8.64e15

// ---------------------------------------------------------------------------------------------
// calendar arithmetic (proleptic Gregorian, astronomical years: 1 BC = year 0)

export const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

export const civilFromDays = (days: number): [year: number, month: number, day: number] => {
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1
  const m = mp < 10 ? mp + 3 : mp - 9
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d]
}

const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!

const pad2 = (n: number): string => (n < 10 ? "0" + n : String(n))

/** Fraction of a second for display: "" or "." and 1–6 digits, trailing zeros trimmed. */
const fraction = (us: number): string => (us === 0 ? "" : "." + String(us).padStart(6, "0").replace(/0+$/, ""))

const hms = (micros: number): string => {
  const s = Math.floor(micros / 1e6)
  return `${pad2(Math.floor(s / 3600))}:${pad2(Math.floor(s / 60) % 60)}:${pad2(s % 60)}${fraction(micros % 1e6)}`
}

/** ISO 8601 date; years outside 0000–9999 use the expanded ±YYYYYY form (as Date#toISOString). */
const isoDate = (days: number): string => {
  const [y, m, d] = civilFromDays(days)
  const year = y >= 0 && y <= 9999 ? String(y).padStart(4, "0") : (y < 0 ? "-" : "+") + String(Math.abs(y)).padStart(6, "0")
  return `${year}-${pad2(m)}-${pad2(d)}`
}

/** PostgreSQL's input form: year ≥ 1 as is (4+ digits), year ≤ 0 as (1 - year) with " BC". */
const pgDate = (days: number): [date: string, bc: boolean] => {
  const [y, m, d] = civilFromDays(days)
  const bc = y <= 0
  return [`${String(bc ? 1 - y : y).padStart(4, "0")}-${pad2(m)}-${pad2(d)}`, bc]
}

const offsetText = (seconds: number, iso: boolean): string => {
  if (iso && seconds === 0) return "Z"
  const a = Math.abs(seconds)
  const sec = a % 60
  return `${seconds < 0 ? "-" : "+"}${pad2(Math.floor(a / 3600))}:${pad2(Math.floor(a / 60) % 60)}${sec === 0 ? "" : ":" + pad2(sec)}`
}

// ---------------------------------------------------------------------------------------------
// text parsing

interface DateTimeParts {
  days: number
  /** Time of day in µs (0 when absent). */
  micros: number
  /** UTC offset in seconds, east positive; undefined when absent. */
  offset: number | undefined
}

const dateTimeRe =
  /^([+-]?)(\d{4,})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)? ?(Z|[+-]\d{1,2}(?::?\d{2}(?::?\d{2})?)?)?( BC)?$/i
const timeRe = /^(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)? ?(Z|[+-]\d{1,2}(?::?\d{2}(?::?\d{2})?)?)?$/i

const parseOffset = (s: string | undefined): number | undefined => {
  if (s === undefined) return undefined
  if (s === "Z" || s === "z") return 0
  const sign = s[0] === "-" ? -1 : 1
  const digits = s.slice(1).replace(/:/g, "")
  // "+5" / "+05" hours; then minutes and seconds in pairs
  const hLen = digits.length % 2 === 1 ? 1 : 2
  const h = Number(digits.slice(0, hLen))
  const m = digits.length > hLen ? Number(digits.slice(hLen, hLen + 2)) : 0
  const sec = digits.length > hLen + 2 ? Number(digits.slice(hLen + 2, hLen + 4)) : 0
  if (m > 59 || sec > 59 || h > 15) return undefined
  return sign * (h * 3600 + m * 60 + sec) + 0 // + 0: never -0
}

/** µs of a fraction-of-second digit string, rounded half up to 6 digits. */
const fractionMicros = (f: string | undefined): number => {
  if (f === undefined) return 0
  if (f.length <= 6) return Number(f.padEnd(6, "0"))
  return Number(f.slice(0, 6)) + (f.charCodeAt(6) >= 0x35 ? 1 : 0)
}

/** Time-of-day µs from parts; undefined when out of range (hour 24 only as 24:00:00). */
const timeMicros = (h: number, m: number, s: number, f: string | undefined): number | undefined => {
  if (m > 59 || s > 59 || h > 24) return undefined
  const us = ((h * 60 + m) * 60 + s) * 1e6 + fractionMicros(f)
  return us > US_PER_DAY ? undefined : us
}

const parseDateTime = (s: string): DateTimeParts | undefined => {
  const m = dateTimeRe.exec(s)
  if (m === null) return undefined
  const [, sign, y, mo, d, hh, mi, ss, frac, tz, bc] = m
  let year = Number(y)
  if (bc !== undefined) {
    if (sign !== "" || year === 0) return undefined
    year = 1 - year
  } else if (sign === "-") year = -year
  const month = Number(mo)
  const day = Number(d)
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined
  let micros = 0
  if (hh !== undefined) {
    const t = timeMicros(Number(hh), Number(mi), ss === undefined ? 0 : Number(ss), frac)
    if (t === undefined) return undefined
    micros = t
  }
  const offset = parseOffset(tz)
  if (tz !== undefined && offset === undefined) return undefined
  return { days: daysFromCivil(year, month, day), micros, offset }
}

/**
 * The fast path of `parseDateTime` for what the server prints in DateStyle ISO:
 * `YYYY-MM-DD[( |T)HH:MM:SS[.f{1,6}][±HH[:MM[:SS]]]]`, read from the bytes without a string.
 * On success it fills `fastParts` and returns true; anything else (BC, years beyond 4 digits,
 * 7+ fraction digits, `Z`, out-of-range fields, …) returns false, and the caller takes the regex
 * path, which decides — so the fast path never accepts anything the regex path refuses, nor
 * gives a different result.
 */
const fastParts: DateTimeParts = { days: 0, micros: 0, offset: undefined }

/** The two decimal digits at `p`, or -1. */
const twoDigits = (buf: Uint8Array, p: number): number => {
  const a = buf[p]! - 0x30
  const b = buf[p + 1]! - 0x30
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1
}

const parseDateTimeFast = (buf: Uint8Array, start: number, end: number): boolean => {
  const len = end - start
  if (len < 10 || buf[start + 4] !== 0x2d || buf[start + 7] !== 0x2d) return false
  const y1 = twoDigits(buf, start)
  const y2 = twoDigits(buf, start + 2)
  const month = twoDigits(buf, start + 5)
  const day = twoDigits(buf, start + 8)
  if (y1 < 0 || y2 < 0 || month < 1 || month > 12 || day < 1) return false
  const year = y1 * 100 + y2
  if (day > daysInMonth(year, month)) return false
  fastParts.days = daysFromCivil(year, month, day)
  fastParts.micros = 0
  fastParts.offset = undefined
  if (len === 10) return true
  let p = start + 10
  const sep = buf[p]
  if ((sep !== 0x20 && sep !== 0x54) || len < 19 || buf[p + 3] !== 0x3a || buf[p + 6] !== 0x3a) return false
  const h = twoDigits(buf, p + 1)
  const mi = twoDigits(buf, p + 4)
  const sec = twoDigits(buf, p + 7)
  if (h < 0 || h > 24 || mi < 0 || mi > 59 || sec < 0 || sec > 59) return false
  p += 9
  let fraction = 0
  if (p < end && buf[p] === 0x2e) {
    p++
    let digits = 0
    for (; p < end; p++) {
      const d = buf[p]! - 0x30
      if (d < 0 || d > 9) break
      fraction = fraction * 10 + d
      digits++
    }
    if (digits === 0 || digits > 6) return false
    for (; digits < 6; digits++) fraction *= 10
  }
  const micros = ((h * 60 + mi) * 60 + sec) * 1e6 + fraction
  if (micros > US_PER_DAY) return false
  fastParts.micros = micros
  if (p === end) return true
  const sign = buf[p]
  if ((sign !== 0x2b && sign !== 0x2d) || end - p < 3) return false
  const oh = twoDigits(buf, p + 1)
  if (oh < 0 || oh > 15) return false
  let offset = oh * 3600
  p += 3
  if (p < end) {
    if (end - p < 3 || buf[p] !== 0x3a) return false
    const om = twoDigits(buf, p + 1)
    if (om < 0 || om > 59) return false
    offset += om * 60
    p += 3
    if (p < end) {
      if (end - p !== 3 || buf[p] !== 0x3a) return false
      const os = twoDigits(buf, p + 1)
      if (os < 0 || os > 59) return false
      offset += os
      p += 3
    }
  }
  fastParts.offset = (sign === 0x2d ? -offset : offset) + 0 // + 0: never -0
  return true
}

/** @internal For tests: the fast path's parts for `buf[start, end)`, or undefined where it defers. */
export const parseDateTimeFastForTest = (buf: Uint8Array, start: number, end: number): DateTimeParts | undefined =>
  parseDateTimeFast(buf, start, end) ? { ...fastParts } : undefined

/** @internal For tests: the regex path's parts, or undefined. */
export const parseDateTimeForTest = (s: string): DateTimeParts | undefined => parseDateTime(s)

const isInfinity = (s: string): 1 | -1 | 0 => {
  const l = s.toLowerCase()
  return l === "infinity" || l === "+infinity" ? 1 : l === "-infinity" ? -1 : 0
}

/** µs since the Unix epoch of a parsed date-time (offset applied), as bigint. */
const partsToMicros = (p: DateTimeParts): bigint => BigInt(p.days) * US_PER_DAY_N + BigInt(p.micros - (p.offset ?? 0) * 1e6)

// ---------------------------------------------------------------------------------------------
// PgTimestamp

export class PgTimestamp {
  /** µs since 1970-01-01T00:00:00Z, or an infinity. */
  readonly value: bigint | "infinity" | "-infinity"

  constructor(value: bigint | "infinity" | "-infinity") {
    this.value = value
  }

  static readonly infinity = new PgTimestamp("infinity")
  static readonly negativeInfinity = new PgTimestamp("-infinity")

  static fromDate(date: Date): PgTimestamp {
    const ms = date.getTime()
    if (Number.isNaN(ms)) throw new RangeError("Invalid Date")
    return new PgTimestamp(BigInt(ms) * 1000n)
  }

  /** Parses ISO 8601 (`2024-01-02T03:04:05.123456+05:30`, `-000044-03-15T…Z`) or PostgreSQL output; no offset means UTC. */
  static fromISO(s: string): PgTimestamp {
    const inf = isInfinity(s.trim())
    if (inf !== 0) return inf > 0 ? PgTimestamp.infinity : PgTimestamp.negativeInfinity
    const p = parseDateTime(s.trim())
    if (p === undefined) throw new RangeError(`not a timestamp: ${JSON.stringify(s)}`)
    return new PgTimestamp(partsToMicros(p))
  }

  get isFinite(): boolean {
    return typeof this.value === "bigint"
  }

  /** The JS Date (ms precision, truncated toward the past); an Invalid Date for ±infinity. */
  toDate(): Date {
    if (typeof this.value !== "bigint") return new Date(NaN)
    return new Date(Number(floorDiv(this.value, 1000n)))
  }

  toString(): string {
    if (typeof this.value !== "bigint") return this.value
    const days = floorDiv(this.value, US_PER_DAY_N)
    const us = Number(this.value - days * US_PER_DAY_N)
    return `${isoDate(Number(days))}T${hms(us)}Z`
  }

  toJSON(): string {
    return this.toString()
  }
}

const floorDiv = (a: bigint, b: bigint): bigint => {
  const q = a / b
  return a % b !== 0n && (a < 0n) !== (b < 0n) ? q - 1n : q
}

// ---------------------------------------------------------------------------------------------
// PgDate

export class PgDate {
  /** Days since 1970-01-01; ±Infinity for ±infinity. */
  readonly days: number

  constructor(days: number) {
    this.days = days
  }

  static readonly infinity = new PgDate(Infinity)
  static readonly negativeInfinity = new PgDate(-Infinity)

  /** The UTC calendar day of `date`. */
  static fromDate(date: Date): PgDate {
    const ms = date.getTime()
    if (Number.isNaN(ms)) throw new RangeError("Invalid Date")
    return new PgDate(Math.floor(ms / 86_400_000))
  }

  /** Parses `YYYY-MM-DD` (ISO expanded years and " BC" accepted); a time part, if any, is ignored. */
  static fromISO(s: string): PgDate {
    const inf = isInfinity(s.trim())
    if (inf !== 0) return inf > 0 ? PgDate.infinity : PgDate.negativeInfinity
    const p = parseDateTime(s.trim())
    if (p === undefined) throw new RangeError(`not a date: ${JSON.stringify(s)}`)
    return new PgDate(p.days)
  }

  static fromParts(year: number, month: number, day: number): PgDate {
    return new PgDate(daysFromCivil(year, month, day))
  }

  get isFinite(): boolean {
    return Number.isFinite(this.days)
  }

  /** UTC midnight of the day; an Invalid Date for ±infinity. */
  toDate(): Date {
    return Number.isFinite(this.days) ? new Date(this.days * 86_400_000) : new Date(NaN)
  }

  toString(): string {
    return this.days === Infinity ? "infinity" : this.days === -Infinity ? "-infinity" : isoDate(this.days)
  }

  toJSON(): string {
    return this.toString()
  }
}

// ---------------------------------------------------------------------------------------------
// PgTime, PgTimeTz

export class PgTime {
  /** µs since midnight, 0 … 86 400 000 000. */
  readonly micros: number

  constructor(micros: number) {
    this.micros = micros
  }

  static fromISO(s: string): PgTime {
    const p = parseTime(s.trim())
    if (p === undefined || p.offset !== undefined) throw new RangeError(`not a time: ${JSON.stringify(s)}`)
    return new PgTime(p.micros)
  }

  /** The UTC time of day of `date`. */
  static fromDate(date: Date): PgTime {
    const ms = date.getTime()
    if (Number.isNaN(ms)) throw new RangeError("Invalid Date")
    return new PgTime((((ms % 86_400_000) + 86_400_000) % 86_400_000) * 1000)
  }

  toString(): string {
    return hms(this.micros)
  }

  toJSON(): string {
    return this.toString()
  }
}

export class PgTimeTz {
  readonly micros: number
  /** UTC offset in seconds, east positive (`+05:30` is 19800). */
  readonly offsetSeconds: number

  constructor(micros: number, offsetSeconds: number) {
    this.micros = micros
    this.offsetSeconds = offsetSeconds
  }

  static fromISO(s: string): PgTimeTz {
    const p = parseTime(s.trim())
    if (p === undefined) throw new RangeError(`not a time with time zone: ${JSON.stringify(s)}`)
    return new PgTimeTz(p.micros, p.offset ?? 0)
  }

  toString(): string {
    return hms(this.micros) + offsetText(this.offsetSeconds, false)
  }

  toJSON(): string {
    return this.toString()
  }
}

const parseTime = (s: string): { micros: number; offset: number | undefined } | undefined => {
  const m = timeRe.exec(s)
  if (m === null) return undefined
  const micros = timeMicros(Number(m[1]), Number(m[2]), m[3] === undefined ? 0 : Number(m[3]), m[4])
  const offset = parseOffset(m[5])
  if (micros === undefined || (m[5] !== undefined && offset === undefined)) return undefined
  return { micros, offset }
}

// ---------------------------------------------------------------------------------------------
// PgInterval

export class PgInterval {
  readonly months: number
  readonly days: number
  readonly microseconds: bigint

  constructor(months: number, days: number, microseconds: bigint) {
    this.months = months
    this.days = days
    this.microseconds = microseconds
  }

  /** PostgreSQL 17+ infinite intervals (all three fields at their maximum / minimum). */
  static readonly infinity = new PgInterval(INT32_MAX, INT32_MAX, INT64_MAX)
  static readonly negativeInfinity = new PgInterval(INT32_MIN, INT32_MIN, INT64_MIN)

  get isFinite(): boolean {
    return !(this.months === INT32_MAX && this.days === INT32_MAX && this.microseconds === INT64_MAX) &&
      !(this.months === INT32_MIN && this.days === INT32_MIN && this.microseconds === INT64_MIN)
  }

  /** Parses PostgreSQL's output (IntervalStyle "postgres") or an ISO 8601 duration (`P1Y2M3DT4H5M6.5S`). */
  static fromISO(s: string): PgInterval {
    const v = parseInterval(s.trim())
    if (v === undefined) throw new RangeError(`not an interval: ${JSON.stringify(s)}`)
    return v
  }

  /** ISO 8601 duration with signed fields (`P1Y-2M3DT-4H5M6.5S`), "PT0S" for zero, or "infinity"/"-infinity". */
  toString(): string {
    if (!this.isFinite) return this.months > 0 ? "infinity" : "-infinity"
    const y = Math.trunc(this.months / 12)
    const mo = this.months % 12
    const us = this.microseconds
    const neg = us < 0n
    const a = neg ? -us : us
    const h = a / 3_600_000_000n
    const mi = (a / 60_000_000n) % 60n
    const sec = Number(a % 60_000_000n)
    const sign = neg ? "-" : ""
    let date = ""
    if (y !== 0) date += `${y}Y`
    if (mo !== 0) date += `${mo}M`
    if (this.days !== 0) date += `${this.days}D`
    let time = ""
    if (h !== 0n) time += `${sign}${h}H`
    if (mi !== 0n) time += `${sign}${mi}M`
    if (sec !== 0) time += `${sign}${Math.floor(sec / 1e6)}${fraction(sec % 1e6)}S`
    if (date === "" && time === "") return "PT0S"
    return "P" + date + (time === "" ? "" : "T" + time)
  }

  toJSON(): string {
    return this.toString()
  }
}

const intervalUnits: Record<string, [field: "months" | "days" | "us", factor: number]> = {
  year: ["months", 12], years: ["months", 12], mon: ["months", 1], mons: ["months", 1], month: ["months", 1],
  months: ["months", 1], day: ["days", 1], days: ["days", 1], week: ["days", 7], weeks: ["days", 7],
  hour: ["us", 3_600_000_000], hours: ["us", 3_600_000_000], min: ["us", 60_000_000], mins: ["us", 60_000_000],
  minute: ["us", 60_000_000], minutes: ["us", 60_000_000], sec: ["us", 1_000_000], secs: ["us", 1_000_000],
  second: ["us", 1_000_000], seconds: ["us", 1_000_000], microsecond: ["us", 1], microseconds: ["us", 1],
  millisecond: ["us", 1000], milliseconds: ["us", 1000]
}

const clockRe = /^([+-]?)(\d+):(\d{2})(?::(\d{2})(?:\.(\d+))?)?$/
const isoDurationRe =
  /^P(?:([+-]?\d+)Y)?(?:([+-]?\d+)M)?(?:([+-]?\d+)W)?(?:([+-]?\d+)D)?(?:T(?:([+-]?\d+)H)?(?:([+-]?\d+)M)?(?:([+-]?)(\d+)(?:[.,](\d+))?S)?)?$/

const parseInterval = (s: string): PgInterval | undefined => {
  const inf = isInfinity(s)
  if (inf !== 0) return inf > 0 ? PgInterval.infinity : PgInterval.negativeInfinity
  let months = 0
  let days = 0
  let us = 0n
  const iso = isoDurationRe.exec(s)
  if (iso !== null) {
    if (s === "P" || s.endsWith("T")) return undefined
    const n = (i: number) => (iso[i] === undefined ? 0 : Number(iso[i]))
    months = n(1) * 12 + n(2)
    days = n(3) * 7 + n(4)
    us = BigInt(n(5)) * 3_600_000_000n + BigInt(n(6)) * 60_000_000n
    if (iso[8] !== undefined) {
      const secUs = BigInt(iso[8]) * 1_000_000n + BigInt(fractionMicros(iso[9]))
      us += iso[7] === "-" ? -secUs : secUs
    }
  } else {
    const tokens = s.split(/\s+/)
    if (tokens.length === 0 || tokens[0] === "") return undefined
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!
      const clock = clockRe.exec(t)
      if (clock !== null) {
        const m = Number(clock[3])
        const sec = clock[4] === undefined ? 0 : Number(clock[4])
        if (m > 59 || sec > 59) return undefined
        const v = (BigInt(clock[2]!) * 3600n + BigInt(m * 60 + sec)) * 1_000_000n + BigInt(fractionMicros(clock[5]))
        us += clock[1] === "-" ? -v : v
        continue
      }
      if (!/^[+-]?\d+(\.\d+)?$/.test(t) || i + 1 >= tokens.length) return undefined
      const unit = intervalUnits[tokens[++i]!.toLowerCase()]
      if (unit === undefined) return undefined
      const [field, factor] = unit
      if (field === "us") {
        // exact for integral counts; fractional counts are rounded to whole µs
        us += t.includes(".") ? BigInt(Math.round(Number(t) * factor)) : BigInt(t) * BigInt(factor)
      } else {
        if (t.includes(".")) return undefined
        if (field === "months") months += Number(t) * factor
        else days += Number(t) * factor
      }
    }
  }
  if (!Number.isInteger(months) || months > INT32_MAX || months < INT32_MIN) return undefined
  if (days > INT32_MAX || days < INT32_MIN || us > INT64_MAX || us < INT64_MIN) return undefined
  return new PgInterval(months, days, us)
}

// ---------------------------------------------------------------------------------------------
// codecs

export type TemporalMode = "date" | "lossless"
export type TimestampValue = Date | PgTimestamp | string | number
export type DateValue = Date | PgDate | string | number

const textOf = decodeUtf8

/** µs since the Unix epoch for any accepted timestamp input; ±1 for infinities. */
const timestampInput = (type: string, v: TimestampValue): bigint | 1 | -1 => {
  if (v instanceof Date) {
    const ms = v.getTime()
    return Number.isNaN(ms) ? encodeInvalid(type, "Invalid Date") : BigInt(ms) * 1000n
  }
  if (v instanceof PgTimestamp) return typeof v.value === "bigint" ? v.value : v.value === "infinity" ? 1 : -1
  if (v === Infinity) return 1
  if (v === -Infinity) return -1
  if (typeof v === "string") {
    const inf = isInfinity(v.trim())
    if (inf !== 0) return inf
    const p = parseDateTime(v.trim())
    return p === undefined ? encodeInvalid(type, JSON.stringify(v)) : partsToMicros(p)
  }
  return encodeInvalid(type, `expected a Date, PgTimestamp, ISO string or ±Infinity, got ${String(v)}`)
}

const timestampCodec = (name: string, oid: number, withZone: boolean, mode: TemporalMode): ValueCodec<TimestampValue> => {
  const fromMicros = mode === "date" ? microsToDate : (us: bigint): TimestampValue => new PgTimestamp(us)
  const infinity: TimestampValue = mode === "date" ? Infinity : PgTimestamp.infinity
  const negativeInfinity: TimestampValue = mode === "date" ? -Infinity : PgTimestamp.negativeInfinity
  return {
    name,
    oid,
    decodeText: (buf, start, end) => {
      if (parseDateTimeFast(buf, start, end) && (withZone || fastParts.offset === undefined)) {
        const p = fastParts
        if (mode === "date") {
          const ms = p.days * 86_400_000 + Math.floor(p.micros / 1000) - (p.offset ?? 0) * 1000
          return ms > DATE_MAX_MS || ms < -DATE_MAX_MS ? outOfDateRange(name, start) : new Date(ms)
        }
        return new PgTimestamp(partsToMicros(p))
      }
      const s = textOf(buf, start, end)
      const p = parseDateTime(s)
      if (p === undefined) {
        const inf = isInfinity(s)
        return inf > 0 ? infinity : inf < 0 ? negativeInfinity : invalidValue(name, JSON.stringify(s), start)
      }
      if (p.offset !== undefined && !withZone) return invalidValue(name, `unexpected offset in ${JSON.stringify(s)}`, start)
      if (mode === "date") {
        const ms = p.days * 86_400_000 + Math.floor(p.micros / 1000) - (p.offset ?? 0) * 1000
        return ms > DATE_MAX_MS || ms < -DATE_MAX_MS ? outOfDateRange(name, start) : new Date(ms)
      }
      return new PgTimestamp(partsToMicros(p))
    },
    decodeBinary: (buf, start, end) => {
      expectSize(name, start, end, 8)
      if (mode === "date") {
        const safe = readI64Safe(buf, start)
        if (safe !== undefined) return new Date(Math.floor(safe / 1000) + PG_EPOCH_MS)
      }
      const us = readI64(buf, start)
      if (us === INT64_MAX) return infinity
      if (us === INT64_MIN) return negativeInfinity
      return fromMicros(us + PG_EPOCH_US)
    },
    encodeText: (v) => {
      const us = timestampInput(name, v)
      if (us === 1) return "infinity"
      if (us === -1) return "-infinity"
      const days = floorDiv(us, US_PER_DAY_N)
      const [date, bc] = pgDate(Number(days))
      return `${date} ${hms(Number(us - days * US_PER_DAY_N))}${withZone ? "+00" : ""}${bc ? " BC" : ""}`
    },
    encodeBinary: (w: Writer, v) => {
      if (v instanceof Date) {
        // A Date whose µs are exact in a double (years ~ -2250 … 2255) skips the bigint.
        const us = v.getTime() * 1000
        const pgUs = us - PG_EPOCH_MS * 1000
        if (Number.isSafeInteger(us) && Number.isSafeInteger(pgUs)) {
          const hi = Math.floor(pgUs / 4294967296)
          w.raw32(hi)
          w.raw32(pgUs - hi * 4294967296)
          return
        }
      }
      const us = timestampInput(name, v)
      w.i64(us === 1 ? INT64_MAX : us === -1 ? INT64_MIN : us - PG_EPOCH_US)
    }
  }
}

const outOfDateRange = (type: string, at: number): never =>
  invalidValue(type, "outside the range of a JS Date (use the registry option temporal: \"lossless\")", at)

const microsToDate = (us: bigint): Date => {
  const ms = Number(floorDiv(us, 1000n))
  return ms > DATE_MAX_MS || ms < -DATE_MAX_MS ? outOfDateRange("timestamp", 0) : new Date(ms)
}

const dateInput = (v: DateValue): number => {
  if (v instanceof Date) {
    const ms = v.getTime()
    return Number.isNaN(ms) ? encodeInvalid("date", "Invalid Date") : Math.floor(ms / 86_400_000)
  }
  if (v instanceof PgDate) return v.days
  if (v === Infinity || v === -Infinity) return v
  if (typeof v === "string") {
    const inf = isInfinity(v.trim())
    if (inf !== 0) return inf * Infinity
    const p = parseDateTime(v.trim())
    return p === undefined ? encodeInvalid("date", JSON.stringify(v)) : p.days
  }
  return encodeInvalid("date", `expected a Date, PgDate, ISO string or ±Infinity, got ${String(v)}`)
}

const dateCodec = (mode: TemporalMode): ValueCodec<DateValue> => {
  const fromDays =
    mode === "date"
      ? (days: number, at: number): DateValue => {
          const ms = days * 86_400_000
          return ms > DATE_MAX_MS || ms < -DATE_MAX_MS ? outOfDateRange("date", at) : new Date(ms)
        }
      : (days: number): DateValue => new PgDate(days)
  const infinity: DateValue = mode === "date" ? Infinity : PgDate.infinity
  const negativeInfinity: DateValue = mode === "date" ? -Infinity : PgDate.negativeInfinity
  return {
    name: "date",
    oid: TypeOid.date,
    decodeText: (buf, start, end) => {
      if (end - start === 10 && parseDateTimeFast(buf, start, end)) return fromDays(fastParts.days, start)
      const s = textOf(buf, start, end)
      const p = parseDateTime(s)
      if (p === undefined || p.micros !== 0 || p.offset !== undefined) {
        const inf = isInfinity(s)
        return inf > 0 ? infinity : inf < 0 ? negativeInfinity : invalidValue("date", JSON.stringify(s), start)
      }
      return fromDays(p.days, start)
    },
    decodeBinary: (buf, start, end) => {
      expectSize("date", start, end, 4)
      const d = readI32(buf, start)
      return d === INT32_MAX ? infinity : d === INT32_MIN ? negativeInfinity : fromDays(d + PG_EPOCH_DAYS, start)
    },
    encodeText: (v) => {
      const days = dateInput(v)
      if (days === Infinity) return "infinity"
      if (days === -Infinity) return "-infinity"
      const [date, bc] = pgDate(days)
      return bc ? date + " BC" : date
    },
    encodeBinary: (w, v) => {
      const days = dateInput(v)
      w.i32(days === Infinity ? INT32_MAX : days === -Infinity ? INT32_MIN : days - PG_EPOCH_DAYS)
    }
  }
}

const timeInput = (v: PgTime | string): number => {
  if (v instanceof PgTime) return v.micros
  if (typeof v === "string") {
    const p = parseTime(v.trim())
    if (p !== undefined && p.offset === undefined) return p.micros
  }
  return encodeInvalid("time", `expected a PgTime or "HH:MM:SS[.ffffff]", got ${String(v)}`)
}

const checkTimeMicros = (type: string, us: number): number =>
  Number.isInteger(us) && us >= 0 && us <= US_PER_DAY ? us : encodeInvalid(type, `${us} µs is not a time of day`)

export const time: ValueCodec<PgTime | string> = {
  name: "time",
  oid: TypeOid.time,
  decodeText: (buf, start, end) => {
    const p = parseTime(textOf(buf, start, end))
    return p === undefined || p.offset !== undefined ? invalidValue("time", JSON.stringify(textOf(buf, start, end)), start) : new PgTime(p.micros)
  },
  decodeBinary: (buf, start, end) => {
    expectSize("time", start, end, 8)
    const us = readI64Safe(buf, start)
    return us === undefined || us < 0 || us > US_PER_DAY ? invalidValue("time", "out of range", start) : new PgTime(us)
  },
  encodeText: (v) => hms(checkTimeMicros("time", timeInput(v))),
  encodeBinary: (w, v) => {
    w.i64(BigInt(checkTimeMicros("time", timeInput(v))))
  }
}

const timetzInput = (v: PgTimeTz | string): PgTimeTz => {
  if (v instanceof PgTimeTz) return v
  if (typeof v === "string") {
    const p = parseTime(v.trim())
    if (p !== undefined) return new PgTimeTz(p.micros, p.offset ?? 0)
  }
  return encodeInvalid("timetz", `expected a PgTimeTz or "HH:MM:SS[.ffffff]+HH:MM", got ${String(v)}`)
}

export const timetz: ValueCodec<PgTimeTz | string> = {
  name: "timetz",
  oid: TypeOid.timetz,
  decodeText: (buf, start, end) => {
    const p = parseTime(textOf(buf, start, end))
    return p === undefined || p.offset === undefined
      ? invalidValue("timetz", JSON.stringify(textOf(buf, start, end)), start)
      : new PgTimeTz(p.micros, p.offset)
  },
  decodeBinary: (buf, start, end) => {
    expectSize("timetz", start, end, 12)
    const us = readI64Safe(buf, start)
    if (us === undefined || us < 0 || us > US_PER_DAY) return invalidValue("timetz", "out of range", start)
    return new PgTimeTz(us, 0 - readI32(buf, start + 8) + 0) // + 0: never -0
  },
  encodeText: (v) => {
    const t = timetzInput(v)
    return hms(checkTimeMicros("timetz", t.micros)) + offsetText(t.offsetSeconds, false)
  },
  encodeBinary: (w, v) => {
    const t = timetzInput(v)
    w.i64(BigInt(checkTimeMicros("timetz", t.micros)))
    w.i32(-t.offsetSeconds)
  }
}

const intervalInput = (v: PgInterval | string): PgInterval => {
  if (v instanceof PgInterval) return v
  if (typeof v === "string") {
    const p = parseInterval(v.trim())
    if (p !== undefined) return p
  }
  return encodeInvalid("interval", `expected a PgInterval or an interval string, got ${String(v)}`)
}

/** PostgreSQL input text for an interval (exact: clock fields, no floating point). */
const intervalText = (v: PgInterval): string => {
  if (!v.isFinite) return v.months > 0 ? "infinity" : "-infinity"
  const neg = v.microseconds < 0n
  const a = neg ? -v.microseconds : v.microseconds
  const h = a / 3_600_000_000n
  const rest = Number(a % 3_600_000_000n)
  const clock = `${neg ? "-" : ""}${h}:${pad2(Math.floor(rest / 60_000_000))}:${pad2(Math.floor(rest / 1e6) % 60)}${fraction(rest % 1e6)}`
  return `${v.months} mons ${v.days} days ${clock}`
}

export const interval: ValueCodec<PgInterval | string> = {
  name: "interval",
  oid: TypeOid.interval,
  decodeText: (buf, start, end) => {
    const s = textOf(buf, start, end)
    return parseInterval(s) ?? invalidValue("interval", JSON.stringify(s), start)
  },
  decodeBinary: (buf, start, end) => {
    expectSize("interval", start, end, 16)
    const us = readI64(buf, start)
    const days = readI32(buf, start + 8)
    const months = readI32(buf, start + 12)
    if (us === INT64_MAX && days === INT32_MAX && months === INT32_MAX) return PgInterval.infinity
    if (us === INT64_MIN && days === INT32_MIN && months === INT32_MIN) return PgInterval.negativeInfinity
    return new PgInterval(months, days, us)
  },
  encodeText: (v) => intervalText(intervalInput(v)),
  encodeBinary: (w, v) => {
    const i = intervalInput(v)
    w.i64(i.microseconds)
    w.i32(i.days)
    w.i32(i.months)
  }
}

/** The date/time codecs for a registry's `temporal` mode. */
export const temporalCodecs = (mode: TemporalMode): ReadonlyArray<ValueCodec<any>> => [
  timestampCodec("timestamptz", TypeOid.timestamptz, true, mode),
  timestampCodec("timestamp", TypeOid.timestamp, false, mode),
  dateCodec(mode),
  time,
  timetz,
  interval
]
