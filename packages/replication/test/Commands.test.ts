import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as Commands from "../src/Commands.ts"
import * as Lsn from "../src/Lsn.ts"
import { uniqueSlot, unixConfig } from "./helpers.ts"

const replication = (version: 15 | 18, mode: "true" | "database") => Connection.make(unixConfig(version, { replication: mode }))

const failureCode = <A, E>(exit: Exit.Exit<A, E>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const e = exit.cause.reasons.find((r) => r._tag === "Fail") as { error: { _tag: string; code?: string } } | undefined
  return e?.error._tag === "PgServerError" ? e.error.code : e?.error._tag
}

describe("Commands: quoting", () => {
  it("quotes identifiers and literals, doubling quotes, refusing NUL", () => {
    assert.strictEqual(Commands.quoteIdentifier("slot"), '"slot"')
    assert.strictEqual(Commands.quoteIdentifier('a"b'), '"a""b"')
    assert.strictEqual(Commands.quoteLiteral("it's"), "'it''s'")
    assert.strictEqual(Commands.quoteLiteral("back\\slash"), "'back\\slash'")
    assert.throws(() => Commands.quoteIdentifier("a\u0000b"))
    assert.throws(() => Commands.quoteLiteral("a\u0000b"))
  })

  it("writes only the options that are set", () => {
    assert.strictEqual(Commands.createSlotCommand("s", Commands.physical), 'CREATE_REPLICATION_SLOT "s" PHYSICAL')
    assert.strictEqual(
      Commands.createSlotCommand("s", Commands.physical, { temporary: true, reserveWal: true }),
      'CREATE_REPLICATION_SLOT "s" TEMPORARY PHYSICAL (RESERVE_WAL true)'
    )
    assert.strictEqual(
      Commands.createSlotCommand("s", Commands.logical("pgoutput"), { snapshot: "nothing", twoPhase: true, failover: false }),
      `CREATE_REPLICATION_SLOT "s" LOGICAL "pgoutput" (SNAPSHOT 'nothing', TWO_PHASE true, FAILOVER false)`
    )
    assert.strictEqual(Commands.alterSlotCommand("s", { failover: true }), 'ALTER_REPLICATION_SLOT "s" (FAILOVER true)')
    assert.throws(() => Commands.alterSlotCommand("s", {}))
    assert.strictEqual(Commands.dropSlotCommand("s", { wait: true }), 'DROP_REPLICATION_SLOT "s" WAIT')
    assert.strictEqual(
      Commands.startPhysicalCommand({ slot: "s", startLsn: Lsn.fromStringUnsafe("0/3000000"), timeline: 2 }),
      'START_REPLICATION SLOT "s" PHYSICAL 0/3000000 TIMELINE 2'
    )
    assert.strictEqual(
      Commands.startLogicalCommand({ slot: "s", startLsn: Lsn.zero, pluginOptions: { proto_version: "4", publication_names: "p'1" } }),
      `START_REPLICATION SLOT "s" LOGICAL 0/0 ("proto_version" '4', "publication_names" 'p''1')`
    )
  })

  it("parses timeline history files", () => {
    const content = "1\t0/3000060\tno recovery target specified\n\n# comment\n2\t0/5000000\tbefore 2024-01-01\n3\t1/A0\n"
    assert.deepStrictEqual(Commands.parseTimelineHistory(content), [
      { timeline: 1, switchpoint: Lsn.fromStringUnsafe("0/3000060"), reason: "no recovery target specified" },
      { timeline: 2, switchpoint: Lsn.fromStringUnsafe("0/5000000"), reason: "before 2024-01-01" },
      { timeline: 3, switchpoint: Lsn.fromStringUnsafe("1/A0"), reason: "" }
    ])
    assert.throws(() => Commands.parseTimelineHistory("x\t0/0\n"))
  })

  it("parses memory sizes as SHOW prints them", () => {
    assert.strictEqual(Commands.parseByteSize("16MB"), 16 * 1024 * 1024)
    assert.strictEqual(Commands.parseByteSize("8kB"), 8192)
    assert.strictEqual(Commands.parseByteSize("1GB"), 1024 ** 3)
    assert.strictEqual(Commands.parseByteSize("on"), undefined)
  })
})

