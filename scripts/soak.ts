/**
 * Soak test (not part of `npm test`): N minutes (default 30, `--minutes`) of mixed traffic through the
 * fault proxy against a private PostgreSQL 18 while random faults hit the connections: pipelined
 * queries on a pool, acknowledged INSERTs, COPY FROM STDIN, LISTEN/NOTIFY and a logical replication
 * stream that reconnects.
 *
 * At the end it prints and checks:
 * - zero lost acknowledged changes: every INSERT and COPY the client saw succeed is in the table, and
 *   every acknowledged INSERT reached the replication stream;
 * - zero wrong answers: every successful query returned what it asked for;
 * - zero leaks: after everything is closed, the proxy has no open connection and the process has no
 *   more sockets or timers than before the run (process.getActiveResourcesInfo());
 * - memory flat: retained heap (after a full GC) and RSS sampled every 10 s, first minute vs the end.
 *
 * The fault proxy and its random fault loop run in a worker thread: the proxy keeps every connection
 * it ever accepted (a test tool's bookkeeping), and in its own isolate that does not count against the
 * client's heap, which is what "memory flat" is about.
 *
 * The faults are cut (one connection or all), stall then resume, delay, rechunk and drip. Byte
 * corruption is left out: PostgreSQL's protocol has no checksums, so a flipped data byte is a wrong
 * value, not a detectable fault (Faults.test.ts checks corrupted framing deterministically).
 *
 * Usage: node scripts/soak.ts [--minutes 30] [--seed 1]
 */
import * as Fs from "node:fs"
import * as V8 from "node:v8"
import * as Vm from "node:vm"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Connection from "../packages/connection/src/Connection.ts"
import { copyFrom } from "../packages/connection/src/Copy.ts"
import type { PgConfigInput } from "../packages/connection/src/PgConfig.ts"
import * as Pool from "../packages/connection/src/Pool.ts"
import type * as Event from "../packages/replication/src/ChangeEvent.ts"
import * as Logical from "../packages/replication/src/Logical.ts"
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads"
import { startFaultProxy } from "../testing/src/FaultProxy.ts"
import { startTestServer } from "../testing/src/TestServer.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : fallback
}
const MINUTES = arg("minutes", 30)
let seed = arg("seed", 1) >>> 0 || 1
const random = (): number => {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  return (seed >>> 0) / 0x100000000
}
const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(random() * xs.length)]!

V8.setFlagsFromString("--expose-gc")
const gc = Vm.runInNewContext("gc") as () => void
const retainedHeapMb = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed / 1048576
}
const rssMb = (): number => process.memoryUsage().rss / 1048576
/** Off-heap memory: external (incl. Buffers' backing stores) and V8's committed heap, to tell RSS growth apart. */
const nativeMemory = (): string => {
  const m = process.memoryUsage()
  return `(external ${(m.external / 1048576).toFixed(0)} MB, buffers ${(m.arrayBuffers / 1048576).toFixed(0)} MB, heap committed ${(m.heapTotal / 1048576).toFixed(0)} MB)`
}
const resources = (): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1
  return counts
}

/**
 * `--snapshots`: heap snapshots after the first minute and at the end, summarised by constructor
 * (count and retained-by-self bytes), printing what grew most: the place to look when memory is not flat.
 */
const SNAPSHOTS = process.argv.includes("--snapshots")
const summariseSnapshot = (): Map<string, { count: number; bytes: number }> => {
  gc()
  const file = V8.writeHeapSnapshot()
  const snap = JSON.parse(Fs.readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: Array<string>; node_types: [Array<string>] } }
    nodes: Array<number>
    strings: Array<string>
  }
  Fs.unlinkSync(file)
  const fields = snap.snapshot.meta.node_fields
  const stride = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const types = snap.snapshot.meta.node_types[0]
  const out = new Map<string, { count: number; bytes: number }>()
  for (let i = 0; i < snap.nodes.length; i += stride) {
    const type = types[snap.nodes[i + typeAt]!]!
    const name = `${type}:${type === "object" || type === "closure" ? snap.strings[snap.nodes[i + nameAt]!] : ""}`
    const e = out.get(name) ?? { count: 0, bytes: 0 }
    e.count++
    e.bytes += snap.nodes[i + sizeAt]!
    out.set(name, e)
  }
  return out
}
let firstSnapshot: Map<string, { count: number; bytes: number }> | undefined

