/** The statement cache's LRU bookkeeping (that evicted statements are closed on the server is tested in Connection.test.ts). */
import { assert, describe, it } from "@effect/vitest"
import { type PreparedStatement, StatementCache } from "../src/StatementCache.ts"

const statement = (sql: string, name: string): PreparedStatement => ({
  name,
  sql,
  parameterTypes: [],
  fields: undefined,
  resultFormats: [],
  plans: { object: [], array: [] }
})

describe("StatementCache", () => {
  it("evicts the least recently used statement and queues its name for Close", () => {
    const cache = new StatementCache(3)
    for (const n of [1, 2, 3]) cache.set(statement(`q${n}`, `s${n}`))
    assert.strictEqual(cache.get("q1")?.name, "s1") // q2 is now the least recently used
    cache.get("q3")
    cache.set(statement("q4", "s4"))
    assert.deepStrictEqual(cache.toClose, ["s2"])
    assert.isUndefined(cache.get("q2"))
    cache.set(statement("q5", "s5")) // q1 (used before q3 and q4) goes next
    assert.deepStrictEqual(cache.toClose, ["s2", "s1"])
    assert.strictEqual(cache.size, 3)
    assert.deepStrictEqual(["q3", "q4", "q5"].map((q) => cache.get(q)?.name), ["s3", "s4", "s5"])
  })

  it("invalidate drops one statement; clear forgets everything", () => {
    const cache = new StatementCache(2)
    cache.set(statement("a", "sa"))
    cache.set(statement("b", "sb"))
    cache.invalidate("a")
    assert.deepStrictEqual(cache.toClose, ["sa"])
    assert.isUndefined(cache.get("a"))
    cache.clear()
    assert.strictEqual(cache.size, 0)
    assert.deepStrictEqual(cache.toClose, [])
  })
})
