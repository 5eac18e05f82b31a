/**
 * The main job (`npm start`, i.e. `pgfx` without a subcommand): an embedded PostgreSQL 18, a demo
 * schema, a writer at a steady rate, and a live pgfx pipeline — an initial COPY snapshot handed over to
 * a logical-replication CDC stream that feeds a running aggregate — shown as a live view.
 *
 * Invariants:
 * - Exactly-once aggregate over at-least-once delivery: a transaction's changes are folded into the
 *   aggregate only at its Commit, and the slot is acknowledged only up to the last folded commit; the
 *   saved state (aggregate + acknowledged LSN) is therefore always consistent with the slot.
 * - Snapshot handoff without gaps or doubles: the slot is created with an exported snapshot, the initial
 *   COPY runs inside that snapshot, and streaming starts at the slot's consistent point.
 * - A run with a kept slot and a saved state resumes from them (no new snapshot); otherwise it takes a
 *   new snapshot (the data directory `.pgfx/data` is kept between runs unless `--fresh`).
 * - Ending: `--duration` stops the writer, waits until the stream has passed a marker written after the
 *   writer's last commit, and checks the aggregate against the database (a mismatch is exit 1).
 *   Ctrl-C ends at once. Either way the finalizers save the state, drop the slot (unless `--keep-slot`)
 *   and stop the server, and the exit code is 0.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Command, Flag } from "effect/cli"
import * as Connection from "@pgfx/connection/Connection"
import { copyTo } from "@pgfx/connection/Copy"
import { TextParser } from "@pgfx/connection/CopyFormat"
import type { PgConfigInput } from "@pgfx/connection/PgConfig"
import type * as Event from "@pgfx/replication/ChangeEvent"
import * as Commands from "@pgfx/replication/Commands"
import * as Logical from "@pgfx/replication/Logical"
import * as Lsn from "@pgfx/replication/Lsn"
import { startTestServer, type TestServer } from "@pgfx/testing/TestServer"
import { parseDurationMs } from "./Duration.ts"
import { CliFailure, UsageError } from "./Errors.ts"
import { formatBytes, formatDuration, sparkline } from "./Progress.ts"
import { markStopIsClean } from "./Shutdown.ts"

const REPO = Path.resolve(import.meta.dirname, "../../..")
const SLOT = "pgfx_demo"
const PUBLICATION = "pgfx_demo"
const MARKER_PREFIX = "pgfx-demo-end"
const STATUSES = ["new", "paid", "shipped", "delivered", "cancelled"] as const

// --- the aggregate ------------------------------------------------------------------------------------

/** numeric(12,2) text → cents, exactly. */
export const toCents = (text: string): bigint => {
  const negative = text.startsWith("-")
  const [whole = "0", frac = ""] = (negative ? text.slice(1) : text).split(".")
  const cents = BigInt(whole) * 100n + BigInt((frac + "00").slice(0, 2))
  return negative ? -cents : cents
}

export const formatCents = (cents: bigint): string => {
  const negative = cents < 0n
  const abs = negative ? -cents : cents
  const whole = (abs / 100n).toLocaleString("en-US")
  return `${negative ? "-" : ""}${whole}.${String(abs % 100n).padStart(2, "0")}`
}

interface OrderRow {
  readonly customer: number
  readonly status: string
  readonly cents: bigint
}

class Aggregate {
  readonly revenue = new Map<number, bigint>()
  readonly statusCounts = new Map<string, number>()
  readonly names = new Map<number, string>()

  add(o: OrderRow, sign: 1 | -1): void {
    this.revenue.set(o.customer, (this.revenue.get(o.customer) ?? 0n) + (sign === 1 ? o.cents : -o.cents))
    this.statusCounts.set(o.status, (this.statusCounts.get(o.status) ?? 0) + sign)
  }

  toJSON() {
    return {
      revenue: [...this.revenue].map(([k, v]) => [k, v.toString()]),
      statusCounts: [...this.statusCounts],
      names: [...this.names]
    }
  }

  static fromJSON(j: ReturnType<Aggregate["toJSON"]>): Aggregate {
    const a = new Aggregate()
    for (const [k, v] of j.revenue) a.revenue.set(Number(k), BigInt(v))
    for (const [k, v] of j.statusCounts) a.statusCounts.set(k, v)
    for (const [k, v] of j.names) a.names.set(Number(k), v)
    return a
  }
}

