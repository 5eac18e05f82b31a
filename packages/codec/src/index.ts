/**
 * @pgfx/codec: the PostgreSQL frontend/backend protocol (3.0 and 3.2) as pure functions.
 *
 * Every message model, encoder and decoder is re-exported flat; each module is also reachable
 * as `@pgfx/codec/<Module>`. Every decode/encode throws only `ProtocolError`.
 */

// Foundations
export * from "./ProtocolError.ts"
export * from "./Limits.ts"
export * from "./Frame.ts"
export { Reader } from "./internal/Reader.ts"
export { Writer } from "./internal/Writer.ts"
export { decodeUtf8, encodeUtf8, utf8Length } from "./internal/utf8.ts"

// Message families (54.7)
export * from "./Startup.ts"
export * from "./Auth.ts"
export * from "./Query.ts"
export * from "./Extended.ts"
export * from "./Copy.ts"
export * from "./Async.ts"
export * from "./FunctionCall.ts"
export * from "./BackendMessage.ts"
export * from "./FrontendMessage.ts"

// other modules (written by other engineers; flat re-exports, so a name clash here is a tsc error:
// rename or export that module as a namespace instead)
export * from "./Replication.ts"
export * from "./Pgoutput.ts"
export * from "./TestDecoding.ts"
export * from "./Scram.ts"
export * from "./Md5Password.ts"
export * from "./SaslPrep.ts"
export * from "./SqlState.ts"
export * from "./TypeOid.ts"
export * from "./TypeRegistry.ts"
export * from "./RowDecoder.ts"
export * from "./values/ValueCodec.ts"
export * from "./values/Primitives.ts"
export * from "./values/Numeric.ts"
export * from "./values/Temporal.ts"
export * from "./values/Network.ts"
export * from "./values/Array.ts"
export * from "./values/Range.ts"
export * from "./values/Record.ts"
