/**
 * COPY's text and CSV formats: rows of nullable strings to COPY data and back, whole or incrementally.
 *
 * Invariants:
 * - Round trip: `decode(encode(rows))` is `rows` for every row of strings and nulls without NUL characters
 *   (PostgreSQL's text cannot hold NUL) and with at least one column, in both formats, with any delimiter
 *   the format allows. The encoders write exactly what PostgreSQL's COPY FROM reads back as the same
 *   values, and the decoders read what PostgreSQL's COPY TO writes (checked against the server in tests).
 * - Text format (PostgreSQL's defaults): columns separated by a tab, rows ended by "\n", NULL written as
 *   `\N`; a backslash, the delimiter, "\n", "\r", and \b \f \t \v are escaped with a backslash. The decoder
 *   also accepts PostgreSQL's octal (`\123`) and hex (`\x4f`) escapes, "\r\n" line ends and the `\.` end
 *   marker.
 * - CSV: columns separated by ",", quoted with '"' (a quote inside a quoted value is doubled); NULL is an
 *   unquoted empty field and the empty string a quoted one (""), as PostgreSQL writes them. A value is
 *   quoted when it is empty, contains the delimiter, a quote, "\r" or "\n", or is `\.`.
 * - The incremental parsers (`TextParser`, `CsvParser`) give the same rows for every split of the input
 *   into chunks, including splits inside a multi-byte UTF-8 sequence, an escape or a quoted value.
 */

/** One row: the columns' text representations, null for SQL NULL. */
export type CopyRow = ReadonlyArray<string | null>

export interface TextFormatOptions {
  /** One character, default tab. */
  readonly delimiter?: string | undefined
  /** The string written for NULL, default `\N`. */
  readonly null?: string | undefined
}

export interface CsvFormatOptions {
  /** One character, default ",". */
  readonly delimiter?: string | undefined
  /** One character, default '"'. */
  readonly quote?: string | undefined
}

/** A value as COPY text: strings as they are; other values by their usual text form. */
const valueText = (v: unknown): string | null => {
  if (v === null || v === undefined) return null
  if (typeof v === "string") return v
  if (v instanceof Date) return v.toISOString()
  if (typeof v === "object") return JSON.stringify(v)
  return String(v)
}

// ---------------------------------------------------------------------------------------------------------
// Text format

const needsTextEscape = /[\\\n\r\t\b\f\v]/

const escapeText = (s: string, delimiter: string): string => {
  if (!needsTextEscape.test(s) && (delimiter === "\t" || s.indexOf(delimiter) === -1)) return s
  let out = ""
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!
    switch (c) {
      case "\\":
        out += "\\\\"
        break
      case "\n":
        out += "\\n"
        break
      case "\r":
        out += "\\r"
        break
      case "\t":
        out += "\\t"
        break
      case "\b":
        out += "\\b"
        break
      case "\f":
        out += "\\f"
        break
      case "\v":
        out += "\\v"
        break
      default:
        out += c === delimiter ? "\\" + c : c
    }
  }
  return out
}

/** One row in text format, "\n" included. */
export const encodeTextRow = (row: ReadonlyArray<unknown>, options?: TextFormatOptions): string => {
  const delimiter = options?.delimiter ?? "\t"
  const nullText = options?.null ?? "\\N"
  let out = ""
  for (let i = 0; i < row.length; i++) {
    if (i > 0) out += delimiter
    const v = valueText(row[i])
    out += v === null ? nullText : escapeText(v, delimiter)
  }
  return out + "\n"
}

export const encodeText = (rows: Iterable<ReadonlyArray<unknown>>, options?: TextFormatOptions): string => {
  let out = ""
  for (const row of rows) out += encodeTextRow(row, options)
  return out
}

const isOctal = (c: string | undefined) => c !== undefined && c >= "0" && c <= "7"
const isHex = (c: string | undefined) => c !== undefined && /^[0-9a-fA-F]$/.test(c)

