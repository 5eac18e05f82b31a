/**
 * Schema-typed queries whose declared result is checked against the server's RowDescription.
 *
 * The first time a statement's SQL text runs, it is prepared on a session (the connection's statement
 * cache keeps it, so this costs nothing later) and the Result schema's fields are compared with the
 * columns: every required field must be a column (after `transformResultNames`), and the column's type
 * must decode (with pgfx's codecs) to what the field's Encoded side accepts. A mismatch fails with a
 * `ResultShapeError` naming the column, its type and what the schema expected; the check is then
 * repeated on the next run (so a migration that fixes it is picked up). Rows are then decoded by the
 * schema as `SqlSchema` does.
 *
 * Invariants:
 * - A verified SQL text is never checked again by the same helper; the check never runs the statement.
 * - Nullability is not checked (RowDescription does not carry it): decoding by the schema does that.
 * - Fields whose Encoded side is `Unknown`/`Any`, or a declaration other than Date/Uint8Array, accept
 *   any column type; json/jsonb columns accept any JSON-shaped field; user-defined types (OID ≥ 16384:
 *   enums, domains, composites, extensions) accept strings, objects and arrays (pgfx decodes them by
 *   their text form, or by their own registered codec).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import type { SqlError } from "effect/sql/SqlError"
import type * as Statement from "effect/sql/Statement"
import type { FieldDescription } from "@pgfx/codec/Query"
import { TypeOid, typeInfo } from "@pgfx/codec/TypeOid"
import { toSqlError } from "./Errors.ts"
import { PgClient } from "./PgClient.ts"

export class ResultShapeError extends Schema.TaggedError<ResultShapeError>()("ResultShapeError", {
  /** The first mismatching column (or schema field, when the column is missing). */
  column: Schema.String,
  expected: Schema.String,
  actual: Schema.String,
  sql: Schema.String,
  message: Schema.String
}) {}

type Kind = "number" | "bigint" | "string" | "boolean" | "Date" | "Uint8Array" | "json" | "object" | "array" | "any"

const kindByOid = new Map<number, Kind>([
  [TypeOid.int2, "number"],
  [TypeOid.int4, "number"],
  [TypeOid.float4, "number"],
  [TypeOid.float8, "number"],
  [TypeOid.oid, "number"],
  [TypeOid.int8, "bigint"],
  [TypeOid.bool, "boolean"],
  [TypeOid.bytea, "Uint8Array"],
  [TypeOid.date, "Date"],
  [TypeOid.timestamp, "Date"],
  [TypeOid.timestamptz, "Date"],
  [TypeOid.json, "json"],
  [TypeOid.jsonb, "json"],
  [TypeOid.text, "string"],
  [TypeOid.varchar, "string"],
  [TypeOid.bpchar, "string"],
  [TypeOid.name, "string"],
  [TypeOid.char, "string"],
  [TypeOid.uuid, "string"],
  [TypeOid.numeric, "string"],
  [TypeOid.inet, "string"],
  [TypeOid.cidr, "string"],
  [TypeOid.macaddr, "string"],
  [TypeOid.xml, "string"],
  [TypeOid.money, "string"],
  [TypeOid.bit, "string"],
  [TypeOid.varbit, "string"],
  [TypeOid.regclass, "string"],
  [TypeOid.unknown, "string"]
])

const FIRST_USER_OID = 16384

/** What a column of this type decodes to, in words (for messages). */
const describeOid = (oid: number): string => {
  const info = typeInfo(oid)
  const name = info?.typname ?? (oid >= FIRST_USER_OID ? "a user-defined type" : "an unknown type")
  const kind = kindOf(oid)
  return `${name} (oid ${oid}), decoded as ${kind === "any" ? "its codec's value" : kind}`
}

const kindOf = (oid: number): Kind => {
  const k = kindByOid.get(oid)
  if (k !== undefined) return k
  const info = typeInfo(oid)
  if (info?.typcategory === "A") return "array"
  if (info?.typcategory === "R") return "object" // ranges
  return "any"
}

