/**
 * The documentation's examples, run: every `examples/docs/*.ts` program against PostgreSQL 18, and every
 * README's marked code block compared with the file it names, so the docs cannot drift from code that runs.
 *
 * Invariants:
 * - Examples take their settings from the libpq environment only; this file points PGHOST/PGPORT/PGUSER/
 *   PGDATABASE at a PostgreSQL 18 of its own (unix socket, superuser) before any example runs and removes
 *   variables that would change the target (DATABASE_URL, PGPASSWORD, PGSERVICE, PGSSLMODE…). Its own,
 *   not the shared one: creating a logical slot (the cdc example) waits until every transaction running in
 *   the cluster has ended, which under the other test files' writes can take several of the server's
 *   15-second running-transaction snapshots.
 * - A block is `<!-- example: examples/docs/<name>.ts -->`, a ```ts fence holding the file verbatim, and
 *   `<!-- /example -->`. Every example file appears in at least one README; every marker names a file.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll } from "vitest"
import { startTestServer } from "../../testing/src/index.ts"

const root = Path.resolve(import.meta.dirname, "../..")
const server = await startTestServer({ version: 18 })
afterAll(() => server.stop())
const info = server.info
for (const name of Object.keys(process.env)) {
  if (name.startsWith("PG") || name === "DATABASE_URL") delete process.env[name]
}
process.env["PGHOST"] = info.socketDir
process.env["PGPORT"] = String(info.port)
process.env["PGUSER"] = info.superuser
process.env["PGDATABASE"] = info.database

describe("examples run against PostgreSQL 18", () => {
  it.live("first: a parameter and a stream", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./first.ts"))
      assert.deepStrictEqual(yield* program, { answer: 42, squares: [1, 4, 9, 16, 25] })
    }))

  it.live("query: parameters, rows decoded by a Schema", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./query.ts"))
      assert.deepStrictEqual(yield* program, [
        { id: 1, name: "pen", price: "1.25", stock: 120n, tags: ["office"] },
        { id: 2, name: "ink", price: "7.50", stock: 8n, tags: ["office", "refill"] }
      ])
    }))

  it.live("stream: 200,000 rows folded", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./stream.ts"))
      // The sum of the even numbers 2..200000 = 2 · (1 + … + 100000).
      assert.strictEqual(yield* program, 100_000 * 100_001)
    }))

  it.live("forEach: 500,000 rows through a callback", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./foreach.ts"))
      // 'item ' (5 characters) + up to 96 x's.
      assert.deepStrictEqual(yield* program, { rows: 500_000, longest: 101 })
    }))

  it.live("cursor: three batches taken, then the connection is free", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./cursor.ts"))
      assert.deepStrictEqual(yield* program, { count: 1200, last: 1200, after: true })
    }))

  it.live("pipeline: a failure skips the rest of its segment only", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./pipeline.ts"))
      assert.deepStrictEqual(yield* program, [[{ n: 42 }, "22012 division_by_zero", "skipped"], [{ s: "STILL RUNS" }]])
    }))

  it.live("cancel: both timeouts stop the server's statement; the connection stays usable", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./cancel.ts"))
      const result = yield* program
      assert.deepStrictEqual(result.errors, ["TimeoutError", "TimeoutError(Statement)"])
      assert.strictEqual(result.n, 1)
      // Without a server-side cancel the follow-up query would wait for the 30 s sleeps.
      assert.isBelow(result.elapsedMs, 10_000)
    }))

  it.live("copy: 50,000 CSV rows and a 2-row file in, an aggregate out, the table into a file", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./copy.ts"))
      const { copied, fromFile, exported, toFile, lines } = yield* program
      assert.strictEqual(copied, 50_000)
      assert.strictEqual(fromFile, 2)
      assert.strictEqual(toFile, 50_002)
      assert.strictEqual(lines, 50_002)
      // Sensor s gets the values i / 100 for i ≡ s (mod 10), i in 1..50000; the file adds 0.5 to sensor 1
      // and 0.25 to sensor 2.
      const expected = Array.from({ length: 10 }, (_, s) => {
        let sum = s === 1 ? 0.5 : s === 2 ? 0.25 : 0
        for (let i = s === 0 ? 10 : s; i <= 50_000; i += 10) sum += i / 100
        return sum
      })
      assert.deepStrictEqual(exported.map(([s]) => Number(s)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      exported.forEach(([s, total]) => assert.closeTo(Number(total), expected[Number(s)]!, 1e-6))
    }))

  it.live("pool: a committed transfer and a rolled-back one", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./pool.ts"))
      assert.deepStrictEqual(yield* program, {
        refused: "InsufficientFunds",
        balances: [{ name: "alice", balance: 30 }, { name: "bob", balance: 70 }]
      })
    }))

  it.live("listen: three notifications from another session, in order", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./listen.ts"))
      assert.deepStrictEqual(
        yield* program,
        ["resize 1", "resize 2", "resize 3"].map((payload) => ({ channel: "jobs", payload, fromSender: true }))
      )
    }))

  it.live("cdc: the inserted row as a typed event, its commit acknowledged", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./cdc.ts"))
      const result = yield* program
      assert.deepStrictEqual(result.tags.filter((t) => t !== "Relation"), ["Begin", "Insert", "Commit"])
      assert.deepStrictEqual(result.inserted, [{ id: 1, note: "hello" }])
      // Acknowledging the commit confirmed exactly its end to the server.
      assert.strictEqual(result.confirmed, result.commitEnd)
    }))

  it.live("physical: the current segment's WAL up to the server's position", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./physical.ts"))
      const result = yield* program
      assert.isAtLeast(result.received, result.expected)
      assert.isAbove(result.expected, 0)
      assert.match(result.segment, /^[0-9A-F]{24}$/)
      assert.strictEqual(result.segment.slice(0, 8), result.timeline.toString(16).toUpperCase().padStart(8, "0"))
    }))

  it.live("basebackup: base.tar and backup_manifest in a new directory", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./basebackup.ts"))
      const result = yield* program
      try {
        assert.deepStrictEqual(result.files, ["backup_manifest", "base.tar"])
        assert.isAtLeast(result.walBytes, 0)
        assert.isAbove(result.manifestLists, 100)
        const tar = Fs.readFileSync(Path.join(result.directory, "base.tar"))
        assert.strictEqual(tar.subarray(257, 262).toString("latin1"), "ustar")
      } finally {
        Fs.rmSync(result.directory, { recursive: true, force: true })
      }
    }), 60_000)

  it.live("sqlclient: effect/sql statements, helpers and a transaction", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./sqlclient.ts"))
      assert.deepStrictEqual(yield* program, [{ customerId: 7, totalCents: 1240 }])
    }))

  it.live("typedquery: a matching Result schema decodes, a mismatching one is refused", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./typedquery.ts"))
      const { mismatch, order } = yield* program
      assert.strictEqual(order.id, 1)
      assert.strictEqual(order.total, "12.50")
      assert.instanceOf(order.placedAt, Date)
      assert.include(mismatch, `column "total" is numeric`)
    }))

  it.live("faultproxy: a cut fails the waiting query with ConnectionError, promptly", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./faultproxy.ts"))
      const started = Date.now()
      assert.deepStrictEqual(yield* program, { before: true, failure: "ConnectionError(Closed)", closed: "ConnectionError", isOpen: false })
      assert.isBelow(Date.now() - started, 10_000)
    }))

  it.live("mockserver: a message the query flow cannot contain is a ProtocolError", () =>
    Effect.gen(function*() {
      const { program } = yield* Effect.promise(() => import("./mockserver.ts"))
      const result = yield* program
      assert.deepStrictEqual(result, { error: "ProtocolError(UnexpectedMessage)", isOpen: false, received: result.received })
      assert.deepStrictEqual(result.received.filter((t) => t !== "Terminate"), ["StartupMessage", "Query"])
    }))
})

// ---------------------------------------------------------------------------------------------------------
// README blocks

const readmes = [
  "README.md",
  "packages/codec/README.md",
  "packages/connection/README.md",
  "packages/replication/README.md",
  "packages/sql/README.md",
  "testing/README.md",
  ...(Fs.existsSync(Path.join(root, "docs")) ? Fs.readdirSync(Path.join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`) : [])
]

const marker = /<!-- example: (\S+) -->\n```ts\n([\s\S]*?)```\n<!-- \/example -->/g

const blocksOf = (readme: string): Array<{ file: string; code: string }> => {
  const text = Fs.readFileSync(Path.join(root, readme), "utf8")
  const opened = (text.match(/<!-- example: /g) ?? []).length
  const blocks = [...text.matchAll(marker)].map((m) => ({ file: m[1]!, code: m[2]! }))
  // A marker whose block is malformed would otherwise go unchecked.
  assert.strictEqual(blocks.length, opened, `${readme}: every <!-- example: --> marker must be followed by a \`\`\`ts block and <!-- /example -->`)
  return blocks
}

describe("README code blocks are the example files, verbatim", () => {
  for (const readme of readmes) {
    it(readme, () => {
      for (const { code, file } of blocksOf(readme)) {
        const path = Path.join(root, file)
        assert.isTrue(Fs.existsSync(path), `${readme} names ${file}, which does not exist`)
        assert.strictEqual(code, Fs.readFileSync(path, "utf8"), `${readme}: the block of ${file} differs from the file`)
      }
    })
  }

  it("every example is shown in a README", () => {
    const all = new Set(readmes.flatMap((r) => blocksOf(r).map((b) => b.file)))
    const examples = Fs.readdirSync(import.meta.dirname).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.startsWith("_"))
    for (const f of examples) assert.isTrue(all.has(`examples/docs/${f}`), `examples/docs/${f} is not in any README`)
  })
})
