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

// other modules
// (Replication.ts, Pgoutput.ts, Scram.ts, values/*, TypeRegistry.ts, RowDecoder.ts, SqlState.ts,
// TypeOid.ts are being written by others; add `export * from "./X.ts"` here once each exists.)