/** Whether a column of type `oid` can be read by a field whose Encoded side is `ast`. */
const accepts = (ast: SchemaAST.AST, oid: number): boolean => {
  if (oid >= FIRST_USER_OID) return acceptsUserType(ast)
  const kind = kindOf(oid)
  switch (ast._tag) {
    case "Unknown":
    case "Any":
    case "Null":
    case "Undefined":
    case "Void":
      return true
    case "Suspend":
      return accepts(ast.thunk(), oid)
    case "Union":
      return ast.types.some((t) => t._tag !== "Null" && t._tag !== "Undefined" && accepts(t, oid)) ||
        ast.types.every((t) => t._tag === "Null" || t._tag === "Undefined")
    case "String":
    case "TemplateLiteral":
      return kind === "string" || kind === "json" || kind === "any"
    case "Number":
      return kind === "number" || kind === "json"
    case "BigInt":
      return kind === "bigint"
    case "Boolean":
      return kind === "boolean" || kind === "json"
    case "Literal":
      return typeof ast.literal === "string"
        ? kind === "string" || kind === "json" || kind === "any"
        : typeof ast.literal === "number"
        ? kind === "number" || kind === "json"
        : typeof ast.literal === "boolean"
        ? kind === "boolean" || kind === "json"
        : kind === "bigint"
    case "Enum":
      return kind === "string" || kind === "number" || kind === "json" || kind === "any"
    case "Arrays": {
      if (kind === "json") return true
      if (kind !== "array") return false
      const element = typeInfo(oid)?.typelem ?? 0
      const items = [...ast.elements, ...ast.rest]
      return items.every((t) => accepts(t, element))
    }
    case "Objects":
      return kind === "json" || kind === "object" || kind === "any"
    case "Declaration": {
      const id = (ast.annotations?.["representation"] as { id?: unknown } | undefined)?.id
      if (id === "effect/schema/Date") return kind === "Date"
      if (id === "effect/schema/Uint8Array") return kind === "Uint8Array"
      return true
    }
    default:
      return false
  }
}

const acceptsUserType = (ast: SchemaAST.AST): boolean => {
  switch (ast._tag) {
    case "Union":
      return ast.types.some((t) => t._tag !== "Null" && t._tag !== "Undefined" && acceptsUserType(t))
    case "Suspend":
      return acceptsUserType(ast.thunk())
    case "Number":
    case "BigInt":
    case "Boolean":
      return false
    default:
      return true
  }
}

/** Words for what a field's Encoded side expects. */
const expectedOf = (ast: SchemaAST.AST): string => {
  switch (ast._tag) {
    case "Union":
      return ast.types.map(expectedOf).join(" | ")
    case "Suspend":
      return expectedOf(ast.thunk())
    case "Literal":
      return JSON.stringify(typeof ast.literal === "bigint" ? String(ast.literal) : ast.literal)
    case "Arrays":
      return `array of ${[...ast.elements, ...ast.rest].map(expectedOf).join(", ") || "anything"}`
    case "Objects":
      return "object"
    case "Declaration": {
      const id = (ast.annotations?.["representation"] as { id?: unknown } | undefined)?.id
      return id === "effect/schema/Date" ? "Date" : id === "effect/schema/Uint8Array" ? "Uint8Array" : "a declared type"
    }
    default:
      return ast._tag.toLowerCase()
  }
}

/**
 * Compares a Result schema (a Struct) with a statement's columns. Returns undefined when they fit.
 * `rename` maps a column name to the row key (the client's `transformResultNames`).
 */
