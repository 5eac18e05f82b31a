import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as fc from "fast-check"
import { copyFrom, copyTo } from "../src/Copy.ts"
import { CsvParser, decodeCsv, decodeText, encodeCsv, encodeText, TextParser } from "../src/CopyFormat.ts"
import * as Connection from "../src/Connection.ts"
import { unixConfig } from "./helpers.ts"

/** Strings rich in everything COPY must escape or quote; no NUL (PostgreSQL text cannot hold it). */
const value = fc.string({
  unit: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom("\\", "\n", "\r", "\t", "\"", ",", ".", "N", " ", "\b", "\f", "\v", "\\.", "\\N", "é", "😀", "\r\n") },
    { weight: 5, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }).filter((c) => c !== "\u0000") }
  ),
  maxLength: 12
})
const cell = fc.option(value, { nil: null, freq: 5 })
const rowsOf = (columns: number) => fc.array(fc.array(cell, { minLength: columns, maxLength: columns }), { maxLength: 12 })
const anyRows = fc.integer({ min: 1, max: 4 }).chain(rowsOf)

/** Splits a string at random points (the parsers must not care). */
const chunked = (s: string, cuts: ReadonlyArray<number>) => {
  const points = [...new Set(cuts.map((c) => c % (s.length + 1)))].sort((a, b) => a - b)
  const out: Array<string> = []
  let prev = 0
  for (const p of points) {
    out.push(s.slice(prev, p))
    prev = p
  }
  out.push(s.slice(prev))
  return out
}

const enc = new TextEncoder()

describe("CopyFormat: round trips", () => {
  it("text format", () => {
    fc.assert(fc.property(anyRows, (rows) => {
      expect(decodeText(encodeText(rows))).toEqual(rows)
    }), { numRuns: 500 })
  })

  it("CSV", () => {
    fc.assert(fc.property(anyRows, (rows) => {
      expect(decodeCsv(encodeCsv(rows))).toEqual(rows)
    }), { numRuns: 500 })
  })

  it("other delimiters", () => {
    fc.assert(
      fc.property(anyRows, fc.constantFrom("|", ";", ","), (rows, delimiter) => {
        expect(decodeText(encodeText(rows, { delimiter }), { delimiter })).toEqual(rows)
        expect(decodeCsv(encodeCsv(rows, { delimiter }), { delimiter })).toEqual(rows)
      }),
      { numRuns: 200 }
    )
  })

  it("incremental parsers give the same rows for every split, of strings and of UTF-8 bytes", () => {
    fc.assert(
      fc.property(anyRows, fc.array(fc.nat(), { maxLength: 8 }), (rows, cuts) => {
        for (const [encode, make] of [[encodeText, () => new TextParser()], [encodeCsv, () => new CsvParser()]] as const) {
          const data = encode(rows)
          const p1 = make()
          const fromStrings = chunked(data, cuts).flatMap((c) => p1.push(c))
          fromStrings.push(...p1.end())
          expect(fromStrings).toEqual(rows)
          const bytes = enc.encode(data)
          const p2 = make()
          const fromBytes: Array<Array<string | null>> = []
          let prev = 0
          for (const c of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
            fromBytes.push(...p2.push(bytes.subarray(prev, c)))
            prev = c
          }
          fromBytes.push(...p2.push(bytes.subarray(prev)), ...p2.end())
          expect(fromBytes).toEqual(rows)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("known encodings", () => {
    assert.strictEqual(encodeText([["a\tb", null, "c\\d\n", ""]]), "a\\tb\t\\N\tc\\\\d\\n\t\n")
    assert.strictEqual(encodeCsv([["a,b", null, "say \"hi\"", "", "\\."]]), "\"a,b\",,\"say \"\"hi\"\"\",\"\",\"\\.\"\n")
    // PostgreSQL's octal and hex escapes, CRLF line ends and the end marker.
    assert.deepStrictEqual(decodeText("\\101\\x42\\xc3\\xa9\tx\r\n\\.\nignored\n"), [["ABé", "x"]])
  })
})

describe("CopyFormat against the server", () => {
  it.live("COPY TO as text and CSV parses to what SELECT returns", () =>
    Effect.gen(function*() {
      const conn = yield* Connection.make(unixConfig())
      yield* conn.simple("create temp table fmt(a text, b text)")
      yield* conn.query(
        "insert into fmt values ($1, $2), ($3, $4), ($5, $6), ($7, $8)",
        ["tab\there", null, "nl\nand\rcr", "", "back\\slash \"quoted\", comma", "\\.", "unicode é 😀", "\\N"]
      )
      const expected = (yield* conn.query<{ a: string | null; b: string | null }>("select a, b from fmt order by a")).rows
        .map((r) => [r.a, r.b])
      for (const [format, parser] of [["text", new TextParser()], ["csv", new CsvParser()]] as const) {
        const rows: Array<Array<string | null>> = []
        yield* copyTo(conn, `copy (select a, b from fmt order by a) to stdout (format ${format})`).pipe(
          Stream.runForEach((chunk) => Effect.sync(() => rows.push(...parser.push(chunk))))
        )
        rows.push(...parser.end())
        assert.deepStrictEqual(rows, expected, format)
      }
    }))

  it.live("random rows encoded as text and CSV, copied in, read back by SELECT", () =>
    Effect.gen(function*() {
      const conn = yield* Connection.make(unixConfig())
      yield* conn.simple("create temp table rnd(i int, a text, b text)")
      const samples = fc.sample(rowsOf(2), { numRuns: 40, seed: 42 })
      for (const format of ["text", "csv"] as const) {
        for (const rows of samples) {
          yield* conn.simple("truncate rnd")
          const numbered = rows.map((r, i) => [String(i), ...r])
          const data = format === "text" ? encodeText(numbered) : encodeCsv(numbered)
          const n = yield* Stream.make(data).pipe(Stream.run(copyFrom(conn, `copy rnd from stdin (format ${format})`)))
          assert.strictEqual(n, rows.length)
          const back = (yield* conn.query<{ a: string | null; b: string | null }>("select a, b from rnd order by i")).rows
          assert.deepStrictEqual(back.map((r) => [r.a, r.b]), rows, `${format}: ${JSON.stringify(rows)}`)
        }
      }
    }))
})
