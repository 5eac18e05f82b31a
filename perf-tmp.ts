import { Effect } from "effect"
import * as Connection from "/work/main/packages/connection/src/Connection.ts"
import { startTestServer } from "/work/main/testing/src/TestServer.ts"
const s = await startTestServer({ version: 18 })
try {
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const c = yield* Connection.make({ host: "127.0.0.1", port: s.info.port, user: s.info.superuser, database: "postgres", sslMode: "disable" })
    for (let round = 0; round < 3; round++) {
      const samples: number[] = []
      const iv = setInterval(() => samples.push(c.internal.wire.inFlight), 1)
      const t0 = performance.now(); const cpu0 = process.cpuUsage()
      yield* Effect.forEach(Array.from({ length: 100000 }, (_, i) => i), (i) => c.query("select $1::int", [i]), { concurrency: 1000, discard: true })
      const dt = performance.now() - t0; const cpu = process.cpuUsage(cpu0)
      clearInterval(iv)
      samples.sort((a, b) => a - b)
      console.log(`B2 ${(100000 / dt * 1000).toFixed(0)} q/s cpu ${((cpu.user + cpu.system) / 100000).toFixed(1)} us/q inflight p10=${samples[Math.floor(samples.length*0.1)]} p50=${samples[Math.floor(samples.length/2)]} p90=${samples[Math.floor(samples.length*0.9)]}`)
    }
  })))
} finally { await s.stop() }
