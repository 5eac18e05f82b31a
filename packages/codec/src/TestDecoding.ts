/**
 * A parser for the text lines of PostgreSQL's `test_decoding` output plugin (contrib/test_decoding),
 * one line per change as returned by `pg_logical_slot_{get,peek}_changes`. It exists so tests can
 * cross-check the pgoutput decoder against an independent rendering of the same WAL.
 *
 * Naming: every record's tag is "TestDecoding" + what the line reports ("TestDecodingBegin",
 * "TestDecodingInsert", "TestDecodingStreamStart", …).
 *
 * Invariants:
 * - `parseTestDecodingLine` returns one record for every line format test_decoding (PostgreSQL 14–18)
 *   writes, with or without `include-xids` / `include-timestamp`; anything else, or a line with
 *   bytes left over after the parse, is ProtocolError "InvalidValue" (never another exception).
 * - Identifiers are unquoted (`"My Col"` → `My Col`, `""` → `"`); a column's `type` is the
 *   `format_type_be` text as printed ("integer", "character varying[]", …).
 * - A column value is `{ kind: "null" }`, `{ kind: "unchanged" }` (unchanged-toast-datum) or
 *   `{ kind: "value", text }` where `text` is what the type's output function produced, i.e. what
 *   pgoutput sends as a 't' column: quoted literals are unescaped (SQL '' doubling), B'…' bit
 *   strings lose the B'' wrapper, and booleans, which test_decoding spells true/false, become t/f.
 */
import * as Schema from "effect/Schema"
import { fail } from "./ProtocolError.ts"
import { utf8Length } from "./internal/utf8.ts"

// --- models ---------------------------------------------------------------------------------------

export const TestDecodingValue = Schema.Union([
  Schema.Struct({ kind: Schema.Literal("null") }),
  Schema.Struct({ kind: Schema.Literal("unchanged") }),
  Schema.Struct({ kind: Schema.Literal("value"), text: Schema.String })
])
export type TestDecodingValue = typeof TestDecodingValue.Type

export const TestDecodingColumn = Schema.Struct({
  name: Schema.String,
  type: Schema.String,
  value: TestDecodingValue
})
export type TestDecodingColumn = typeof TestDecodingColumn.Type

export const TestDecodingTable = Schema.Struct({ schema: Schema.String, name: Schema.String })
export type TestDecodingTable = typeof TestDecodingTable.Type

/** `null` is "(no-tuple-data)": the change carried no tuple (e.g. DELETE without a replica identity). */
const Tuple = Schema.NullOr(Schema.Array(TestDecodingColumn))

const OptionalXid = Schema.optional(Schema.Number)
/** The " (at …)" suffix of `include-timestamp`, as PostgreSQL printed it. */
const OptionalTimestamp = Schema.optional(Schema.String)

