import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect, Option, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as Commands from "../src/Commands.ts"
import * as Lsn from "../src/Lsn.ts"
import { newestCompleteSegment, walReceiver, type WalReceiverEvent } from "../src/WalReceiver.ts"
import { configFor, privateServer } from "./helpers.ts"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgfx-walrecv-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** Fills and switches `n` WAL segments on the server. */
const switchSegments = (sql: Connection.ConnectionApi, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < n; i++) {
      yield* sql.simple("insert into w select g, md5(g::text) from generate_series(1, 500) g")
      yield* sql.simple("select pg_switch_wal()")
    }
  })

const completed = (events: ReadonlyArray<WalReceiverEvent>) =>
  events.flatMap((e) => (e._tag === "SegmentCompleted" ? [e] : []))

describe("WalReceiver (private PostgreSQL 18)", () => {
  it.live("writes segments byte-identical to the server's, and resumes after the last complete one", () =>
    Effect.gen(function*() {
      // wal_keep_size: the server must still have the segments when the test compares them.
      const server = yield* privateServer(18, { wal_keep_size: "1GB" })
      const config = configFor(server.info)
      const dir = yield* tempDir
      const sql = yield* Connection.make(config)
      yield* sql.simple("create table w(id int, v text)")
      const repl = yield* Connection.make({ ...config, replication: "true" })
      yield* Commands.createReplicationSlot(repl, "pgfx_walrecv", Commands.physical, { reserveWal: true })
      const slotStart = Option.getOrThrow(yield* Commands.readReplicationSlot(repl, "pgfx_walrecv")).restartLsn!

      // First run: three segments switched, received, compared.
      yield* switchSegments(sql, 3)
      const first = yield* walReceiver(repl, { directory: dir, slot: "pgfx_walrecv", statusInterval: "100 millis" }).pipe(
        Stream.takeUntil((e) => e._tag === "SegmentCompleted" && e.segno >= Lsn.segmentNumber(slotStart) + 2n),
        Stream.runCollect
      )
      const started = first[0]!
      assert.deepStrictEqual(started, { _tag: "Started", timeline: 1, startLsn: Lsn.segmentFloor(slotStart), reason: "slot" })
      const segments = completed(first)
      assert.strictEqual(segments.length, 3)
      assert.deepStrictEqual(segments.map((s) => s.segno), [0n, 1n, 2n].map((i) => Lsn.segmentNumber(slotStart) + i))
      for (const s of segments) {
        const mine = Fs.readFileSync(Path.join(dir, s.fileName))
        assert.strictEqual(mine.length, 16 * 1024 * 1024)
        const theirs = (yield* sql.query<{ b: Uint8Array }>("select pg_read_binary_file($1) as b", [`pg_wal/${s.fileName}`])).rows[0]!.b
        assert.isTrue(Buffer.from(theirs).equals(mine), `${s.fileName} differs from the server's`)
        assert.strictEqual(s.end, Lsn.segmentStart(s.segno + 1n))
      }
      // The slot advanced to what was acknowledged (complete segments only).
      const restart = Lsn.fromStringUnsafe(
        (yield* sql.query<{ l: string }>("select restart_lsn::text as l from pg_replication_slots where slot_name = 'pgfx_walrecv'")).rows[0]!.l
      )
      assert.isTrue(restart > slotStart && restart <= segments[2]!.end, Lsn.format(restart))

      // Second run: resumes at the segment after the newest complete one.
      const newest = Option.getOrThrow(newestCompleteSegment(dir))
      assert.strictEqual(newest.segno, segments[2]!.segno)
      yield* switchSegments(sql, 2)
      const second = yield* walReceiver(repl, { directory: dir, slot: "pgfx_walrecv" }).pipe(
        Stream.takeUntil((e) => e._tag === "SegmentCompleted" && e.segno >= newest.segno + 2n),
        Stream.runCollect
      )
      assert.deepStrictEqual(second[0], { _tag: "Started", timeline: 1, startLsn: segments[2]!.end, reason: "resume" })
      const more = completed(second)
      assert.deepStrictEqual(more.map((s) => s.segno), [newest.segno + 1n, newest.segno + 2n])
      for (const s of more) {
        const mine = Fs.readFileSync(Path.join(dir, s.fileName))
        const theirs = (yield* sql.query<{ b: Uint8Array }>("select pg_read_binary_file($1) as b", [`pg_wal/${s.fileName}`])).rows[0]!.b
        assert.isTrue(Buffer.from(theirs).equals(mine), `${s.fileName} differs from the server's`)
      }
      // Complete files have their final names; the segment in progress is the only .partial.
      const names = Fs.readdirSync(dir).sort()
      assert.deepStrictEqual(names.filter((n) => !n.endsWith(".partial")), [...segments, ...more].map((s) => s.fileName).sort())
      assert.isAtMost(names.filter((n) => n.endsWith(".partial")).length, 1)
      // The replication connection is usable after each run.
      assert.strictEqual((yield* Commands.identifySystem(repl)).timeline, 1)
    }), { timeout: 120_000 })

  it.live("follows a timeline switch: the old timeline's last segment stays .partial, the history file is kept", () =>
    Effect.gen(function*() {
      const server = yield* privateServer(18, { wal_keep_size: "1GB" })
      const config = configFor(server.info)
      const dir = yield* tempDir
      // Timeline 1: two complete segments received.
      const firstRun = yield* Effect.scoped(Effect.gen(function*() {
        const sql = yield* Connection.make(config)
        yield* sql.simple("set synchronous_commit = on; create table w(id int, v text)")
        const repl = yield* Connection.make({ ...config, replication: "true" })
        const id = yield* Commands.identifySystem(repl)
        yield* switchSegments(sql, 2)
        const events = yield* walReceiver(repl, { directory: dir, startLsn: id.xlogPos }).pipe(
          Stream.takeUntil((e) => e._tag === "SegmentCompleted" && e.segno >= Lsn.segmentNumber(id.xlogPos) + 1n),
          Stream.runCollect
        )
        // Timeline 1 ends in the middle of the next segment.
        yield* sql.simple("insert into w select g, 'x' from generate_series(1, 100) g")
        return events
      }))
      const tl1 = completed(firstRun)
      assert.strictEqual(tl1.length, 2)
      // Promote: crash-stop, standby.signal, start, pg_promote → timeline 2.
      yield* Effect.promise(() => server.stopImmediate())
      Fs.writeFileSync(Path.join(server.info.dataDir, "standby.signal"), "")
      yield* Effect.promise(() => server.start())
      const sql = yield* Connection.make(config)
      assert.deepStrictEqual((yield* sql.query("select pg_promote(true, 30) as p")).rows, [{ p: true }])
      yield* switchSegments(sql, 2)
      const repl = yield* Connection.make({ ...config, replication: "true" })
      const history = yield* Commands.timelineHistory(repl, 2)
      const switchpoint = history.entries[0]!.switchpoint
      const switchSegno = Lsn.segmentNumber(switchpoint)
      assert.isAbove(Lsn.segmentOffset(switchpoint), 0)

      // Second run resumes on timeline 1 and follows the server onto timeline 2.
      const second = yield* walReceiver(repl, { directory: dir }).pipe(
        Stream.takeUntil((e) => e._tag === "SegmentCompleted" && e.timeline === 2 && e.segno >= switchSegno + 1n),
        Stream.runCollect
      )
      assert.deepStrictEqual(second[0], { _tag: "Started", timeline: 1, startLsn: tl1[1]!.end, reason: "resume" })
      assert.deepStrictEqual(second.filter((e) => e._tag === "TimelineSwitched"), [
        { _tag: "TimelineSwitched", from: 1, timeline: 2, switchpoint }
      ])
      const tl2 = completed(second).filter((e) => e.timeline === 2)
      assert.strictEqual(tl2[0]!.segno, switchSegno)
      for (const s of tl2) {
        const mine = Fs.readFileSync(Path.join(dir, s.fileName))
        const theirs = (yield* sql.query<{ b: Uint8Array }>("select pg_read_binary_file($1) as b", [`pg_wal/${s.fileName}`])).rows[0]!.b
        assert.isTrue(Buffer.from(theirs).equals(mine), `${s.fileName} differs from the server's`)
      }
      // The history file is the server's; timeline 1's last segment is .partial and holds the server's
      // bytes up to the switchpoint.
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "00000002.history"), "utf8"), history.content)
      const partialName = `${Lsn.walFileName(1, switchSegno)}.partial`
      const mine = Fs.readFileSync(Path.join(dir, partialName))
      const upTo = Lsn.segmentOffset(switchpoint)
      assert.strictEqual(mine.length, upTo)
      // (Without archiving the server keeps no copy of its own; the promotion copied these bytes into
      // the first segment of timeline 2.)
      const theirs = (yield* sql.query<{ b: Uint8Array }>(
        "select pg_read_binary_file($1, 0, $2) as b",
        [`pg_wal/${Lsn.walFileName(2, switchSegno)}`, upTo]
      )).rows[0]!.b
      assert.isTrue(Buffer.from(theirs).equals(mine), "the old timeline's partial segment")
      assert.isFalse(Fs.existsSync(Path.join(dir, Lsn.walFileName(1, switchSegno))))
    }), { timeout: 120_000 })
})
