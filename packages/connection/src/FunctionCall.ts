/**
 * The function call sub-protocol (54.2.5): FunctionCall ('F') → FunctionCallResponse ('V') → ReadyForQuery.
 *
 * Invariants:
 * - A call is one request on the connection's wire (through `internal.run`): it pipelines with queries,
 *   and interrupting it abandons/cancels it like a query. It ends at its ReadyForQuery whatever happened,
 *   so an error from the function (PgServerError) leaves the connection usable.
 * - `functionCall` sends and returns raw values (Uint8Array, null for NULL) in the format codes asked for;
 *   the result is a copy, never a view of the socket's buffer.
 * - `callFunction` encodes arguments through the connection's TypeRegistry (binary when the type has a
 *   binary codec and the value is not a string, else text) and asks for the result in binary exactly when
 *   the registry can decode the result type from binary. An argument it cannot encode is an
 *   InvalidRequestError before anything is sent.
 * - Any other message inside the call's reply is a ProtocolError, which fails the connection.
 */
import * as Effect from "effect/Effect"
import { encodeFunctionCall, decodeFunctionCallResponse } from "@pgfx/codec/FunctionCall"
import { Reader } from "@pgfx/codec/internal/Reader"
import { Writer } from "@pgfx/codec/internal/Writer"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import type { ConnectionApi } from "./Connection.ts"
import { InvalidRequestError, type PgError, type PgServerError, serverError } from "./PgError.ts"
import { errorFieldsOf, type Resume } from "./Query.ts"
import type { Pending, WireError } from "./Wire.ts"

export type FormatCode = 0 | 1

export interface FunctionCallOptions {
  /** Format of every argument (one code), or one code per argument. Default text (0), as on the wire. */
  readonly argumentFormats?: FormatCode | ReadonlyArray<FormatCode> | undefined
  /** Format the server should send the result in. Default text (0). */
  readonly resultFormat?: FormatCode | undefined
}

/** Handles the reply to one FunctionCall. */
class FunctionCallRequest implements Pending {
  abandoned = false
  private result: Uint8Array | null = null
  private error: PgServerError | undefined
  private resume: Resume<Uint8Array | null> | undefined
  private readonly what: string

  constructor(what: string, resume: Resume<Uint8Array | null>) {
    this.what = what
    this.resume = resume
  }

  onFrame(type: number, buf: Uint8Array, start: number, end: number): boolean {
    switch (type) {
      case 0x56: {
        // FunctionCallResponse: copied, the socket buffer is reused
        const value = decodeFunctionCallResponse(new Reader(buf, start, end, "V")).result
        this.result = value === null || this.abandoned ? null : value.slice()
        return false
      }
      case 0x45:
        this.error = serverError(errorFieldsOf(buf, start, end), this.what)
        return false
      case 0x5a: {
        const resume = this.resume
        this.resume = undefined
        resume?.(this.error !== undefined ? Effect.fail(this.error) : Effect.succeed(this.result))
        return true
      }
      default:
        throw new ProtocolError({
          reason: "UnexpectedMessage",
          message: `message '${String.fromCharCode(type)}' in the reply to a FunctionCall`,
          messageType: String.fromCharCode(type)
        })
    }
  }

  onFail(error: WireError): void {
    const resume = this.resume
    this.resume = undefined
    resume?.(Effect.fail(error))
  }
}

const formatsOf = (formats: FunctionCallOptions["argumentFormats"]): ReadonlyArray<FormatCode> =>
  formats === undefined ? [] : typeof formats === "number" ? [formats] : formats

/**
 * Calls the function with OID `functionOid` with raw argument values (null is SQL NULL), each in the
 * format its code says; returns the raw result (null when the function returned NULL).
 */
export const functionCall = (
  conn: ConnectionApi,
  functionOid: number,
  args: ReadonlyArray<Uint8Array | null>,
  options?: FunctionCallOptions
): Effect.Effect<Uint8Array | null, PgError> =>
  Effect.suspend(() => {
    const argumentFormats = formatsOf(options?.argumentFormats)
    if (argumentFormats.length > 1 && argumentFormats.length !== args.length) {
      return Effect.fail(
        new InvalidRequestError({
          reason: "ParameterCount",
          message: `${argumentFormats.length} argument format codes for ${args.length} arguments (give one, or one per argument)`
        })
      )
    }
    const w = conn.internal.writer
    return conn.internal.run<Uint8Array | null>((resume) => {
      encodeFunctionCall(w, {
        _tag: "FunctionCall",
        functionOid,
        argumentFormats,
        arguments: args,
        resultFormat: options?.resultFormat ?? 0
      })
      return { request: new FunctionCallRequest(`function call (oid ${functionOid})`, resume), bytes: w.take() }
    })
  })

