import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Queue, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as Logical from "../src/Logical.ts"
import * as Lsn from "../src/Lsn.ts"
import * as SlotHealth from "../src/SlotHealth.ts"
import { config, dropSlot, unique } from "./logicalHelpers.ts"

describe("SlotHealth", () => {
  it.live("reports lag in bytes and time, wal_status and safe_wal_size, and sees the lag close", () =>
    Effect.gen(function*() {
      const table = unique("sh")
      const pub = unique("shpub")
      const slot = unique("shslot")
      const admin = yield* Connection.make(config())
      yield* admin.simple(`create table ${table} (id int primary key, pad text)`)
      yield* admin.simple(`create publication ${pub} for table ${table}`)
      yield* admin.simple(`select pg_create_logical_replication_slot('${slot}', 'pgoutput')`)
      yield* Effect.addFinalizer(() =>
        Effect.scoped(Effect.gen(function*() {
          const c = yield* Connection.make(config())
          yield* dropSlot(c, slot)
          yield* c.simple(`drop publication if exists ${pub}`)
          yield* c.simple(`drop table if exists ${table}`)
        })).pipe(Effect.ignore)
      )

      const missing = yield* SlotHealth.read(admin, unique("no_such_slot"))
      assert.isFalse(missing.exists)

      const readings = yield* Queue.unbounded<SlotHealth.SlotHealthReading>()
      const watcher = yield* Effect.forkScoped(
        Stream.runForEach(SlotHealth.watch(admin, slot, "100 millis"), (r) => Queue.offer(readings, r))
      )
      const first = yield* Queue.take(readings)
      assert.isTrue(first.exists)
      assert.strictEqual(first.slotType, "logical")
      assert.isFalse(first.active)
      assert.strictEqual(first.walStatus, "reserved")
      // max_slot_wal_keep_size is -1 (unlimited) on the test servers: no safe size.
      assert.isUndefined(first.safeWalSize)

      // Write while nobody consumes: the lag grows in bytes and in time.
      yield* admin.simple(`insert into ${table} select g, repeat('x', 500) from generate_series(1, 5000) g`)
      // pg_current_wal_lsn() is the write position: the WAL writer may publish the insert up to
      // wal_writer_delay (200 ms) after it committed. A reading a second later must see ≥ 0.5 s of lag.
      yield* Effect.sleep("1 second")
      const before = yield* admin.query<{ lsn: string }>("select pg_current_wal_lsn()::text as lsn")
      const after = Date.now()
      const behind = yield* takeUntil(
        readings,
        (r) => r.at.getTime() >= after && r.currentLsn >= Lsn.fromStringUnsafe(before.rows[0]!.lsn)
      )
      assert.isTrue(behind.lagBytes > 2_000_000n, `lag ${behind.lagBytes}`)
      assert.strictEqual(behind.lagBytes, behind.currentLsn - behind.confirmedFlushLsn!)
      assert.isTrue(behind.retainedBytes >= behind.lagBytes)
      assert.isTrue(Duration.toMillis(behind.lagTime!) >= 500, `lag time ${Duration.format(behind.lagTime!)}`)

      // A consumer catches up and acknowledges: the lag closes; the slot shows as active.
      const repl = yield* Logical.make(config(), { slot, publications: [pub], statusInterval: "100 millis", autoAck: "onPull" })
      const consumer = yield* Effect.forkScoped(Stream.runDrain(repl.changes))
      const caught = yield* takeUntil(readings, (r) => r.active && r.lagBytes < 100_000n)
      assert.isTrue(caught.active)
      assert.isTrue(caught.activePid !== undefined)
      assert.isTrue(Duration.toMillis(caught.lagTime!) < Duration.toMillis(behind.lagTime!) + 5_000)
      yield* Fiber.interrupt(consumer)
      yield* Fiber.interrupt(watcher)
    }), 60_000)
})

const takeUntil = (
  queue: Queue.Queue<SlotHealth.SlotHealthReading>,
  predicate: (r: SlotHealth.SlotHealthReading) => boolean
) =>
  Effect.gen(function*() {
    while (true) {
      const r = yield* Queue.take(queue)
      if (predicate(r)) return r
    }
  }).pipe(Effect.timeout("20 seconds"))
