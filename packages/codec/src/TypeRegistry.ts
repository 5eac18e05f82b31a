/**
 * The per-connection type registry: OID → value codec.
 *
 * Invariants:
 * - Never process-global: `TypeRegistry.make()` builds a fresh map; registering on one registry never
 *   affects another. The built-in scalar codecs are immutable and shared; everything that refers to
 *   other types (arrays, ranges, multiranges, composites, domains) is built per registry and resolves
 *   its element / subtype / field codecs through *this* registry at decode time, so registration order
 *   does not matter and a replaced codec is picked up everywhere.
 * - `get(oid)` always returns a codec: an unknown OID gets a fallback that decodes text to the string
 *   and binary to a copy of the bytes. `hasBinary(oid)` is true only when the type and everything it
 *   is built from have a binary codec here, so a connection asking for binary by it always gets values
 *   it can decode.
 * - Options: `temporal` ("date" default, or "lossless", see values/Temporal.ts); `json` ("parse"
 *   default: JSON.parse; "string": json/jsonb stay text).
 */
import { TypeOid, allTypes, typeInfo } from "./TypeOid.ts"
import { arrayCodec } from "./values/Array.ts"
import * as Network from "./values/Network.ts"
import { numeric } from "./values/Numeric.ts"
import * as P from "./values/Primitives.ts"
import { multirangeCodec, rangeCodec } from "./values/Range.ts"
import { compositeCodec, recordCodec, type CompositeField } from "./values/Record.ts"
import { temporalCodecs, type TemporalMode } from "./values/Temporal.ts"
import type { ValueCodec } from "./values/ValueCodec.ts"
import { copyRange } from "./internal/copyRange.ts"

export interface TypeRegistryOptions {
  readonly temporal?: TemporalMode
  readonly json?: "parse" | "string"
}

type Kind =
  | { readonly _tag: "Base" }
  | { readonly _tag: "Array"; readonly element: number }
  | { readonly _tag: "Range"; readonly subtype: number }
  | { readonly _tag: "Domain"; readonly base: number }
  | { readonly _tag: "Composite"; readonly fields: ReadonlyArray<CompositeField> }

const BASE: Kind = { _tag: "Base" }

const builtinRanges: ReadonlyArray<readonly [range: number, multirange: number, subtype: number]> = [
  [TypeOid.int4range, TypeOid.int4multirange, TypeOid.int4],
  [TypeOid.int8range, TypeOid.int8multirange, TypeOid.int8],
  [TypeOid.numrange, TypeOid.nummultirange, TypeOid.numeric],
  [TypeOid.tsrange, TypeOid.tsmultirange, TypeOid.timestamp],
  [TypeOid.tstzrange, TypeOid.tstzmultirange, TypeOid.timestamptz],
  [TypeOid.daterange, TypeOid.datemultirange, TypeOid.date]
]

const scalarBuiltins = (options: TypeRegistryOptions): ReadonlyArray<ValueCodec<any>> => [
  P.bool,
  P.int2,
  P.int4,
  P.int8,
  P.float4,
  P.float8,
  numeric,
  P.oid,
  P.xid,
  P.cid,
  ...P.regTypes,
  P.xid8,
  P.pg_lsn,
  ...P.textTypes,
  P.char,
  P.bytea,
  P.uuid,
  ...(options.json === "string" ? [P.jsonString, P.jsonbString] : [P.json, P.jsonb]),
  ...temporalCodecs(options.temporal ?? "date"),
  Network.inet,
  Network.cidr,
  Network.macaddr,
  Network.macaddr8
]

export class TypeRegistry {
  private readonly codecs = new Map<number, ValueCodec<any>>()
  private readonly kinds = new Map<number, Kind>()
  private readonly fallbacks = new Map<number, ValueCodec<unknown>>()
  /** Types whose values are JS arrays (so arrays of them are one-dimensional unless PgArray is used). */
  private readonly arrayValued = new Set<number>([TypeOid.json, TypeOid.jsonb])
  readonly options: TypeRegistryOptions

  private constructor(options: TypeRegistryOptions) {
    this.options = options
    for (const c of scalarBuiltins(options)) this.register(c)
    this.register(recordCodec(this.resolve))
    for (const [range, multirange, subtype] of builtinRanges) this.registerRange(range, subtype, multirange)
    for (const t of allTypes) {
      // Derived arrays only: int2vector/oidvector are category A too but print space-separated.
      if (t.typcategory === "A" && t.typname.startsWith("_") && t.typelem !== 0) {
        this.registerArray(t.oid, t.typelem, t.typdelim, t.typname)
      }
    }
  }

