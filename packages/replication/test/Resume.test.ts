/**
 * Resume after crashes: a private PostgreSQL 18 is stopped with `pg_ctl stop -m immediate` and started
 * again several times while a workload runs and a consumer applies every transaction to a sink table in
 * another database, idempotently (the sink stores the commit end LSN with its data and skips
 * transactions at or below it). At the end the sink must equal the source table.
 *
 * Default suite: 20,000 changes, 2 forced restarts. PGFX_LONG=1: 100,000 changes, 5 restarts.
 */
import { afterAll, beforeAll } from "vitest"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule, Scope, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import { startTestServer, type TestServer } from "../../../testing/src/TestServer.ts"
import type * as Event from "../src/ChangeEvent.ts"
import { isUnchanged } from "../src/ChangeEvent.ts"
import { quoteLiteral } from "../src/Commands.ts"
import * as Logical from "../src/Logical.ts"
import * as Lsn from "../src/Lsn.ts"
import { configOf } from "./logicalHelpers.ts"

const LONG = process.env["PGFX_LONG"] === "1"
const TARGET_CHANGES = LONG ? 100_000 : 20_000
const RESTARTS = LONG ? 5 : 2
/** Per transaction: 60 inserts, 30 updates, 10 deletes. */
const INSERTS = 60
const UPDATES = 30
const DELETES = 10

let server: TestServer

beforeAll(async () => {
  // synchronous_commit on: an immediate stop must not lose commits the producer saw succeed.
  server = await startTestServer({ version: 18, extraConf: { synchronous_commit: "on" } })
}, 60_000)

afterAll(async () => {
  await server?.stop()
}, 60_000)

interface SinkRow {
  readonly id: number
  readonly v: number
  readonly payload: string
}

