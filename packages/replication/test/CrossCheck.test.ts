/**
 * Cross-check against PostgreSQL itself: one generated workload, decoded by our pgoutput stack for
 * every protocol version the server speaks (text and binary values), must equal what the server's own
 * test_decoding plugin reports for the same WAL on a second slot: the same transactions in the same
 * order, the same tables, operations, old keys / old rows and column values (test_decoding's text is
 * decoded with the column type's text codec, so binary values are checked against the server's text).
 *
 * Private servers (PostgreSQL 15: versions 1–3, PostgreSQL 18: versions 1–4), each with
 * max_prepared_transactions > 0 (two-phase) and logical_decoding_work_mem = 64kB (a big transaction
 * is streamed in blocks, with an aborted subtransaction inside it).
 */
import { afterAll, beforeAll } from "vitest"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { parseTestDecodingLine, type TestDecodingColumn, type TestDecodingRecord } from "@pgfx/codec/TestDecoding"
import { TypeRegistry } from "@pgfx/codec/TypeRegistry"
import * as Connection from "@pgfx/connection/Connection"
import { startTestServer, type TestServer } from "../../../testing/src/TestServer.ts"
import type * as Event from "../src/ChangeEvent.ts"
import { Unchanged } from "../src/ChangeEvent.ts"
import * as Logical from "../src/Logical.ts"
import { configOf } from "./logicalHelpers.ts"

const servers: Partial<Record<15 | 18, TestServer>> = {}

beforeAll(async () => {
  const extraConf = { max_prepared_transactions: "10", logical_decoding_work_mem: "64kB" }
  const [s15, s18] = await Promise.all([
    startTestServer({ version: 15, extraConf }),
    startTestServer({ version: 18, extraConf })
  ])
  servers[15] = s15
  servers[18] = s18
}, 120_000)

afterAll(async () => {
  await Promise.all([servers[15]?.stop(), servers[18]?.stop()])
}, 60_000)

const COLUMNS = `id int primary key,
  b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric, t text, vc varchar(20), bp char(5), nm name,
  ch "char", ba bytea, u uuid, j json, jb jsonb, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
  iv interval, ip inet, cidr_ cidr, mac macaddr, mac8 macaddr8, ia int4[], ta text[], na numeric[], r4 int4range,
  rtz tstzrange, rn numrange, mr int4multirange, o oid, lsn pg_lsn, x8 xid8, bits bit(4), vb varbit, ts_arr timestamptz[],
  big text`

/** A row of generated values: plain ones, edge cases, and nulls. */
const valuesRow = (id: number): string => {
  const k = id % 5
  if (k === 4) return `(${id}${", null".repeat(40)})`
  const edge = k === 3
  return `(${id}, ${k % 2 === 0}, ${edge ? -32768 : id}, ${edge ? 2147483647 : -id * 7}, ${edge ? "9223372036854775807" : id * 1e9},
    ${edge ? "'NaN'" : id + 0.1}, ${edge ? "'-Infinity'" : id / 3}, ${edge ? "'NaN'" : `'${id}.000100'`},
    ${edge ? `E'quote '' back\\\\slash \\n nl é 😀'` : `'text ${id}'`}, 'vc${id}', 'bp', 'name${id}', 'c',
    ${edge ? `'\\x00ff10'` : `'\\xdeadbeef'`}, '${"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a" + String(10 + (id % 90))}',
    '{"a": ${id}, "s": "x\\"y"}', '{"k": [1, 2.5, null, true], "id": ${id}}', ${edge ? "'infinity'" : "'2024-02-29'"},
    '13:14:15.123456', '13:14:15+05:30', ${edge ? "'-infinity'" : "'2001-02-03 04:05:06.789'"},
    '2024-01-02 03:04:05.678901+00', '1 year 2 mons 3 days 04:05:06.7', '192.168.${id % 255}.1/24', '10.0.0.0/8',
    '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', '{1,NULL,3}', '{"a b","c,d",NULL,"\\"q\\""}', '{1.5,NaN}',
    ${edge ? "'empty'" : "'[1,10)'"}, '[2024-01-01 00:00+00,2024-02-01 00:00+00)', '(,5.5]', '{[1,3),[5,7)}', ${id},
    '16/B374D848', '${id * 11}', B'1010', B'10111', '{"2024-01-01 00:00:00+00",NULL}', ${edge ? `repeat('big', 4000)` : "'small'"})`
}