  /** A fresh registry holding every built-in type. */
  static make(options: TypeRegistryOptions = {}): TypeRegistry {
    return new TypeRegistry(options)
  }

  /** The codec for `oid` (a text/bytes fallback for unknown OIDs). */
  get(oid: number): ValueCodec<unknown> {
    return this.codecs.get(oid) ?? this.fallback(oid)
  }

  /** The codec for `oid`, or undefined when nothing is registered for it. */
  find(oid: number): ValueCodec<unknown> | undefined {
    return this.codecs.get(oid)
  }

  has(oid: number): boolean {
    return this.codecs.has(oid)
  }

  /** Resolves through this registry; used by arrays, ranges, composites and domains at decode time. */
  readonly resolve = (oid: number): ValueCodec<unknown> => this.codecs.get(oid) ?? this.fallback(oid)

  private fallback(oid: number): ValueCodec<unknown> {
    let c = this.fallbacks.get(oid)
    if (c === undefined) {
      c = P.unknownType(oid)
      this.fallbacks.set(oid, c)
    }
    return c
  }

  /** Adds or replaces the codec for `codec.oid`. */
  register<A>(codec: ValueCodec<A>): this {
    this.codecs.set(codec.oid, codec)
    if (!this.kinds.has(codec.oid)) this.kinds.set(codec.oid, BASE)
    return this
  }

  private registerKind(codec: ValueCodec<any>, kind: Kind): this {
    this.codecs.set(codec.oid, codec)
    this.kinds.set(codec.oid, kind)
    return this
  }

  /** An enum: values are their labels (strings); binary is the label text. */
  registerEnum(oid: number, name: string, arrayOid?: number): this {
    this.register(P.textLike(name, oid))
    if (arrayOid !== undefined && arrayOid !== 0) this.registerArray(arrayOid, oid, ",", "_" + name)
    return this
  }

  /** A domain: decodes and encodes as its base type. */
  registerDomain(oid: number, baseOid: number, name = `domain ${oid}`, arrayOid?: number): this {
    const base = () => this.resolve(baseOid)
    this.registerKind(
      {
        name,
        oid,
        decodeText: (buf, start, end) => base().decodeText(buf, start, end),
        decodeBinary: (buf, start, end) => {
          const b = base()
          return b.decodeBinary === undefined ? copyRange(buf, start, end) : b.decodeBinary(buf, start, end)
        },
        encodeText: (v) => base().encodeText(v),
        encodeBinary: (w, v) => {
          const enc = base().encodeBinary
          if (enc === undefined) P.unknownType(oid, name).encodeBinary!(w, v)
          else enc(w, v)
        }
      },
      { _tag: "Domain", base: baseOid }
    )
    if (this.arrayValued.has(baseOid)) this.arrayValued.add(oid)
    if (arrayOid !== undefined && arrayOid !== 0) this.registerArray(arrayOid, oid, ",", "_" + name)
    return this
  }

  /** An array type of `elementOid` (`delimiter` is the element type's typdelim). */
  registerArray(arrayOid: number, elementOid: number, delimiter = ",", name = `_${this.get(elementOid).name}`): this {
    return this.registerKind(
      arrayCodec({
        name,
        oid: arrayOid,
        elementOid,
        delimiter,
        element: () => this.resolve(elementOid),
        elementIsArray: this.arrayValued.has(elementOid)
      }),
      { _tag: "Array", element: elementOid }
    )
  }

  /** A range type over `subtypeOid`, and its multirange when given. */
  registerRange(oid: number, subtypeOid: number, multirangeOid?: number, name = `range ${oid}`): this {
    const sub = () => this.resolve(subtypeOid)
    const rangeName = typeNameOf(oid) ?? name
    this.registerKind(rangeCodec(rangeName, oid, sub), { _tag: "Range", subtype: subtypeOid })
    if (multirangeOid !== undefined && multirangeOid !== 0) {
      this.registerKind(multirangeCodec(typeNameOf(multirangeOid) ?? `multirange ${multirangeOid}`, multirangeOid, sub), {
        _tag: "Range",
        subtype: subtypeOid
      })
      this.arrayValued.add(multirangeOid)
    }
    return this
  }

