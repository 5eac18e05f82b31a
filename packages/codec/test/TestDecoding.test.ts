/**
 * The test_decoding line parser: every line format, checked on lines written as PostgreSQL's own
 * regression outputs show them, a render → parse round-trip property over generated records
 * (the renderer follows contrib/test_decoding/test_decoding.c), refusals of malformed lines, and
 * every line PostgreSQL 18 produces for a workload with awkward names, values, TOAST, messages,
 * streamed and aborted transactions.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { inject } from "vitest"
import { openRawSession, rowsOf } from "@pgfx/testing/RawSession"
import { isProtocolError } from "../src/ProtocolError.ts"
import { parseTestDecodingLine } from "../src/TestDecoding.ts"
import type { TestDecodingColumn, TestDecodingRecord, TestDecodingTable, TestDecodingValue } from "../src/TestDecoding.ts"
import { utf8Length } from "../src/internal/utf8.ts"

const reasonOf = (f: () => unknown): string => {
  try {
    f()
  } catch (e) {
    if (isProtocolError(e)) return e.reason
    throw e
  }
  return assert.fail("expected a ProtocolError")
}

const col = (name: string, type: string, text: string | null | "unchanged"): TestDecodingColumn => ({
  name,
  type,
  value: text === null ? { kind: "null" } : text === "unchanged" ? { kind: "unchanged" } : { kind: "value", text }
})

const tbl = (name: string, schema = "public"): TestDecodingTable => ({ schema, name })

describe("TestDecoding", () => {
  describe("line formats", () => {
    const cases: ReadonlyArray<readonly [string, TestDecodingRecord]> = [
      ["BEGIN", { _tag: "TestDecodingBegin" }],
      ["BEGIN 529", { _tag: "TestDecodingBegin", xid: 529 }],
      ["COMMIT", { _tag: "TestDecodingCommit" }],
      ["COMMIT 529", { _tag: "TestDecodingCommit", xid: 529 }],
      [
        "COMMIT 529 (at 2024-05-01 10:11:12.123456+00)",
        { _tag: "TestDecodingCommit", xid: 529, timestamp: "2024-05-01 10:11:12.123456+00" }
      ],
      [
        "table public.replication_example: INSERT: id[integer]:1 somedata[integer]:1 text[character varying]:'1'",
        {
          _tag: "TestDecodingInsert",
          table: tbl("replication_example"),
          newTuple: [col("id", "integer", "1"), col("somedata", "integer", "1"), col("text", "character varying", "1")]
        }
      ],
      [
        "table public.tr_sub: INSERT: id[integer]:1 path[text]:'1-top-#1' b[boolean]:false f[double precision]:-1.5e+20 bits[bit varying]:B'101'",
        {
          _tag: "TestDecodingInsert",
          table: tbl("tr_sub"),
          newTuple: [
            col("id", "integer", "1"),
            col("path", "text", "1-top-#1"),
            col("b", "boolean", "f"),
            col("f", "double precision", "-1.5e+20"),
            col("bits", "bit varying", "101")
          ]
        }
      ],
      [
        "table public.toasttable: UPDATE: id[integer]:1 toasted_col1[text]:unchanged-toast-datum rand1[double precision]:79 toasted_col2[text]:null",
        {
          _tag: "TestDecodingUpdate",
          table: tbl("toasttable"),
          newTuple: [
            col("id", "integer", "1"),
            col("toasted_col1", "text", "unchanged"),
            col("rand1", "double precision", "79"),
            col("toasted_col2", "text", null)
          ]
        }
      ],
      [
        "table public.table_with_unique_not_null: UPDATE: old-key: id[integer]:4 new-tuple: id[integer]:-4 data[integer]:4",
        {
          _tag: "TestDecodingUpdate",
          table: tbl("table_with_unique_not_null"),
          oldKey: [col("id", "integer", "4")],
          newTuple: [col("id", "integer", "-4"), col("data", "integer", "4")]
        }
      ],
      [
        "table public.table_without_key: DELETE: (no-tuple-data)",
        { _tag: "TestDecodingDelete", table: tbl("table_without_key"), oldKey: null }
      ],
      [
        "table public.table_with_pkey: DELETE: id[integer]:2",
        { _tag: "TestDecodingDelete", table: tbl("table_with_pkey"), oldKey: [col("id", "integer", "2")] }
      ],
      [
        `table "Sch ""x""."."My: Table": INSERT: "Col ""A""[1]"[public."My]: Type"[]]:'{"it''s"}' arr[integer[]]:'{1,2}'`,
        {
          _tag: "TestDecodingInsert",
          table: tbl(`My: Table`, `Sch "x".`),
          newTuple: [
            col(`Col "A"[1]`, `public."My]: Type"[]`, `{"it's"}`),
            col("arr", "integer[]", "{1,2}")
          ]
        }
      ],
      [
        "table public.tr_pkey: TRUNCATE: (no-flags)",
        { _tag: "TestDecodingTruncate", tables: [tbl("tr_pkey")], restartSeqs: false, cascade: false }
      ],
      [
        "table public.tab1, public.tab2: TRUNCATE: restart_seqs cascade",
        { _tag: "TestDecodingTruncate", tables: [tbl("tab1"), tbl("tab2")], restartSeqs: true, cascade: true }
      ],
      [
        "table public.tab1: TRUNCATE: cascade",
        { _tag: "TestDecodingTruncate", tables: [tbl("tab1")], restartSeqs: false, cascade: true }
      ],
      [
        "message: transactional: 1 prefix: test, sz: 14 content:tx logical msg",
        {
          _tag: "TestDecodingMessage",
          streaming: false,
          transactional: true,
          prefix: "test",
          size: 14,
          content: "tx logical msg"
        }
      ],
      [
        // The content holds the separator itself …
        "message: transactional: 0 prefix: a, sz: 18 content:b, sz: 3 content:c",
        {
          _tag: "TestDecodingMessage",
          streaming: false,
          transactional: false,
          prefix: "a",
          size: 18,
          content: "b, sz: 3 content:c"
        }
      ],
      [
        // … and so does the prefix: the size decides.
        "message: transactional: 0 prefix: a, sz: 1 content:b, sz: 1 content:c",
        {
          _tag: "TestDecodingMessage",
          streaming: false,
          transactional: false,
          prefix: "a, sz: 1 content:b",
          size: 1,
          content: "c"
        }
      ],
      [
        "message: transactional: 0 prefix: p, sz: 3 content:é!",
        { _tag: "TestDecodingMessage", streaming: false, transactional: false, prefix: "p", size: 3, content: "é!" }
      ],
      [
        "streaming message: transactional: 1 prefix: test, sz: 50",
        { _tag: "TestDecodingMessage", streaming: true, transactional: true, prefix: "test", size: 50 }
      ],
      [
        "streaming message: transactional: 0 prefix: test, sz: 2 content:ab",
        { _tag: "TestDecodingMessage", streaming: true, transactional: false, prefix: "test", size: 2, content: "ab" }
      ],
      ["opening a streamed block for transaction TXN 741", { _tag: "TestDecodingStreamStart", xid: 741 }],
      ["opening a streamed block for transaction", { _tag: "TestDecodingStreamStart" }],
      ["closing a streamed block for transaction TXN 741", { _tag: "TestDecodingStreamStop", xid: 741 }],
      ["closing a streamed block for transaction", { _tag: "TestDecodingStreamStop" }],
      ["streaming change for TXN 741", { _tag: "TestDecodingStreamChange", xid: 741 }],
      ["streaming change for transaction", { _tag: "TestDecodingStreamChange" }],
      ["streaming truncate for TXN 741", { _tag: "TestDecodingStreamTruncate", xid: 741 }],
      ["aborting streamed (sub)transaction TXN 742", { _tag: "TestDecodingStreamAbort", xid: 742 }],
      ["aborting streamed (sub)transaction", { _tag: "TestDecodingStreamAbort" }],
      ["committing streamed transaction TXN 741", { _tag: "TestDecodingStreamCommit", xid: 741 }],
      [
        "committing streamed transaction (at 2024-05-01 10:11:12+02)",
        { _tag: "TestDecodingStreamCommit", timestamp: "2024-05-01 10:11:12+02" }
      ],
      [
        "preparing streamed transaction TXN 'test1', txid 767",
        { _tag: "TestDecodingStreamPrepare", gid: "test1", xid: 767 }
      ],
      ["preparing streamed transaction 'test1'", { _tag: "TestDecodingStreamPrepare", gid: "test1" }],
      ["PREPARE TRANSACTION 'test_prepared#1'", { _tag: "TestDecodingPrepare", gid: "test_prepared#1" }],
      [
        "PREPARE TRANSACTION 'it''s', txid 500 (at 2024-05-01 10:11:12+00)",
        { _tag: "TestDecodingPrepare", gid: "it's", xid: 500, timestamp: "2024-05-01 10:11:12+00" }
      ],
      [
        "COMMIT PREPARED E'back\\\\slash', txid 501",
        { _tag: "TestDecodingCommitPrepared", gid: "back\\slash", xid: 501 }
      ],
      ["ROLLBACK PREPARED 'test_prepared#3'", { _tag: "TestDecodingRollbackPrepared", gid: "test_prepared#3" }]
    ]
    for (const [line, expected] of cases) {
      it(line.length > 70 ? `${line.slice(0, 67)}...` : line, () => {
        assert.deepStrictEqual(parseTestDecodingLine(line), expected)
      })
    }
  })

  it("refuses malformed lines", () => {
    const bad = [
      "",
      "BEGIN x",
      "BEGIN 99999999999",
      "COMMIT 5 (at never",
      "table public.t INSERT: id[integer]:1",
      "table public.t: INSERT: id[integer:1",
      "table public.t: INSERT: id[text]:'open",
      "table public.t: INSERT: b[boolean]:maybe",
      "table public.t: UPSERT: id[integer]:1",
      "table public.t, public.u: INSERT: id[integer]:1",
      "table public.t: TRUNCATE: nothing",
      "table \"unterminated: INSERT:",
      "message: transactional: 2 prefix: p, sz: 1 content:x",
      "message: transactional: 1 prefix: p, sz: 5 content:x",
      "PREPARE TRANSACTION gid",
      "streaming change for TXN",
      "something else entirely"
    ]
    for (const line of bad) assert.strictEqual(reasonOf(() => parseTestDecodingLine(line)), "InvalidValue", line)
  })

  // --- render → parse -----------------------------------------------------------------------------

  const quoteIdent = (s: string) => (/^[a-z_][a-z0-9_$]*$/.test(s) ? s : `"${s.replace(/"/g, "\"\"")}"`)
  const quoteLiteral = (s: string) =>
    s.includes("\\") ? `E'${s.replace(/\\/g, "\\\\").replace(/'/g, "''")}'` : `'${s.replace(/'/g, "''")}'`
  const renderTable = (t: TestDecodingTable) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`
  const renderValue = (type: string, v: TestDecodingValue): string => {
    if (v.kind === "null") return "null"
    if (v.kind === "unchanged") return "unchanged-toast-datum"
    switch (type) {
      case "integer":
      case "double precision":
      case "numeric":
        return v.text
      case "boolean":
        return v.text === "t" ? "true" : "false"
      case "bit varying":
        return `B'${v.text}'`
      default:
        return `'${v.text.replace(/'/g, "''")}'`
    }
  }
  const renderColumns = (cs: ReadonlyArray<TestDecodingColumn>) =>
    cs.map((c) => ` ${quoteIdent(c.name)}[${c.type}]:${renderValue(c.type, c.value)}`).join("")
  const renderTuple = (cs: ReadonlyArray<TestDecodingColumn> | null) => (cs === null ? " (no-tuple-data)" : renderColumns(cs))
  const xidSuffix = (r: { readonly xid?: number | undefined }, sep: string) => (r.xid === undefined ? "" : `${sep}${r.xid}`)
  const at = (r: { readonly timestamp?: string | undefined }) => (r.timestamp === undefined ? "" : ` (at ${r.timestamp})`)

  /** Writes a record the way test_decoding.c does. */
  const render = (r: TestDecodingRecord): string => {
    switch (r._tag) {
      case "TestDecodingBegin":
        return `BEGIN${xidSuffix(r, " ")}`
      case "TestDecodingCommit":
        return `COMMIT${xidSuffix(r, " ")}${at(r)}`
      case "TestDecodingInsert":
        return `table ${renderTable(r.table)}: INSERT:${renderTuple(r.newTuple)}`
      case "TestDecodingUpdate":
        return `table ${renderTable(r.table)}: UPDATE:${
          r.oldKey === undefined ? "" : ` old-key:${renderColumns(r.oldKey)} new-tuple:`
        }${renderTuple(r.newTuple)}`
      case "TestDecodingDelete":
        return `table ${renderTable(r.table)}: DELETE:${renderTuple(r.oldKey)}`
      case "TestDecodingTruncate":
        return `table ${r.tables.map(renderTable).join(", ")}: TRUNCATE:${
          r.restartSeqs || r.cascade ? `${r.restartSeqs ? " restart_seqs" : ""}${r.cascade ? " cascade" : ""}` : " (no-flags)"
        }`
      case "TestDecodingMessage":
        return `${r.streaming ? "streaming " : ""}message: transactional: ${r.transactional ? 1 : 0} prefix: ${r.prefix}, sz: ${r.size}${
          r.content === undefined ? "" : ` content:${r.content}`
        }`
      case "TestDecodingStreamStart":
        return `opening a streamed block for transaction${xidSuffix(r, " TXN ")}`
      case "TestDecodingStreamStop":
        return `closing a streamed block for transaction${xidSuffix(r, " TXN ")}`
      case "TestDecodingStreamAbort":
        return `aborting streamed (sub)transaction${xidSuffix(r, " TXN ")}`
      case "TestDecodingStreamCommit":
        return `committing streamed transaction${xidSuffix(r, " TXN ")}${at(r)}`
      case "TestDecodingStreamChange":
        return r.xid === undefined ? "streaming change for transaction" : `streaming change for TXN ${r.xid}`
      case "TestDecodingStreamTruncate":
        return r.xid === undefined ? "streaming truncate for transaction" : `streaming truncate for TXN ${r.xid}`
      case "TestDecodingStreamPrepare":
        return r.xid === undefined
          ? `preparing streamed transaction ${quoteLiteral(r.gid)}${at(r)}`
          : `preparing streamed transaction TXN ${quoteLiteral(r.gid)}, txid ${r.xid}${at(r)}`
      case "TestDecodingPrepare":
        return `PREPARE TRANSACTION ${quoteLiteral(r.gid)}${xidSuffix(r, ", txid ")}${at(r)}`
      case "TestDecodingCommitPrepared":
        return `COMMIT PREPARED ${quoteLiteral(r.gid)}${xidSuffix(r, ", txid ")}${at(r)}`
      case "TestDecodingRollbackPrepared":
        return `ROLLBACK PREPARED ${quoteLiteral(r.gid)}${xidSuffix(r, ", txid ")}${at(r)}`
    }
  }

  const anyText = fc.string({ maxLength: 16, unit: "grapheme" })
  const ident = fc.oneof(
    fc.stringMatching(/^[a-z_][a-z0-9_]{0,8}$/),
    fc.string({ minLength: 1, maxLength: 10, unit: "grapheme" }).map((s) => s.replace(/\0/g, "x"))
  )
  const table = fc.record({ schema: ident, name: ident })
  const typedValue: fc.Arbitrary<{ type: string; text: string }> = fc.oneof(
    fc.integer().map((n) => ({ type: "integer", text: String(n) })),
    fc.double({ noNaN: true }).map((n) => ({ type: "double precision", text: String(n) })),
    fc.boolean().map((b) => ({ type: "boolean", text: b ? "t" : "f" })),
    fc.stringMatching(/^[01]{0,12}$/).map((text) => ({ type: "bit varying", text })),
    fc.constantFrom("text", "character varying[]", "timestamp with time zone", "public.\"My]: Type\"").chain((type) =>
      anyText.map((text) => ({ type, text }))
    )
  )
  const column: fc.Arbitrary<TestDecodingColumn> = fc.tuple(
    ident,
    typedValue,
    fc.constantFrom("value", "null", "unchanged")
  ).map(([name, { type, text }, kind]) => ({
    name,
    type,
    value: kind === "value" ? { kind, text } : kind === "null" ? { kind } : { kind }
  }))
  const columns = fc.array(column, { maxLength: 5 })
  const tuple = fc.option(columns, { nil: null })
  const xid = fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined })
  const ts = fc.option(fc.constantFrom("2024-05-01 10:11:12.123456+00", "1999-12-31 23:59:59-08"), { nil: undefined })
  /** Drops keys whose value is undefined: the parser omits absent optional fields. */
  const compact = <A extends object>(a: A): A =>
    Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)) as A
  const gid = fc.string({ maxLength: 10, unit: "grapheme" })

  const record: fc.Arbitrary<TestDecodingRecord> = fc.oneof(
    xid.map((x) => compact({ _tag: "TestDecodingBegin" as const, xid: x })),
    fc.record({ _tag: fc.constant("TestDecodingCommit" as const), xid, timestamp: ts }).map(compact),
    fc.record({ _tag: fc.constant("TestDecodingInsert" as const), table, newTuple: tuple }),
    fc.record({
      _tag: fc.constant("TestDecodingUpdate" as const),
      table,
      oldKey: fc.option(columns, { nil: undefined }),
      newTuple: tuple
    }).map(compact),
    fc.record({ _tag: fc.constant("TestDecodingDelete" as const), table, oldKey: tuple }),
    fc.record({
      _tag: fc.constant("TestDecodingTruncate" as const),
      tables: fc.array(table, { minLength: 1, maxLength: 3 }),
      restartSeqs: fc.boolean(),
      cascade: fc.boolean()
    }),
    fc.record({
      _tag: fc.constant("TestDecodingMessage" as const),
      streaming: fc.boolean(),
      transactional: fc.boolean(),
      // A prefix is free text too, but one holding ", sz: N content:" could be split two ways.
      prefix: fc.string({ maxLength: 10, unit: "grapheme" }).map((s) => s.replace(/[,\0]/g, "")),
      content: anyText
    }).map((m) => {
      const size = utf8Length(m.content)
      return m.streaming && m.transactional
        ? { _tag: m._tag, streaming: true, transactional: true, prefix: m.prefix, size }
        : { ...m, size }
    }),
    fc.constantFrom(
      "TestDecodingStreamStart" as const,
      "TestDecodingStreamStop" as const,
      "TestDecodingStreamAbort" as const,
      "TestDecodingStreamChange" as const,
      "TestDecodingStreamTruncate" as const
    ).chain((tag) => xid.map((x) => compact({ _tag: tag, xid: x }))),
    fc.record({ _tag: fc.constant("TestDecodingStreamCommit" as const), xid, timestamp: ts }).map(compact),
    fc.constantFrom(
      "TestDecodingStreamPrepare" as const,
      "TestDecodingPrepare" as const,
      "TestDecodingCommitPrepared" as const,
      "TestDecodingRollbackPrepared" as const
    ).chain((tag) => fc.record({ _tag: fc.constant(tag), gid, xid, timestamp: ts }).map(compact))
  )

  it("parses every record as test_decoding renders it", () => {
    fc.assert(
      fc.property(record, (r) => {
        assert.deepStrictEqual(parseTestDecodingLine(render(r)), r)
      }),
      { numRuns: 2000 }
    )
  })

  it("never throws anything but ProtocolError on arbitrary text", () => {
    const prefixes = ["", "table ", "message: transactional: 1 prefix: ", "BEGIN ", "COMMIT PREPARED ", "table a.b: UPDATE: old-key:"]
    fc.assert(
      fc.property(fc.constantFrom(...prefixes), fc.string({ maxLength: 40 }), (prefix, rest) => {
        try {
          parseTestDecodingLine(prefix + rest)
        } catch (e) {
          assert.isTrue(isProtocolError(e), String(e))
        }
      }),
      { numRuns: 2000 }
    )
  })

  describe("against PostgreSQL 18", () => {
    it("parses every line test_decoding writes for an awkward workload", async () => {
      const info = inject("pg18")
      const suffix = `${process.pid}_${Date.now().toString(36)}`
      const table = `h2 TD "${suffix}"`
      const qt = `"${table.replace(/"/g, "\"\"")}"`
      const slot = `h2_tdx_${suffix}`
      const prefix = `h2td-${suffix}`
      const sql = await openRawSession(info)
      const q = async (statement: string) => rowsOf(await sql.query(statement))
      try {
        // The server runs with synchronous_commit off; decoding only sees flushed WAL, so flush ours.
        await q(`SET synchronous_commit = on`)
        await q(
          `CREATE TABLE ${qt} ("Id" int PRIMARY KEY, "we""ird col" text, arr integer[], b bit(3), vb varbit, ` +
            `ts timestamptz, n numeric, f float8, ok boolean, big text)`
        )
        await q(`ALTER TABLE ${qt} ALTER COLUMN big SET STORAGE EXTERNAL`)
        await q(`ALTER TABLE ${qt} REPLICA IDENTITY FULL`)
        await q(`SELECT pg_create_logical_replication_slot('${slot}', 'test_decoding')`)
        await q(
          `INSERT INTO ${qt} VALUES (1, 'it''s a]: "test"\nline two', '{1,2,3}', B'101', B'1', ` +
            `'2024-05-01 10:11:12.5+00', 1.50, -1.5e20, true, repeat('y', 9000))`
        )
        await q(`UPDATE ${qt} SET arr = NULL WHERE "Id" = 1`)
        await q(`DELETE FROM ${qt} WHERE "Id" = 1`)
        await q(`TRUNCATE ${qt}`)
        await q(`SELECT pg_logical_emit_message(true, '${prefix}', 'multi\nline, sz: 2 content:zz')`)
        await q(`INSERT INTO ${qt} ("Id", big) SELECT g, repeat(md5(g::text), 8) FROM generate_series(10, 509) g`)
        // A large subtransaction rolled back inside a committed transaction: streamed, then its
        // stream aborted. (A whole aborted transaction would not do: PostgreSQL 18 discards the
        // changes of a transaction it already knows aborted instead of streaming them.)
        await q(
          `BEGIN; INSERT INTO ${qt} ("Id") VALUES (2000); SAVEPOINT s; ` +
            `INSERT INTO ${qt} ("Id", big) SELECT g, repeat(md5(g::text), 8) FROM generate_series(1000, 1499) g; ` +
            `ROLLBACK TO SAVEPOINT s; COMMIT`
        )

        const peek = async (options: string) =>
          (await q(`SELECT data FROM pg_logical_slot_peek_changes('${slot}', NULL, NULL${options})`)).map((r) => r[0]!)

        // 1. Whole transactions, with xids and commit timestamps.
        const lines = await peek(`, 'include-xids', '1', 'include-timestamp', '1'`)
        const records = lines.map(parseTestDecodingLine)
        const ours = records.filter((r) =>
          ("table" in r && r.table.name === table) ||
          (r._tag === "TestDecodingTruncate" && r.tables.some((t) => t.name === table)) ||
          (r._tag === "TestDecodingMessage" && r.prefix === prefix)
        )
        const insert = ours[0]!
        assert.strictEqual(insert._tag, "TestDecodingInsert")
        if (insert._tag !== "TestDecodingInsert") return
        assert.deepStrictEqual(insert.table, { schema: "public", name: table })
        const firstRow = insert.newTuple!.map((c) => [c.name, c.type, c.value.kind === "value" ? c.value.text : c.value.kind])
        assert.deepStrictEqual(firstRow, [
          ["Id", "integer", "1"],
          ["we\"ird col", "text", "it's a]: \"test\"\nline two"],
          ["arr", "integer[]", "{1,2,3}"],
          ["b", "bit", "101"],
          ["vb", "bit varying", "1"],
          ["ts", "timestamp with time zone", "2024-05-01 10:11:12.5+00"],
          ["n", "numeric", "1.50"],
          ["f", "double precision", "-1.5e+20"],
          ["ok", "boolean", "t"],
          ["big", "text", "y".repeat(9000)]
        ])
        const update = ours[1]!
        assert.strictEqual(update._tag, "TestDecodingUpdate")
        if (update._tag !== "TestDecodingUpdate") return
        // REPLICA IDENTITY FULL: the old row is logged (nulls skipped); the untouched TOAST value is not.
        assert.deepStrictEqual(update.oldKey?.map((c) => c.name), ["Id", "we\"ird col", "arr", "b", "vb", "ts", "n", "f", "ok", "big"])
        assert.deepStrictEqual(update.newTuple!.find((c) => c.name === "arr")!.value, { kind: "null" })
        assert.deepStrictEqual(update.newTuple!.find((c) => c.name === "big")!.value, { kind: "unchanged" })
        const del = ours[2]!
        assert.strictEqual(del._tag, "TestDecodingDelete")
        assert.deepStrictEqual(ours[3], {
          _tag: "TestDecodingTruncate",
          tables: [{ schema: "public", name: table }],
          restartSeqs: false,
          cascade: false
        })
        assert.deepStrictEqual(ours[4], {
          _tag: "TestDecodingMessage",
          streaming: false,
          transactional: true,
          prefix,
          size: 28,
          content: "multi\nline, sz: 2 content:zz"
        })
        assert.strictEqual(ours.slice(5).filter((r) => r._tag === "TestDecodingInsert").length, 501)
        assert.strictEqual(ours.length, 506) // the rolled-back subtransaction's rows are never shown
        const commits = records.filter((r) => r._tag === "TestDecodingCommit")
        assert.isAtLeast(commits.length, 6)
        for (const c of commits) {
          assert.isNumber(c.xid)
          assert.match(c.timestamp ?? "", /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d/)
        }

        // 2. Streamed: with a 64kB decoding budget the two big transactions are streamed.
        await q(`SET logical_decoding_work_mem = '64kB'`)
        const streamed = (await peek(`, 'include-xids', '1', 'stream-changes', '1', 'skip-empty-xacts', '1'`)).map(
          parseTestDecodingLine
        )
        const tags = new Set(streamed.map((r) => r._tag))
        for (
          const tag of [
            "TestDecodingStreamStart",
            "TestDecodingStreamChange",
            "TestDecodingStreamStop",
            "TestDecodingStreamCommit",
            "TestDecodingStreamAbort"
          ]
        ) assert.isTrue(tags.has(tag as TestDecodingRecord["_tag"]), tag)
        // The abort names the subtransaction; the blocks around it, and the commit, the top transaction.
        const abortAt = streamed.findIndex((r) => r._tag === "TestDecodingStreamAbort")
        const abort = streamed[abortAt] as { readonly xid?: number }
        const opened = streamed.slice(0, abortAt).reverse().find((r) => r._tag === "TestDecodingStreamStart") as {
          readonly xid?: number
        }
        const committed = streamed.slice(abortAt).find((r) => r._tag === "TestDecodingStreamCommit") as {
          readonly xid?: number
        }
        assert.isNumber(abort.xid)
        assert.isNumber(opened.xid)
        assert.notStrictEqual(abort.xid, opened.xid)
        assert.strictEqual(committed.xid, opened.xid)

        // 3. Without xids.
        for (const line of await peek("")) parseTestDecodingLine(line)
      } finally {
        await q(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}'`).catch(
          () => undefined
        )
        await q(`DROP TABLE IF EXISTS ${qt}`).catch(() => undefined)
        await sql.close()
      }
    })
  })
})
