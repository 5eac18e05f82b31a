/**
 * Value codecs against a real PostgreSQL 18: for each type a battery of edge values is selected in
 * text and in binary format and must decode to the same value; each value, encoded by our binary
 * (and text) encoder and sent as a parameter, must come back as the text the server prints for the
 * original literal. Decoding goes through RowDecoder, so it is exercised on real DataRows too.
 */
import { afterAll, beforeAll, describe, inject, it } from "@effect/vitest"
import * as NodeAssert from "node:assert/strict"
import { openRawSession, type RawSession } from "@pgfx/testing"
import type { RawResult } from "@pgfx/testing/RawSession"
import { decodeBackend } from "../src/BackendMessage.ts"
import { Writer } from "../src/internal/Writer.ts"
import { encodeUtf8 } from "../src/internal/utf8.ts"
import { RowDecoder } from "../src/RowDecoder.ts"
import { arrayOidOf, TypeOid } from "../src/TypeOid.ts"
import { discoverTypesSql, registerDiscoveredTypes, TypeRegistry, type DiscoveredType } from "../src/TypeRegistry.ts"

let session: RawSession
const schema = `pgfx_values_${process.pid}_${Date.now()}`

beforeAll(async () => {
  session = await openRawSession(inject("pg18"))
  await run("SET TimeZone = 'UTC'")
})

afterAll(async () => {
  if (session !== undefined) {
    await session.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await session.close()
  }
})

const ERROR = 0x45
const ROW_DESCRIPTION = 0x54
const DATA_ROW = 0x44

const check = (r: RawResult): RawResult => {
  const e = r.frames.find((f) => f.type === ERROR)
  if (e !== undefined) {
    const m = decodeBackend(e.type, e.body, 0, e.body.length) as { fields?: ReadonlyArray<{ code: number; value: string }> }
    throw new Error(`server error: ${JSON.stringify(m)}`)
  }
  return r
}

const run = async (sql: string) => check(await session.query(sql))

/** Decodes a result's rows with RowDecoder (array mode) using the RowDescription's formats. */
const rowsOf = (r: RawResult, registry: TypeRegistry, mode: "array" | "object" = "array"): Array<any> => {
  check(r)
  const rd = r.frames.find((f) => f.type === ROW_DESCRIPTION)!
  const desc = decodeBackend(rd.type, rd.body, 0, rd.body.length) as unknown as {
    fields: ReadonlyArray<{ name: string; typeOid: number; format: 0 | 1 }>
  }
  const decoder = RowDecoder.make(desc.fields.map((f) => ({ name: f.name, typeOid: f.typeOid, format: f.format })), registry, { mode })
  return r.frames.filter((f) => f.type === DATA_ROW).map((f) => decoder.decode(f.body, 0, f.body.length))
}

