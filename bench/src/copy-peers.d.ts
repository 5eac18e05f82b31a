/**
 * Minimal declarations for pg-copy-streams (ships without types): only what the COPY benchmarks call.
 * Its streams are handed to node-postgres' `client.query(…)`, which returns them.
 */
declare module "pg-copy-streams" {
  import type { Readable, Writable } from "node:stream"
  export interface CopyFromStream extends Writable {
    /** Rows copied, known once the stream finished. */
    rowCount: number
  }
  export interface CopyToStream extends Readable {
    rowCount: number
  }
  export function from(sql: string, options?: { highWaterMark?: number }): CopyFromStream
  export function to(sql: string, options?: { highWaterMark?: number }): CopyToStream
}
