/**
 * The per-connection cache of named prepared statements, least recently used evicted first.
 *
 * Invariants:
 * - A statement is in the cache only once the server confirmed it (ParseComplete + its descriptions);
 *   one being prepared is `pending`, and concurrent users of the same SQL wait for that one preparation.
 * - An evicted statement's name is queued for Close, sent ahead of the next request, so the server's
 *   statements stay bounded by the cache size.
 * - Names are unique per connection (`pgfx_<n>`), never reused.
 */
import type { FieldDescription } from "@pgfx/codec/Query"

export interface PreparedStatement {
  readonly name: string
  readonly sql: string
  readonly parameterTypes: ReadonlyArray<number>
  /** Undefined when the statement returns no rows (NoData). */
  readonly fields: ReadonlyArray<FieldDescription> | undefined
  /** Result format per column chosen for this statement (binary where the registry has a binary codec). */
  readonly resultFormats: ReadonlyArray<0 | 1>
  /** How to read this statement's rows, per row mode: built once, so executing allocates nothing for it. */
  readonly plans: { readonly object: ReadonlyArray<ResultPlan>; readonly array: ReadonlyArray<ResultPlan> }
}

/** The fields of one result and the decoder for its DataRows (opaque here; see Query.ts). */
export interface ResultPlan {
  readonly fields: ReadonlyArray<FieldDescription>
  readonly decoder: { decode(buf: Uint8Array, start: number, end: number): unknown } | undefined
}

interface Entry {
  readonly statement: PreparedStatement
  /** The cache's clock at the last use: the smallest is the least recently used. */
  used: number
}

export class StatementCache {
  readonly capacity: number
  private readonly entries = new Map<string, Entry>()
  private counter = 0
  private clock = 0
  /** Names evicted but not yet closed on the server. */
  toClose: Array<string> = []

  constructor(capacity: number) {
    this.capacity = capacity
  }

  get size(): number {
    return this.entries.size
  }

  /** A use stamps the entry (no reordering on the hot path); eviction looks for the oldest stamp. */
  get(sql: string): PreparedStatement | undefined {
    const e = this.entries.get(sql)
    if (e === undefined) return undefined
    e.used = ++this.clock
    return e.statement
  }

  nextName(): string {
    return `pgfx_${++this.counter}`
  }

  set(statement: PreparedStatement): void {
    this.entries.set(statement.sql, { statement, used: ++this.clock })
    while (this.entries.size > this.capacity) {
      // O(capacity), only when a new statement pushes one out (a round trip is being paid anyway).
      let oldestSql = ""
      let oldest: Entry | undefined
      for (const [sql, e] of this.entries) {
        if (oldest === undefined || e.used < oldest.used) {
          oldest = e
          oldestSql = sql
        }
      }
      this.entries.delete(oldestSql)
      this.toClose.push(oldest!.statement.name)
    }
  }

  /** Drops a statement the server no longer knows or whose result type changed. */
  invalidate(sql: string): void {
    const e = this.entries.get(sql)
    if (e !== undefined) {
      this.entries.delete(sql)
      this.toClose.push(e.statement.name)
    }
  }

  /** After a reconnect or DISCARD ALL: the server holds no statements. */
  clear(): void {
    this.entries.clear()
    this.toClose = []
  }
}
