/**
 * B6: logical replication decoding. 200,000 inserts in 4 transactions into a 5-column table (int4,
 * text, float8, timestamptz, bool), streamed from a fresh pgoutput slot and decoded to typed events,
 * with acknowledgements on (each commit is acknowledged as it is consumed).
 *
 * Invariants:
 * - Every round creates its own slots and writes its own rows (untimed): a warm-up slot (200,000
 *   inserts in one transaction, consumed untimed first) and the timed slot, both dropped afterwards.
 *   The timed section is connect + START_REPLICATION + consuming until the 4th commit.
 * - Every contender counts the inserts and sums the `id` column (checked against n(n+1)/2 over the
 *   ids written), so every change is decoded and none is missing; the note shows one row's JS types.
 * - pgfx and pg-logical-replication decode typed values; pgwire's pgoutput decoder and pg_recvlogical
 *   (PostgreSQL 15, pgoutput proto_version 1, output to /dev/null) leave values as text / bytes.
 * - The unix-socket group repeats pgfx and pg-logical-replication over the server's unix socket: the walsender
 *   sends each change with its own send(), which costs the server less there than over TCP loopback.
 * - pgfx runs with its defaults, which over TCP include read batching (on a busy stream, after a small read
 *   the socket stops reading for 10 ms, so the walsender's sends queue up, leave the server as a few large
 *   TCP segments instead of one per change, and arrive many per read); "readBatching off" is the same
 *   stream reading as soon as data arrives, as every other client does.
 * - "pgfx slow consumer" sleeps 1 ms per 100 events (slower than the server): its peak RSS shows that a consumer
 *   slower than the server keeps memory flat (the socket pauses), not its throughput.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import type { BenchContext, Benchmark, Contender, WorkerOutcome } from "../harness.ts"
import { describeRow, skipped, startTimer } from "../harness.ts"
import { pgfxInput } from "../clients.ts"

const CHANGES = 200_000
const TRANSACTIONS = 4
const WARMUP = 200_000
const TABLE = "b6_rows"
const PUBLICATION = "b6_pub"
const PG_RECVLOGICAL = "/usr/lib/postgresql/15/bin/pg_recvlogical"
const EXPECTED_SUM = (CHANGES * (CHANGES + 1)) / 2

interface Round {
  readonly warmSlot: string
  readonly slot: string
  /** pg_current_wal_lsn() after the timed inserts. */
  readonly endLsn: string
}

type Exec = (sql: string) => Promise<ReadonlyArray<Record<string, unknown>>>

/** Creates the slots and writes the rows of one round (untimed), through the contender's own client. */
const prepareRound = async (exec: Exec): Promise<Round> => {
  const tag = `${process.pid}_${Date.now().toString(36)}`
  const warmSlot = `b6_warm_${tag}`
  const slot = `b6_${tag}`
  await exec(`truncate ${TABLE}`)
  await exec(`select pg_create_logical_replication_slot('${warmSlot}', 'pgoutput')`)
  await exec(`insert into ${TABLE} select -g, 'warm ' || g, g * 1.5, now(), g % 2 = 0 from generate_series(1, ${WARMUP}) g`)
  await exec(`select pg_create_logical_replication_slot('${slot}', 'pgoutput')`)
  const per = CHANGES / TRANSACTIONS
  for (let t = 0; t < TRANSACTIONS; t++) {
    await exec(
      `insert into ${TABLE} select g, 'name ' || g, g * 1.5, now(), g % 2 = 0 from generate_series(${t * per + 1}, ${(t + 1) * per}) g`
    )
  }
  const rows = await exec(`select pg_current_wal_lsn()::text as lsn`)
  return { warmSlot, slot, endLsn: String(rows[0]!["lsn"]) }
}