const orderOf = (row: Event.Row | undefined): OrderRow | undefined => {
  if (row === undefined || Array.isArray(row)) return undefined
  const total = row["total"]
  if (typeof total !== "string") return undefined
  return { customer: Number(row["customer_id"]), status: String(row["status"]), cents: toCents(total) }
}

// --- saved state --------------------------------------------------------------------------------------

interface SavedState {
  readonly slot: string
  readonly slotKept: boolean
  readonly acked: string
  readonly transactions: number
  readonly changes: number
  readonly aggregate: ReturnType<Aggregate["toJSON"]>
  readonly savedAt: string
}

const loadState = (file: string): SavedState | undefined => {
  try {
    return JSON.parse(Fs.readFileSync(file, "utf8")) as SavedState
  } catch {
    return undefined
  }
}

const saveState = (file: string, state: SavedState): void => {
  Fs.mkdirSync(Path.dirname(file), { recursive: true })
  Fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + "\n")
  Fs.renameSync(`${file}.tmp`, file)
}

// --- the embedded server ------------------------------------------------------------------------------

/**
 * Starts (or reuses the data of) the embedded PostgreSQL 18 in the current scope. TestServer's own
 * SIGINT/SIGTERM hooks stop servers at once; the main job needs its server until its finalizers have
 * dropped the slot, so those hooks are removed here (its exit hook still stops a forgotten server).
 */
const embeddedServer = (dataDir: string, fresh: boolean, log: (s: string) => void): Effect.Effect<TestServer, CliFailure, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        if (fresh) Fs.rmSync(dataDir, { recursive: true, force: true })
        const reused = Fs.existsSync(Path.join(dataDir, "PG_VERSION"))
        log(`${reused ? "starting" : "initialising"} PostgreSQL 18 in ${Path.relative(process.cwd(), dataDir) || dataDir} …`)
        const before = { SIGINT: process.listeners("SIGINT"), SIGTERM: process.listeners("SIGTERM") }
        const server = await startTestServer({ version: 18, dataDir, keep: true })
        for (const signal of ["SIGINT", "SIGTERM"] as const) {
          for (const l of process.listeners(signal)) if (!before[signal].includes(l)) process.removeListener(signal, l)
        }
        return server
      },
      catch: (e) => new CliFailure({ message: `cannot start the embedded PostgreSQL: ${e instanceof Error ? e.message : String(e)}`, cause: e })
    }),
    (server) =>
      Effect.promise(() => server.stop()).pipe(
        Effect.tap(() => Effect.sync(() => log("server stopped"))),
        Effect.ignore
      )
  )

const SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.customers (
  id serial PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  tier text NOT NULL DEFAULT 'standard',
  tags text[] NOT NULL DEFAULT '{}',
  credit numeric(12,2) NOT NULL DEFAULT 0,
  profile jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS demo.orders (
  id bigserial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES demo.customers (id),
  status text NOT NULL,
  total numeric(12,2) NOT NULL,
  items jsonb NOT NULL,
  tags text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE demo.orders REPLICA IDENTITY FULL;
INSERT INTO demo.customers (name, email, tier, tags, credit, profile)
  SELECT (ARRAY['Ada','Grace','Edsger','Barbara','Donald','Leslie','Frances','Ken','Radia','John'])[1 + i % 10] || ' ' || i,
         'customer' || i || '@example.com',
         (ARRAY['standard','gold','platinum'])[1 + i % 3],
         ARRAY['since-' || (2015 + i % 10)],
         (i * 13.37)::numeric(12,2),
         jsonb_build_object('newsletter', i % 2 = 0, 'region', (ARRAY['eu','us','apac'])[1 + i % 3])
  FROM generate_series(1, 40) i
  WHERE NOT EXISTS (SELECT FROM demo.customers);
INSERT INTO demo.orders (customer_id, status, total, items, tags)
  SELECT 1 + i % 40, (ARRAY['new','paid','shipped','delivered','cancelled'])[1 + i % 5],
         (5 + (i * 7.31) % 500)::numeric(12,2),
         jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (i % 97), 'qty', 1 + i % 4)),
         ARRAY['seed']
  FROM generate_series(1, 400) i
  WHERE NOT EXISTS (SELECT FROM demo.orders);
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = '${PUBLICATION}') THEN
    CREATE PUBLICATION ${PUBLICATION} FOR TABLE demo.customers, demo.orders;
  END IF;
