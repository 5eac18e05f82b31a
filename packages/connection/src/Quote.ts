/**
 * Quoting for the few places pgfx must put a name or a text into SQL itself (LISTEN channels, COPY
 * table names, replication commands, which take no parameters). Everything else goes as parameters.
 *
 * Invariant: a quoted identifier or literal always parses back to exactly the given text; text with a
 * NUL (which PostgreSQL cannot store and would truncate) is refused with InvalidRequestError.
 */
import { InvalidRequestError } from "./PgError.ts"

const refuseNul = (what: string, s: string): void => {
  if (s.includes("\u0000")) {
    throw new InvalidRequestError({ reason: "Other", message: `${what} must not contain a NUL character` })
  }
}

/** `"name"`, with `"` doubled. */
export const quoteIdentifier = (name: string): string => {
  refuseNul("an identifier", name)
  return `"${name.replaceAll("\"", "\"\"")}"`
}

/** `"schema"."name"` from "schema.name" — for names given as one dotted string. */
export const quoteQualified = (name: string): string => name.split(".").map(quoteIdentifier).join(".")

/** `'text'`, with `'` doubled (standard_conforming_strings is on in every supported server). */
export const quoteLiteral = (text: string): string => {
  refuseNul("a string literal", text)
  return `'${text.replaceAll("'", "''")}'`
}