export const TestDecodingBegin = Schema.TaggedStruct("TestDecodingBegin", { xid: OptionalXid })
export const TestDecodingCommit = Schema.TaggedStruct("TestDecodingCommit", {
  xid: OptionalXid,
  timestamp: OptionalTimestamp
})
export const TestDecodingInsert = Schema.TaggedStruct("TestDecodingInsert", {
  table: TestDecodingTable,
  newTuple: Tuple
})
export const TestDecodingUpdate = Schema.TaggedStruct("TestDecodingUpdate", {
  table: TestDecodingTable,
  /** The old key (or old row under REPLICA IDENTITY FULL), nulls skipped, when the server logged one. */
  oldKey: Schema.optional(Schema.Array(TestDecodingColumn)),
  newTuple: Tuple
})
export const TestDecodingDelete = Schema.TaggedStruct("TestDecodingDelete", {
  table: TestDecodingTable,
  oldKey: Tuple
})
export const TestDecodingTruncate = Schema.TaggedStruct("TestDecodingTruncate", {
  tables: Schema.Array(TestDecodingTable),
  restartSeqs: Schema.Boolean,
  cascade: Schema.Boolean
})
/** `message: …` and, inside a streamed block, `streaming message: …` (transactional ones without content). */
export const TestDecodingMessage = Schema.TaggedStruct("TestDecodingMessage", {
  streaming: Schema.Boolean,
  transactional: Schema.Boolean,
  prefix: Schema.String,
  /** The content's size in bytes. */
  size: Schema.Number,
  content: Schema.optional(Schema.String)
})
export const TestDecodingStreamStart = Schema.TaggedStruct("TestDecodingStreamStart", { xid: OptionalXid })
export const TestDecodingStreamStop = Schema.TaggedStruct("TestDecodingStreamStop", { xid: OptionalXid })
export const TestDecodingStreamAbort = Schema.TaggedStruct("TestDecodingStreamAbort", { xid: OptionalXid })
export const TestDecodingStreamCommit = Schema.TaggedStruct("TestDecodingStreamCommit", {
  xid: OptionalXid,
  timestamp: OptionalTimestamp
})
export const TestDecodingStreamPrepare = Schema.TaggedStruct("TestDecodingStreamPrepare", {
  gid: Schema.String,
  xid: OptionalXid,
  timestamp: OptionalTimestamp
})
/** "streaming change for TXN …": test_decoding hides the row itself until commit. */
export const TestDecodingStreamChange = Schema.TaggedStruct("TestDecodingStreamChange", { xid: OptionalXid })
export const TestDecodingStreamTruncate = Schema.TaggedStruct("TestDecodingStreamTruncate", { xid: OptionalXid })
const preparedFields = { gid: Schema.String, xid: OptionalXid, timestamp: OptionalTimestamp }
export const TestDecodingPrepare = Schema.TaggedStruct("TestDecodingPrepare", preparedFields)
export const TestDecodingCommitPrepared = Schema.TaggedStruct("TestDecodingCommitPrepared", preparedFields)
export const TestDecodingRollbackPrepared = Schema.TaggedStruct("TestDecodingRollbackPrepared", preparedFields)

export const TestDecodingRecord = Schema.Union([
  TestDecodingBegin,
  TestDecodingCommit,
  TestDecodingInsert,
  TestDecodingUpdate,
  TestDecodingDelete,
  TestDecodingTruncate,
  TestDecodingMessage,
  TestDecodingStreamStart,
  TestDecodingStreamStop,
  TestDecodingStreamAbort,
  TestDecodingStreamCommit,
  TestDecodingStreamPrepare,
  TestDecodingStreamChange,
  TestDecodingStreamTruncate,
  TestDecodingPrepare,
  TestDecodingCommitPrepared,
  TestDecodingRollbackPrepared
])
export type TestDecodingRecord = typeof TestDecodingRecord.Type

// --- parsing --------------------------------------------------------------------------------------

const MESSAGE_TYPE = "test_decoding"

/** A cursor over one line; every mismatch fails with the position. */
class Cursor {
  readonly s: string
  pos = 0

  constructor(s: string) {
    this.s = s
  }

  error(message: string, at = this.pos): never {
    return fail("InvalidValue", `test_decoding line: ${message} at ${at}: ${JSON.stringify(this.s)}`, MESSAGE_TYPE, at)
  }

  atEnd(): boolean {
    return this.pos >= this.s.length
  }

  startsWith(lit: string): boolean {
    return this.s.startsWith(lit, this.pos)
  }

  /** Consumes `lit` if it is next. */
  eat(lit: string): boolean {
    if (!this.s.startsWith(lit, this.pos)) return false
    this.pos += lit.length
    return true
  }

  expect(lit: string): void {
    if (!this.eat(lit)) this.error(`expected ${JSON.stringify(lit)}`)
  }

  end(): void {
    if (!this.atEnd()) this.error("unexpected trailing text")
  }