END $$;
`

// --- the writer ---------------------------------------------------------------------------------------

const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(Math.random() * xs.length)]!

/** One random transaction of 1–3 statements, sent as one pipelined segment (BEGIN … COMMIT). */
const writerTransaction = (conn: Connection.ConnectionApi, maxOrderId: () => bigint, setMax: (id: bigint) => void) =>
  Effect.gen(function*() {
    const statements: Array<Connection.PipelineStatement> = [{ sql: "BEGIN" }]
    const n = 1 + Math.floor(Math.random() * 3)
    for (let i = 0; i < n; i++) {
      const r = Math.random()
      const randomOrder = () => String(1n + BigInt(Math.floor(Math.random() * Number(maxOrderId()))))
      if (r < 0.5) {
        statements.push({
          sql: "INSERT INTO demo.orders (customer_id, status, total, items, tags) VALUES ($1::int, 'new', $2::text::numeric, $3::text::jsonb, string_to_array($4::text, ',')) RETURNING id",
          params: [
            String(1 + Math.floor(Math.random() * 40)),
            (5 + Math.random() * 495).toFixed(2),
            JSON.stringify([{ sku: `SKU-${Math.floor(Math.random() * 97)}`, qty: 1 + Math.floor(Math.random() * 4) }]),
            pick(["web", "mobile", "store"]) + "," + pick(["promo", "regular"])
          ]
        })
      } else if (r < 0.8) {
        statements.push({
          sql: "UPDATE demo.orders SET status = $1::text, total = round(total * $2::text::numeric, 2), updated_at = now() WHERE id = $3::text::bigint",
          params: [pick(STATUSES), pick(["1.00", "1.00", "0.90", "1.05"]), randomOrder()]
        })
      } else if (r < 0.9) {
        statements.push({ sql: "DELETE FROM demo.orders WHERE id = $1::text::bigint", params: [randomOrder()] })
      } else {
        statements.push({
          sql: "UPDATE demo.customers SET credit = credit + $1::text::numeric, tags = tags[1:3] || $2::text, profile = profile || jsonb_build_object('seen', now()) WHERE id = $3::int",
          params: [(Math.random() * 20).toFixed(2), pick(["vip", "churn-risk", "new-card"]), String(1 + Math.floor(Math.random() * 40))]
        })
      }
    }
    statements.push({ sql: "COMMIT" })
    const [outcomes] = yield* conn.pipeline([statements])
    for (const o of outcomes ?? []) {
      if (o._tag === "Success" && o.result.command === "INSERT") {
        const id = (o.result.rows[0] as { id?: unknown } | undefined)?.id
        if (typeof id === "bigint" && id > maxOrderId()) setMax(id)
      }
    }
  })

// --- the live view ------------------------------------------------------------------------------------

interface Stats {
  readonly started: number
  transactions: number
  changes: number
  rowsCopied: number
  ackedLsn: Lsn.Lsn
  confirmedLsn: Lsn.Lsn
  currentWal: Lsn.Lsn
  lagMs: number
  rates: Array<number>
  txRate: number
  lastChanges: number
  lastTransactions: number
  reconnects: number
}

/** Bytes of WAL the server has written that the consumer has not confirmed. */
const lagBytesOf = (stats: Stats): number => {
  const done = stats.confirmedLsn > stats.ackedLsn ? stats.confirmedLsn : stats.ackedLsn
  return stats.currentWal > done ? Number(stats.currentWal - done) : 0
}

const renderView = (stats: Stats, agg: Aggregate, header: string): Array<string> => {
  const lagBytes = lagBytesOf(stats)
  const rate = stats.rates[stats.rates.length - 1] ?? 0
  const top = [...agg.revenue].sort((a, b) => (b[1] > a[1] ? 1 : b[1] < a[1] ? -1 : 0)).slice(0, 3)
  return [
    `${header}   uptime ${formatDuration(Date.now() - stats.started)}`,
    `changes/s ${String(rate).padStart(6)}  ${sparkline(stats.rates.slice(-30)).padEnd(30)}  changes ${stats.changes.toLocaleString("en-US")}`,
    `transactions ${stats.transactions.toLocaleString("en-US")} (${stats.txRate}/s)   rows copied ${stats.rowsCopied.toLocaleString("en-US")}   reconnects ${stats.reconnects}`,
    `lag ${formatBytes(lagBytes)} / ${stats.lagMs} ms   acked ${Lsn.format(stats.ackedLsn)}   server ${Lsn.format(stats.currentWal)}`,
    `orders  ${STATUSES.map((s) => `${s} ${agg.statusCounts.get(s) ?? 0}`).join("  ")}`,
    `top revenue  ${top.map(([id, cents]) => `${agg.names.get(id) ?? `#${id}`} ${formatCents(cents)}`).join(" · ")}`
  ]
}