const dropSlots = (exec: Exec, round: Round) =>
  exec(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name in ('${round.warmSlot}', '${round.slot}')`)

/** Counts inserts and sums ids; `done` after the expected number of commits. */
class Tally {
  inserts = 0
  sum = 0
  commits = 0
  first: unknown = undefined
  readonly expectedCommits: number
  constructor(expectedCommits: number) {
    this.expectedCommits = expectedCommits
  }
  insert(row: unknown, id: number): void {
    if (this.first === undefined) this.first = row
    this.inserts++
    this.sum += id
  }
  get done(): boolean {
    return this.commits >= this.expectedCommits
  }
  finish(): string {
    if (this.inserts !== CHANGES || this.sum !== EXPECTED_SUM) throw new Error(`saw ${this.inserts} inserts summing to ${this.sum}`)
    return `row: ${describeRow(this.first)}`
  }
}

/** A /proc/<pid>/stat line's fields after the command name (index 0 is field 3, the state). */
const procStatFields = (path: string): Array<string> => {
  const stat = Fs.readFileSync(path, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
}

/**
 * PGFX_BENCH_MEMORY=1: the CPU the newest walsender process has used so far (user, system, ms), on
 * stderr. Called as the timed stream ends, while its walsender (a process started for this stream) is
 * still alive: whether the server's side of the stream is busy or waiting for the client.
 */
const reportWalsenderCpu = (): void => {
  if (process.env["PGFX_BENCH_MEMORY"] !== "1") return
  let newest: { start: number; user: number; system: number } | undefined
  for (const entry of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (!Fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").startsWith("postgres: walsender")) continue
      const fields = procStatFields(`/proc/${entry}/stat`)
      const start = Number(fields[19])
      if (newest === undefined || start > newest.start) newest = { start, user: Number(fields[11]), system: Number(fields[12]) }
    } catch {
      // the process ended while we looked
    }
  }
  if (newest !== undefined) {
    process.stderr.write(`walsender cpu user ${newest.user * 10} ms, system ${newest.system * 10} ms\n`)
  }
}

// --- pgfx -----------------------------------------------------------------------------------------

const pgfx = (options: { readonly slow?: boolean; readonly binary?: boolean; readonly via?: "tcp" | "unix"; readonly unbatched?: boolean }) =>
async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { Effect, Stream } = await import("effect")
  const Connection = await import("@pgfx/connection/Connection")
  const Logical = await import("@pgfx/replication/Logical")
  const input = pgfxInput(ctx, options.via ?? "tcp")
  return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const admin = yield* Connection.make(input)
    const exec: Exec = (sql) =>
      Effect.runPromise(Effect.map(admin.query<Record<string, unknown>>(sql), (r) => r.rows))
    const round = yield* Effect.promise(() => prepareRound(exec))
    const consume = (slot: string, expectedCommits: number, isWarmup: boolean) =>
      Effect.scoped(Effect.gen(function*() {
        const repl = yield* Logical.make(input, {
          slot,
          publications: [PUBLICATION],
          binary: options.binary === true,
          statusInterval: "1 second",
          ...(options.unbatched === true ? { readBatching: false as const } : {})
        })
        const tally = new Tally(expectedCommits)
        yield* repl.changes.pipe(
          Stream.takeUntil((e) => e._tag === "Commit" && ++tally.commits >= expectedCommits),
          Stream.runForEachArray((events) => {
            let ackAt: bigint | undefined
            for (let i = 0; i < events.length; i++) {
              const e = events[i]!
              if (e._tag === "Insert") {
                const row = e.new as Record<string, unknown>
                tally.insert(row, row["id"] as number)
              } else if (e._tag === "Commit") {
                ackAt = e.endLsn
              }
            }
            if (!isWarmup && tally.done) reportWalsenderCpu()
            const ack = ackAt === undefined ? Effect.void : repl.ack(ackAt as never)
            return options.slow === true && !isWarmup ? Effect.andThen(ack, Effect.sleep(events.length / 100)) : ack
          })
        )
        return tally
      }))
    yield* consume(round.warmSlot, 1, true)
    const stop = startTimer()
    const tally = yield* consume(round.slot, TRANSACTIONS, false)
    const outcome = stop(CHANGES, undefined, tally.finish())
    yield* Effect.promise(() => dropSlots(exec, round))
    return outcome
  })))
}

// --- pg-logical-replication -----------------------------------------------------------------------

const pgLogicalReplication = (via: "tcp" | "unix") => async (ctx: BenchContext): Promise<WorkerOutcome> => {
  const { LogicalReplicationService, PgoutputPlugin } = await import("pg-logical-replication")
  const { default: pg } = await import("pg")
  const config = { host: via === "unix" ? ctx.socketDir : "127.0.0.1", port: ctx.port, user: ctx.user, database: ctx.database }
  const admin = new pg.Client(config)
  await admin.connect()
  const exec: Exec = async (sql) => (await admin.query(sql)).rows
  const round = await prepareRound(exec)
  const consume = async (slot: string, expectedCommits: number): Promise<Tally> => {
    const tally = new Tally(expectedCommits)
    const service = new LogicalReplicationService(config, { acknowledge: { auto: false, timeoutSeconds: 0 } })
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [PUBLICATION] })
    await new Promise<void>((resolve, reject) => {
      service.on("error", reject)
      service.on("data", (lsn: string, log: any) => {
        if (log.tag === "insert") {
          tally.insert(log.new, log.new.id as number)
        } else if (log.tag === "commit") {
          tally.commits++
          void service.acknowledge(lsn)
          if (tally.done) {
            if (expectedCommits > 1) reportWalsenderCpu()
            resolve()
          }
        }
      })
      service.subscribe(plugin, slot).catch(reject)
    })
    await service.stop()
    return tally
  }
  await consume(round.warmSlot, 1)
  const stop = startTimer()
  const tally = await consume(round.slot, TRANSACTIONS)
  const outcome = stop(CHANGES, undefined, tally.finish())
  await dropSlots(exec, round)
  await admin.end()
  return outcome
}

// --- pgwire ---------------------------------------------------------------------------------------

const pgwire = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  let mod: any
  try {
    mod = await import("pgwire" as string)
  } catch {
    return skipped("pgwire is not installed (npm install pgwire@0.8.1 in bench)")
  }
  const url = `postgres://${ctx.user}@127.0.0.1:${ctx.port}/${ctx.database}`
  const admin = await mod.pgconnect(url)
  const exec: Exec = async (sql) => {
    const r = await admin.query(sql)
    return r.rows.map((row: ReadonlyArray<unknown>) => Object.fromEntries(r.columns.map((c: any, i: number) => [c.name, row[i]])))
  }
  const round = await prepareRound(exec)
  const consume = async (slot: string, expectedCommits: number): Promise<Tally> => {
    const tally = new Tally(expectedCommits)
    const pg = mod.pgconnection({ replication: "database" }, url)
    try {
      const stream = pg.logicalReplication({
        slot,
        options: { proto_version: "1", publication_names: PUBLICATION }
      })
      for await (const chunk of stream.pgoutputDecode()) {
        for (const m of chunk.messages) {
          if (m.tag === "insert") tally.insert({ ...m.after }, Number(m.after.id))
          else if (m.tag === "commit") tally.commits++
        }
        stream.ack(chunk.lastLsn)
        if (tally.done) break
      }
    } finally {
      await pg.end()
    }
    return tally
  }
  await consume(round.warmSlot, 1)
  const stop = startTimer()
  const tally = await consume(round.slot, TRANSACTIONS)
  const outcome = stop(CHANGES, undefined, tally.finish())
  await dropSlots(exec, round)
  await admin.end()
  return outcome
}