/** The workload: one statement (or explicit transaction) per entry. */
const workload = (withTwoPhase: boolean): ReadonlyArray<string> => [
  `insert into ct_types values ${Array.from({ length: 10 }, (_, i) => valuesRow(i + 1)).join(", ")}`,
  // Updates: key unchanged (no old key), key changed (old key), TOASTed value untouched (unchanged).
  `update ct_types set t = 'updated', i4 = i4 + 1 where id in (1, 2)`,
  `update ct_types set id = 100 where id = 3`,
  `update ct_types set b = not b where id = 4`,
  `delete from ct_types where id = 5`,
  // REPLICA IDENTITY FULL and USING INDEX.
  `insert into ct_full values (1, 'one', 10), (2, null, 20), (3, 'three', 30)`,
  `update ct_full set v = 'uno' where id = 1`,
  `delete from ct_full where id = 2`,
  `insert into ct_index values (1, 'a', 'x'), (2, 'b', 'y')`,
  `update ct_index set k = 'c' where id = 1`,
  `update ct_index set note = 'z' where id = 2`,
  `delete from ct_index where id = 2`,
  // A shape change in the middle of the stream.
  `alter table ct_full add column extra int default 7`,
  `insert into ct_full values (4, 'four', 40, 8)`,
  // Messages and truncates.
  `begin; insert into ct_full values (5, 'five', 50, 1); select pg_logical_emit_message(true, 'pgfx', 'transactional payload'); commit`,
  `truncate ct_index`,
  `truncate ct_full, ct_index restart identity cascade`,
  // A transaction big enough to be streamed, with an aborted subtransaction inside.
  `begin; insert into ct_big select g, repeat('p', 200) from generate_series(1, 2000) g;
    savepoint s1; insert into ct_big select g, 'aborted' from generate_series(2001, 3000) g; rollback to savepoint s1;
    update ct_big set pad = 'u' where id <= 500; delete from ct_big where id > 1900; commit`,
  // A big transaction that aborts.
  `begin; insert into ct_big select g, repeat('a', 200) from generate_series(5001, 7000) g; rollback`,
  ...(withTwoPhase
    ? [
      `begin; insert into ct_full values (6, 'prepared', 60, 0); prepare transaction 'gid-commit'`,
      `commit prepared 'gid-commit'`,
      `begin; insert into ct_full values (7, 'rolled back', 70, 0); prepare transaction 'gid-rollback'`,
      `rollback prepared 'gid-rollback'`
    ]
    : []),
  `insert into ct_marker values (1)`
]

const SETUP = [
  `create table ct_types (${COLUMNS})`,
  `alter table ct_types alter column big set storage external`,
  `create table ct_full (id int primary key, v text, n int)`,
  `alter table ct_full replica identity full`,
  `create table ct_index (id int not null, k text not null, note text)`,
  `create unique index ct_index_k on ct_index (k)`,
  `alter table ct_index replica identity using index ct_index_k`,
  `create table ct_big (id int primary key, pad text)`,
  `create table ct_marker (id int)`,
  `create publication ct_pub for all tables`
]

// --- normal form ----------------------------------------------------------------------------------

type Values = Record<string, unknown>
type Change =
  | { readonly op: "INSERT" | "UPDATE" | "DELETE"; readonly table: string; readonly old: Values | undefined; readonly new: Values | undefined }
  | { readonly op: "TRUNCATE"; readonly tables: ReadonlyArray<string>; readonly cascade: boolean; readonly restart: boolean }
  | { readonly op: "MESSAGE"; readonly prefix: string; readonly size: number }

/** Old keys / rows without their nulls (test_decoding skips them). */
const withoutNulls = (row: Values | undefined): Values | undefined => {
  if (row === undefined) return undefined
  const out: Values = {}
  for (const [k, v] of Object.entries(row)) if (v !== null) out[k] = v
  return out
}

