import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Duration, Effect, Exit, Option, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import type { BackendMessage } from "@pgfx/codec/BackendMessage"
import { decodeReplicationClientMessage, encodeReplicationServerMessage, type ReplicationServerMessage } from "@pgfx/codec/Replication"
import { Writer } from "@pgfx/codec/internal/Writer"
import * as Mock from "../../../testing/src/MockServer.ts"
import * as Commands from "../src/Commands.ts"
import * as Lsn from "../src/Lsn.ts"
import { type PhysicalWal, physicalReplication, streamPhysical } from "../src/Physical.ts"
import { configFor, eventually, privateServer, uniqueSlot, unixConfig } from "./helpers.ts"

const SEG = 16 * 1024 * 1024

/** Pulls chunks until `done` says so (or the stream ends); fails after `ms`. */
const collect = (
  pull: Effect.Effect<ReadonlyArray<PhysicalWal>, unknown>,
  done: (all: ReadonlyArray<PhysicalWal>) => boolean,
  ms = 30_000
) =>
  Effect.gen(function*() {
    const all: Array<PhysicalWal> = []
    while (!done(all)) {
      const batch = yield* Effect.exit(pull)
      if (Exit.isFailure(batch)) break
      for (const c of batch.value) all.push({ ...c, data: c.data.slice() })
    }
    return all
  }).pipe(Effect.timeout(Duration.millis(ms)))

const endOf = (c: PhysicalWal) => Lsn.add(c.walStart, c.data.length)

/** Checks that chunks are contiguous and that their bytes are the server's own WAL files, segment by segment. */
const compareWithServer = (sql: Connection.ConnectionApi, chunks: ReadonlyArray<PhysicalWal>) =>
  Effect.gen(function*() {
    for (let i = 1; i < chunks.length; i++) {
      if (chunks[i]!.timeline === chunks[i - 1]!.timeline) assert.strictEqual(chunks[i]!.walStart, endOf(chunks[i - 1]!))
    }
    for (const c of chunks) {
      let at = c.walStart
      let offset = 0
      while (offset < c.data.length) {
        const segno = Lsn.segmentNumber(at)
        const inSeg = Lsn.segmentOffset(at)
        const n = Math.min(c.data.length - offset, SEG - inSeg)
        const name = Lsn.walFileName(c.timeline, segno)
        const r = yield* sql.query<{ b: Uint8Array }>("select pg_read_binary_file($1, $2, $3) as b", [`pg_wal/${name}`, inSeg, n])
        assert.deepStrictEqual(r.rows[0]!.b, c.data.subarray(offset, offset + n), `${name} at ${inSeg}`)
        offset += n
        at = Lsn.add(at, n)
      }
    }
  })

describe("Physical streaming", () => {
  for (const version of [18, 15] as const) {
    it.live(`streams the server's WAL byte for byte and advances the slot (PostgreSQL ${version})`, () =>
      Effect.gen(function*() {
        const repl = yield* Connection.make(unixConfig(version, { replication: "true" }))
        const sql = yield* Connection.make(unixConfig(version))
        const slot = uniqueSlot("pgfx_phys_stream")
        yield* Commands.createReplicationSlot(repl, slot, Commands.physical, { temporary: true, reserveWal: true })
        const start = Option.getOrThrow(yield* Commands.readReplicationSlot(repl, slot)).restartLsn!
        const table = `pgfx_phys_${process.pid}_${version}`
        yield* sql.simple(`set synchronous_commit = on; create table ${table}(id int, payload text); insert into ${table} select g, repeat('x', 200) from generate_series(1, 2000) g`)
        const target = Lsn.fromStringUnsafe((yield* sql.query<{ l: string }>("select pg_current_wal_flush_lsn()::text as l")).rows[0]!.l)

        const replication = yield* physicalReplication(repl, { slot, startLsn: start, statusInterval: "100 millis" })
        assert.strictEqual(replication.timeline(), 1)
        const chunks = yield* collect(replication.pull, (all) => all.length > 0 && endOf(all[all.length - 1]!) >= target)
        assert.isAbove(chunks.length, 0)
        assert.strictEqual(chunks[0]!.walStart, start)
        assert.isTrue(endOf(chunks[chunks.length - 1]!) >= target)
        yield* compareWithServer(sql, chunks)

        // Acknowledge what was received: the periodic status update moves the slot's restart_lsn.
        yield* replication.ack(target)
        const restartLsn = sql.query<{ l: string }>(
          "select restart_lsn::text as l from pg_replication_slots where slot_name = $1",
          [slot]
        ).pipe(Effect.map((r) => Lsn.fromStringUnsafe(r.rows[0]!.l)))
        assert.isTrue(yield* eventually(Effect.map(restartLsn, (l) => l >= target)), "the slot's restart_lsn reached the ack")
        const outcome = yield* replication.end
        assert.strictEqual(outcome.nextTimeline, undefined)
        // The connection is usable again after streaming ended.
        const again = yield* Commands.identifySystem(repl)
        assert.strictEqual(again.timeline, 1)
        yield* sql.simple(`drop table ${table}`)
      }))
  }
})

