import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Queue, Schema, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import type * as Event from "../src/ChangeEvent.ts"
import { Unchanged } from "../src/ChangeEvent.ts"
import * as Logical from "../src/Logical.ts"
import * as Lsn from "../src/Lsn.ts"
import { config, confirmedFlush, currentWal, dropSlot, eventually, sql, unique } from "./logicalHelpers.ts"

/** A table, a publication for it and a pgoutput slot; dropped when the scope closes. */
const fixture = (columns: string, extra = "") =>
  Effect.gen(function*() {
    const table = unique("lt")
    const pub = unique("lp")
    const slot = unique("ls")
    const admin = yield* Connection.make(config())
    yield* admin.simple(`create table ${table} (${columns}); ${extra.replaceAll("$T", table)}
      create publication ${pub} for table ${table}`)
    yield* admin.simple(`select pg_create_logical_replication_slot('${slot}', 'pgoutput')`)
    yield* Effect.addFinalizer(() =>
      Effect.scoped(Effect.gen(function*() {
        const c = yield* Connection.make(config())
        yield* dropSlot(c, slot)
        yield* c.simple(`drop publication if exists ${pub}; drop table if exists ${table}`)
      })).pipe(Effect.ignore)
    )
    return { table, pub, slot, admin }
  })

/** Collects events into a queue from a forked consumer. */
const collect = (changes: Stream.Stream<Logical.LogicalEvent, Logical.LogicalError>) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Logical.LogicalEvent>()
    const fiber = yield* Effect.forkScoped(Stream.runForEach(changes, (e) => Queue.offer(queue, e)))
    const next = <T extends Logical.LogicalEvent["_tag"]>(tag: T) =>
      Effect.gen(function*() {
        while (true) {
          const e = yield* Queue.take(queue)
          if (process.env["PGFX_DEBUG"]) console.log("event", e._tag)
          if (e._tag === tag) return e as Extract<Logical.LogicalEvent, { _tag: T }>
        }
      }).pipe(Effect.timeout("20 seconds"))
    return { queue, fiber, next }
  })

describe("Logical: events", () => {
  it.live("decodes typed rows, replica identity keys and full old rows, unchanged TOAST, shape changes", () =>
    Effect.gen(function*() {
      const f = yield* fixture(
        "id int primary key, name text, amount numeric, at timestamptz, tags text[], big text",
        "alter table $T alter column big set storage external;"
      )
      const repl = yield* Logical.make(config(), { slot: f.slot, publications: [f.pub], statusInterval: "200 millis" })
      const { next } = yield* collect(repl.changes)
      const big = "x".repeat(10_000)
      yield* f.admin.simple(`insert into ${f.table} values (1, 'one', 12.50, '2024-01-02T03:04:05Z', '{a,b}', '${big}')`)
      // PostgreSQL 15+ describes the relation inside the transaction, before its first row.
      const begin = yield* next("Begin")
      const rel = yield* next("Relation")
      assert.strictEqual(rel.relation.name, f.table)
      assert.strictEqual(rel.xid, begin.xid)
      assert.deepStrictEqual(rel.relation.columns.map((c) => c.isKey), [true, false, false, false, false, false])
      const ins = yield* next("Insert")
      assert.strictEqual(ins.xid, begin.xid)
      assert.deepStrictEqual(ins.new, {
        id: 1,
        name: "one",
        amount: "12.50",
        at: new Date("2024-01-02T03:04:05Z"),
        tags: ["a", "b"],
        big
      })
      const commit = yield* next("Commit")
      assert.strictEqual(commit.xid, begin.xid)
      assert.isTrue(commit.endLsn > commit.commitLsn)
      assert.strictEqual(commit.lsn, commit.endLsn)

      // Update not touching the TOASTed column: it is Unchanged, never null. Key change: old key only.
      yield* f.admin.simple(`update ${f.table} set name = 'uno', id = 2 where id = 1`)
      const upd = yield* next("Update")
      assert.strictEqual((upd.new as Record<string, unknown>)["big"], Unchanged)
      assert.deepStrictEqual(upd.key, { id: 1 })
      assert.isUndefined(upd.old)
      yield* f.admin.simple(`delete from ${f.table} where id = 2`)
      const del = yield* next("Delete")
      assert.deepStrictEqual(del.key, { id: 2 })

      // REPLICA IDENTITY FULL: the whole old row; the shape change is a Relation event.
      yield* f.admin.simple(`alter table ${f.table} replica identity full; alter table ${f.table} add column extra int;
        insert into ${f.table} (id, name, extra) values (3, 'three', 7); update ${f.table} set name = 'drei' where id = 3`)
      const rel2 = yield* next("Relation")
      assert.strictEqual(rel2.relation.replicaIdentity, "full")
      assert.strictEqual(rel2.previous?.replicaIdentity, "default")
      assert.strictEqual(rel2.relation.columns.length, 7)
      const ins3 = yield* next("Insert")
      assert.strictEqual((ins3.new as Record<string, unknown>)["extra"], 7)
      const upd3 = yield* next("Update")
      assert.strictEqual((upd3.old as Record<string, unknown>)["name"], "three")
      assert.strictEqual((upd3.new as Record<string, unknown>)["name"], "drei")
      yield* f.admin.simple(`truncate ${f.table}`)
      const tr = yield* next("Truncate")
      assert.deepStrictEqual(tr.relations.map((r) => r.name), [f.table])
    }))

  it.live("binary mode and Schema-typed tables", () =>
    Effect.gen(function*() {
      const f = yield* fixture("id int8 primary key, price float8, ok bool, data jsonb")
      const Row = Schema.Struct({ id: Schema.BigInt, price: Schema.Number, ok: Schema.Boolean, data: Schema.Unknown })
      const repl = yield* Logical.make(config(), {
        slot: f.slot,
        publications: [f.pub],
        binary: true,
        tables: { [`public.${f.table}`]: Row }
      })
      const { next } = yield* collect(repl.changes)
      yield* f.admin.simple(`insert into ${f.table} values (9007199254740993, 1.25, true, '{"k":[1,2]}')`)
      const ins = yield* next("Insert")
      assert.deepStrictEqual(ins.new, { id: 9007199254740993n, price: 1.25, ok: true, data: { k: [1, 2] } })
    }))
})