describe("Logical: resume across server crashes", () => {
  it.live(`delivers every committed change across ${RESTARTS} immediate restarts (${TARGET_CHANGES} changes)`, () =>
    Effect.gen(function*() {
      const source = configOf(server.info)
      const sinkDb = configOf(server.info, "sink")
      yield* Effect.scoped(Effect.flatMap(Connection.make(source), (c) =>
        Effect.gen(function*() {
          yield* c.simple("create table src (id int primary key, v int not null, payload text not null)")
          yield* c.simple("create publication pub for table src")
          yield* c.simple("select pg_create_logical_replication_slot('resume', 'pgoutput')")
          yield* c.simple("create database sink")
        })))
      yield* Effect.scoped(Effect.flatMap(Connection.make(sinkDb), (c) =>
        c.simple(`create table sink (id int primary key, v int not null, payload text not null);
          create table sink_state (lsn pg_lsn not null); insert into sink_state values ('0/0')`)))

      const scope = yield* Effect.scope
      // A connection that is reopened after the server went away.
      const reopening = (cfg: typeof source) => {
        let conn: Connection.ConnectionApi | undefined
        return Effect.suspend(() =>
          conn !== undefined && conn.isOpen()
            ? Effect.succeed(conn)
            : Effect.tap(Scope.provide(Connection.make(cfg), scope), (c) => Effect.sync(() => (conn = c)))
        )
      }
      const sinkConn = reopening(sinkDb)
      const producerConn = reopening(source)

      // --- producer: one transaction per batch; a failed batch is skipped (it may or may not have committed)
      let committedChanges = 0
      let nextId = 1
      let producerDone = false
      const producer = Effect.gen(function*() {
        while (committedChanges < TARGET_CHANGES) {
          const first = nextId
          nextId += INSERTS
          const statements = [`insert into src select g, 0, 'p' || g from generate_series(${first}, ${first + INSERTS - 1}) g`]
          if (first > INSERTS * 2) {
            statements.push(`update src set v = v + 1, payload = 'u' || id from generate_series(${first - 2 * INSERTS}, ${first - 2 * INSERTS + UPDATES - 1}) g where id = g`)
            statements.push(`delete from src where id in (select generate_series(${first - INSERTS}, ${first - INSERTS + DELETES - 1}))`)
          }
          // Count the rows each statement really changed (a skipped batch leaves later statements less to do).
          const changed = yield* Effect.flatMap(producerConn, (c) => c.simple(`begin; ${statements.join("; ")}; commit`)).pipe(
            Effect.map((results) =>
              results.reduce((n, r) => (["INSERT", "UPDATE", "DELETE"].includes(r.command) ? n + (r.rowCount ?? 0) : n), 0)
            ),
            Effect.catch(() => Effect.as(Effect.sleep("100 millis"), 0))
          )
          committedChanges += changed
          // Paced so that writes go on while the server crashes, not all before.
          yield* Effect.sleep("10 millis")
        }
        // The marker: the consumer is done once it has applied it.
        yield* Effect.flatMap(producerConn, (c) => c.simple("insert into src values (-1, 0, 'end')")).pipe(
          Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 100 })
        )
        producerDone = true
      })

      // --- consumer: apply each transaction to the sink, idempotently, then acknowledge it
      let appliedChanges = 0
      let skippedDuplicates = 0
      let redeliveredAcked = 0
      // Row changes per distinct transaction delivered (a sink commit lost in a crash is skipped on redelivery).
      const delivered = new Map<Lsn.Lsn, number>()
      let maxAcked = Lsn.zero
      let sawMarker = false
      const apply = (t: Event.Transaction) =>
        Effect.gen(function*() {
          const c = yield* sinkConn
          const stored = Lsn.fromStringUnsafe((yield* c.query<{ lsn: string }>("select lsn::text as lsn from sink_state")).rows[0]!.lsn)
          if (t.endLsn <= stored) {
            skippedDuplicates++
            return
          }
          const sqls: Array<string> = ["begin"]
          let n = 0
          for (const change of t.changes) {
            if (change._tag === "Insert" || change._tag === "Update") {
              const r = change.new as unknown as SinkRow
              const payload = isUnchanged(r.payload) ? undefined : r.payload
              sqls.push(
                `insert into sink values (${r.id}, ${r.v}, ${quoteLiteral(payload ?? "")}) on conflict (id) do update set v = excluded.v${
                  payload === undefined ? "" : ", payload = excluded.payload"
                }`
              )
              if (r.id === -1) sawMarker = true
              n++
            } else if (change._tag === "Delete") {
              sqls.push(`delete from sink where id = ${(change.key as { id: number }).id}`)
              n++
            }
          }
          sqls.push(`update sink_state set lsn = '${Lsn.format(t.endLsn)}'`, "commit")
          yield* c.simple(sqls.join(";\n"))
          appliedChanges += n
        }).pipe(Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 200 }))

      const repl = yield* Logical.make(source, {
        slot: "resume",
        publications: ["pub"],
        mode: "transaction",
        statusInterval: "200 millis",
        reconnect: { initialDelay: "100 millis", maxDelay: "1 second", maxAttempts: 60 }
      })
      const consumer = yield* Effect.forkScoped(
        repl.changes.pipe(
          Stream.filter((e): e is Event.Transaction => e._tag === "Transaction"),
          Stream.tap((t) => Effect.sync(() => {
            if (t.endLsn <= maxAcked) redeliveredAcked++
            delivered.set(t.endLsn, t.changes.filter((c) => c._tag === "Insert" || c._tag === "Update" || c._tag === "Delete").length)
          })),
          Stream.mapEffect((t) => Effect.as(apply(t), t)),
          repl.acknowledge,
          Stream.tap((t) => Effect.sync(() => {
            if (t.endLsn > maxAcked) maxAcked = t.endLsn
          })),
          Stream.takeUntil(() => sawMarker),
          Stream.runDrain
        )
      )
      const producerFiber = yield* Effect.forkScoped(producer)
      if (process.env["PGFX_DEBUG"]) {
        yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep("1 second"), Effect.sync(() => {
          const p = repl.positions()
          console.log(`committed ${committedChanges} applied ${appliedChanges} skipped ${skippedDuplicates} reconnects ${p.reconnects} acked ${Lsn.format(p.acked)} received ${Lsn.format(p.received)}`)
        }))))
      }

      // --- the crashes: spread over the run, each while both sides are busy
      let restarts = 0
      while (restarts < RESTARTS) {
        const threshold = ((restarts + 1) * TARGET_CHANGES) / (RESTARTS + 1)
        while (appliedChanges < threshold) yield* Effect.sleep("20 millis")
        yield* Effect.promise(() => server.stopImmediate())
        yield* Effect.sleep("300 millis")
        yield* Effect.promise(() => server.start())
        restarts++
      }
      yield* Fiber.join(producerFiber).pipe(Effect.timeout("120 seconds"))
      assert.isTrue(producerDone)
      yield* Fiber.join(consumer).pipe(Effect.timeout("120 seconds"))

      const src = yield* Effect.flatMap(producerConn, (c) => c.query<SinkRow>("select id, v, payload from src order by id"))
      const sink = yield* Effect.flatMap(sinkConn, (c) => c.query<SinkRow>("select id, v, payload from sink order by id"))
      assert.strictEqual(restarts, RESTARTS)
      assert.isTrue(repl.positions().reconnects >= RESTARTS, `reconnects: ${repl.positions().reconnects}`)
      assert.isTrue(committedChanges >= TARGET_CHANGES)
      const deliveredChanges = [...delivered.values()].reduce((a, b) => a + b, 0)
      assert.isTrue(deliveredChanges >= committedChanges, `delivered ${deliveredChanges} < committed ${committedChanges}`)
      assert.strictEqual(redeliveredAcked, 0, "an acknowledged transaction was delivered again")
      assert.strictEqual(sink.rows.length, src.rows.length)
      assert.deepStrictEqual(sink.rows, src.rows)
      console.log(
        `resume: ${committedChanges} committed changes, ${deliveredChanges} delivered, ${appliedChanges} applied, ${skippedDuplicates} duplicate transactions skipped, ${repl.positions().reconnects} reconnects`
      )
    }), LONG ? 300_000 : 120_000)
})