/** Our transactions, with two-phase ones resolved the way a non-two-phase reader sees them. */
const normalizePgoutput = (events: ReadonlyArray<Logical.LogicalEvent>): Array<Array<Change>> => {
  const out: Array<Array<Change>> = []
  const prepared = new Map<string, Array<Change>>()
  for (const e of events) {
    if (e._tag !== "Transaction") continue
    const changes: Array<Change> = []
    for (const c of e.changes) {
      switch (c._tag) {
        case "Insert":
          changes.push({ op: "INSERT", table: c.relation.qualifiedName, old: undefined, new: c.new as Values })
          break
        case "Update":
          changes.push({
            op: "UPDATE",
            table: c.relation.qualifiedName,
            old: withoutNulls((c.old ?? c.key) as Values | undefined),
            new: c.new as Values
          })
          break
        case "Delete":
          changes.push({ op: "DELETE", table: c.relation.qualifiedName, old: withoutNulls((c.old ?? c.key) as Values), new: undefined })
          break
        case "Truncate":
          changes.push({ op: "TRUNCATE", tables: c.relations.map((r) => r.qualifiedName), cascade: c.cascade, restart: c.restartIdentity })
          break
        case "Message":
          changes.push({ op: "MESSAGE", prefix: c.prefix, size: c.content.length })
          break
      }
    }
    switch (e.kind) {
      case "commit":
        if (changes.length > 0) out.push(changes)
        break
      case "prepare":
        prepared.set(e.gid!, changes)
        break
      case "commitPrepared":
        out.push(prepared.get(e.gid!) ?? [])
        prepared.delete(e.gid!)
        break
      case "rollbackPrepared":
        prepared.delete(e.gid!)
        break
    }
  }
  return out
}

const encoder = new TextEncoder()

/** test_decoding's lines, values decoded with the text codec of each column's type. */
const normalizeTestDecoding = (
  records: ReadonlyArray<TestDecodingRecord>,
  typeOf: (table: string, column: string) => number,
  registry: TypeRegistry
): Array<Array<Change>> => {
  const out: Array<Array<Change>> = []
  let current: Array<Change> = []
  const values = (table: string, columns: ReadonlyArray<TestDecodingColumn> | null | undefined, skipNulls: boolean) => {
    if (columns === null || columns === undefined) return undefined
    const row: Values = {}
    for (const c of columns) {
      if (c.value.kind === "null") {
        if (!skipNulls) row[c.name] = null
      } else if (c.value.kind === "unchanged") {
        row[c.name] = Unchanged
      } else {
        const bytes = encoder.encode(c.value.text)
        row[c.name] = registry.get(typeOf(table, c.name)).decodeText(bytes, 0, bytes.length)
      }
    }
    return row
  }
  for (const r of records) {
    switch (r._tag) {
      case "TestDecodingBegin":
        current = []
        break
      case "TestDecodingCommit":
        if (current.length > 0) out.push(current)
        break
      case "TestDecodingInsert": {
        const table = `${r.table.schema}.${r.table.name}`
        current.push({ op: "INSERT", table, old: undefined, new: values(table, r.newTuple, false) })
        break
      }
      case "TestDecodingUpdate": {
        const table = `${r.table.schema}.${r.table.name}`
        current.push({ op: "UPDATE", table, old: values(table, r.oldKey, true), new: values(table, r.newTuple, false) })
        break
      }
      case "TestDecodingDelete": {
        const table = `${r.table.schema}.${r.table.name}`
        current.push({ op: "DELETE", table, old: values(table, r.oldKey, true), new: undefined })
        break
      }
      case "TestDecodingTruncate":
        current.push({ op: "TRUNCATE", tables: r.tables.map((t) => `${t.schema}.${t.name}`), cascade: r.cascade, restart: r.restartSeqs })
        break
      case "TestDecodingMessage":
        if (r.transactional) current.push({ op: "MESSAGE", prefix: r.prefix, size: r.size })
        break
    }
  }
  return out
}

// --- the check ------------------------------------------------------------------------------------

interface Variant {
  readonly version: 1 | 2 | 3 | 4
  readonly binary: boolean
}

const variantsOf = (major: 15 | 18): ReadonlyArray<Variant> => {
  const versions: ReadonlyArray<1 | 2 | 3 | 4> = major === 18 ? [1, 2, 3, 4] : [1, 2, 3]
  return [...versions.map((version) => ({ version, binary: false })), { version: versions[versions.length - 1]!, binary: true }]
}

const slotName = (v: Variant) => `ct_v${v.version}${v.binary ? "_bin" : ""}`

