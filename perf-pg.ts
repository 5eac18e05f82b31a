import pg from "pg"
import { startTestServer } from "/work/main/testing/src/TestServer.ts"
const s = await startTestServer({ version: 18 })
try {
  const c = new pg.Client({ host: "127.0.0.1", port: s.info.port, user: s.info.superuser, database: "postgres" })
  await c.connect()
  for (let round = 0; round < 2; round++) {
    let t0 = performance.now(); let cpu0 = process.cpuUsage()
    for (let i = 0; i < 20000; i++) await c.query("select 1")
    let dt = performance.now() - t0; let cpu = process.cpuUsage(cpu0)
    console.log(`pg B1 ${(20000 / dt * 1000).toFixed(0)} q/s cpu ${((cpu.user + cpu.system) / 20000).toFixed(1)} us/q`)
    t0 = performance.now(); cpu0 = process.cpuUsage()
    const ps = []
    for (let i = 0; i < 100000; i++) { ps.push(c.query({ text: "select $1::int", values: [i], name: "s1" })); if (ps.length >= 1000) { await Promise.all(ps); ps.length = 0 } }
    await Promise.all(ps)
    dt = performance.now() - t0; cpu = process.cpuUsage(cpu0)
    console.log(`pg B2 ${(100000 / dt * 1000).toFixed(0)} q/s cpu ${((cpu.user + cpu.system) / 100000).toFixed(1)} us/q`)
  }
  await c.end()
} finally { await s.stop() }