describe("streamPhysical", () => {
  it.live("acknowledges each batch when the next one is pulled (PostgreSQL 18)", () =>
    Effect.gen(function*() {
      const repl = yield* Connection.make(unixConfig(18, { replication: "true" }))
      const sql = yield* Connection.make(unixConfig(18))
      const slot = uniqueSlot("pgfx_stream_phys")
      yield* Commands.createReplicationSlot(repl, slot, Commands.physical, { temporary: true, reserveWal: true })
      const start = Option.getOrThrow(yield* Commands.readReplicationSlot(repl, slot)).restartLsn!
      const table = `pgfx_sp_${process.pid}`
      yield* sql.simple(`set synchronous_commit = on; create table ${table}(v text); insert into ${table} select repeat('y', 100) from generate_series(1, 3000)`)
      const target = Lsn.fromStringUnsafe((yield* sql.query<{ l: string }>("select pg_current_wal_flush_lsn()::text as l")).rows[0]!.l)
      const chunks = yield* streamPhysical(repl, { slot, startLsn: start, statusInterval: "1 hour" }).pipe(
        Stream.map((c) => ({ ...c, data: c.data.slice() })),
        Stream.takeUntil((c) => endOf(c) >= target),
        Stream.runCollect
      )
      assert.strictEqual(chunks[0]!.walStart, start)
      yield* compareWithServer(sql, chunks)
      // Periodic updates are off: the final update sent when the stream ended carried the acks.
      const restart = Lsn.fromStringUnsafe(
        (yield* sql.query<{ l: string }>("select restart_lsn::text as l from pg_replication_slots where slot_name = $1", [slot])).rows[0]!.l
      )
      assert.isTrue(restart > start && restart <= target, Lsn.format(restart))
      yield* sql.simple(`drop table ${table}`)
    }))
})