/**
 * Decodes one line (without its line end) of text format. Octal and hex escapes denote bytes; bytes of a
 * multi-byte character spelled with escapes are put back together as UTF-8.
 */
const decodeTextLine = (line: string, delimiter: string, nullText: string): Array<string | null> => {
  const row: Array<string | null> = []
  let field = ""
  let raw = "" // the field as written, to compare with the NULL marker
  let bytes: Array<number> | undefined // escaped bytes waiting to be decoded as UTF-8
  const flushBytes = () => {
    if (bytes !== undefined) {
      field += new TextDecoder().decode(new Uint8Array(bytes))
      bytes = undefined
    }
  }
  const endField = () => {
    flushBytes()
    row.push(raw === nullText ? null : field)
    field = ""
    raw = ""
  }
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (c === delimiter) {
      endField()
      continue
    }
    if (c !== "\\" || i + 1 === line.length) {
      flushBytes()
      field += c
      raw += c
      continue
    }
    const n = line[++i]!
    raw += "\\" + n
    if (isOctal(n)) {
      let v = n.charCodeAt(0) - 48
      for (let k = 0; k < 2 && isOctal(line[i + 1]); k++) {
        v = v * 8 + line.charCodeAt(++i) - 48
        raw += line[i]
      }
      ;(bytes ??= []).push(v & 0xff)
      continue
    }
    if (n === "x" && isHex(line[i + 1])) {
      let v = parseInt(line[++i]!, 16)
      raw += line[i]
      if (isHex(line[i + 1])) {
        v = v * 16 + parseInt(line[++i]!, 16)
        raw += line[i]
      }
      ;(bytes ??= []).push(v)
      continue
    }
    flushBytes()
    switch (n) {
      case "n":
        field += "\n"
        break
      case "r":
        field += "\r"
        break
      case "t":
        field += "\t"
        break
      case "b":
        field += "\b"
        break
      case "f":
        field += "\f"
        break
      case "v":
        field += "\v"
        break
      default:
        field += n
    }
  }
  endField()
  return row
}

/** Splits text-format data into rows (whole input). */
export const decodeText = (input: string, options?: TextFormatOptions): Array<Array<string | null>> => {
  const parser = new TextParser(options)
  const rows = parser.push(input)
  for (const r of parser.end()) rows.push(r)
  return rows
}

/** Incremental text-format parser: feed strings or UTF-8 bytes, get the complete rows so far. */
export class TextParser {
  private readonly delimiter: string
  private readonly nullText: string
  private readonly utf8 = new TextDecoder("utf-8", { fatal: true })
  private rest = ""
  private ended = false

  constructor(options?: TextFormatOptions) {
    this.delimiter = options?.delimiter ?? "\t"
    this.nullText = options?.null ?? "\\N"
  }

  push(chunk: string | Uint8Array): Array<Array<string | null>> {
    const text = typeof chunk === "string" ? chunk : this.utf8.decode(chunk, { stream: true })
    const rows: Array<Array<string | null>> = []
    if (this.ended) return rows
    let data = this.rest + text
    let from = 0
    while (true) {
      const nl = data.indexOf("\n", from)
      if (nl === -1) break
      const line = data.slice(from, nl > from && data[nl - 1] === "\r" ? nl - 1 : nl)
      from = nl + 1
      if (line === "\\.") {
        this.ended = true
        data = ""
        from = 0
        break
      }
      rows.push(decodeTextLine(line, this.delimiter, this.nullText))
    }
    this.rest = data.slice(from)
    return rows
  }

  /** The last row when the data did not end with a line end. */
  end(): Array<Array<string | null>> {
    const tail = this.rest + (this.ended ? "" : this.utf8.decode())
    this.rest = ""
    if (this.ended || tail.length === 0 || tail === "\\.") return []
    return [decodeTextLine(tail.endsWith("\r") ? tail.slice(0, -1) : tail, this.delimiter, this.nullText)]
  }
}

// ---------------------------------------------------------------------------------------------------------
// CSV