// --- the command --------------------------------------------------------------------------------------

export interface MainOptions {
  readonly durationMs: number | undefined
  readonly rate: number
  readonly fresh: boolean
  readonly keepSlot: boolean
  readonly dataDir: string
  readonly plain: boolean
}

export const runMainJob = (options: MainOptions) =>
  Effect.gen(function*() {
    markStopIsClean()
    const interactive = !options.plain && process.stdout.isTTY === true
    const say = (s: string) => process.stdout.write(`${s}\n`)
    const stateFile = Path.join(Path.dirname(options.dataDir), "state.json")
    const snapshotDir = Path.join(Path.dirname(options.dataDir), "snapshot")
    if (options.fresh) Fs.rmSync(stateFile, { force: true })

    const server = yield* embeddedServer(options.dataDir, options.fresh, say)
    const base: PgConfigInput = {
      host: server.info.socketDir,
      port: server.info.port,
      user: server.info.superuser,
      database: server.info.database,
      applicationName: "pgfx-demo",
      sslMode: "disable"
    }
    const admin = yield* Connection.make(base)
    yield* admin.simple(SCHEMA_SQL)
    say(`PostgreSQL ${admin.info.serverVersion} ready on port ${server.info.port} (socket ${server.info.socketDir}); demo schema in place`)

    const saved = loadState(stateFile)
    const slotRows = yield* admin.query<{ confirmed: string | null }>(
      "SELECT confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1",
      [SLOT]
    )
    let agg: Aggregate
    let startLsn: Lsn.Lsn
    let header: string
    const stats: Stats = {
      started: Date.now(), transactions: 0, changes: 0, rowsCopied: 0, ackedLsn: Lsn.zero, confirmedLsn: Lsn.zero, currentWal: Lsn.zero,
      lagMs: 0, rates: [], txRate: 0, lastChanges: 0, lastTransactions: 0, reconnects: 0
    }
    if (slotRows.rows.length > 0 && saved !== undefined && saved.slot === SLOT && saved.slotKept) {
      agg = Aggregate.fromJSON(saved.aggregate)
      startLsn = Lsn.fromStringUnsafe(saved.acked)
      stats.transactions = saved.transactions
      stats.changes = saved.changes
      header = `resumed slot ${SLOT} at ${saved.acked}`
      say(`resuming: slot ${SLOT} kept by the last run, acknowledged position ${saved.acked} (saved ${saved.savedAt})`)
    } else {
      if (slotRows.rows.length > 0) yield* admin.query("SELECT pg_drop_replication_slot($1)", [SLOT])
      agg = new Aggregate()
      const created = yield* snapshotHandoff(base, agg, stats, snapshotDir)
      startLsn = created
      header = `snapshot + CDC from ${Lsn.format(created)}`
      say(`snapshot: ${stats.rowsCopied} rows copied with COPY in the slot's exported snapshot (files in ${Path.relative(process.cwd(), snapshotDir) || snapshotDir}); streaming from ${Lsn.format(created)}`)
    }
    stats.ackedLsn = startLsn

    // Finalizers run in reverse: the consumer stops first, then the state is saved, then the slot dropped.
    yield* Effect.addFinalizer(() =>
      options.keepSlot
        ? Effect.sync(() => say(`slot ${SLOT} kept (--keep-slot): the next run resumes from ${Lsn.format(stats.ackedLsn)}`))
        : dropSlot(admin).pipe(
          Effect.tap(() => Effect.sync(() => say(`slot ${SLOT} dropped`))),
          Effect.catch((e) => Effect.sync(() => say(`could not drop slot ${SLOT}: ${e.message}`)))
        )
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        saveState(stateFile, {
          slot: SLOT,
          slotKept: options.keepSlot,
          acked: Lsn.format(stats.ackedLsn),
          transactions: stats.transactions,
          changes: stats.changes,
          aggregate: agg.toJSON(),
          savedAt: new Date().toISOString()
        })
        say(`acknowledged position ${Lsn.format(stats.ackedLsn)} saved to ${Path.relative(process.cwd(), stateFile) || stateFile}`)
      })
    )

    // The CDC consumer.
    const repl = yield* Logical.make(base, {
      slot: SLOT,
      publications: [PUBLICATION],
      startLsn,
      messages: true,
      statusInterval: Duration.seconds(1)
    })
    let markerSeen: string | undefined
    let pending: Array<[OrderRow, 1 | -1]> = []
    let pendingNames: Array<[number, string]> = []
    let pendingChanges = 0
    const consume = repl.changes.pipe(
      Stream.runForEachArray((events) =>
        Effect.suspend(() => {
          let commit: Lsn.Lsn | undefined
          for (const e of events) {
            switch (e._tag) {
              case "Insert":
              case "Update":
              case "Delete": {
                pendingChanges++
                if (e.relation.qualifiedName === "demo.orders") {
                  const before = e._tag === "Insert" ? undefined : orderOf(e.old)
                  const after = e._tag === "Delete" ? undefined : orderOf(e.new)
                  if (before !== undefined) pending.push([before, -1])
                  if (after !== undefined) pending.push([after, 1])
                } else if (e.relation.qualifiedName === "demo.customers" && e._tag !== "Delete") {
                  const row = e.new as Record<string, unknown>
                  pendingNames.push([Number(row["id"]), String(row["name"])])
                }
                break
              }
              case "Message":
                if (e.prefix === MARKER_PREFIX) markerSeen = new TextDecoder().decode(e.content)
                break
              case "Commit": {
                for (const [o, sign] of pending) agg.add(o, sign)
                for (const [id, name] of pendingNames) agg.names.set(id, name)
                stats.changes += pendingChanges
                stats.transactions++
                stats.lagMs = Math.max(0, Date.now() - e.commitTime.getTime())
                pending = []
                pendingNames = []
                pendingChanges = 0
                commit = e.endLsn
                break
              }
              default:
                break
            }
          }
          if (commit === undefined) return Effect.void
          stats.ackedLsn = commit
          return repl.ack(commit)
        })
      )
    )
    const consumer = yield* Effect.forkScoped(consume)

    // The writer.
    const writerConn = yield* Connection.make({ ...base, applicationName: "pgfx-demo-writer" })
    const maxRow = yield* writerConn.query<{ max: bigint | null }>("SELECT max(id) AS max FROM demo.orders")
    let maxOrderId = maxRow.rows[0]?.max ?? 1n
    const interval = Math.max(1, Math.round(1000 / options.rate))
    const writer = yield* Effect.forkScoped(
      writerTransaction(writerConn, () => maxOrderId, (id) => {
        maxOrderId = id
      }).pipe(Effect.andThen(Effect.sleep(Duration.millis(interval))), Effect.forever)
    )

    // The view.
    const sample = Effect.gen(function*() {
      const wal = yield* admin.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")
      stats.currentWal = Lsn.fromStringUnsafe(wal.rows[0]!.lsn)
      stats.rates.push(stats.changes - stats.lastChanges)
      if (stats.rates.length > 60) stats.rates.shift()
      stats.txRate = stats.transactions - stats.lastTransactions
      stats.lastChanges = stats.changes
      stats.lastTransactions = stats.transactions
      const positions = repl.positions()
      stats.reconnects = positions.reconnects
      // An idle stream's keepalives confirm past the last commit: lag is measured from what is confirmed.
      if (positions.confirmed > stats.confirmedLsn) stats.confirmedLsn = positions.confirmed
    })
    let drawnLines = 0
    const draw = Effect.sync(() => {
      const lines = renderView(stats, agg, `pgfx · PostgreSQL ${admin.info.serverVersion} · ${header}`)
      if (interactive) {
        const up = drawnLines > 0 ? `\x1b[${drawnLines}A` : ""
        process.stdout.write(up + lines.map((l) => `\x1b[2K${l}`).join("\n") + "\n\x1b[2KCtrl-C to stop\n")
        drawnLines = lines.length + 1
      } else {
        const lagBytes = lagBytesOf(stats)
        say(
          `[${formatDuration(Date.now() - stats.started)}] changes/s=${stats.rates[stats.rates.length - 1] ?? 0} tx/s=${stats.txRate} ` +
            `transactions=${stats.transactions} changes=${stats.changes} lag=${lagBytes}B/${stats.lagMs}ms ` +
            `acked=${Lsn.format(stats.ackedLsn)} copied=${stats.rowsCopied}`
        )
      }
    })
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.andThen(Effect.sleep("1 second"), Effect.ignore(sample)), draw)))

    // Run until --duration (or Ctrl-C, which interrupts this fiber: finalizers do the rest).
    const ended = yield* Effect.raceFirst(
      options.durationMs === undefined ? Effect.never : Effect.as(Effect.sleep(Duration.millis(options.durationMs)), "duration" as const),
      Effect.as(Fiber.join(consumer), "consumer" as const)
    )
    if (ended === "consumer") return yield* Effect.fail(new CliFailure({ message: "the CDC stream ended unexpectedly" }))

    // Graceful end: stop the writer, wait for the stream to pass a marker written after its last commit.
    yield* Fiber.interrupt(writer)
    const token = String(Date.now())
    yield* admin.query("SELECT pg_logical_emit_message(true, $1, $2)", [MARKER_PREFIX, token])
    const caughtUp = yield* Effect.gen(function*() {
      while (markerSeen !== token) yield* Effect.sleep("20 millis")
    }).pipe(Effect.timeoutOption("20 seconds"))
    yield* Effect.ignore(sample)
    yield* draw
    if (Option.isNone(caughtUp)) return yield* Effect.fail(new CliFailure({ message: "the CDC stream did not catch up within 20 s" }))
    yield* verify(admin, agg, say)
  })