  /** An unsigned decimal integer (xids, sizes). */
  uint(): number {
    const start = this.pos
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos)
      if (c < 0x30 || c > 0x39) break
      this.pos++
    }
    if (this.pos === start || this.pos - start > 10) this.error("expected an unsigned integer", start)
    const n = Number(this.s.slice(start, this.pos))
    if (n > 0xffffffff) this.error("integer out of range", start)
    return n
  }

  /** `"…"` with `""` escapes, or a bare identifier running up to one of `stops`. */
  identifier(stops: string): string {
    if (this.eat("\"")) {
      let out = ""
      for (;;) {
        const q = this.s.indexOf("\"", this.pos)
        if (q === -1) this.error("unterminated quoted identifier")
        out += this.s.slice(this.pos, q)
        this.pos = q + 1
        if (this.s[this.pos] === "\"") {
          out += "\""
          this.pos++
        } else {
          return out
        }
      }
    }
    const start = this.pos
    while (this.pos < this.s.length && stops.indexOf(this.s[this.pos]!) === -1) this.pos++
    if (this.pos === start) this.error("expected an identifier")
    return this.s.slice(start, this.pos)
  }

  /** A SQL string literal as `quote_literal` writes it: '…' with '' escapes, E'…' when it doubled backslashes. */
  literal(): string {
    const escaped = this.eat("E'")
    if (!escaped) this.expect("'")
    let out = ""
    for (;;) {
      const q = this.s.indexOf("'", this.pos)
      if (q === -1) this.error("unterminated string literal")
      out += this.s.slice(this.pos, q)
      this.pos = q + 1
      if (this.s[this.pos] === "'") {
        out += "'"
        this.pos++
      } else {
        break
      }
    }
    return escaped ? out.replace(/\\\\/g, "\\") : out
  }

  /** `schema.name`, each part possibly quoted. */
  table(): TestDecodingTable {
    const schema = this.identifier(".")
    this.expect(".")
    const name = this.identifier(":, ")
    return { schema, name }
  }

  /** An optional ` (at <timestamp>)` suffix, which ends the line. */
  timestamp(): string | undefined {
    if (!this.eat(" (at ")) return undefined
    const s = this.s
    if (!s.endsWith(")")) this.error("unterminated timestamp")
    const out = s.slice(this.pos, s.length - 1)
    this.pos = s.length
    return out
  }
}

/** Reads the type name of ` name[type]:`, which may itself contain `[]` or quoted parts, up to `]:`. */
const columnType = (c: Cursor): string => {
  const s = c.s
  const start = c.pos
  let quoted = false
  for (let i = start; i < s.length; i++) {
    const ch = s[i]
    if (ch === "\"") quoted = !quoted // a doubled "" toggles twice
    else if (!quoted && ch === "]" && s[i + 1] === ":") {
      c.pos = i + 2
      return s.slice(start, i)
    }
  }
  return c.error("unterminated column type")
}

const NULL_VALUE: TestDecodingValue = Object.freeze({ kind: "null" as const })
const UNCHANGED_VALUE: TestDecodingValue = Object.freeze({ kind: "unchanged" as const })

const columnValue = (c: Cursor, type: string): TestDecodingValue => {
  if (c.startsWith("'")) return { kind: "value", text: c.literal() }
  if (c.eat("B'")) {
    const q = c.s.indexOf("'", c.pos)
    if (q === -1) c.error("unterminated bit string")
    const text = c.s.slice(c.pos, q)
    c.pos = q + 1
    return { kind: "value", text }
  }
  const start = c.pos
  let stop = c.s.indexOf(" ", start)
  if (stop === -1) stop = c.s.length
  const token = c.s.slice(start, stop)
  if (token.length === 0) c.error("expected a column value")
  c.pos = stop
  if (token === "null") return NULL_VALUE
  if (token === "unchanged-toast-datum") return UNCHANGED_VALUE
  if (type === "boolean") {
    if (token === "true") return { kind: "value", text: "t" }
    if (token === "false") return { kind: "value", text: "f" }
    c.error(`bad boolean ${JSON.stringify(token)}`, start)
  }
  return { kind: "value", text: token }
}