describe("Physical streaming across a timeline switch (private PostgreSQL 18, promoted)", () => {
  it.live("TIMELINE_HISTORY, end of the historic timeline, and streaming on into the next one", () =>
    Effect.gen(function*() {
      const server = yield* privateServer(18)
      const config = configFor(server.info)
      // Timeline 1: some WAL, then a crash-stop, standby.signal, start, promote → timeline 2.
      const before = yield* Effect.scoped(Effect.gen(function*() {
        const sql = yield* Connection.make(config)
        yield* sql.simple("set synchronous_commit = on; create table t(id int); insert into t select generate_series(1, 1000)")
        return Lsn.fromStringUnsafe((yield* sql.query<{ l: string }>("select pg_current_wal_flush_lsn()::text as l")).rows[0]!.l)
      }))
      yield* Effect.promise(() => server.stopImmediate())
      Fs.writeFileSync(Path.join(server.info.dataDir, "standby.signal"), "")
      yield* Effect.promise(() => server.start())
      yield* Effect.scoped(Effect.gen(function*() {
        const sql = yield* Connection.make(config)
        assert.deepStrictEqual((yield* sql.query("select pg_is_in_recovery() as r")).rows, [{ r: true }])
        assert.deepStrictEqual((yield* sql.query("select pg_promote(true, 30) as p")).rows, [{ p: true }])
        yield* sql.simple("insert into t select generate_series(1, 1000)")
      }))
      const sql = yield* Connection.make(config)
      const after = Lsn.fromStringUnsafe((yield* sql.query<{ l: string }>("select pg_current_wal_flush_lsn()::text as l")).rows[0]!.l)

      const repl = yield* Connection.make({ ...config, replication: "true" })
      const id = yield* Commands.identifySystem(repl)
      assert.strictEqual(id.timeline, 2)
      const history = yield* Commands.timelineHistory(repl, 2)
      assert.strictEqual(history.fileName, "00000002.history")
      assert.strictEqual(history.entries.length, 1)
      const switchpoint = history.entries[0]!.switchpoint
      assert.strictEqual(history.entries[0]!.timeline, 1)
      assert.isTrue(switchpoint >= before)

      // Streaming timeline 1 from a point before the switch: the server ends COPY at the switchpoint
      // and names timeline 2; streaming follows it (from the segment start, as pg_receivewal does).
      const start = Lsn.segmentFloor(before)
      const switches: Array<{ from: number; timeline: number; switchpoint: Lsn.Lsn }> = []
      const replication = yield* physicalReplication(repl, {
        startLsn: start,
        timeline: 1,
        timelineStart: "segmentStart",
        onTimelineSwitch: (from, next) => Effect.sync(() => switches.push({ from, ...next }))
      })
      const chunks = yield* collect(
        replication.pull,
        (all) => all.length > 0 && all[all.length - 1]!.timeline === 2 && endOf(all[all.length - 1]!) >= after
      )
      assert.deepStrictEqual(switches, [{ from: 1, timeline: 2, switchpoint }])
      const tl1 = chunks.filter((c) => c.timeline === 1)
      const tl2 = chunks.filter((c) => c.timeline === 2)
      assert.strictEqual(tl1[0]!.walStart, start)
      assert.strictEqual(endOf(tl1[tl1.length - 1]!), switchpoint)
      assert.strictEqual(tl2[0]!.walStart, Lsn.segmentFloor(switchpoint))
      assert.strictEqual(replication.timeline(), 2)
      // Both timelines' bytes are the server's own files (the promotion renamed the old timeline's
      // last segment to .partial; its bytes up to the switchpoint are in timeline 2's first segment).
      yield* compareWithServer(sql, tl2)
      const tl1Readable = tl1.filter((c) => Lsn.segmentNumber(c.walStart) < Lsn.segmentNumber(switchpoint))
      yield* compareWithServer(sql, tl1Readable)
      yield* replication.end

      // Starting exactly at the switchpoint on timeline 1: the server skips COPY and names timeline 2
      // at once; streaming goes on there, from the switchpoint.
      const atSwitch = yield* physicalReplication(repl, { startLsn: switchpoint, timeline: 1 })
      const next = yield* collect(atSwitch.pull, (all) => all.length > 0)
      assert.strictEqual(next[0]!.timeline, 2)
      assert.strictEqual(next[0]!.walStart, switchpoint)
      yield* atSwitch.end
    }), { timeout: 120_000 })
})

/** A CopyData carrying a replication message, as the server frames it. */
const copyData = (m: ReplicationServerMessage): BackendMessage => {
  const w = new Writer()
  encodeReplicationServerMessage(w, m)
  return { _tag: "CopyData", data: w.take().slice() }
}

const field = (name: string, typeOid: number) => ({
  name,
  tableOid: 0,
  columnAttributeNumber: 0,
  typeOid,
  typeSize: typeOid === 20 ? 8 : -1,
  typeModifier: -1,
  format: 0 as const
})

const bytes = (s: string) => new TextEncoder().encode(s)