describe("Logical: acknowledgement", () => {
  it.live("the flushed position never passes an unacknowledged transaction; ack moves it", () =>
    Effect.gen(function*() {
      const f = yield* fixture("id int primary key, v text")
      const before = yield* confirmedFlush(f.admin, f.slot)
      const repl = yield* Logical.make(config(), {
        slot: f.slot,
        publications: [f.pub],
        statusInterval: "100 millis",
        mode: "transaction"
      })
      const { next } = yield* collect(repl.changes)
      yield* f.admin.simple(`insert into ${f.table} values (1, 'a')`)
      yield* f.admin.simple(`insert into ${f.table} values (2, 'b')`)
      const t1 = yield* next("Transaction")
      const t2 = yield* next("Transaction")
      assert.strictEqual(t1.changes.filter((c) => c._tag === "Insert").length, 1)
      assert.strictEqual(t2.changes.filter((c) => c._tag === "Insert").length, 1)
      // Many status updates and keepalives go by; nothing was acknowledged.
      yield* repl.flush
      yield* Effect.sleep("1500 millis")
      const unacked = yield* confirmedFlush(f.admin, f.slot)
      // The server re-sends every transaction whose commit record starts at or after the confirmed
      // position: "not past a transaction" means confirmed ≤ its commit LSN. (An idle keepalive may
      // confirm a position inside a transaction whose commit is not flushed yet; that is still safe.)
      assert.isTrue(unacked <= t1.commitLsn, `confirmed ${Lsn.format(unacked)} passed commit ${Lsn.format(t1.commitLsn)}`)
      assert.isTrue(unacked >= before)
      // Acknowledge the first: the slot moves exactly there (the second is still pending).
      yield* repl.ack(t1)
      yield* repl.flush
      assert.isTrue(yield* eventually(Effect.map(confirmedFlush(f.admin, f.slot), (l) => l >= t1.endLsn)))
      yield* Effect.sleep("500 millis")
      const p = repl.positions()
      const afterAck = yield* confirmedFlush(f.admin, f.slot)
      assert.isTrue(
        afterAck >= t1.endLsn && afterAck <= t2.commitLsn,
        `confirmed ${Lsn.format(afterAck)}; t1 ends ${Lsn.format(t1.endLsn)}, t2 commits at ${Lsn.format(t2.commitLsn)}; received ${Lsn.format(p.received)} acked ${Lsn.format(p.acked)} reconnects ${p.reconnects}`
      )
      // The acknowledge step after processing acknowledges each transaction it lets through.
      yield* repl.ack(t2)
      yield* repl.flush
      assert.isTrue(yield* eventually(Effect.map(confirmedFlush(f.admin, f.slot), (l) => l >= t2.endLsn)))
    }))

  it.live("`acknowledge` after the handler: processed transactions are confirmed, not ones still in the handler", () =>
    Effect.gen(function*() {
      const f = yield* fixture("id int primary key")
      const repl = yield* Logical.make(config(), {
        slot: f.slot,
        publications: [f.pub],
        statusInterval: "100 millis",
        mode: "transaction"
      })
      const handled: Array<Event.Transaction> = []
      const entered: Array<Event.Transaction> = []
      const gate = yield* Queue.unbounded<void>()
      const fiber = yield* Effect.forkScoped(
        repl.changes.pipe(
          Stream.filter((e): e is Event.Transaction => e._tag === "Transaction"),
          // The handler blocks on the second transaction until the gate opens.
          Stream.mapEffect((t) =>
            Effect.suspend(() => {
              entered.push(t)
              return Effect.as(handled.length === 1 ? Queue.take(gate) : Effect.void, t)
            }).pipe(Effect.tap(() => Effect.sync(() => handled.push(t))))
          ),
          repl.acknowledge,
          Stream.runDrain
        )
      )
      yield* f.admin.simple(`insert into ${f.table} values (1)`)
      yield* f.admin.simple(`insert into ${f.table} values (2)`)
      assert.isTrue(yield* eventually(Effect.sync(() => handled.length === 1)))
      const first = handled[0]!
      assert.isTrue(yield* eventually(Effect.map(confirmedFlush(f.admin, f.slot), (l) => l >= first.endLsn)))
      yield* Effect.sleep("600 millis")
      // The second transaction is still in the handler: nothing past its commit is confirmed.
      assert.isTrue(yield* eventually(Effect.sync(() => entered.length === 2)))
      const held = yield* confirmedFlush(f.admin, f.slot)
      assert.isTrue(held >= first.endLsn && held <= entered[1]!.commitLsn, `confirmed ${Lsn.format(held)}`)
      yield* Queue.offer(gate, undefined)
      assert.isTrue(yield* eventually(Effect.sync(() => handled.length === 2)))
      assert.isTrue(yield* eventually(Effect.map(confirmedFlush(f.admin, f.slot), (l) => l >= handled[1]!.endLsn)))
      yield* Fiber.interrupt(fiber)
    }))

  it.live("an idle slot advances while another database writes", () =>
    Effect.gen(function*() {
      const dbA = unique("lidle_a")
      const dbB = unique("lidle_b")
      yield* sql(config(), `create database ${dbA}`)
      yield* sql(config(), `create database ${dbB}`)
      yield* Effect.addFinalizer(() =>
        Effect.all([sql(config(), `drop database if exists ${dbA} with (force)`), sql(config(), `drop database if exists ${dbB} with (force)`)]).pipe(Effect.ignore)
      )
      const slot = unique("lidle")
      yield* sql(config(18, dbA), `create table t (id int primary key); create publication p for table t`)
      yield* sql(config(18, dbA), `select pg_create_logical_replication_slot('${slot}', 'pgoutput')`)
      yield* Effect.addFinalizer(() =>
        Effect.scoped(Effect.flatMap(Connection.make(config(18, dbA)), (c) => dropSlot(c, slot))).pipe(Effect.ignore)
      )
      const a = yield* Connection.make(config(18, dbA))
      const b = yield* Connection.make(config(18, dbB))
      yield* b.simple("create table w (id serial primary key, v text)")
      const repl = yield* Logical.make(config(18, dbA), { slot, publications: ["p"], statusInterval: "100 millis", autoAck: "onPull" })
      const { next } = yield* collect(repl.changes)
      yield* a.simple("insert into t values (1)")
      const commit = yield* next("Commit")
      // Acknowledged through autoAck once the consumer pulls again; then the database A stays idle.
      const start = yield* confirmedFlush(a, slot)
      const writer = yield* Effect.forkScoped(
        Effect.forever(Effect.andThen(b.simple("insert into w (v) select repeat('z', 200) from generate_series(1, 50)"), Effect.sleep("20 millis")))
      )
      yield* Effect.sleep("300 millis")
      const walAfterWrites = yield* currentWal(b)
      const moved = yield* eventually(Effect.map(confirmedFlush(a, slot), (l) => l >= walAfterWrites), 20_000)
      yield* Fiber.interrupt(writer)
      const end = yield* confirmedFlush(a, slot)
      assert.isTrue(moved, `confirmed ${Lsn.format(end)} did not reach ${Lsn.format(walAfterWrites)} (start ${Lsn.format(start)})`)
      assert.isTrue(end > commit.endLsn)
    }))
})