/** ` name[type]:value` repeated, up to the end of the line or (`stopAt`) a marker such as " new-tuple:". */
const columns = (c: Cursor, stopAt?: string): Array<TestDecodingColumn> => {
  const out: Array<TestDecodingColumn> = []
  while (!c.atEnd() && !(stopAt !== undefined && c.startsWith(stopAt))) {
    c.expect(" ")
    const name = c.identifier("[")
    c.expect("[")
    const type = columnType(c)
    const value = columnValue(c, type)
    out.push({ name, type, value })
  }
  return out
}

/** Columns, or `null` for " (no-tuple-data)". */
const tuple = (c: Cursor, stopAt?: string): Array<TestDecodingColumn> | null => {
  if (c.eat(" (no-tuple-data)")) return null
  return columns(c, stopAt)
}

/** ` <xid>` after BEGIN/COMMIT when include-xids is on (a timestamp suffix starts with " ("). */
const spacedUint = (c: Cursor): number | undefined => (c.startsWith(" (") || !c.eat(" ") ? undefined : c.uint())

/** `TXN <xid>` when include-xids is on. */
const optionalTxn = (c: Cursor): number | undefined => (c.eat(" TXN ") ? c.uint() : undefined)

/** `, txid <xid>` when include-xids is on. */
const optionalTxid = (c: Cursor): number | undefined => (c.eat(", txid ") ? c.uint() : undefined)

const withOptionalXid = <T extends object>(base: T, xid: number | undefined): T & { xid?: number } =>
  xid === undefined ? base : { ...base, xid }

const withOptionalTimestamp = <T extends object>(base: T, ts: string | undefined): T & { timestamp?: string } =>
  ts === undefined ? base : { ...base, timestamp: ts }

const prepared = <Tag extends string>(c: Cursor, tag: Tag) => {
  const gid = c.literal()
  const xid = optionalTxid(c)
  const timestamp = c.timestamp()
  c.end()
  return withOptionalTimestamp(withOptionalXid({ _tag: tag, gid }, xid), timestamp)
}

/** `message: transactional: N prefix: P, sz: S content:C` (content absent for streamed transactional ones). */
const message = (c: Cursor, streaming: boolean): TestDecodingRecord => {
  c.expect("transactional: ")
  const flagAt = c.pos
  const transactional = c.eat("1") ? true : c.eat("0") ? false : c.error("expected 0 or 1", flagAt)
  c.expect(" prefix: ")
  const s = c.s
  const prefixStart = c.pos
  // The prefix and content are raw text and may contain ", sz: " themselves: take the first
  // ", sz: N" whose N matches what follows (the content's UTF-8 length, or the end of the line).
  const withContent = !(streaming && transactional)
  for (let at = s.indexOf(", sz: ", prefixStart); at !== -1; at = s.indexOf(", sz: ", at + 1)) {
    const m = /^, sz: (\d{1,15})/.exec(s.slice(at, at + 24))
    if (m === null) continue
    const size = Number(m[1])
    const after = at + m[0].length
    const prefix = s.slice(prefixStart, at)
    if (!withContent) {
      if (after !== s.length) continue
      c.pos = s.length
      return { _tag: "TestDecodingMessage", streaming, transactional, prefix, size }
    }
    if (!s.startsWith(" content:", after)) continue
    const content = s.slice(after + " content:".length)
    if (utf8Length(content) !== size) continue
    c.pos = s.length
    return { _tag: "TestDecodingMessage", streaming, transactional, prefix, size, content }
  }
  return c.error("no \", sz: N\" matching the message content")
}

