/**
 * The values the global setup provides to test files (`inject("pg18")`, `inject("pg15")`).
 * pg15 is absent when PGFX_TEST_PG15=0.
 */
import type { TestServerInfo } from "./TestServer.ts"

declare module "vitest" {
  export interface ProvidedContext {
    pg18: TestServerInfo
    pg15: TestServerInfo
  }
}

export {}
