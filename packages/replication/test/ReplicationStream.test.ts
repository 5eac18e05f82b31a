import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as Commands from "../src/Commands.ts"
import * as Lsn from "../src/Lsn.ts"
import { type ReplicationMessage, type ReplicationOptions, startReplication, type XLogData } from "../src/ReplicationStream.ts"
import { configFor, eventually, privateServer, uniqueSlot, unixConfig } from "./helpers.ts"

const text = (m: XLogData) => Buffer.from(m.data).toString("utf8")

/** Pulls messages until `until` holds for one of them; returns everything pulled. */
const pullUntil = (
  pull: Effect.Effect<ReadonlyArray<ReplicationMessage>, unknown>,
  until: (m: ReplicationMessage) => boolean
) =>
  Effect.gen(function*() {
    const out: Array<ReplicationMessage> = []
    while (true) {
      const batch = yield* pull
      for (const m of batch) out.push(m._tag === "XLogData" ? { ...m, data: m.data.slice() } : m)
      if (batch.some(until)) return out
    }
  }).pipe(Effect.timeout("30 seconds"))

const slotState = (sql: Connection.ConnectionApi, slot: string) =>
  Effect.map(
    sql.query<{ c: string | null }>("select confirmed_flush_lsn::text as c from pg_replication_slots where slot_name = $1", [slot]),
    (r) => Lsn.fromStringUnsafe(r.rows[0]!.c ?? "0/0")
  )

describe("ReplicationStream: acknowledgements (logical, test_decoding, private PostgreSQL 18)", () => {
  // A private server: on a shared one, other tests' transactions would reach this slot too.
  it.live("reports only acknowledged positions while a transaction is unacknowledged; advances an idle slot on keepalives", () =>
    Effect.gen(function*() {
      const server = yield* privateServer(18)
      const config = configFor(server.info)
      const repl = yield* Connection.make({ ...config, replication: "database" })
      const sql = yield* Connection.make(config)
      const table = `pgfx_ack_${process.pid}`
      yield* sql.simple(`create table if not exists ${table}(id int)`)
      const slot = uniqueSlot("pgfx_ack")
      const created = yield* Commands.createReplicationSlot(repl, slot, Commands.logical("test_decoding"), { snapshot: "nothing" })
      const stream = yield* startReplication(
        repl,
        Commands.startLogicalCommand({ slot, startLsn: created.consistentPoint!, pluginOptions: { "skip-empty-xacts": "1" } }),
        {
          mode: "logical",
          statusInterval: "100 millis",
          idleAfter: (m) => text(m).startsWith("COMMIT")
        }
      )
      // A transaction arrives: BEGIN, the insert, COMMIT (walStart of COMMIT = the transaction's end LSN).
      yield* sql.query(`insert into ${table} values (1)`)
      const first = yield* pullUntil(stream.pull, (m) => m._tag === "XLogData" && text(m).startsWith("COMMIT"))
      const xlog = first.filter((m): m is XLogData => m._tag === "XLogData")
      assert.deepStrictEqual(xlog.map((m) => text(m).split(" ")[0]), ["BEGIN", "table", "COMMIT"])
      const commitEnd = xlog[2]!.walStart as Lsn.Lsn

      // Not acknowledged: WAL that decodes to nothing (skipped empty transactions) brings keepalives,
      // but the slot must not move past the unacknowledged transaction.
      for (let i = 0; i < 5; i++) yield* sql.simple("create temp table if not exists pgfx_tmp(x int); insert into pgfx_tmp values (1)")
      yield* pullUntil(stream.pull, (m) => m._tag === "PrimaryKeepalive" && m.walEnd > commitEnd)
      yield* Effect.sleep("300 millis")
      assert.isTrue((yield* slotState(sql, slot)) < commitEnd, "the slot stayed before the unacknowledged commit")
      assert.strictEqual(stream.positions().confirmed, created.consistentPoint!)

      // Acknowledged: the slot reaches the commit…
      yield* stream.ack(commitEnd)
      assert.isTrue(yield* eventually(Effect.map(slotState(sql, slot), (l) => l >= commitEnd)))
      // …and, now idle, follows the keepalives past it although nothing more was acknowledged.
      for (let i = 0; i < 5; i++) yield* sql.simple("create temp table if not exists pgfx_tmp(x int); insert into pgfx_tmp values (1)")
      yield* pullUntil(stream.pull, (m) => m._tag === "PrimaryKeepalive" && m.walEnd > commitEnd)
      // (The reader may be ahead of what was pulled: the bound is the newest walEnd it has seen.)
      assert.isTrue(yield* eventually(Effect.map(slotState(sql, slot), (l) => l > commitEnd && l <= stream.positions().serverWalEnd)))
      assert.strictEqual(stream.positions().acked, commitEnd)

      const outcome = yield* stream.end
      assert.strictEqual(outcome.nextTimeline, undefined)
      yield* Commands.dropReplicationSlot(repl, slot)
      yield* sql.simple(`drop table ${table}`)
    }), { timeout: 60_000 })
})