/** A set of non-negative integer ids as a growable bitmap. */
class IdSet {
  private bits = new Uint8Array(1 << 16)
  size = 0
  add(id: number): void {
    const byte = id >>> 3
    if (byte >= this.bits.length) {
      let n = this.bits.length
      while (n <= byte) n *= 2
      const next = new Uint8Array(n)
      next.set(this.bits)
      this.bits = next
    }
    const mask = 1 << (id & 7)
    if ((this.bits[byte]! & mask) === 0) {
      this.bits[byte]! |= mask
      this.size++
    }
  }
  has(id: number): boolean {
    const byte = id >>> 3
    return byte < this.bits.length && (this.bits[byte]! & (1 << (id & 7))) !== 0
  }
  ids(): Array<number> {
    const out: Array<number> = []
    for (let byte = 0; byte < this.bits.length; byte++) {
      const b = this.bits[byte]!
      if (b !== 0) for (let k = 0; k < 8; k++) if ((b & (1 << k)) !== 0) out.push(byte * 8 + k)
    }
    return out
  }
}

const log = (line: string) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`)

const uncaught: Array<unknown> = []
process.on("uncaughtException", (e) => uncaught.push(e))
process.on("unhandledRejection", (e) => uncaught.push(e))

const counters = {
  queriesOk: 0,
  queriesFailed: 0,
  wrongAnswers: 0,
  insertsAcked: 0,
  insertsFailed: 0,
  copiesAcked: 0,
  copiesFailed: 0,
  notificationsSent: 0,
  notificationsReceived: 0,
  listenReconnects: 0,
  untypedErrors: 0
}
const TYPED = new Set(["ConnectionError", "ProtocolError", "TimeoutError", "PgServerError", "AuthenticationError"])
const classify = <A, E>(exit: Exit.Exit<A, E>): "ok" | "typed" | "untyped" => {
  if (Exit.isSuccess(exit)) return "ok"
  const fail = exit.cause.reasons.find((r) => r._tag === "Fail")
  const tag = fail !== undefined && fail._tag === "Fail" ? (fail.error as { _tag?: string })._tag : undefined
  if (tag !== undefined && TYPED.has(tag)) return "typed"
  if (exit.cause.reasons.every((r) => r._tag === "Interrupt")) return "typed"
  console.error("untyped failure:", exit.cause)
  return "untyped"
}

// --- the proxy worker ------------------------------------------------------------------------------

type ProxyRequest = { readonly id: number; readonly type: "stopFaults" | "stats" | "close" }
interface ProxyStats {
  readonly faults: number
  readonly openConnections: number
  readonly totalConnections: number
  /** The proxy worker's own V8 heap (its isolate is not in the main thread's memoryUsage, only in RSS). */
  readonly heapUsedMb: number
  readonly heapCommittedMb: number
}

/** Runs in the worker: the proxy, and random faults until told to stop. */
const proxyWorker = async (): Promise<void> => {
  const { targetPort, faultSeed } = workerData as { targetPort: number; faultSeed: number }
  seed = faultSeed >>> 0 || 1
  const proxy = await startFaultProxy({ host: "127.0.0.1", port: targetPort })
  let faults = 0
  let faulting = true
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
  const loop = async () => {
    while (faulting) {
      await sleep(1000 + Math.floor(random() * 3000))
      if (!faulting) break
      const open = proxy.connections.filter((c) => c.isOpen)
      const one = open.length > 0 ? pick(open) : undefined
      const kind = pick(["cut-one", "cut-one", "cut-all", "stall", "delay", "rechunk", "drip"] as const)
      faults++
      switch (kind) {
        case "cut-one":
          one?.cut({ afterBytes: Math.floor(random() * 20000), direction: pick(["toClient", "toServer"] as const), reset: random() < 0.5 })
          break
        case "cut-all":
          proxy.cut()
          break
        case "stall":
          one?.stall()
          await sleep(100 + Math.floor(random() * 700))
          one?.resume()
          break
        case "delay":
          proxy.delay(20 + Math.floor(random() * 80))
          await sleep(1000)
          proxy.delay(0)
          break
        case "rechunk":
          proxy.rechunk({ maxChunk: 1 + Math.floor(random() * 64), seed: Math.floor(random() * 1e9) })
          await sleep(2000)
          proxy.reset()
          break
        case "drip":
          one?.dripBytes(1)
          await sleep(300)
          one?.dripBytes(0)
          break
      }
    }
    proxy.reset()
  }
  const looping = loop()
  const stats = (): ProxyStats => {
    const heap = V8.getHeapStatistics()
    return {
      faults,
      openConnections: proxy.openConnections,
      totalConnections: proxy.totalConnections,
      heapUsedMb: heap.used_heap_size / 1048576,
      heapCommittedMb: heap.total_heap_size / 1048576
    }
  }
  parentPort!.on("message", async (req: ProxyRequest) => {
    if (req.type === "stopFaults") {
      faulting = false
      await looping
    } else if (req.type === "close") {
      faulting = false
      await looping
      await proxy.close()
    }
    parentPort!.postMessage({ id: req.id, stats: stats() })
    if (req.type === "close") parentPort!.close()
  })
  parentPort!.postMessage({ id: 0, port: proxy.port, stats: stats() })
}

/** The main thread's handle on the proxy worker. */
const startProxyWorker = async (targetPort: number, faultSeed: number) => {
  const worker = new Worker(new URL(import.meta.url), { workerData: { targetPort, faultSeed } })
  const waiting = new Map<number, (stats: ProxyStats) => void>()
  let nextId = 1
  let lastStats: ProxyStats = { faults: 0, openConnections: 0, totalConnections: 0, heapUsedMb: 0, heapCommittedMb: 0 }
  const port = await new Promise<number>((resolve, reject) => {
    worker.once("error", reject)
    worker.on("message", (m: { id: number; port?: number; stats: ProxyStats }) => {
      lastStats = m.stats
      if (m.id === 0) resolve(m.port!)
      waiting.get(m.id)?.(m.stats)
      waiting.delete(m.id)
    })
  })
  const ask = (type: ProxyRequest["type"]) =>
    new Promise<ProxyStats>((resolve) => {
      const id = nextId++
      waiting.set(id, resolve)
      worker.postMessage({ id, type } satisfies ProxyRequest)
    })
  return {
    port,
    ask,
    /** The last stats the worker reported (refreshed by every answer). */
    stats: () => lastStats,
    terminate: async () => {
      await ask("close")
      await worker.terminate()
    }
  }
}

// --- the client side ------------------------------------------------------------------------------

const main = async () => {
  // process.stdout/stderr are created on first use; when they are pipes (`soak | tee`) they are PipeWraps,
  // which must be in the baseline, not counted as leaks.
  void process.stdout
  void process.stderr
  const baselineResources = resources()
  log(`starting a private PostgreSQL 18 (${MINUTES} min run)`)
  const server = await startTestServer({ version: 18 })
  const proxy = await startProxyWorker(server.info.port, seed * 7919)
  const direct: PgConfigInput = { host: server.info.socketDir, port: server.info.port, user: server.info.superuser, database: server.info.database }
  const viaProxy: PgConfigInput = {
    host: "127.0.0.1",
    port: proxy.port,
    user: server.info.superuser,
    database: server.info.database,
    sslMode: "disable",
    connectTimeout: 5
  }
  // Insert ids are small sequential integers: bitmaps keep the bookkeeping at ~1 bit per id, so the heap
  // the soak measures is pgfx's, not its own lists.
  const acked = new IdSet()
  const copyBatches = new Map<number, number>()
  const replicated = new IdSet()
  const heapSamples: Array<number> = []
  const rssSamples: Array<number> = []
  const deadline = Date.now() + MINUTES * 60_000
  const running = () => Date.now() < deadline

  const program = Effect.scoped(
    Effect.gen(function*() {
      const admin = yield* Connection.make(direct)
      yield* admin.simple(`
        create table soak_events(id int primary key, payload text);
        create table soak_copy(batch int, n int);
        create publication soak_pub for table soak_events;`)
      yield* admin.simple("select pg_create_logical_replication_slot('soak_slot', 'pgoutput')")

      // --- pipelined queries on a pool
      const pool = yield* Pool.make(viaProxy, { max: 4, pingAfterIdle: "100 millis", acquireTimeout: "10 seconds" })
      const queries = Effect.gen(function*() {
        while (running()) {
          const exits = yield* Effect.forEach(
            Array.from({ length: 40 }, () => Math.floor(random() * 1e6)),
            (v) => Effect.exit(pool.query<{ v: number; s: string }>("select $1::int as v, repeat('q', $1::int % 300) as s", [v], { timeout: "5 seconds" }).pipe(
              Effect.map((r) => {
                const row = r.rows[0]
                if (row === undefined || row.v !== v || row.s.length !== v % 300) counters.wrongAnswers++
              })
            )),
            { concurrency: "unbounded" }
          )
          for (const e of exits) {
            const c = classify(e)
            if (c === "ok") counters.queriesOk++
            else counters.queriesFailed++
            if (c === "untyped") counters.untypedErrors++
          }
        }
      })

      // --- acknowledged inserts (a fresh connection after each failure)
      let nextId = 1
      const inserts = Effect.gen(function*() {
        while (running()) {
          const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
            const conn = yield* Connection.make(viaProxy)
            while (running() && conn.isOpen()) {
              const id = nextId++
              const r = yield* Effect.exit(conn.query("insert into soak_events values ($1, $2)", [id, `event ${id}`], { timeout: "5 seconds" }))
              const c = classify(r)
              if (c === "ok") {
                acked.add(id)
                counters.insertsAcked++
              } else {
                counters.insertsFailed++
                if (c === "untyped") counters.untypedErrors++
                return
              }
              if (id % 20 === 0) yield* Effect.sleep("5 millis")
            }
          })))
          if (classify(exit) === "untyped") counters.untypedErrors++
          yield* Effect.sleep("20 millis")
        }
      })

      // --- COPY FROM STDIN batches
      let batch = 0
      const copies = Effect.gen(function*() {
        while (running()) {
          const b = ++batch
          const n = 500 + Math.floor(random() * 5000)
          const exit = yield* Effect.exit(Effect.scoped(Effect.flatMap(Connection.make(viaProxy), (conn) =>
            Stream.run(
              Stream.range(1, n).pipe(Stream.map((i) => `${b}\t${i}\n`), Stream.rechunk(256)),
              copyFrom(conn, "copy soak_copy from stdin")
            ))).pipe(Effect.timeout("20 seconds")))
          if (Exit.isSuccess(exit)) {
            copyBatches.set(b, exit.value)
            counters.copiesAcked++
          } else {
            counters.copiesFailed++
            if (classify(exit) === "untyped" && !String(exit.cause).includes("TimeoutError")) counters.untypedErrors++
          }
          yield* Effect.sleep("50 millis")
        }
      })

      // --- LISTEN through the proxy, NOTIFY directly
      const listen = Effect.gen(function*() {
        while (running()) {
          yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
            const conn = yield* Connection.make(viaProxy)
            const remove = conn.internal.addNotificationListener(() => {
              counters.notificationsReceived++
            })
            yield* Effect.addFinalizer(() => Effect.sync(remove))
            yield* conn.simple("listen soak")
            while (running() && conn.isOpen()) yield* Effect.sleep("100 millis")
          })))
          counters.listenReconnects++
          yield* Effect.sleep("50 millis")
        }
      })
      const notify = Effect.gen(function*() {
        while (running()) {
          yield* admin.simple("notify soak, 'ping'")
          counters.notificationsSent++
          yield* Effect.sleep("50 millis")
        }
      })

      // --- logical replication through the proxy, reconnecting
      const repl = yield* Logical.make(viaProxy, {
        slot: "soak_slot",
        publications: ["soak_pub"],
        mode: "transaction",
        statusInterval: "1 second",
        reconnect: { initialDelay: "50 millis", maxDelay: "1 second", maxAttempts: 1000 }
      })
      const replication = yield* Effect.forkScoped(
        repl.changes.pipe(
          Stream.filter((e): e is Event.Transaction => e._tag === "Transaction"),
          Stream.tap((t) => Effect.sync(() => {
            for (const c of t.changes) if (c._tag === "Insert") replicated.add((c.new as { id: number }).id)
          })),
          repl.acknowledge,
          Stream.runDrain
        )
      )

      const sampler = Effect.gen(function*() {
        while (running()) {
          yield* Effect.sleep("10 seconds")
          yield* Effect.promise(() => proxy.ask("stats"))
          heapSamples.push(retainedHeapMb())
          if (SNAPSHOTS && heapSamples.length === 6) firstSnapshot = summariseSnapshot()
          rssSamples.push(rssMb())
          log(
            `heap ${heapSamples.at(-1)!.toFixed(1)} MB rss ${rssSamples.at(-1)!.toFixed(0)} MB ${nativeMemory()} | queries ${counters.queriesOk}/${counters.queriesFailed} inserts ${counters.insertsAcked} copies ${counters.copiesAcked}/${counters.copiesFailed} notifications ${counters.notificationsReceived}/${counters.notificationsSent} replicated ${replicated.size} faults ${proxy.stats().faults} proxy open ${proxy.stats().openConnections} (proxy worker heap ${proxy.stats().heapUsedMb.toFixed(0)}/${proxy.stats().heapCommittedMb.toFixed(0)} MB)`
          )
        }
      })

      yield* Effect.all([queries, inserts, copies, listen, notify, sampler], { concurrency: "unbounded", discard: true })
      yield* Effect.promise(() => proxy.ask("stopFaults"))
      if (SNAPSHOTS && firstSnapshot !== undefined) {
        const last = summariseSnapshot()
        const growth = [...last].map(([k, v]) => {
          const f = firstSnapshot!.get(k) ?? { count: 0, bytes: 0 }
          return { what: k, count: v.count - f.count, kb: Math.round((v.bytes - f.bytes) / 1024) }
        }).sort((a, b) => b.kb - a.kb).slice(0, 25)
        console.table(growth)
      }
      log("traffic stopped; waiting for replication to catch up")
      const catchUp = Date.now() + 60_000
      while (Date.now() < catchUp && acked.ids().some((id) => !replicated.has(id))) yield* Effect.sleep("200 millis")
      yield* Fiber.interrupt(replication)

      const stored = new Set((yield* admin.query<{ id: number }>("select id from soak_events")).rows.map((r) => r.id))
      const lostInserts = acked.ids().filter((id) => !stored.has(id))
      const notReplicated = acked.ids().filter((id) => !replicated.has(id))
      const copyCounts = new Map(
        (yield* admin.query<{ batch: number; n: bigint }>("select batch, count(*) as n from soak_copy group by batch")).rows.map((r) => [r.batch, Number(r.n)])
      )
      const lostCopies = [...copyBatches].filter(([b, n]) => copyCounts.get(b) !== n)
      yield* Effect.ignore(admin.simple("select pg_drop_replication_slot('soak_slot')"))
      return { lostInserts, notReplicated, lostCopies, positions: repl.positions() }
    })
  )
  let result: Effect.Success<typeof program>
  let proxyAtEnd: ProxyStats
  try {
    result = await Effect.runPromise(program)
  } finally {
    // Every client is closed now: the proxy must see every connection closed.
    await new Promise((r) => setTimeout(r, 500))
    proxyAtEnd = await proxy.ask("stats")
    await proxy.terminate()
    await server.stop()
  }
  // Handles close asynchronously (a socket the server just closed, a child's pipes): a leak is what is
  // still open after 5 s.
  const leakedNow = () => Object.entries(resources()).filter(([k, n]) => n > (baselineResources[k] ?? 0))
  for (let waited = 0; waited < 5000 && leakedNow().length > 0; waited += 100) await new Promise((r) => setTimeout(r, 100))
  const leaked = leakedNow()
  if (leaked.length > 0) {
    // What the leaked handles are (sockets: their addresses and state), to find who opened them.
    const handles = (process as unknown as { _getActiveHandles(): Array<any> })._getActiveHandles()
    for (const h of handles) {
      const kind = h?._handle?.constructor?.name ?? h?.constructor?.name
      if (kind === "Pipe" || kind === "TCP" || kind === "Socket") {
        log(`open handle: ${kind} ${JSON.stringify({ path: h._pipeName ?? h.path, remote: h.remoteAddress, remotePort: h.remotePort, fd: h._handle?.fd, destroyed: h.destroyed, readable: h.readable, writable: h.writable, connecting: h.connecting, pending: h.pending, stdio: h === process.stdout || h === process.stderr || h === process.stdin })}`)
      }
    }
  }
  const firstMinute = heapSamples.slice(0, 6)
  const lastMinute = heapSamples.slice(-6)
  const avg = (xs: ReadonlyArray<number>) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length)
  const heapGrowth = avg(lastMinute) - avg(firstMinute)
  const report = {
    minutes: MINUTES,
    ...counters,
    replicatedInserts: replicated.size,
    replicationReconnects: result.positions.reconnects,
    lostAcknowledgedInserts: result.lostInserts.length,
    acknowledgedInsertsNotReplicated: result.notReplicated.length,
    lostAcknowledgedCopies: result.lostCopies.length,
    faults: proxyAtEnd.faults,
    proxyConnectionsTotal: proxyAtEnd.totalConnections,
    proxyConnectionsOpenAtEnd: proxyAtEnd.openConnections,
    leakedResources: Object.fromEntries(leaked),
    // The soak's own bookkeeping: bitmaps of insert ids (1 bit each) and one map entry per COPY batch.
    bookkeepingEntries: acked.size + replicated.size + copyBatches.size,
    heapMbFirstMinute: Number(avg(firstMinute).toFixed(1)),
    heapMbLastMinute: Number(avg(lastMinute).toFixed(1)),
    rssMbMin: Math.round(Math.min(...rssSamples)),
    rssMbMax: Math.round(Math.max(...rssSamples)),
    rssMbLast: Math.round(rssSamples.at(-1) ?? NaN),
    uncaughtExceptions: uncaught.length
  }
  console.log(JSON.stringify(report, null, 2))
  const failures: Array<string> = []
  if (result.lostInserts.length > 0) failures.push(`lost acknowledged inserts: ${result.lostInserts.slice(0, 10).join(", ")}`)
  if (result.notReplicated.length > 0) failures.push(`acknowledged inserts never replicated: ${result.notReplicated.slice(0, 10).join(", ")}`)
  if (result.lostCopies.length > 0) failures.push(`acknowledged COPY batches incomplete: ${JSON.stringify(result.lostCopies.slice(0, 5))}`)
  if (counters.wrongAnswers > 0) failures.push(`${counters.wrongAnswers} wrong answers`)
  if (counters.untypedErrors > 0) failures.push(`${counters.untypedErrors} untyped errors`)
  if (proxyAtEnd.openConnections > 0) failures.push(`${proxyAtEnd.openConnections} proxy connections still open`)
  if (leaked.length > 0) failures.push(`leaked resources: ${JSON.stringify(Object.fromEntries(leaked))}`)
  if (uncaught.length > 0) failures.push(`uncaught: ${uncaught.map(String).join("; ")}`)
  if (heapSamples.length >= 12 && heapGrowth > 32) failures.push(`retained heap grew ${heapGrowth.toFixed(1)} MB`)
  if (failures.length > 0) {
    console.error(`SOAK FAILED:\n- ${failures.join("\n- ")}`)
    process.exit(1)
  }
  log("SOAK PASSED: zero lost acknowledged changes, zero leaks, memory flat")
  process.exit(0)
}

;(isMainThread ? main() : proxyWorker()).catch((e) => {
  console.error(e)
  process.exit(1)
})
