/**
 * The `effect/sql` statement compiler for PostgreSQL, as pgfx runs it, and pgfx's custom fragments.
 *
 * Invariants:
 * - Output is `@effect/sql-pg`'s for every shared construct: `$n` placeholders numbered from 1 in
 *   order of appearance, identifiers double-quoted (embedded quotes doubled, dots split into quoted
 *   parts), `updateValues` as `(values …) AS alias(cols)`, empty `IN` lists as `= ANY('{}')`.
 * - A JSON fragment binds one parameter: the value's JSON text (the server reads it as json/jsonb from
 *   the context, or as text); keys are renamed by `transformQueryNames` when `transformJson` is on.
 * - An array fragment binds one parameter: a PostgreSQL array literal (`{1,2,"a b"}`), so it works for
 *   prepared and unprepared statements alike; with an element type the placeholder is cast
 *   (`$1::int4[]`), so the server never has to guess it.
 * - Statements made only of text and parameters (nearly all of them) are compiled here directly, with the
 *   same output as effect's compiler but without its per-statement WeakMap cache: a statement is compiled
 *   once per execution, so the cache entry (an ephemeron the garbage collector must trace) bought nothing.
 *   Everything else (identifiers, helpers, custom fragments) goes to effect's compiler.
 */
import * as Statement from "effect/sql/Statement"

/** A JSON value bound as its JSON text. */
export interface PgJson extends Statement.Custom<"PgJson", unknown> {}
/** An array bound as a PostgreSQL array literal, optionally cast to `elementType[]`. */
export interface PgArray extends Statement.Custom<"PgArray", ReadonlyArray<unknown>, string | undefined> {}

export type PgCustom = PgJson | PgArray

const PgJson = Statement.custom<PgJson>("PgJson")
const PgArray = Statement.custom<PgArray>("PgArray")

/** `sql.json(value)`: a JSON parameter. */
export const json = (value: unknown): Statement.Fragment => Statement.fragment([PgJson(value, undefined, undefined)])

/**
 * `array(values, "int4")`: an array parameter. The element type, when given, must be a type name
 * (letters, digits, `_`, `.`, spaces, as in `double precision`): it is written into the SQL text.
 */
export const array = (values: ReadonlyArray<unknown>, elementType?: string): Statement.Fragment => {
  if (elementType !== undefined && !/^[A-Za-z_][A-Za-z0-9_. ]*$/.test(elementType)) {
    throw new TypeError(`not a type name: ${JSON.stringify(elementType)}`)
  }
  return Statement.fragment([PgArray(values, elementType, undefined)])
}

const escape = Statement.defaultEscape("\"")

/** Double-quotes an array element when the array parser would otherwise misread it. */
const quoteElement = (s: string): string =>
  s === "" || /[{}",\\\s]/.test(s) || s.toUpperCase() === "NULL"
    ? `"${s.replace(/\\/g, "\\\\").replace(/"/g, "\\\"")}"`
    : s

/** A PostgreSQL array literal for a (possibly nested) JS array. */
export const arrayLiteral = (values: ReadonlyArray<unknown>): string => {
  let out = "{"
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ","
    const v = values[i]
    if (v === null || v === undefined) out += "NULL"
    else if (Array.isArray(v)) out += arrayLiteral(v)
    else if (typeof v === "string") out += quoteElement(v)
    else if (typeof v === "number" || typeof v === "bigint") out += String(v)
    else if (typeof v === "boolean") out += v ? "t" : "f"
    else if (v instanceof Date) out += quoteElement(v.toISOString())
    else if (v instanceof Uint8Array) out += quoteElement(`\\x${Buffer.from(v).toString("hex")}`)
    else out += quoteElement(JSON.stringify(v))
  }
  return out + "}"
}

/**
 * The compiler: `transform` renames identifiers (e.g. `String.camelToSnake`); `transformJson` (default
 * true) also renames the keys of JSON fragment values.
 */
export const makeCompiler = (transform?: (_: string) => string, transformJson = true): Statement.Compiler =>
  withPlainFastPath(makeEffectCompiler(transform, transformJson))

/** `[sql, binds]` for a statement of Literal and Parameter segments only, else undefined. */
const compilePlain = (segments: ReadonlyArray<Statement.Segment>): readonly [string, ReadonlyArray<unknown>] | undefined => {
  let sql = ""
  const binds: Array<unknown> = []
  let placeholders = 0
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!
    if (segment._tag === "Literal") {
      sql += segment.value
      // `unsafe` text brings its own placeholders and values (effect's compiler numbers nothing for them either)
      if (segment.params !== undefined) for (let j = 0; j < segment.params.length; j++) binds.push(segment.params[j])
    } else if (segment._tag === "Parameter") {
      sql += `$${++placeholders}`
      binds.push(segment.value)
    } else {
      return undefined
    }
  }
  return [sql, binds]
}

const withPlainFastPath = (base: Statement.Compiler): Statement.Compiler => {
  /** Made on first use (a compiler for `withoutTransforms()` clients), then kept. */
  let untransformed: Statement.Compiler | undefined
  return {
    dialect: base.dialect,
    compile(statement: Statement.Fragment, withoutTransform: boolean, placeholderOverride?: (u: unknown) => string) {
      if (placeholderOverride === undefined) {
        const plain = compilePlain(statement.segments)
        if (plain !== undefined) return plain
      }
      return (base.compile as (s: Statement.Fragment, w: boolean, p?: (u: unknown) => string) => readonly [string, ReadonlyArray<unknown>])(
        statement,
        withoutTransform,
        placeholderOverride
      )
    },
    get withoutTransform() {
      return untransformed ??= withPlainFastPath(base.withoutTransform)
    }
  } as Statement.Compiler
}

const makeEffectCompiler = (transform: ((_: string) => string) | undefined, transformJson: boolean): Statement.Compiler => {
  const transformValue = transformJson && transform ? Statement.defaultTransforms(transform).value : undefined
  return Statement.makeCompiler<PgCustom>({
    dialect: "pg",
    placeholder(index) {
      return `$${index}`
    },
    onIdentifier: transform
      ? (value, withoutTransform) => (withoutTransform ? escape(value) : escape(transform(value)))
      : escape,
    onRecordUpdate(placeholders, valueAlias, valueColumns, values, returning) {
      return [
        `(values ${placeholders}) AS ${valueAlias}${valueColumns}${returning ? ` RETURNING ${returning[0]}` : ""}`,
        returning ? values.flat().concat(returning[1]) : values.flat()
      ]
    },
    onCustom(custom, placeholder, withoutTransform) {
      switch (custom.kind) {
        case "PgJson": {
          const value = withoutTransform || transformValue === undefined ? custom.paramA : transformValue(custom.paramA)
          const text = JSON.stringify(value)
          return [placeholder(undefined), [text === undefined ? null : text]]
        }
        case "PgArray": {
          const p = placeholder(undefined)
          return [custom.paramB === undefined ? p : `${p}::${custom.paramB}[]`, [arrayLiteral(custom.paramA)]]
        }
      }
    }
  })
}