describe("Physical streaming: the timeline transition, replayed", () => {
  it.live("answers the keepalive, leaves COPY when the server does, reads the next timeline, and restarts there", () =>
    Effect.gen(function*() {
      const wal1 = Uint8Array.from({ length: 40 }, (_, i) => i)
      const wal2 = Uint8Array.from({ length: 24 }, (_, i) => 200 - i)
      const replies: Array<unknown> = []
      // The messages a PostgreSQL 18 walsender sends at the end of a historic timeline (54.4).
      const server = yield* Mock.MockServer.scoped([
        Mock.trustStartup(),
        Mock.expect("Query", (q) => q.sql === "START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"),
        Mock.send([
          { _tag: "CopyBothResponse", format: 0, columnFormats: [] },
          copyData({ _tag: "XLogData", walStart: 0x1000000n, walEnd: 0x1000028n, serverTime: 1n, data: wal1 }),
          copyData({ _tag: "PrimaryKeepalive", walEnd: 0x1000028n, serverTime: 2n, replyRequested: true })
        ]),
        // The reply to the keepalive comes at once (the periodic update is 10 s away).
        Mock.step("status update", async (ctx) => {
          const frame = await ctx.next()
          if (frame.message?._tag !== "CopyData") throw new Error(`expected CopyData, got ${frame.type}`)
          replies.push(decodeReplicationClientMessage(frame.message.data, 0, frame.message.data.length))
        }),
        Mock.send({ _tag: "CopyDone" }),
        Mock.expect("CopyDone"),
        Mock.send([
          { _tag: "RowDescription", fields: [field("next_tli", 20), field("next_tli_startpos", 25)] },
          { _tag: "DataRow", values: [bytes("2"), bytes("0/1000028")] },
          { _tag: "CommandComplete", tag: "SELECT 1" },
          { _tag: "CommandComplete", tag: "START_STREAMING" },
          { _tag: "ReadyForQuery", status: "I" }
        ]),
        Mock.expect("Query", (q) => q.sql === "START_REPLICATION PHYSICAL 0/1000028 TIMELINE 2"),
        Mock.send([
          { _tag: "CopyBothResponse", format: 0, columnFormats: [] },
          copyData({ _tag: "XLogData", walStart: 0x1000028n, walEnd: 0x1000040n, serverTime: 3n, data: wal2 })
        ]),
        // Ending: a last status update, then CopyDone.
        Mock.step("final status update", async (ctx) => {
          const frame = await ctx.next()
          if (frame.message?._tag !== "CopyData") throw new Error(`expected CopyData, got ${frame.type}`)
          replies.push(decodeReplicationClientMessage(frame.message.data, 0, frame.message.data.length))
        }),
        Mock.expect("CopyDone"),
        Mock.send([
          { _tag: "CopyDone" },
          { _tag: "CommandComplete", tag: "START_STREAMING" },
          { _tag: "ReadyForQuery", status: "I" }
        ]),
        Mock.hang()
      ])
      const conn = yield* Connection.make({
        host: server.host,
        port: server.port,
        user: "postgres",
        database: "postgres",
        sslMode: "disable",
        replication: "true"
      })
      const switches: Array<unknown> = []
      const replication = yield* physicalReplication(conn, {
        startLsn: Lsn.fromStringUnsafe("0/1000000"),
        timeline: 1,
        onTimelineSwitch: (from, next) => Effect.sync(() => switches.push({ from, ...next }))
      })
      const chunks = yield* collect(replication.pull, (all) => all.some((c) => c.timeline === 2))
      assert.deepStrictEqual(
        chunks.map((c) => [c.timeline, Lsn.format(c.walStart), Array.from(c.data)]),
        [[1, "0/1000000", Array.from(wal1)], [2, "0/1000028", Array.from(wal2)]]
      )
      assert.deepStrictEqual(switches, [{ from: 1, timeline: 2, switchpoint: 0x1000028n }])
      const reply = replies[0] as { _tag: string; writeLsn: bigint; flushLsn: bigint; replyRequested: boolean }
      assert.strictEqual(reply._tag, "StandbyStatusUpdate")
      // Written = received; nothing acknowledged yet, so flush is still the start position.
      assert.strictEqual(reply.writeLsn, 0x1000028n)
      assert.strictEqual(reply.flushLsn, 0x1000000n)
      assert.isFalse(reply.replyRequested)
      const outcome = yield* replication.end
      assert.deepStrictEqual(outcome, { nextTimeline: undefined, commandTag: "START_STREAMING" })
      const last = replies[1] as { _tag: string; writeLsn: bigint; flushLsn: bigint }
      assert.strictEqual(last._tag, "StandbyStatusUpdate")
      assert.strictEqual(last.writeLsn, 0x1000040n)
    }))
})