/**
 * For the read-batching tests: a private server, a replication connection over TCP or its unix socket, a
 * plain connection, a table `table (id int)` and a test_decoding slot; `start` streams from the slot and
 * `busyWriters` forks `count` one-row transactions from 50 concurrent writers (a busy run of small sends).
 */
const batchingSetup = (table: string, via: "tcp" | "unix") =>
  Effect.gen(function*() {
    const server = yield* privateServer(18)
    const config = configFor(server.info)
    const repl = yield* Connection.make({ ...config, ...(via === "tcp" ? { host: "127.0.0.1", sslMode: "disable" as const } : {}), replication: "database" })
    const sql = yield* Connection.make(config)
    yield* sql.simple(`create table ${table} (id int)`)
    const slot = uniqueSlot(table)
    const created = yield* Commands.createReplicationSlot(repl, slot, Commands.logical("test_decoding"), { snapshot: "nothing" })
    const start = (options: ReplicationOptions) =>
      startReplication(
        repl,
        Commands.startLogicalCommand({ slot, startLsn: created.consistentPoint!, pluginOptions: { "skip-empty-xacts": "1" } }),
        options
      )
    const busyWriters = (first: number, count: number) =>
      Effect.forkChild(
        Effect.forEach(Array.from({ length: count }, (_, i) => first + i), (id) => sql.query(`insert into ${table} values ($1)`, [id]), {
          concurrency: 50,
          discard: true
        })
      )
    return { repl, sql, slot, start, busyWriters }
  })