describe("Logical: transactions", () => {
  it.live("assembles streamed transactions, drops aborted subtransactions and aborted transactions", () =>
    Effect.gen(function*() {
      const f = yield* fixture("id int primary key, pad text")
      for (const streaming of ["on", "parallel"] as const) {
        const slot = unique("lstream")
        yield* f.admin.simple(`select pg_create_logical_replication_slot('${slot}', 'pgoutput')`)
        yield* Effect.addFinalizer(() => dropSlot(f.admin, slot))
        const base = streaming === "on" ? 0 : 100_000
        const repl = yield* Logical.make(
          { ...config(), runtimeParameters: { logical_decoding_work_mem: "64kB" } },
          { slot, publications: [f.pub], streaming, mode: "transaction" }
        )
        const { next } = yield* collect(repl.changes)
        const w = yield* Connection.make(config())
        yield* w.simple(`begin;
          insert into ${f.table} select ${base} + g, repeat('p', 100) from generate_series(1, 3000) g;
          savepoint s1;
          insert into ${f.table} select ${base} + g, repeat('q', 100) from generate_series(3001, 6000) g;
          rollback to savepoint s1;
          insert into ${f.table} select ${base} + g, repeat('r', 100) from generate_series(6001, 7000) g;
          commit`)
        yield* w.simple(`begin; insert into ${f.table} select ${base} + g, repeat('a', 100) from generate_series(8001, 12000) g; rollback`)
        yield* w.simple(`insert into ${f.table} values (${base} + 20000, 'small')`)
        const big = yield* next("Transaction")
        assert.isTrue(big.streamed, "the big transaction was streamed")
        const ids = big.changes.filter((c): c is Event.Insert => c._tag === "Insert").map((c) => (c.new as { id: number }).id - base)
        assert.strictEqual(ids.length, 4000)
        assert.isTrue(ids.every((id) => id <= 3000 || (id >= 6001 && id <= 7000)))
        const small = yield* next("Transaction")
        assert.isFalse(small.streamed)
        assert.deepStrictEqual(small.changes.filter((c) => c._tag === "Insert").map((c) => ((c as Event.Insert).new as { id: number }).id), [base + 20000])
      }
    }), 60_000)
})