const sqlString = (s: string) => "'" + s.replace(/'/g, "''") + "'"

interface Battery {
  readonly type: string
  readonly oid: number
  readonly literals: ReadonlyArray<string>
  /** Compare printed texts after this (json spacing differs). */
  readonly normalize?: (s: string) => unknown
  /** Text and binary decodes differ by design (reg* types). */
  readonly textDiffers?: boolean
}

/**
 * Selects every literal as `type` in text and binary and checks both decode the same; then sends each
 * decoded value back as a binary and a text parameter and checks the server prints what it printed
 * for the literal.
 */
const battery = async (registry: TypeRegistry, b: Battery): Promise<ReadonlyArray<unknown>> => {
  const source = `unnest(ARRAY[${b.literals.map(sqlString).join(", ")}]::text[]) WITH ORDINALITY AS x(v, n)`
  const sql = `SELECT v::${b.type} AS value, v::${b.type}::text AS printed FROM ${source} ORDER BY n`
  const text = rowsOf(await session.query(sql), registry)
  const binary = rowsOf(await session.extended(sql, [], 1), registry)
  NodeAssert.equal(text.length, b.literals.length)
  const printed = text.map((r) => r[1] as string)
  // binary result format applies to the ::text column too: it decodes to the same string
  NodeAssert.deepStrictEqual(binary.map((r) => r[1]), printed, `${b.type}: printed text`)
  if (!b.textDiffers) NodeAssert.deepStrictEqual(binary.map((r) => r[0]), text.map((r) => r[0]), `${b.type}: text vs binary decode`)
  const values = binary.map((r) => r[0])
  const codec = registry.get(b.oid)
  const norm = b.normalize ?? ((s: string) => s)
  for (const format of [1, 0] as const) {
    const params = values.map((v) => {
      if (format === 1) {
        const w = new Writer()
        codec.encodeBinary!(w, v)
        return { oid: b.oid, format, value: w.take() }
      }
      return { oid: b.oid, format, value: encodeUtf8(codec.encodeText(v)) }
    })
    const echo = `SELECT ${params.map((_, i) => `$${i + 1}::${b.type}::text`).join(", ")}`
    const back = rowsOf(await session.extended(echo, params, 0), registry)[0] as Array<string>
    NodeAssert.deepStrictEqual(back.map(norm), printed.map(norm), `${b.type}: ${format === 1 ? "binary" : "text"} parameters echo`)
  }
  return values
}

const json = (s: string) => JSON.parse(s)

const scalarBatteries: ReadonlyArray<Battery> = [
  { type: "bool", oid: TypeOid.bool, literals: ["t", "f"] },
  { type: "int2", oid: TypeOid.int2, literals: ["-32768", "32767", "0"] },
  { type: "int4", oid: TypeOid.int4, literals: ["-2147483648", "2147483647", "0", "42"] },
  { type: "int8", oid: TypeOid.int8, literals: ["-9223372036854775808", "9223372036854775807", "0"] },
  { type: "float4", oid: TypeOid.float4, literals: ["NaN", "Infinity", "-Infinity", "-0", "1.1", "3.4028235e38", "1e-45", "0.1", "16777217"] },
  {
    type: "float8",
    oid: TypeOid.float8,
    literals: ["NaN", "Infinity", "-Infinity", "-0", "0.1", "1.7976931348623157e308", "5e-324", "123456789.123", "1e22"]
  },
  {
    type: "numeric",
    oid: TypeOid.numeric,
    literals: [
      "NaN", "Infinity", "-Infinity", "0", "-0.000", "123.4500", "1e-50", "0.0001", "10000", "-99999999999999999999.99999",
      "9".repeat(1000) + "." + "1".repeat(500), "0." + "0".repeat(16000) + "1", "1e131071"
    ]
  },
  { type: "oid", oid: TypeOid.oid, literals: ["0", "4294967295", "1259"] },
  { type: "xid", oid: TypeOid.xid, literals: ["0", "4294967295"] },
  { type: "cid", oid: TypeOid.cid, literals: ["0", "4294967295"] },
  { type: "xid8", oid: TypeOid.xid8, literals: ["0", "18446744073709551615"] },
  { type: "pg_lsn", oid: TypeOid.pg_lsn, literals: ["0/0", "FFFFFFFF/FFFFFFFF", "16/B374D848"] },
  { type: "text", oid: TypeOid.text, literals: ["", "hello", "é😀𝄞", "quote's", "back\\slash", "a  b", "NULL"] },
  { type: "varchar", oid: TypeOid.varchar, literals: ["", "x😀"] },
  { type: "bpchar(5)", oid: TypeOid.bpchar, literals: ["ab", ""] },
  { type: "name", oid: TypeOid.name, literals: ["pg_class", "é"] },
  { type: '"char"', oid: TypeOid.char, literals: ["a", "", "\\377", "\\001"] },
  { type: "bytea", oid: TypeOid.bytea, literals: ["\\x", "\\x00ff5c22", "abc\\000\\\\"] },
  { type: "uuid", oid: TypeOid.uuid, literals: ["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "00000000-0000-0000-0000-000000000000"] },
  { type: "json", oid: TypeOid.json, literals: ['{"a": [1, 2.5, null, true]}', '"str"', "[]", "1e3"], normalize: json },
  { type: "jsonb", oid: TypeOid.jsonb, literals: ['{"a": [1, 2.5, null, true], "b": {"c": "é"}}', '"str"', "[]", "-0.5"], normalize: json },
  {
    type: "date",
    oid: TypeOid.date,
    literals: ["2024-02-29", "0001-01-01 BC", "4713-11-24 BC", "5874897-12-31", "12345-06-07", "infinity", "-infinity", "1970-01-01"]
  },
  { type: "time", oid: TypeOid.time, literals: ["00:00:00", "23:59:59.999999", "24:00:00", "12:34:56.5"] },
  { type: "timetz", oid: TypeOid.timetz, literals: ["00:00:00+00", "23:59:59.999999-15:59", "12:34:56.5+05:30", "10:00:00-03", "01:02:03+00:09:21"] },
  {
    type: "timestamp",
    oid: TypeOid.timestamp,
    literals: ["2024-02-29 12:34:56.123456", "4713-11-24 00:00:00 BC", "294276-12-31 23:59:59.999999", "12345-01-01", "infinity", "-infinity", "1999-12-31 23:59:59.9999995"]
  },
  {
    type: "timestamptz",
    oid: TypeOid.timestamptz,
    literals: ["2024-02-29 12:34:56.123456+00", "2024-06-01 12:00:00+05:30", "1900-01-01 00:00:00-03", "4713-11-24 00:00:00+00 BC", "294276-12-31 23:59:59.999999+00", "infinity", "-infinity", "0044-03-15 12:00:00 BC"]
  },
  {
    type: "interval",
    oid: TypeOid.interval,
    literals: [
      "1 year 2 mons 3 days 04:05:06.789", "-1 years -2 mons +3 days -04:05:06", "0", "1 microsecond", "-1 microsecond",
      "178956970 years 6 mons 2147483647 days 2562047788:00:54.775807", "-178956970 years -7 mons -2147483647 days -2562047788:00:54.775807",
      "infinity", "-infinity", "P1Y2M3DT4H5M6.5S"
    ]
  },
  {
    type: "inet",
    oid: TypeOid.inet,
    literals: ["192.168.0.1", "192.168.0.1/24", "::1", "::ffff:1.2.3.4", "2001:db8::/32", "::", "1::", "::2", "::1:2:3:4", "fe80::1:2:3:4/64", "0.0.0.0/0", "1:0:0:1:0:0:0:1", "1:0:0:0:1:0:0:1"]
  },
  { type: "cidr", oid: TypeOid.cidr, literals: ["10.0.0.0/8", "2001:db8::/32", "192.168.1.1/32", "::/0", "::ffff:1.2.3.0/120"] },
  { type: "macaddr", oid: TypeOid.macaddr, literals: ["08:00:2b:01:02:03", "FF-FF-FF-FF-FF-FF"] },
  { type: "macaddr8", oid: TypeOid.macaddr8, literals: ["08:00:2b:01:02:03:04:05", "00:00:00:00:00:00:00:00"] }
]

/** Array literal of a battery's values plus a NULL, for the same checks on T[]. */
const arrayBattery = (b: Battery): Battery => {
  const quoted = b.literals.map((l) => '"' + l.replace(/[\\"]/g, "\\$&") + '"')
  return {
    type: b.type + "[]",
    oid: arrayOidOf(b.oid)!,
    literals: ["{" + [...quoted, "NULL"].join(",") + "}", "{}", "{" + quoted[0] + "}"],
    ...(b.normalize === undefined ? {} : { normalize: (s: string) => s })
  }
}

describe("values against PostgreSQL 18", () => {
  const lossless = TypeRegistry.make({ temporal: "lossless" })

  for (const b of scalarBatteries) {
    it(`${b.type}: text = binary decode, binary and text parameters echo`, async () => {
      await battery(lossless, b)
      if (b.normalize === undefined) await battery(lossless, arrayBattery(b))
    })
  }

  it("json arrays decode to parsed values", async () => {
    const r = rowsOf(await session.extended(`SELECT '{"{\\"a\\": 1}","[1,2]",NULL}'::jsonb[]`, [], 1), lossless)
    NodeAssert.deepStrictEqual(r[0][0], [{ a: 1 }, [1, 2], null])
  })

  it("date mode: Dates and ±Infinity", async () => {
    const dates = TypeRegistry.make()
    await battery(dates, { type: "timestamptz", oid: TypeOid.timestamptz, literals: ["2024-02-29 12:34:56.123+00", "1900-01-01 00:00:00-03", "infinity", "-infinity", "0044-03-15 12:00:00+00 BC"] })
    await battery(dates, { type: "timestamp", oid: TypeOid.timestamp, literals: ["2024-02-29 12:34:56.123", "infinity"] })
    const values = await battery(dates, { type: "date", oid: TypeOid.date, literals: ["2024-02-29", "0001-01-01 BC", "infinity", "-infinity"] })
    NodeAssert.deepStrictEqual(values, [new Date("2024-02-29T00:00:00Z"), new Date("0000-01-01T00:00:00Z"), Infinity, -Infinity])
  })

  it("timestamptz text in other session time zones (+05:30, -03, LMT seconds)", async () => {
    for (const zone of ["Asia/Kolkata", "America/Sao_Paulo", "Europe/Amsterdam"]) {
      await run(`SET TimeZone = '${zone}'`)
      try {
        await battery(lossless, { type: "timestamptz", oid: TypeOid.timestamptz, literals: ["2024-06-01 12:00:00+00", "1850-01-01 00:00:00+00", "0044-03-15 12:00:00+00 BC", "2024-01-01 00:00:00.000001+00"] })
      } finally {
        await run("SET TimeZone = 'UTC'")
      }
    }
  })

  it("reg* types: binary OID, text name", async () => {
    const sql = "SELECT 'pg_class'::regclass, 'integer'::regtype, 'pg_class'::regclass::oid"
    const [t] = rowsOf(await session.query(sql), lossless)
    const [b] = rowsOf(await session.extended(sql, [], 1), lossless)
    NodeAssert.deepStrictEqual(t.slice(0, 2), ["pg_class", "integer"])
    NodeAssert.deepStrictEqual(b, [1259, 23, 1259])
    await battery(lossless, { type: "regclass", oid: TypeOid.regclass, literals: ["pg_class", "pg_type"], textDiffers: true })
  })

  it("bytea with all 256 byte values", async () => {
    const sql = "SELECT decode(string_agg(lpad(to_hex(i), 2, '0'), '' ORDER BY i), 'hex') FROM generate_series(0, 255) i"
    const all = Uint8Array.from({ length: 256 }, (_, i) => i)
    NodeAssert.deepStrictEqual(rowsOf(await session.query(sql), lossless)[0][0], all)
    NodeAssert.deepStrictEqual(rowsOf(await session.extended(sql, [], 1), lossless)[0][0], all)
    const w = new Writer()
    lossless.get(TypeOid.bytea).encodeBinary!(w, all)
    const [[same]] = rowsOf(await session.extended(`SELECT $1::bytea = (${sql})`, [{ oid: TypeOid.bytea, format: 1, value: w.take() }], 0), lossless)
    NodeAssert.equal(same, true)
  })

  it("arrays: multi-dimensional, lower bounds, quoting, box delimiter", async () => {
    await battery(lossless, {
      type: "int4[]",
      oid: TypeOid._int4,
      literals: ["{{1,2},{3,NULL}}", "[0:1]={1,2}", "[-2:-1][3:4]={{1,2},{3,4}}", "{{{1},{2}},{{3},{4}}}", "{}"]
    })
    await battery(lossless, {
      type: "text[]",
      oid: TypeOid._text,
      literals: ['{"a b","","NULL","q\\"","\\\\",null,"{}","a,b","é😀"}', "[5:5]={x}"]
    })
    await battery(lossless, { type: "numeric[]", oid: TypeOid._numeric, literals: ["{1.5,NaN,-Infinity,NULL}"] })
    const [[boxes]] = rowsOf(await session.query("SELECT '{(1,2),(3,4);(5,6),(7,8)}'::box[]"), lossless)
    NodeAssert.deepStrictEqual(boxes, ["(3,4),(1,2)", "(7,8),(5,6)"])
  })

  it("ranges and multiranges of every built-in subtype", async () => {
    const ranges: ReadonlyArray<Battery> = [
      { type: "int4range", oid: TypeOid.int4range, literals: ["[1,5)", "empty", "(,)", "[,5]", "(3,)", "[-2147483648,2147483647)"] },
      { type: "int8range", oid: TypeOid.int8range, literals: ["[1,9223372036854775806]", "empty", "(,0)"] },
      { type: "numrange", oid: TypeOid.numrange, literals: ["(1.5,2.50]", "(,)", "empty", "[-Infinity,Infinity]"] },
      { type: "tsrange", oid: TypeOid.tsrange, literals: ['["2020-01-01 00:00:00","infinity")', "[,2020-01-01)", "empty"] },
      { type: "tstzrange", oid: TypeOid.tstzrange, literals: ['["2020-01-01 00:00:00+00","2021-01-01 00:00:00.5+05:30"]', "(,)", "empty"] },
      { type: "daterange", oid: TypeOid.daterange, literals: ["[2020-01-01,2020-02-01]", "(-infinity,infinity)", "empty", "[0044-03-15 BC,)"] },
      { type: "int4multirange", oid: TypeOid.int4multirange, literals: ["{[1,3), [5,7)}", "{}", "{(,)}", "{[1,2),empty}"] },
      { type: "int8multirange", oid: TypeOid.int8multirange, literals: ["{[1,3), [5,7)}", "{}"] },
      { type: "nummultirange", oid: TypeOid.nummultirange, literals: ["{[1.5,2), (3,)}"] },
      { type: "tsmultirange", oid: TypeOid.tsmultirange, literals: ['{["2020-01-01 00:00:00","2020-01-02 00:00:00")}'] },
      { type: "tstzmultirange", oid: TypeOid.tstzmultirange, literals: ['{["2020-01-01 00:00:00+00",)}'] },
      { type: "datemultirange", oid: TypeOid.datemultirange, literals: ["{[2020-01-01,2020-02-01), [2021-01-01,)}", "{}"] }
    ]
    for (const b of ranges) {
      await battery(lossless, b)
      await battery(lossless, arrayBattery(b))
    }
  })

  it("enums, domains, composites and ranges discovered from the database", async () => {
    await run(`CREATE SCHEMA ${schema}`)
    await run(`CREATE TYPE ${schema}.mood AS ENUM ('sad', 'ok', 'happy 😀')`)
    await run(`CREATE DOMAIN ${schema}.posint AS int4 CHECK (VALUE > 0)`)
    await run(`CREATE DOMAIN ${schema}.posints AS ${schema}.posint[]`)
    await run(`CREATE TYPE ${schema}.pair AS (a int4, b text, m ${schema}.mood, t timestamptz[])`)
    await run(`CREATE TYPE ${schema}.floatrange AS RANGE (subtype = float8)`)
    const registry = TypeRegistry.make({ temporal: "lossless" })
    const discovered = rowsOf(await session.extended(discoverTypesSql, [], 1), registry, "object") as Array<DiscoveredType>
    const textDiscovered = rowsOf(await session.query(discoverTypesSql), registry, "object")
    NodeAssert.deepStrictEqual(textDiscovered, discovered)
    NodeAssert.ok(registerDiscoveredTypes(registry, discovered) >= 5)
    const oidOf = (name: string) => discovered.find((d) => d.name === name && d.kind !== "m")!.oid
    const other = TypeRegistry.make()
    NodeAssert.equal(other.has(oidOf("mood")), false, "registering on one registry leaves another alone")
    await battery(registry, { type: `${schema}.mood`, oid: oidOf("mood"), literals: ["sad", "happy 😀"] })
    await battery(registry, { type: `${schema}.mood[]`, oid: discovered.find((d) => d.name === "mood")!.array_oid, literals: ['{sad,"happy 😀",NULL}'] })
    await battery(registry, { type: `${schema}.posint`, oid: oidOf("posint"), literals: ["1", "2147483647"] })
    await battery(registry, { type: `${schema}.posints`, oid: oidOf("posints"), literals: ["{1,2,NULL}"] })
    const pairs = await battery(registry, {
      type: `${schema}.pair`,
      oid: oidOf("pair"),
      literals: ['(1,"x, y",ok,"{infinity,NULL}")', "(,,,)", '(-5,"",happy 😀,{})', '(2,"q\\"uote ""2""",sad,"{""2020-01-01 00:00:00+00""}")']
    })
    NodeAssert.deepStrictEqual(pairs[1], { a: null, b: null, m: null, t: null })
    NodeAssert.equal((pairs[0] as any).b, "x, y")
    await battery(registry, { type: `${schema}.pair[]`, oid: discovered.find((d) => d.name === "pair")!.array_oid, literals: ['{"(1,a,ok,{})",NULL}'] })
    await battery(registry, { type: `${schema}.floatrange`, oid: oidOf("floatrange"), literals: ["[1.5,2.5)", "empty", "(,-Infinity]"] })
    NodeAssert.equal(registry.hasBinary(oidOf("pair")), true)
    // anonymous records decode too (binary by the OIDs the server names, text as strings)
    const sql = "SELECT ROW(1, 'a b'::text, NULL::int4, ARRAY[1,2])"
    NodeAssert.deepStrictEqual(rowsOf(await session.extended(sql, [], 1), registry)[0][0], [1, "a b", null, [1, 2]])
    NodeAssert.deepStrictEqual(rowsOf(await session.query(sql), registry)[0][0], ["1", "a b", null, "{1,2}"])
  })

  it("unknown OIDs: text string, binary bytes", async () => {
    const empty = TypeRegistry.make()
    const sql = "SELECT point(1, 2)"
    NodeAssert.deepStrictEqual(rowsOf(await session.query(sql), empty)[0][0], "(1,2)")
    const bytes = rowsOf(await session.extended(sql, [], 1), empty)[0][0] as Uint8Array
    NodeAssert.equal(bytes.length, 16)
    NodeAssert.equal(empty.hasBinary(TypeOid.point), false)
  })
})