describe("ReplicationStream: read batching (opt-in)", () => {
  it.live("small reads are batched while streaming: every change arrives, a lone one too, and batching ends with the stream", () =>
    Effect.gen(function*() {
      // Over TCP: read batching leaves unix sockets alone.
      const { busyWriters, repl, slot, sql, start } = yield* batchingSetup("pgfx_batch", "tcp")
      yield* sql.simple("insert into pgfx_batch select generate_series(1, 20000)")
      const transport = repl.internal.wire.transport
      const stream = yield* start({ mode: "logical", readBatching: "10 millis" })
      const isCommit = (m: ReplicationMessage) => m._tag === "XLogData" && text(m).startsWith("COMMIT")
      const all = (yield* pullUntil(stream.pull, isCommit)).filter((m): m is XLogData => m._tag === "XLogData")
      // Every change, in order: BEGIN, 20,000 rows, COMMIT.
      assert.strictEqual(all.length, 20002)
      assert.deepStrictEqual(all.slice(1, -1).map((m) => Number(/id\[integer\]:(\d+)/.exec(text(m))?.[1])), Array.from({ length: 20000 }, (_, i) => i + 1))
      // A busy stream of small sends (3,000 one-row transactions from 50 concurrent writers) is batched:
      // only a small read that follows the previous one within a millisecond starts a pause.
      const writers = yield* busyWriters(100_001, 3000)
      let commits = 0
      const busy: Array<number> = []
      while (commits < 3000) {
        for (const m of yield* Effect.timeout(stream.pull, "30 seconds")) {
          if (m._tag !== "XLogData") continue
          const id = /id\[integer\]:(\d+)/.exec(text(m))?.[1]
          if (id !== undefined) busy.push(Number(id))
          if (text(m).startsWith("COMMIT")) commits++
        }
      }
      yield* Fiber.join(writers)
      assert.deepStrictEqual(busy.sort((a, b) => a - b), Array.from({ length: 3000 }, (_, i) => 100_001 + i))
      assert.isAbove(transport.batchedReads, 0, "the walsender's small sends were batched")
      // A change on its own is not held back: it arrives with the next read, at most one pause later.
      yield* sql.simple("insert into pgfx_batch values (-1)")
      const lone = (yield* pullUntil(stream.pull, isCommit)).filter((m): m is XLogData => m._tag === "XLogData")
      assert.match(text(lone[1]!), /id\[integer\]:-1/)
      yield* stream.end
      // After the stream, replies are handled as on any connection: no more batching.
      const batched = transport.batchedReads
      for (let i = 0; i < 5; i++) yield* Commands.identifySystem(repl)
      assert.strictEqual(transport.batchedReads, batched)
      yield* Commands.dropReplicationSlot(repl, slot)
    }), { timeout: 60_000 })

  it.live("with a slow consumer too: the backpressure pause and the batching pause each hold the socket, every change arrives", () =>
    Effect.gen(function*() {
      const { busyWriters, repl, slot, sql, start } = yield* batchingSetup("pgfx_batch_slow", "tcp")
      // A big transaction (sent as fast as the server can) and then a busy run of small ones.
      yield* sql.simple("insert into pgfx_batch_slow select generate_series(1, 30000)")
      const writers = yield* busyWriters(30_001, 2000)
      const stream = yield* start({ mode: "logical", readBatching: "5 millis", bufferChunks: 1 })
      const ids: Array<number> = []
      let commits = 0
      while (commits < 2001) {
        const batch = yield* Effect.timeout(stream.pull, "10 seconds")
        for (const m of batch) {
          if (m._tag !== "XLogData") continue
          const line = text(m)
          const id = /id\[integer\]:(\d+)/.exec(line)?.[1]
          if (id !== undefined) ids.push(Number(id))
          if (line.startsWith("COMMIT")) commits++
        }
        // Slower than the server: the queue fills and backpressure pauses the socket, batching or not.
        yield* Effect.sleep("2 millis")
      }
      yield* Fiber.join(writers)
      assert.deepStrictEqual(ids.slice(0, 30000), Array.from({ length: 30000 }, (_, i) => i + 1))
      assert.deepStrictEqual(ids.slice(30000).sort((a, b) => a - b), Array.from({ length: 2000 }, (_, i) => 30_001 + i))
      yield* stream.end
      yield* Commands.dropReplicationSlot(repl, slot)
    }), { timeout: 60_000 })

  it.live("is left off on a unix socket (its small buffer would stall the server for the pause)", () =>
    Effect.gen(function*() {
      const { repl, slot, sql, start } = yield* batchingSetup("pgfx_batch_unix", "unix")
      yield* sql.simple("insert into pgfx_batch_unix select generate_series(1, 2000)")
      const stream = yield* start({ mode: "logical", readBatching: "10 millis" })
      const isCommit = (m: ReplicationMessage) => m._tag === "XLogData" && text(m).startsWith("COMMIT")
      const all = (yield* pullUntil(stream.pull, isCommit)).filter((m): m is XLogData => m._tag === "XLogData")
      assert.strictEqual(all.length, 2002)
      assert.strictEqual(repl.internal.wire.transport.endpoint.kind, "unix")
      assert.strictEqual(repl.internal.wire.transport.batchedReads, 0)
      yield* stream.end
      yield* Commands.dropReplicationSlot(repl, slot)
    }), { timeout: 60_000 })
})

describe("ReplicationStream: errors", () => {
  it.live("a refused START_REPLICATION is the server's error, and the connection stays usable (PostgreSQL 18 and 15)", () =>
    Effect.gen(function*() {
      for (const version of [18, 15] as const) {
        const repl = yield* Connection.make(unixConfig(version, { replication: "true" }))
        const exit = yield* Effect.exit(Effect.scoped(
          startReplication(repl, Commands.startPhysicalCommand({ slot: "pgfx_no_such_slot", startLsn: Lsn.fromStringUnsafe("0/1000000") }))
        ))
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
        assert.strictEqual((error as { error: { code: string } } | undefined)?.error.code, "42704")
        assert.strictEqual((yield* Commands.identifySystem(repl)).timeline, 1)
      }
    }))
})