describe("Logical: other output plugins", () => {
  it.live("test_decoding: raw bytes and parsed records, with acknowledgement by LSN", () =>
    Effect.gen(function*() {
      const table = unique("ltd")
      const admin = yield* Connection.make(config())
      yield* admin.simple(`create table ${table} (id int primary key, v text)`)
      const slots = [unique("ltd_raw"), unique("ltd_typed")]
      for (const slot of slots) yield* admin.simple(`select pg_create_logical_replication_slot('${slot}', 'test_decoding')`)
      yield* Effect.addFinalizer(() =>
        Effect.scoped(Effect.gen(function*() {
          const c = yield* Connection.make(config())
          for (const slot of slots) yield* dropSlot(c, slot)
          yield* c.simple(`drop table if exists ${table}`)
        })).pipe(Effect.ignore)
      )
      yield* admin.simple(`insert into ${table} values (1, 'it''s')`)
      const raw = yield* Logical.streamLogical(config(), { slot: slots[0]!, plugin: "test_decoding" }).pipe(
        Stream.take(3),
        Stream.runCollect
      )
      const lines = raw.map((e) => (e._tag === "Raw" ? new TextDecoder().decode(e.data) : e._tag))
      assert.match(lines[0]!, /^BEGIN/)
      assert.strictEqual(lines[1], `table public.${table}: INSERT: id[integer]:1 v[text]:'it''s'`)
      assert.match(lines[2]!, /^COMMIT/)

      const repl = yield* Logical.make(config(), {
        slot: slots[1]!,
        plugin: "test_decoding",
        format: "typed",
        pluginOptions: { "include-xids": "1" },
        statusInterval: "100 millis"
      })
      const typed = yield* repl.changes.pipe(Stream.take(3), Stream.runCollect)
      const records = typed.map((e) => (e._tag === "TestDecoding" ? e.record : undefined))
      assert.strictEqual(records[0]?._tag, "TestDecodingBegin")
      const insert = records[1]
      assert.strictEqual(insert?._tag, "TestDecodingInsert")
      if (insert?._tag === "TestDecodingInsert") {
        assert.deepStrictEqual(insert.newTuple?.map((c) => c.value), [{ kind: "value", text: "1" }, { kind: "value", text: "it's" }])
      }
      const commit = typed[2]!
      assert.strictEqual(Logical.ackPositionOf(commit), commit._tag === "TestDecoding" ? commit.lsn : undefined)
      yield* repl.ack(commit)
      assert.strictEqual(repl.positions().acked, (commit as Logical.TestDecodingEvent).lsn)
    }))
})