const crossCheck = (major: 15 | 18) =>
  Effect.gen(function*() {
    const server = servers[major]!
    const cfg = configOf(server.info)
    const admin = yield* Connection.make(cfg)
    for (const s of SETUP) yield* admin.simple(s)
    const variants = variantsOf(major)
    for (const v of variants) {
      yield* admin.query(`select pg_create_logical_replication_slot($1, 'pgoutput', false, $2)`, [slotName(v), v.version >= 3])
    }
    yield* admin.query(`select pg_create_logical_replication_slot('ct_td', 'test_decoding')`)
    for (const s of workload(true)) yield* admin.simple(s)

    // The SQL interface decodes only flushed WAL (synchronous_commit is off): wait for the marker.
    let records: ReadonlyArray<TestDecodingRecord> = []
    for (let attempt = 0; attempt < 100; attempt++) {
      const td = yield* admin.query<{ data: string }>(
        `select data from pg_logical_slot_peek_changes('ct_td', null, null, 'include-xids', '0', 'skip-empty-xacts', '1')`
      )
      records = td.rows.map((r) => parseTestDecodingLine(r.data))
      if (records.some((r) => r._tag === "TestDecodingInsert" && r.table.name === "ct_marker")) break
      yield* Effect.sleep("100 millis")
    }

    for (const v of variants) {
      const events = yield* Logical.streamLogical(cfg, {
        slot: slotName(v),
        publications: ["ct_pub"],
        protocolVersion: v.version,
        streaming: v.version >= 4 ? "parallel" : v.version >= 2 ? "on" : "off",
        twoPhase: v.version >= 3,
        binary: v.binary,
        messages: true,
        mode: "transaction",
        reconnect: false
      }).pipe(
        Stream.takeUntil((e) =>
          e._tag === "Transaction" && e.changes.some((c) => c._tag === "Insert" && c.relation.name === "ct_marker")
        ),
        Stream.runCollect,
        Effect.timeout("60 seconds")
      )
      const transactions = events.filter((e): e is Event.Transaction => e._tag === "Transaction")
      // The streamed variants really streamed the big transaction; the two-phase ones really prepared.
      if (v.version >= 2) assert.isTrue(transactions.some((t) => t.streamed), `v${v.version}: a transaction was streamed`)
      if (v.version >= 3) assert.isTrue(transactions.some((t) => t.kind === "prepare"), `v${v.version}: two-phase`)
      const ourTransactions = normalizePgoutput(events)
      // Column types from the relations we were sent (the last shape of each table wins; columns only grow).
      const types = new Map<string, number>()
      for (const t of transactions) {
        for (const c of t.changes) {
          if (c._tag === "Relation") for (const col of c.relation.columns) types.set(`${c.relation.qualifiedName}.${col.name}`, col.typeOid)
        }
      }
      const registry = TypeRegistry.make()
      const theirTransactions = normalizeTestDecoding(records, (table, column) => {
        const oid = types.get(`${table}.${column}`)
        if (oid === undefined) throw new Error(`no type for ${table}.${column}`)
        return oid
      }, registry)
      // Binary values of types without a binary codec stay bytes (by design): compare only their presence.
      const opaque = (table: string, column: string) => v.binary && !registry.hasBinary(types.get(`${table}.${column}`)!)
      const masked = (ts: Array<Array<Change>>) =>
        ts.map((t) =>
          t.map((c): Change => {
            if (c.op !== "INSERT" && c.op !== "UPDATE" && c.op !== "DELETE") return c
            const mask = (row: Values | undefined) =>
              row === undefined
                ? undefined
                : Object.fromEntries(Object.entries(row).map(([k, x]) => [k, x !== null && x !== Unchanged && opaque(c.table, k) ? "<opaque>" : x]))
            return { ...c, old: mask(c.old), new: mask(c.new) }
          })
        )
      const ours = masked(ourTransactions)
      const theirs = masked(theirTransactions)
      const summary = (ts: Array<Array<Change>>) => ts.map((t) => t.map((c) => `${c.op}${"table" in c ? " " + c.table : ""}`).join(",").slice(0, 120))
      assert.deepStrictEqual(summary(ours), summary(theirs), `PostgreSQL ${major}, v${v.version}: transactions`)
      assert.strictEqual(ours.length, theirs.length, `PostgreSQL ${major}, v${v.version}${v.binary ? " binary" : ""}: transaction count`)
      for (let i = 0; i < ours.length; i++) {
        assert.deepStrictEqual(ours[i], theirs[i], `PostgreSQL ${major}, v${v.version}${v.binary ? " binary" : ""}: transaction ${i}`)
      }
      // Sanity: the workload is all there.
      const flat = ours.flat()
      assert.isTrue(flat.filter((c) => c.op === "INSERT").length > 1900)
      assert.isTrue(flat.some((c) => c.op === "UPDATE" && Object.values(c.new ?? {}).includes(Unchanged)))
      assert.isTrue(flat.some((c) => c.op === "TRUNCATE"))
      assert.isTrue(flat.some((c) => c.op === "MESSAGE"))
    }
  })

describe("Cross-check: pgoutput decoding equals test_decoding", () => {
  it.live("PostgreSQL 18, protocol versions 1–4 (text and binary)", () => crossCheck(18), 120_000)
  it.live("PostgreSQL 15, protocol versions 1–3 (text and binary)", () => crossCheck(15), 120_000)
})