describe("ReplicationStream: hot standby feedback (physical, PostgreSQL 18)", () => {
  it.live("sends the feedback with each periodic update: the walsender holds back that xmin", () =>
    Effect.gen(function*() {
      const repl = yield* Connection.make(unixConfig(18, { replication: "true" }))
      const sql = yield* Connection.make(unixConfig(18))
      const txid = BigInt((yield* sql.query<{ x: string }>("select txid_current()::text as x")).rows[0]!.x)
      const xmin = Number(txid & 0xffff_ffffn)
      const id = yield* Commands.identifySystem(repl)
      let feedbackOn = true
      const stream = yield* startReplication(repl, Commands.startPhysicalCommand({ startLsn: id.xlogPos }), {
        statusInterval: "100 millis",
        hotStandbyFeedback: () =>
          feedbackOn
            ? { xmin, xminEpoch: Number(txid >> 32n), catalogXmin: 0, catalogXminEpoch: 0 }
            : { xmin: 0, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 }
      })
      const backendXmin = sql.query<{ x: string | null }>(
        "select backend_xmin::text as x from pg_stat_replication where pid = $1",
        [repl.info.processId]
      ).pipe(Effect.map((r) => r.rows[0]?.x ?? null))
      assert.isTrue(yield* eventually(Effect.map(backendXmin, (x) => x === String(xmin))), "backend_xmin is the xmin sent")
      // All zeros switches feedback off again.
      feedbackOn = false
      assert.isTrue(yield* eventually(Effect.map(backendXmin, (x) => x === null)), "feedback switched off")
      yield* stream.end
    }))
})

describe("ReplicationStream: keepalives and backpressure (private PostgreSQL 18)", () => {
  it.live("answers keepalives that ask for a reply at once, so wal_sender_timeout is never hit", () =>
    Effect.gen(function*() {
      const server = yield* privateServer(18)
      const config = configFor(server.info)
      // A 1 s timeout: the server asks for a reply after 0.5 s of silence and gives up after 1 s.
      const repl = yield* Connection.make({ ...config, replication: "true", options: "-c wal_sender_timeout=1000" })
      const id = yield* Commands.identifySystem(repl)
      const stream = yield* startReplication(repl, Commands.startPhysicalCommand({ startLsn: id.xlogPos }), {
        statusInterval: 0 // no periodic updates: only the replies keep the session alive
      })
      const seen = yield* pullUntil(stream.pull, (m) => m._tag === "PrimaryKeepalive" && m.replyRequested)
      assert.isTrue(seen.some((m) => m._tag === "PrimaryKeepalive" && m.replyRequested))
      yield* Effect.sleep("3 seconds")
      assert.isTrue(repl.isOpen())
      const sql = yield* Connection.make(config)
      const stat = yield* sql.query<{ n: string }>("select count(*)::text as n from pg_stat_replication where reply_time > now() - interval '1 second'")
      assert.strictEqual(stat.rows[0]!.n, "1")
      yield* stream.end
      assert.strictEqual((yield* Commands.identifySystem(repl)).timeline, 1)
    }), { timeout: 60_000 })

  it.live("a slow consumer pauses the socket: the reader stays within a bounded distance of the consumer", () =>
    Effect.gen(function*() {
      const server = yield* privateServer(18, { wal_keep_size: "1GB" })
      const config = configFor(server.info)
      const sql = yield* Connection.make(config)
      const repl = yield* Connection.make({ ...config, replication: "true" })
      const start = (yield* Commands.identifySystem(repl)).xlogPos
      // About 100 MB of WAL waiting to be streamed.
      yield* sql.simple("create table big(v text); insert into big select repeat(md5(g::text), 30) from generate_series(1, 100000) g")
      const available = (yield* Commands.identifySystem(repl)).xlogPos
      assert.isTrue(Lsn.diff(available, start) > 64n * 1024n * 1024n)
      const stream = yield* startReplication(repl, Commands.startPhysicalCommand({ startLsn: Lsn.segmentFloor(start) }), {
        bufferChunks: 1
      })
      let consumed = Lsn.zero
      let maxLead = 0n
      for (let i = 0; i < 20; i++) {
        const batch = yield* stream.pull
        for (const m of batch) if (m._tag === "XLogData") consumed = Lsn.add(m.walStart as Lsn.Lsn, m.data.length)
        yield* Effect.sleep("50 millis")
        const lead = Lsn.diff(stream.positions().received, consumed)
        if (lead > maxLead) maxLead = lead
      }
      // What was read ahead is bounded by a queued chunk or two, not by the WAL available.
      assert.isTrue(maxLead < 16n * 1024n * 1024n, `read ahead ${maxLead} bytes`)
      assert.isTrue(Lsn.diff(available, consumed) > 32n * 1024n * 1024n, "the consumer is far behind the server")
      const outcome = yield* Effect.exit(stream.end)
      assert.isTrue(Exit.isSuccess(outcome))
      assert.strictEqual((yield* Commands.identifySystem(repl)).timeline, 1)
    }), { timeout: 120_000 })
})
