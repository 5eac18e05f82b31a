/**
 * @pgfx/testing: real PostgreSQL servers for tests and benchmarks, and a raw protocol session.
 */
import "./vitest-context.ts"

export { startTestServer } from "./TestServer.ts"
export type { TestServer, TestServerInfo, TestServerOptions } from "./TestServer.ts"
export { dataRowText, errorFields, errorMessage, openRawSession, rowsOf } from "./RawSession.ts"
export type { RawFrame, RawParam, RawResult, RawSession, RawSessionOptions } from "./RawSession.ts"
