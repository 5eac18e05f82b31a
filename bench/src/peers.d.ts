/**
 * Minimal declarations for the peer clients that ship without types (node-postgres and its
 * helpers): only what the benchmarks call.
 */
declare module "pg" {
  export interface ClientConfig {
    host?: string
    port?: number
    user?: string
    database?: string
    pipeline?: boolean
  }
  export interface QueryResult {
    rows: Array<any>
    rowCount: number | null
  }
  export class Client {
    constructor(config: ClientConfig)
    connect(): Promise<void>
    query(text: string | object, values?: ReadonlyArray<unknown>): Promise<QueryResult>
    end(): Promise<void>
  }
  const pg: { Client: typeof Client }
  export default pg
}

declare module "pg/lib/result.js" {
  /** pg's result: turns pg-protocol's text fields into JS values with pg-types. */
  export default class Result {
    constructor(rowMode?: "array", types?: unknown)
    rows: Array<unknown>
    addFields(fields: ReadonlyArray<unknown>): void
    parseRow(rowData: ReadonlyArray<string | null>): unknown
  }
}

declare module "pg-cursor" {
  export default class Cursor {
    constructor(text: string, values?: ReadonlyArray<unknown>)
    read(rows: number): Promise<Array<unknown>>
    close(): Promise<void>
  }
}