// --- pg_recvlogical -------------------------------------------------------------------------------

const CLOCK_TICKS_PER_SECOND = 100
const childrenCpuUs = (): number => {
  const fields = procStatFields("/proc/self/stat")
  return ((Number(fields[13]) + Number(fields[14])) * 1e6) / CLOCK_TICKS_PER_SECOND
}

const pgRecvlogical = async (ctx: BenchContext): Promise<WorkerOutcome> => {
  if (!Fs.existsSync(PG_RECVLOGICAL)) return skipped(`${PG_RECVLOGICAL} not found (apt-get install postgresql-client-15)`)
  const { default: pg } = await import("pg")
  const admin = new pg.Client({ host: "127.0.0.1", port: ctx.port, user: ctx.user, database: ctx.database })
  await admin.connect()
  const exec: Exec = async (sql) => (await admin.query(sql)).rows
  const round = await prepareRound(exec)
  const run = (slot: string, endLsn: string) =>
    new Promise<void>((resolve, reject) => {
      const child = ChildProcess.spawn(PG_RECVLOGICAL, [
        "-h", "127.0.0.1", "-p", String(ctx.port), "-U", ctx.user, "-d", ctx.database,
        "--slot", slot, "--start", "--no-loop", "-o", "proto_version=1", "-o", `publication_names=${PUBLICATION}`,
        `--endpos=${endLsn}`, "-f", "/dev/null"
      ], { stdio: ["ignore", "ignore", "pipe"] })
      let stderr = ""
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
      child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`pg_recvlogical exited ${code}: ${stderr}`))))
    })
  const warmEnd = String((await exec(`select pg_current_wal_lsn()::text as lsn`))[0]!["lsn"])
  await run(round.warmSlot, warmEnd)
  const cpu0 = childrenCpuUs()
  const stop = startTimer()
  await run(round.slot, round.endLsn)
  const outcome = stop(CHANGES, undefined, "values as pgoutput bytes, written to /dev/null")
  await dropSlots(exec, round)
  await admin.end()
  if (outcome._tag !== "Sample") return outcome
  return { _tag: "Sample", sample: { ...outcome.sample, cpuUs: childrenCpuUs() - cpu0 } }
}