describe("Commands against PostgreSQL", () => {
  for (const version of [18, 15] as const) {
    it.live(`IDENTIFY_SYSTEM and SHOW on PostgreSQL ${version} (physical and database mode)`, () =>
      Effect.gen(function*() {
        const physical = yield* replication(version, "true")
        const id = yield* Commands.identifySystem(physical)
        assert.match(id.systemId, /^\d+$/)
        assert.strictEqual(id.timeline, 1)
        assert.isTrue(Lsn.isValid(id.xlogPos))
        assert.strictEqual(id.dbName, undefined)
        assert.strictEqual(yield* Commands.walSegmentSize(physical), 16 * 1024 * 1024)
        assert.strictEqual(yield* Commands.show(physical, "wal_level"), "logical")

        const database = yield* replication(version, "database")
        const id2 = yield* Commands.identifySystem(database)
        assert.strictEqual(id2.systemId, id.systemId)
        assert.strictEqual(id2.dbName, "postgres")
        assert.isTrue(id2.xlogPos >= id.xlogPos)
        // The system identifier is the one the SQL function reports.
        const sql = yield* Connection.make(unixConfig(version))
        const r = yield* sql.query<{ id: string }>("select system_identifier::text as id from pg_control_system()")
        assert.strictEqual(r.rows[0]!.id, id.systemId)
      }))

    it.live(`physical slots on PostgreSQL ${version}: create, read, drop`, () =>
      Effect.gen(function*() {
        const conn = yield* replication(version, "true")
        const name = uniqueSlot("pgfx_phys")
        const created = yield* Commands.createReplicationSlot(conn, name, Commands.physical, { reserveWal: true })
        assert.strictEqual(created.slotName, name)
        assert.strictEqual(created.consistentPoint, undefined) // the server sends 0/0 for physical slots
        assert.strictEqual(created.snapshotName, undefined)
        assert.strictEqual(created.outputPlugin, undefined)
        const info = yield* Commands.readReplicationSlot(conn, name)
        assert.isTrue(Option.isSome(info))
        const slot = Option.getOrThrow(info)
        assert.strictEqual(slot.slotType, "physical")
        assert.strictEqual(slot.restartTimeline, 1)
        const now = yield* Commands.identifySystem(conn)
        assert.isTrue(slot.restartLsn !== undefined && Lsn.isValid(slot.restartLsn) && slot.restartLsn <= now.xlogPos)
        yield* Commands.dropReplicationSlot(conn, name)
        assert.isTrue(Option.isNone(yield* Commands.readReplicationSlot(conn, name)))
        // Not reserving WAL: READ_REPLICATION_SLOT has no restart_lsn yet.
        yield* Commands.createReplicationSlot(conn, name, Commands.physical, { temporary: true })
        const lazyInfo = Option.getOrThrow(yield* Commands.readReplicationSlot(conn, name))
        assert.strictEqual(lazyInfo.restartLsn, undefined)
        const dropMissing = yield* Effect.exit(Commands.dropReplicationSlot(conn, `${name}_missing`))
        assert.strictEqual(failureCode(dropMissing), "42704")
      }))

    it.live(`logical slots on PostgreSQL ${version}: snapshot modes, temporary, errors`, () =>
      Effect.gen(function*() {
        const conn = yield* replication(version, "database")
        const name = uniqueSlot("pgfx_log")
        const exported = yield* Commands.createReplicationSlot(conn, name, Commands.logical("test_decoding"), {
          temporary: true,
          snapshot: "export"
        })
        assert.strictEqual(exported.outputPlugin, "test_decoding")
        assert.isTrue(exported.consistentPoint !== undefined && Lsn.isValid(exported.consistentPoint))
        assert.match(exported.snapshotName ?? "", /^[0-9A-F]+-[0-9A-F]+-\d+$/)
        const name2 = uniqueSlot("pgfx_log")
        const nothing = yield* Commands.createReplicationSlot(conn, name2, Commands.logical("pgoutput"), { snapshot: "nothing" })
        assert.strictEqual(nothing.snapshotName, undefined)
        assert.strictEqual(nothing.outputPlugin, "pgoutput")
        const sql = yield* Connection.make(unixConfig(version))
        const rows = yield* sql.query<{ slot_type: string; temporary: boolean; plugin: string }>(
          "select slot_type, temporary, plugin from pg_replication_slots where slot_name = $1",
          [name2]
        )
        assert.deepStrictEqual(rows.rows, [{ slot_type: "logical", temporary: false, plugin: "pgoutput" }])
        // A duplicate name is the server's error, as is.
        const dup = yield* Effect.exit(Commands.createReplicationSlot(conn, name2, Commands.logical("pgoutput"), { snapshot: "nothing" }))
        assert.strictEqual(failureCode(dup), "42710")
        if (version === 18) {
          yield* Commands.alterReplicationSlot(conn, name2, { failover: true, twoPhase: true })
          const after = yield* sql.query<{ failover: boolean; two_phase: boolean }>(
            "select failover, two_phase from pg_replication_slots where slot_name = $1",
            [name2]
          )
          assert.deepStrictEqual(after.rows, [{ failover: true, two_phase: true }])
        }
        yield* Commands.dropReplicationSlot(conn, name2, { wait: true })
        const gone = yield* sql.query("select 1 from pg_replication_slots where slot_name = $1", [name2])
        assert.strictEqual(gone.rows.length, 0)
      }))
  }

  it.live("TIMELINE_HISTORY for a timeline without history is the server's error", () =>
    Effect.gen(function*() {
      const conn = yield* replication(18, "true")
      const exit = yield* Effect.exit(Commands.timelineHistory(conn, 1))
      assert.strictEqual(failureCode(exit), "58P01")
      const bad = yield* Effect.exit(Commands.timelineHistory(conn, 0))
      assert.strictEqual(failureCode(bad), "InvalidRequestError")
    }))
})
