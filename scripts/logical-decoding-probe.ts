/**
 * How fast the server itself decodes B6's workload, with no client and no network: 200,000 inserts in 4
 * transactions into B6's table, decoded by pgoutput through `pg_logical_slot_peek_binary_changes` (text and
 * binary values), three rounds, each from a fresh slot. B6's streamed figures sit far below this; the
 * difference is the walsender's send per change (see bench/README.md, B6).
 *
 *   node_modules/.bin/node scripts/logical-decoding-probe.ts
 */
import * as Effect from "effect/Effect"
import * as Connection from "@pgfx/connection/Connection"
import { startTestServer } from "@pgfx/testing/TestServer"

const CHANGES = 200_000
const TRANSACTIONS = 4

const server = await startTestServer({
  version: 18,
  extraConf: { fsync: "off", synchronous_commit: "off", shared_buffers: "256MB", full_page_writes: "off" } // as bench/
})
try {
  const info = server.info
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const conn = yield* Connection.make({ host: info.socketDir, port: info.port, user: info.superuser, database: info.database })
    yield* conn.simple(
      "create table b6_rows (id int4 primary key, name text, amount float8, at timestamptz, ok bool); create publication b6_pub for table b6_rows"
    )
    // Decoding reads only flushed WAL: commit synchronously so every transaction is there to decode.
    yield* conn.simple("set synchronous_commit = on")
    for (let round = 1; round <= 3; round++) {
      yield* conn.simple("truncate b6_rows")
      yield* conn.query(`select pg_create_logical_replication_slot('probe_${round}', 'pgoutput')`)
      const per = CHANGES / TRANSACTIONS
      for (let t = 0; t < TRANSACTIONS; t++) {
        yield* conn.simple(
          `insert into b6_rows select g, 'name ' || g, g * 1.5, now(), g % 2 = 0 from generate_series(${t * per + 1}, ${(t + 1) * per}) g`
        )
      }
      for (const binary of ["false", "true"]) {
        const t0 = performance.now()
        const r = yield* conn.query<{ inserts: number }>(
          `select count(*) filter (where get_byte(data, 0) = ascii('I'))::int as inserts
             from pg_logical_slot_peek_binary_changes('probe_${round}', null, null,
               'proto_version', '1', 'publication_names', 'b6_pub', 'binary', '${binary}')`
        )
        const seconds = (performance.now() - t0) / 1000
        const inserts = r.rows[0]!.inserts
        if (inserts !== CHANGES) throw new Error(`decoded ${inserts} inserts, expected ${CHANGES}`)
        console.log(`round ${round}, ${binary === "true" ? "binary" : "text"} values: ${inserts} inserts decoded in ${seconds.toFixed(3)} s = ${(inserts / seconds / 1000).toFixed(0)} k changes/s`)
      }
      yield* conn.query(`select pg_drop_replication_slot('probe_${round}')`)
    }
  })))
} finally {
  await server.stop()
}