/** Parses one line of test_decoding output. */
export const parseTestDecodingLine = (line: string): TestDecodingRecord => {
  const c = new Cursor(line)
  if (c.eat("BEGIN")) {
    const xid = spacedUint(c)
    c.end()
    return withOptionalXid({ _tag: "TestDecodingBegin" as const }, xid)
  }
  if (c.eat("COMMIT PREPARED ")) return prepared(c, "TestDecodingCommitPrepared")
  if (c.eat("COMMIT")) {
    const xid = spacedUint(c)
    const timestamp = c.timestamp()
    c.end()
    return withOptionalTimestamp(withOptionalXid({ _tag: "TestDecodingCommit" as const }, xid), timestamp)
  }
  if (c.eat("PREPARE TRANSACTION ")) return prepared(c, "TestDecodingPrepare")
  if (c.eat("ROLLBACK PREPARED ")) return prepared(c, "TestDecodingRollbackPrepared")
  if (c.eat("table ")) return tableLine(c)
  if (c.eat("message: ")) return message(c, false)
  if (c.eat("streaming message: ")) return message(c, true)
  if (c.eat("opening a streamed block for transaction")) return xidOnly(c, "TestDecodingStreamStart")
  if (c.eat("closing a streamed block for transaction")) return xidOnly(c, "TestDecodingStreamStop")
  if (c.eat("aborting streamed (sub)transaction")) return xidOnly(c, "TestDecodingStreamAbort")
  if (c.eat("streaming change for")) return streamedXid(c, "TestDecodingStreamChange")
  if (c.eat("streaming truncate for")) return streamedXid(c, "TestDecodingStreamTruncate")
  if (c.eat("committing streamed transaction")) {
    const xid = optionalTxn(c)
    const timestamp = c.timestamp()
    c.end()
    return withOptionalTimestamp(withOptionalXid({ _tag: "TestDecodingStreamCommit" as const }, xid), timestamp)
  }
  if (c.eat("preparing streamed transaction ")) {
    // With include-xids: "TXN 'gid', txid N"; without: "'gid'".
    c.eat("TXN ")
    return prepared(c, "TestDecodingStreamPrepare")
  }
  return c.error("unrecognised line")
}

const xidOnly = <Tag extends "TestDecodingStreamStart" | "TestDecodingStreamStop" | "TestDecodingStreamAbort">(
  c: Cursor,
  tag: Tag
) => {
  const xid = optionalTxn(c)
  c.end()
  return withOptionalXid({ _tag: tag }, xid)
}

/** "streaming change for TXN 7" with include-xids, "streaming change for transaction" without. */
const streamedXid = <Tag extends "TestDecodingStreamChange" | "TestDecodingStreamTruncate">(c: Cursor, tag: Tag) => {
  const xid = c.eat(" transaction") ? undefined : (c.expect(" TXN "), c.uint())
  c.end()
  return withOptionalXid({ _tag: tag }, xid)
}

const tableLine = (c: Cursor): TestDecodingRecord => {
  const tables: Array<TestDecodingTable> = [c.table()]
  while (c.eat(", ")) tables.push(c.table())
  c.expect(":")
  if (c.eat(" TRUNCATE:")) {
    let restartSeqs = false
    let cascade = false
    if (!c.eat(" (no-flags)")) {
      restartSeqs = c.eat(" restart_seqs")
      cascade = c.eat(" cascade")
      if (!restartSeqs && !cascade) c.error("expected TRUNCATE flags")
    }
    c.end()
    return { _tag: "TestDecodingTruncate", tables, restartSeqs, cascade }
  }
  if (tables.length !== 1) c.error("only TRUNCATE names several tables")
  const table = tables[0]!
  if (c.eat(" INSERT:")) {
    const newTuple = tuple(c)
    c.end()
    return { _tag: "TestDecodingInsert", table, newTuple }
  }
  if (c.eat(" UPDATE:")) {
    if (c.eat(" old-key:")) {
      const oldKey = columns(c, " new-tuple:")
      c.expect(" new-tuple:")
      const newTuple = tuple(c)
      c.end()
      return { _tag: "TestDecodingUpdate", table, oldKey, newTuple }
    }
    const newTuple = tuple(c)
    c.end()
    return { _tag: "TestDecodingUpdate", table, newTuple }
  }
  if (c.eat(" DELETE:")) {
    const oldKey = tuple(c)
    c.end()
    return { _tag: "TestDecodingDelete", table, oldKey }
  }
  return c.error("expected INSERT, UPDATE, DELETE or TRUNCATE")
}
