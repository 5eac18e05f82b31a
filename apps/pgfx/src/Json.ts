/**
 * Typed values to JSON for NDJSON output.
 *
 * Invariants:
 * - Lossless for PostgreSQL's types: int8 (bigint) is written as an exact JSON number (never rounded
 *   through a double), numeric stays the server's decimal string, bytea is `\x…` hex like PostgreSQL's
 *   text form, Dates are ISO 8601 (invalid dates, i.e. ±infinity, as "infinity"/"-infinity").
 * - Value classes with `toJSON` (PgTimestamp, PgInterval, ranges…) write themselves.
 */

const rawJSON = (JSON as unknown as { rawJSON?: (text: string) => unknown }).rawJSON

const hex = (bytes: Uint8Array): string => {
  let out = "\\x"
  for (let i = 0; i < bytes.length; i++) out += bytes[i]!.toString(16).padStart(2, "0")
  return out
}

const replacer = function(this: unknown, key: string, value: unknown): unknown {
  // JSON.stringify already called Date.prototype.toJSON: look at the holder's original value.
  const original = (this as Record<string, unknown>)[key]
  if (original instanceof Date) {
    const t = original.getTime()
    return Number.isNaN(t) ? null : t === Infinity ? "infinity" : t === -Infinity ? "-infinity" : original.toISOString()
  }
  if (typeof value === "bigint") return rawJSON !== undefined ? rawJSON(value.toString()) : value.toString()
  if (value instanceof Uint8Array) return hex(value)
  if (value instanceof Map) return Object.fromEntries(value)
  return value
}

export const toJson = (value: unknown): string => JSON.stringify(value, replacer)