  /** A composite type; values are objects keyed by field name. */
  registerComposite(oid: number, fields: ReadonlyArray<CompositeField>, name = `composite ${oid}`, arrayOid?: number): this {
    this.registerKind(compositeCodec(name, oid, fields, this.resolve), { _tag: "Composite", fields })
    if (arrayOid !== undefined && arrayOid !== 0) this.registerArray(arrayOid, oid, ",", "_" + name)
    return this
  }

  /** Whether values of `oid` can be decoded from (and encoded to) the binary format here. */
  hasBinary(oid: number): boolean {
    return this.binaryAt(oid, 0)
  }

  private binaryAt(oid: number, depth: number): boolean {
    if (depth > 32) return false // a cycle (domain over itself) or absurd nesting
    const codec = this.codecs.get(oid)
    if (codec === undefined) return false
    const kind = this.kinds.get(oid) ?? BASE
    switch (kind._tag) {
      case "Base":
        return codec.decodeBinary !== undefined && codec.encodeBinary !== undefined
      case "Array":
        return this.binaryAt(kind.element, depth + 1)
      case "Range":
        return this.binaryAt(kind.subtype, depth + 1)
      case "Domain":
        return this.binaryAt(kind.base, depth + 1)
      case "Composite":
        return kind.fields.every((f) => this.binaryAt(f.typeOid, depth + 1))
    }
  }
}

const typeNameOf = (oid: number): string | undefined => typeInfo(oid)?.typname

// ---------------------------------------------------------------------------------------------
// discovery of a database's own types

/**
 * Lists the enums, domains, composites and ranges defined in a database (user OIDs ≥ 16384, which
 * excludes pg_catalog and information_schema), with what `registerDiscoveredTypes` needs. Composite
 * types include tables' row types. Run it in either format; each column is a plain type.
 */
export const discoverTypesSql = `SELECT t.oid,
  t.typname::text AS name,
  t.typtype::text AS kind,
  t.typarray AS array_oid,
  t.typbasetype AS base_oid,
  r.rngsubtype AS range_subtype,
  r.rngmultitypid AS multirange_oid,
  (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) AS enum_labels,
  (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) AS field_names,
  (SELECT array_agg(a.atttypid ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) AS field_types
FROM pg_catalog.pg_type t
LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
WHERE t.oid >= 16384 AND t.typtype IN ('e', 'd', 'c', 'r', 'm')
ORDER BY t.oid`

/** One row of `discoverTypesSql`, as decoded by a registry (oids are numbers, arrays JS arrays). */
export interface DiscoveredType {
  readonly oid: number
  readonly name: string
  readonly kind: string
  readonly array_oid: number
  readonly base_oid: number
  readonly range_subtype: number | null
  readonly multirange_oid: number | null
  readonly enum_labels: ReadonlyArray<string> | null
  readonly field_names: ReadonlyArray<string> | null
  readonly field_types: ReadonlyArray<number> | null
}

/**
 * Registers every row of `discoverTypesSql` (in any order: codecs resolve lazily; a multirange's array
 * is registered after its range has registered the multirange). Returns how many rows were used.
 */
export const registerDiscoveredTypes = (registry: TypeRegistry, rows: ReadonlyArray<DiscoveredType>): number => {
  let n = 0
  for (const row of rows) {
    const arrayOid = row.array_oid === 0 ? undefined : row.array_oid
    switch (row.kind) {
      case "e":
        registry.registerEnum(row.oid, row.name, arrayOid)
        break
      case "d":
        registry.registerDomain(row.oid, row.base_oid, row.name, arrayOid)
        break
      case "c": {
        const names = row.field_names ?? []
        const types = row.field_types ?? []
        registry.registerComposite(row.oid, names.map((name, i) => ({ name, typeOid: types[i]! })), row.name, arrayOid)
        break
      }
      case "r":
        if (row.range_subtype === null) continue
        registry.registerRange(row.oid, row.range_subtype, row.multirange_oid ?? undefined, row.name)
        if (arrayOid !== undefined) registry.registerArray(arrayOid, row.oid, ",", "_" + row.name)
        break
      case "m":
        // The multirange itself is registered with its range; only its array is left.
        if (arrayOid !== undefined) registry.registerArray(arrayOid, row.oid, ",", "_" + row.name)
        break
      default:
        continue
    }
    n++
  }
  return n
}