const quoteCsv = (s: string, delimiter: string, quote: string): string => {
  const needs = s.length === 0 || s === "\\." || s.indexOf(delimiter) !== -1 || s.indexOf(quote) !== -1 ||
    s.indexOf("\n") !== -1 || s.indexOf("\r") !== -1
  if (!needs) return s
  return quote + s.split(quote).join(quote + quote) + quote
}

/** One row in CSV, "\n" included. */
export const encodeCsvRow = (row: ReadonlyArray<unknown>, options?: CsvFormatOptions): string => {
  const delimiter = options?.delimiter ?? ","
  const quote = options?.quote ?? "\""
  let out = ""
  for (let i = 0; i < row.length; i++) {
    if (i > 0) out += delimiter
    const v = valueText(row[i])
    if (v !== null) out += quoteCsv(v, delimiter, quote)
  }
  // A single NULL column would be an empty line, which COPY FROM reads as one NULL too: fine.
  return out + "\n"
}

export const encodeCsv = (rows: Iterable<ReadonlyArray<unknown>>, options?: CsvFormatOptions): string => {
  let out = ""
  for (const row of rows) out += encodeCsvRow(row, options)
  return out
}

export const decodeCsv = (input: string, options?: CsvFormatOptions): Array<Array<string | null>> => {
  const parser = new CsvParser(options)
  const rows = parser.push(input)
  for (const r of parser.end()) rows.push(r)
  return rows
}

/** Incremental CSV parser (a state machine over characters, so quoted values may span chunks). */
export class CsvParser {
  private readonly delimiter: string
  private readonly quote: string
  private readonly utf8 = new TextDecoder("utf-8", { fatal: true })
  private row: Array<string | null> = []
  private field = ""
  /** Whether the current field had quotes (then it is never NULL). */
  private quoted = false
  private inQuotes = false
  /** A quote was just seen inside quotes: the next character decides (doubled quote, or the closing one). */
  private quotePending = false
  /** A "\r" was just seen outside quotes: a following "\n" belongs to the same line end. */
  private crPending = false
  private started = false

  constructor(options?: CsvFormatOptions) {
    this.delimiter = options?.delimiter ?? ","
    this.quote = options?.quote ?? "\""
  }

  private endField(): void {
    this.row.push(!this.quoted && this.field.length === 0 ? null : this.field)
    this.field = ""
    this.quoted = false
  }

  private endRow(rows: Array<Array<string | null>>): void {
    this.endField()
    const row = this.row
    this.row = []
    this.started = false
    // The end marker `\.` alone on a line (unquoted) ends the data.
    if (!(row.length === 1 && row[0] === "\\." && !this.lastQuoted)) rows.push(row)
  }

  private lastQuoted = false

  push(chunk: string | Uint8Array): Array<Array<string | null>> {
    const text = typeof chunk === "string" ? chunk : this.utf8.decode(chunk, { stream: true })
    const rows: Array<Array<string | null>> = []
    const { delimiter, quote } = this
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!
      if (this.crPending) {
        this.crPending = false
        if (c === "\n") continue
      }
      if (this.quotePending) {
        this.quotePending = false
        if (c === quote) {
          this.field += quote
          continue
        }
        this.inQuotes = false
      }
      if (this.inQuotes) {
        if (c === quote) this.quotePending = true
        else this.field += c
        continue
      }
      this.started = true
      if (c === quote) {
        this.inQuotes = true
        this.quoted = true
        this.lastQuoted = true
      } else if (c === delimiter) {
        this.endField()
        this.lastQuoted = false
      } else if (c === "\n" || c === "\r") {
        if (c === "\r") this.crPending = true
        this.endRow(rows)
        this.lastQuoted = false
      } else {
        this.field += c
      }
    }
    return rows
  }

  end(): Array<Array<string | null>> {
    const rows = this.push(this.utf8.decode())
    if (this.quotePending) {
      this.quotePending = false
      this.inQuotes = false
    }
    if (this.started || this.row.length > 0 || this.field.length > 0 || this.quoted) this.endRow(rows)
    return rows
  }
}
