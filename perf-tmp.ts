import { Effect, Stream } from "effect"
import * as Fs from "node:fs"
import * as Connection from "/work/main/packages/connection/src/Connection.ts"
import { startTestServer } from "/work/main/testing/src/TestServer.ts"
const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(Fs.readFileSync("/proc/self/status", "utf8"))![1]) / 1024
const s = await startTestServer({ version: 18 })
try {
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const c = yield* Connection.make({ host: "127.0.0.1", port: s.info.port, user: s.info.superuser, database: "postgres", sslMode: "disable" })
    console.log("connected hwm", hwm().toFixed(0), "MB")
    const sql = "select i, 'text value ' || i as t, now() as ts, i * 1.5::float8 as f, md5(i::text) as m from generate_series(1, 1000000) i"
    for (let r = 0; r < 2; r++) {
      const t0 = performance.now()
      let n = 0
      let maxHeap = 0; const iv = setInterval(() => { const m = process.memoryUsage(); const w = c.internal.wire as any; const fl = w.flushes.length; const ib = w.transport.inbox.length; if (fl > (globalThis as any).maxFl || 0) (globalThis as any).maxFl = fl; if (ib > ((globalThis as any).maxIb || 0)) (globalThis as any).maxIb = ib; if (m.heapUsed > maxHeap) { maxHeap = m.heapUsed; (globalThis as any).snap = m } }, 5)
      yield* c.stream(sql, [], { bufferBatches: 1 }).pipe(Stream.runForEach(() => Effect.sync(() => { n++ })))
      clearInterval(iv); console.log("max heapUsed", (maxHeap/1048576).toFixed(0), JSON.stringify((globalThis as any).snap), "maxFlushes", (globalThis as any).maxFl, "maxInbox", (globalThis as any).maxIb)
      console.log("stream rows", n, ((performance.now() - t0)).toFixed(0), "ms hwm", hwm().toFixed(0), "MB", "rss", (process.memoryUsage().rss/1048576).toFixed(0))
    }
  })))
} finally { await s.stop() }
