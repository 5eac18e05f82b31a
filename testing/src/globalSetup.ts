/**
 * vitest global setup: starts PostgreSQL 18 and 15 once per run, in parallel, and provides their
 * connection info to every test file as `inject("pg18")` / `inject("pg15")`.
 *
 * Invariants:
 * - Both servers are stopped and their directories removed in teardown, also when tests fail;
 *   if one server fails to start, the other is stopped before the error is reported.
 * - `PGFX_TEST_PG15=0` skips PostgreSQL 15 (CI always runs it); `inject("pg15")` is then undefined.
 */
import type { TestProject } from "vitest/node"
import { startTestServer, type TestServer } from "./TestServer.ts"
import "./vitest-context.ts"

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const versions: Array<15 | 18> = process.env["PGFX_TEST_PG15"] === "0" ? [18] : [18, 15]
  const started = await Promise.allSettled(versions.map((version) => startTestServer({ version })))
  const servers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []))
  const failures = started.flatMap((s) => (s.status === "rejected" ? [s.reason as Error] : []))
  if (failures.length > 0) {
    await Promise.allSettled(servers.map((s) => s.stop()))
    throw new Error(failures.map((e) => e.message).join("\n\n"))
  }
  for (const server of servers) {
    if (server.info.version === 18) project.provide("pg18", server.info)
    else project.provide("pg15", server.info)
  }
  return async () => {
    await Promise.allSettled(servers.map((s: TestServer) => s.stop()))
  }
}