export const checkFields = (
  Result: Schema.Top,
  fields: ReadonlyArray<FieldDescription> | undefined,
  sql: string,
  rename: (column: string) => string = (s) => s
): ResultShapeError | undefined => {
  const encoded = SchemaAST.toEncoded(Result.ast)
  if (encoded._tag !== "Objects") {
    return new ResultShapeError({
      column: "",
      expected: "a Struct schema",
      actual: encoded._tag,
      sql,
      message: `the Result schema must be a Struct (its Encoded side is ${encoded._tag})`
    })
  }
  const columns = new Map<string, FieldDescription>()
  for (const f of fields ?? []) columns.set(rename(f.name), f)
  for (const p of encoded.propertySignatures) {
    const key = String(p.name)
    const column = columns.get(key)
    if (column === undefined) {
      if (p.type.context?.isOptional === true) continue
      const names = [...columns.keys()].join(", ") || "no columns"
      return new ResultShapeError({
        column: key,
        expected: expectedOf(p.type),
        actual: "missing",
        sql,
        message: `column "${key}" is required by the Result schema but the query returns ${names}`
      })
    }
    if (!accepts(p.type, column.typeOid)) {
      return new ResultShapeError({
        column: key,
        expected: expectedOf(p.type),
        actual: describeOid(column.typeOid),
        sql,
        message: `column "${key}" is ${describeOid(column.typeOid)}, but the Result schema expects ${expectedOf(p.type)}`
      })
    }
  }
  return undefined
}

/** A checker for one Result schema; remembers the SQL texts it verified. */
const makeChecker = (Result: Schema.Top) => {
  const verified = new Set<string>()
  return (statement: Statement.Fragment & { compile: Statement.Statement<unknown>["compile"] }) =>
    Effect.flatMap(Effect.service(PgClient), (client): Effect.Effect<void, SqlError | ResultShapeError> => {
      const [sql] = statement.compile()
      if (verified.has(sql)) return Effect.void
      return client.withConnection((conn) =>
        Effect.flatMap(Effect.mapError(conn.prepare(sql), (e) => toSqlError(e, "prepare")), (prepared) => {
          const error = checkFields(Result, prepared.fields, sql, client.config.transformResultNames)
          if (error !== undefined) return Effect.fail(error)
          verified.add(sql)
          return Effect.void
        })
      )
    })
}

/** Checks (once per SQL text) and runs a statement, decoding every row with `Result`. */
export const checked = <S extends Schema.Top>(Result: S) => {
  const check = makeChecker(Result)
  const decode = Schema.decodeUnknownEffect(Schema.Array(Result))
  return <A>(
    statement: Statement.Statement<A>
  ): Effect.Effect<ReadonlyArray<S["Type"]>, SqlError | ResultShapeError | Schema.SchemaError, PgClient | S["DecodingServices"]> =>
    Effect.andThen(check(statement), Effect.flatMap(statement, decode))
}

/** `SqlSchema.findAll` with the Result checked against the statement's columns at first use. */
export const findAll = <Req extends Schema.Top, Res extends Schema.Top>(options: {
  readonly Request: Req
  readonly Result: Res
  readonly execute: (request: Req["Encoded"]) => Statement.Statement<unknown>
}) => {
  const encode = Schema.encodeEffect(options.Request)
  const run = checked(options.Result)
  return (request: Req["Type"]) => Effect.flatMap(encode(request), (encoded) => run(options.execute(encoded)))
}

/** `SqlSchema.findOne` (fails with NoSuchElementError when there is no row), checked at first use. */
export const findOne = <Req extends Schema.Top, Res extends Schema.Top>(options: {
  readonly Request: Req
  readonly Result: Res
  readonly execute: (request: Req["Encoded"]) => Statement.Statement<unknown>
}) => {
  const all = findAll(options)
  return (request: Req["Type"]) =>
    Effect.flatMap(all(request), (rows) =>
      rows.length > 0 ? Effect.succeed(rows[0] as Res["Type"]) : Effect.fail(new Cause.NoSuchElementError()))
}

/** Verifies a statement's columns against `Result` without running it. */
export const verify = <S extends Schema.Top>(Result: S, statement: Statement.Statement<unknown>) => makeChecker(Result)(statement)