/** Creates the slot with an exported snapshot and COPYs the tables inside it; returns the consistent point. */
const snapshotHandoff = (base: PgConfigInput, agg: Aggregate, stats: Stats, snapshotDir: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const replication = yield* Connection.make({ ...base, replication: "database" })
      const created = yield* Commands.createReplicationSlot(replication, SLOT, Commands.logical("pgoutput"), { snapshot: "export" })
      if (created.snapshotName === undefined || created.consistentPoint === undefined) {
        return yield* Effect.fail(new CliFailure({ message: "the server exported no snapshot for the new slot" }))
      }
      const snap = yield* Connection.make(base)
      yield* snap.simple(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '${created.snapshotName}'`)
      Fs.mkdirSync(snapshotDir, { recursive: true })
      const copyTable = (table: string, columns: string, onRow: (row: Array<string | null>) => void) =>
        Effect.gen(function*() {
          const fd = Fs.openSync(Path.join(snapshotDir, `${table}.tsv`), "w")
          const parser = new TextParser()
          yield* copyTo(snap, `COPY (SELECT ${columns} FROM demo.${table} ORDER BY id) TO STDOUT`).pipe(
            Stream.runForEachArray((payloads) =>
              Effect.sync(() => {
                for (const p of payloads) {
                  Fs.writeSync(fd, p)
                  for (const row of parser.push(p)) onRow(row)
                }
                stats.rowsCopied += payloads.length
              })
            ),
            Effect.ensuring(Effect.sync(() => Fs.closeSync(fd)))
          )
        })
      yield* copyTable("customers", "id, name, email, tier, tags, credit, profile, created_at", (row) => {
        agg.names.set(Number(row[0]), row[1] ?? "")
      })
      yield* copyTable("orders", "id, customer_id, status, total, items, tags, created_at, updated_at", (row) => {
        agg.add({ customer: Number(row[1]), status: row[2] ?? "", cents: toCents(row[3] ?? "0") }, 1)
      })
      yield* snap.simple("COMMIT")
      return created.consistentPoint
    })
  )

/** The slot may still be active for a moment while its walsender exits: retry briefly. */
const dropSlot = (admin: Connection.ConnectionApi) =>
  admin.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [SLOT]).pipe(
    Effect.retry({ times: 50, while: (e) => e._tag === "PgServerError" && e.code === "55006", schedule: Schedule.spaced("100 millis") }),
    Effect.asVoid
  )

/** Compares the aggregate with the database; a difference is a failure. */
const verify = (admin: Connection.ConnectionApi, agg: Aggregate, say: (s: string) => void) =>
  Effect.gen(function*() {
    const byCustomer = yield* admin.query<{ customer_id: number; total: string }>(
      "SELECT customer_id, sum(total)::text AS total FROM demo.orders GROUP BY 1"
    )
    const byStatus = yield* admin.query<{ status: string; n: bigint }>("SELECT status, count(*) AS n FROM demo.orders GROUP BY 1")
    const problems: Array<string> = []
    const dbRevenue = new Map(byCustomer.rows.map((r) => [r.customer_id, toCents(r.total)]))
    for (const id of new Set([...dbRevenue.keys(), ...agg.revenue.keys()])) {
      const a = agg.revenue.get(id) ?? 0n
      const d = dbRevenue.get(id) ?? 0n
      if (a !== d) problems.push(`customer ${id}: cdc ${formatCents(a)} vs database ${formatCents(d)}`)
    }
    const dbStatus = new Map(byStatus.rows.map((r) => [r.status, Number(r.n)]))
    for (const s of new Set([...dbStatus.keys(), ...agg.statusCounts.keys()])) {
      const a = agg.statusCounts.get(s) ?? 0
      const d = dbStatus.get(s) ?? 0
      if (a !== d) problems.push(`status ${s}: cdc ${a} vs database ${d}`)
    }
    if (problems.length > 0) {
      return yield* Effect.fail(new CliFailure({ message: `the CDC aggregate differs from the database: ${problems.slice(0, 5).join("; ")}` }))
    }
    const orders = [...dbStatus.values()].reduce((a, b) => a + b, 0)
    say(`verified: the CDC aggregate matches the database (${orders} orders, ${dbRevenue.size} customers with orders)`)
  })

export const command = Command.make(
  "pgfx",
  {
    duration: Flag.String("duration").pipe(
      Flag.withDescription("run this long, then stop cleanly and verify (e.g. 30s, 2m); default: until Ctrl-C"),
      Flag.optional
    ),
    rate: Flag.Int("rate").pipe(Flag.withDescription("writer transactions per second (default 20)"), Flag.withDefault(20)),
    fresh: Flag.Boolean("fresh").pipe(Flag.withDescription("start from an empty data directory and no saved state"), Flag.withDefault(false)),
    keepSlot: Flag.Boolean("keep-slot").pipe(Flag.withDescription("keep the replication slot at exit, so the next run resumes"), Flag.withDefault(false)),
    dataDir: Flag.String("data-dir").pipe(Flag.withDescription("the embedded server's data directory (default .pgfx/data)"), Flag.optional),
    plain: Flag.Boolean("plain").pipe(Flag.withDescription("plain line output even on a terminal"), Flag.withDefault(false))
  },
  (args) =>
    Effect.gen(function*() {
      let durationMs: number | undefined
      if (Option.isSome(args.duration)) {
        durationMs = parseDurationMs(args.duration.value)
        if (durationMs === undefined) return yield* Effect.fail(new UsageError({ message: `--duration: cannot read "${args.duration.value}" (try 30s, 2m)` }))
      }
      if (args.rate < 1) return yield* Effect.fail(new UsageError({ message: "--rate must be at least 1" }))
      const dataDir = Option.isSome(args.dataDir) ? Path.resolve(args.dataDir.value) : Path.join(REPO, ".pgfx", "data")
      return yield* Effect.scoped(
        runMainJob({ durationMs, rate: args.rate, fresh: args.fresh, keepSlot: args.keepSlot, dataDir, plain: args.plain })
      )
    })
).pipe(
  Command.withDescription(
    "pgfx — the PostgreSQL protocol as an Effect toolkit. Without a command: the main job, a live COPY snapshot + logical replication pipeline on an embedded PostgreSQL 18."
  ),
  Command.withExamples([
    { command: "npm start", description: "the main job until Ctrl-C" },
    { command: "npm start -- --duration 30s --keep-slot", description: "30 seconds, keep the slot; the next run resumes" },
    { command: "pgfx copy --help", description: "help for a command" }
  ])
)