/** A function's OID and its argument and result types. */
export interface FunctionSignature {
  readonly oid: number
  readonly argumentTypes: ReadonlyArray<number>
  readonly resultType: number
}

/**
 * Looks a function up by its signature as `regprocedure` reads it, e.g. `"lo_open(oid, int4)"` or
 * `"myschema.f(int4,text)"`.
 */
export const lookupFunction = (conn: ConnectionApi, signature: string): Effect.Effect<FunctionSignature, PgError> =>
  conn
    .query<{ oid: number; argumentTypes: ReadonlyArray<number>; resultType: number }>(
      // oidvector is 0-based: rebuilt as a plain (1-based) oid[] so it decodes to a JS array.
      `select p.oid, array(select a.t from unnest(p.proargtypes::oid[]) with ordinality a(t, i) order by a.i)
              as "argumentTypes", p.prorettype as "resultType"
         from pg_catalog.pg_proc p where p.oid = $1::text::regprocedure`,
      [signature],
      { prepare: false }
    )
    .pipe(
      Effect.map((r) => {
        const row = r.rows[0]!
        return { oid: row.oid, argumentTypes: row.argumentTypes, resultType: row.resultType }
      })
    )

/**
 * Calls a function with JS values: each argument is encoded through `conn.registry` as the type at the
 * same position of `signature.argumentTypes`, and the result decoded as `signature.resultType`.
 */
export const callFunction = <A = unknown>(
  conn: ConnectionApi,
  signature: FunctionSignature,
  args: ReadonlyArray<unknown>
): Effect.Effect<A | null, PgError> =>
  Effect.suspend(() => {
    const { argumentTypes, resultType } = signature
    if (args.length !== argumentTypes.length) {
      return Effect.fail(
        new InvalidRequestError({
          reason: "ParameterCount",
          message: `the function takes ${argumentTypes.length} argument(s) but ${args.length} were given`
        })
      )
    }
    const registry = conn.registry
    const w = new Writer(256)
    const values = new Array<Uint8Array | null>(args.length)
    const formats = new Array<FormatCode>(args.length)
    for (let i = 0; i < args.length; i++) {
      const v = args[i]
      formats[i] = 0
      if (v === null || v === undefined) {
        values[i] = null
        continue
      }
      const codec = registry.get(argumentTypes[i]!)
      try {
        if (typeof v === "string") {
          w.string(v)
        } else if (registry.hasBinary(argumentTypes[i]!) && codec.encodeBinary !== undefined) {
          codec.encodeBinary(w, v)
          formats[i] = 1
        } else {
          w.string(codec.encodeText(v))
        }
      } catch (e) {
        return Effect.fail(
          new InvalidRequestError({
            reason: "ParameterValue",
            message: `argument ${i + 1} (type ${codec.name}) cannot be encoded: ${e instanceof Error ? e.message : String(e)}`
          })
        )
      }
      // `take` hands out bytes the writer never touches again.
      values[i] = w.take()
    }
    const binary = registry.hasBinary(resultType)
    return functionCall(conn, signature.oid, values, { argumentFormats: formats, resultFormat: binary ? 1 : 0 }).pipe(
      Effect.flatMap((bytes) =>
        bytes === null ? Effect.succeed(null) : Effect.try({
          try: () => {
            const codec = registry.get(resultType)
            return (binary ? codec.decodeBinary!(bytes, 0, bytes.length) : codec.decodeText(bytes, 0, bytes.length)) as A
          },
          catch: (e) =>
            e instanceof ProtocolError
              ? e
              : new ProtocolError({
                reason: "InvalidValue",
                message: `cannot decode the function's result: ${e instanceof Error ? e.message : String(e)}`
              })
        })
      )
    )
  })
