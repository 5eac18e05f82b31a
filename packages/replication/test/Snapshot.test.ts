import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import type * as Event from "../src/ChangeEvent.ts"
import * as Snapshot from "../src/Snapshot.ts"
import { config, dropSlot, unique } from "./logicalHelpers.ts"

describe("Snapshot → stream handoff", () => {
  it.live("copies the rows as of the slot's snapshot, then streams every later change: no gap, no overlap", () =>
    Effect.gen(function*() {
      const table = unique("snap")
      const pub = unique("snappub")
      const slot = unique("snapslot")
      const admin = yield* Connection.make(config())
      yield* admin.simple(`create table ${table} (id int primary key, v int not null, note text)`)
      yield* admin.simple(`create publication ${pub} for table ${table}`)
      yield* Effect.addFinalizer(() =>
        Effect.scoped(Effect.gen(function*() {
          const c = yield* Connection.make(config())
          yield* dropSlot(c, slot)
          yield* c.simple(`drop publication if exists ${pub}`)
          yield* c.simple(`drop table if exists ${table}`)
        })).pipe(Effect.ignore)
      )
      yield* admin.simple(`insert into ${table} select g, 0, 'initial' from generate_series(1, 2000) g`)

      // A writer runs throughout: new rows (unique ids), updates and deletes of old ones, one transaction each.
      const writer = yield* Connection.make(config())
      let nextId = 10_000
      let writes = 0
      const writerFiber = yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        const id = nextId++
        const target = 1 + (id % 2000)
        yield* writer.simple(`begin; insert into ${table} values (${id}, 1, 'live');
          update ${table} set v = v + 1 where id = ${target};
          delete from ${table} where id = ${id - 7}; commit`)
        writes++
      })))
      yield* Effect.sleep("150 millis")

      const handoff = yield* Snapshot.make(config(), {
        slot,
        publications: [pub],
        copyTables: [`public.${table}`],
        mode: "transaction"
      })
      const replica = new Map<number, { v: number; note: string }>()
      const rowOf = (r: unknown) => r as { id: number; v: number; note: string }
      let snapshotRows = 0
      let overlaps = 0
      let sawDone = false
      let firstCommitAfter = true
      const consumer = yield* Effect.forkScoped(
        handoff.events.pipe(
          Stream.takeUntil((e) =>
            e._tag === "Transaction" &&
            e.changes.some((c) => c._tag === "Insert" && rowOf(c.new).id === -1)
          ),
          Stream.runForEach((e): Effect.Effect<void> => {
              switch (e._tag) {
                case "SnapshotRow": {
                  const r = rowOf(e.row)
                  replica.set(r.id, { v: r.v, note: r.note })
                  snapshotRows++
                  return Effect.void
                }
                case "SnapshotDone":
                  sawDone = true
                  assert.strictEqual(e.rows, snapshotRows)
                  return Effect.void
                case "Transaction": {
                  assert.isTrue(sawDone, "changes come after the copy")
                  if (e.commitLsn < handoff.snapshot.consistentPoint) firstCommitAfter = false
                  for (const c of e.changes as ReadonlyArray<Event.TransactionChange>) {
                    if (c._tag === "Insert") {
                      const r = rowOf(c.new)
                      if (replica.has(r.id)) overlaps++
                      replica.set(r.id, { v: r.v, note: r.note })
                    } else if (c._tag === "Update") {
                      const r = rowOf(c.new)
                      if (!replica.has(r.id)) overlaps++ // an update of a row the copy never had: a gap
                      replica.set(r.id, { v: r.v, note: r.note })
                    } else if (c._tag === "Delete") {
                      replica.delete((c.key as { id: number }).id)
                    }
                  }
                  return handoff.replication.ack(e)
                }
                default:
                  return Effect.void
              }
            })
        )
      )
      yield* Effect.sleep("1500 millis")
      yield* Fiber.interrupt(writerFiber)
      // The interrupted statement may still commit on the server: wait until the writer's connection
      // has finished it (a later request completes after it), so the marker commits last.
      yield* writer.simple("select 1")
      yield* admin.simple(`insert into ${table} values (-1, 0, 'end')`)
      yield* Fiber.join(consumer).pipe(Effect.timeout("30 seconds"))

      const source = yield* admin.query<{ id: number; v: number; note: string }>(`select id, v, note from ${table} order by id`)
      const expected = new Map(source.rows.map((r) => [r.id, { v: r.v, note: r.note }]))
      assert.isTrue(writes > 20, `the writer committed ${writes} transactions`)
      assert.isTrue(snapshotRows >= 2000)
      assert.strictEqual(overlaps, 0)
      assert.isTrue(firstCommitAfter)
      assert.strictEqual(replica.size, expected.size)
      assert.deepStrictEqual(new Map([...replica].sort((a, b) => a[0] - b[0])), expected)
    }), 60_000)
})