// --- the benchmark --------------------------------------------------------------------------------

const GROUP = "200,000 inserts in 4 transactions, acknowledged"
const UNIX = "the same over the unix socket (the walsender's send per change is cheaper there)"
const SLOW = "slow consumer (memory)"

const contenders: ReadonlyArray<Contender> = [
  { id: "pgfx", label: "pgfx Logical (text values)", group: GROUP, isPgfx: true, run: pgfx({}) },
  { id: "pgfx-unbatched", label: "pgfx Logical (text values), readBatching off", group: GROUP, isPgfx: true, run: pgfx({ unbatched: true }) },
  { id: "pgfx-binary", label: "pgfx Logical (binary values)", group: GROUP, isPgfx: true, run: pgfx({ binary: true }) },
  { id: "pg-logical-replication", label: "pg-logical-replication 2.5 (auto-ack off)", group: GROUP, run: pgLogicalReplication("tcp") },
  { id: "pgwire", label: "pgwire 0.8 pgoutputDecode (values as text)", group: GROUP, run: pgwire },
  { id: "pg_recvlogical", label: "pg_recvlogical 15 → /dev/null (no decoding)", group: GROUP, subprocess: true, run: pgRecvlogical },
  { id: "pgfx-unix", label: "pgfx Logical (text values), unix socket", group: UNIX, isPgfx: true, run: pgfx({ via: "unix" }) },
  { id: "pgfx-binary-unix", label: "pgfx Logical (binary values), unix socket", group: UNIX, isPgfx: true, run: pgfx({ binary: true, via: "unix" }) },
  { id: "pg-logical-replication-unix", label: "pg-logical-replication 2.5 (auto-ack off), unix socket", group: UNIX, run: pgLogicalReplication("unix") },
  { id: "pgfx-slow", label: "pgfx, consumer sleeping 1 ms per 100 events", group: SLOW, isPgfx: true, run: pgfx({ slow: true }) }
]

export const benchmark: Benchmark = {
  name: "B6",
  title: "Logical replication: 200,000 inserts decoded to typed events from a fresh pgoutput slot",
  unit: "change",
  unitPlural: "changes",
  defaultRounds: 3,
  needsServer: true,
  contenders,
  prepare: async (ctx) => {
    const { default: pg } = await import("pg")
    const client = new pg.Client({ host: "127.0.0.1", port: ctx.port, user: ctx.user, database: ctx.database })
    await client.connect()
    await client.query(`create table if not exists ${TABLE} (id int4 primary key, name text, amount float8, at timestamptz, ok bool)`)
    await client.query(`drop publication if exists ${PUBLICATION}`)
    await client.query(`create publication ${PUBLICATION} for table ${TABLE}`)
    await client.end()
  },
  goals: [
    {
      _tag: "Ratio",
      label: "pgfx vs the best Node peer",
      pgfx: "pgfx",
      peers: ["pg-logical-replication", "pgwire"],
      atLeast: 1.4
    },
    {
      _tag: "Ratio",
      label: "pgfx vs the best Node peer, changes per client CPU-second",
      pgfx: "pgfx",
      peers: ["pg-logical-replication", "pgwire"],
      atLeast: 1.4,
      metric: "cpu"
    },
    {
      _tag: "Ratio",
      label: "unix socket: pgfx vs pg-logical-replication (the same goal, both over the unix socket)",
      pgfx: "pgfx-unix",
      peers: ["pg-logical-replication-unix"],
      atLeast: 1.4
    },
    { _tag: "Cpu", label: "pgfx ≥ 650k changes per client CPU-second", contender: "pgfx", maxUsPerOp: 1e6 / 650_000 },
    { _tag: "Rss", label: "pgfx peak RSS", contender: "pgfx", maxMB: 100 },
    { _tag: "Rss", label: "pgfx slow consumer peak RSS", contender: "pgfx-slow", maxMB: 100 }
  ]
}