describe("Logical: backpressure", () => {
  it.live("a slow consumer keeps the client's backlog bounded: the socket pauses instead of buffering", () =>
    Effect.gen(function*() {
      const f = yield* fixture("id int primary key, pad text")
      const start = yield* currentWal(f.admin)
      yield* f.admin.simple(`insert into ${f.table} select g, repeat('p', 300) from generate_series(1, 40000) g`)
      const end = yield* currentWal(f.admin)
      const repl = yield* Logical.make(config(), { slot: f.slot, publications: [f.pub], bufferChunks: 2 })
      let processed = Lsn.zero
      let maxAhead = 0n
      let rows = 0
      yield* repl.changes.pipe(
        Stream.takeUntil((e) => e._tag === "Commit"),
        Stream.runForEachArray((events) =>
          Effect.gen(function*() {
            // How far the client has read beyond what the consumer has finished with.
            if (processed > Lsn.zero) {
              const ahead = repl.positions().received - processed
              if (ahead > maxAhead) maxAhead = ahead
            }
            for (const e of events) if (e._tag === "Insert") rows++
            const last = events[events.length - 1]!
            if (last._tag !== "Transaction") processed = last.lsn
            yield* Effect.sleep("4 millis")
          })
        ),
        Effect.timeout("60 seconds")
      )
      const total = end - start
      if (process.env["PGFX_DEBUG"]) console.log("backlog", total, "max ahead", maxAhead)
      assert.strictEqual(rows, 40000)
      // The backlog (~20 MB of WAL) stayed on the server / in the kernel; the client read at most a few chunks ahead.
      assert.isTrue(maxAhead < total / 8n, `client ran ${maxAhead} bytes ahead of a ${total}-byte backlog`)
      assert.isTrue(maxAhead < 2_000_000n, `client ran ${maxAhead} bytes ahead`)
    }), 60_000)
})

describe("Logical: ready", () => {
  it.live("a slot created by the stream: `ready` waits for its consistent point; every later commit arrives", () =>
    Effect.gen(function*() {
      const table = unique("rt")
      const pub = unique("rp")
      const slot = unique("rs")
      const admin = yield* Connection.make(config())
      yield* admin.simple(`create table ${table} (id int primary key); create publication ${pub} for table ${table}`)
      yield* Effect.addFinalizer(() => Effect.ignore(sql(config(), `drop publication if exists ${pub}; drop table if exists ${table}`)))
      // A transaction with an xid, open while the slot is created: creation waits for it to end.
      const holder = yield* Connection.make(config())
      yield* holder.simple(`begin; insert into ${table} values (0)`)

      const repl = yield* Logical.make(config(), { slot, publications: [pub], createSlot: { temporary: true } })
      const { next } = yield* collect(repl.changes)
      const ready = yield* Effect.forkScoped(repl.ready)
      // Listed and active already, yet not consistent: `ready` has not completed.
      const listed = yield* eventually(
        Effect.map(
          admin.query<{ active: boolean }>("select active from pg_replication_slots where slot_name = $1", [slot]),
          (r) => r.rows[0]?.active === true
        )
      )
      assert.isTrue(listed)
      yield* Effect.sleep("300 millis")
      assert.isUndefined(ready.pollUnsafe(), "ready completed while the slot still waited for an open transaction")

      yield* holder.simple("commit")
      const started = yield* Fiber.join(ready).pipe(Effect.timeout("20 seconds"))
      assert.isDefined(started.createdSlot)
      assert.strictEqual(started.createdSlot!.slotName, slot)
      const consistent = started.createdSlot!.consistentPoint!
      assert.isTrue(consistent > Lsn.zero)

      yield* admin.simple(`insert into ${table} values (1)`)
      const ins = yield* next("Insert")
      assert.deepStrictEqual(ins.new, { id: 1 })
      assert.isTrue(ins.lsn >= consistent)
    }), 60_000)

  it.live("`ready` fails with the stream's error when it ends before replicating (no hang)", () =>
    Effect.gen(function*() {
      const repl = yield* Logical.make(config(), { slot: unique("missing"), publications: ["none"], reconnect: false })
      const ready = yield* Effect.forkScoped(Effect.flip(repl.ready))
      const streamError = yield* Effect.flip(Stream.runDrain(repl.changes))
      const readyError = yield* Fiber.join(ready).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(streamError._tag, "PgServerError")
      assert.strictEqual(readyError, streamError)
    }))
})
