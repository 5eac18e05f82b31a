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

export class StatementCache {
  readonly capacity: number
  private readonly entries = new Map<string, PreparedStatement>()
  private counter = 0
  /** Names evicted but not yet closed on the server. */
  toClose: Array<string> = []

  constructor(capacity: number) {
    this.capacity = capacity
  }

  get size(): number {
    return this.entries.size
  }

  get(sql: string): PreparedStatement | undefined {
    const s = this.entries.get(sql)
    if (s !== undefined) {
      // Map keeps insertion order: re-inserting makes this the most recently used.
      this.entries.delete(sql)
      this.entries.set(sql, s)
    }
    return s
  }

  nextName(): string {
    return `pgfx_${++this.counter}`
  }

  set(statement: PreparedStatement): void {
    this.entries.set(statement.sql, statement)
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string
      const s = this.entries.get(oldest)!
      this.entries.delete(oldest)
      this.toClose.push(s.name)
    }
  }

  /** Drops a statement the server no longer knows or whose result type changed. */
  invalidate(sql: string): void {
    const s = this.entries.get(sql)
    if (s !== undefined) {
      this.entries.delete(sql)
      this.toClose.push(s.name)
    }
  }

  /** After a reconnect or DISCARD ALL: the server holds no statements. */
  clear(): void {
    this.entries.clear()
    this.toClose = []
  }
}
