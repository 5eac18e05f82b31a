// Change data capture with logical replication (pgoutput) from a temporary slot: insert a row, read the
// change as a typed event, and acknowledge the transaction once it has been handled. Nothing is confirmed
// to the server ahead of the acknowledgement, so a crash before it means the transaction is sent again.
import { Effect, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as Logical from "@pgfx/replication/Logical"
import * as Lsn from "@pgfx/replication/Lsn"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const admin = yield* Connection.make({})
    yield* admin.simple(`drop publication if exists docs_cdc_pub; drop table if exists docs_cdc;
      create table docs_cdc (id int primary key, note text);
      create publication docs_cdc_pub for table docs_cdc`)
    yield* Effect.addFinalizer(() => Effect.ignore(admin.simple("drop publication docs_cdc_pub; drop table docs_cdc")))

    // Connects (replication=database) when `changes` runs; the temporary slot lives as long as the stream.
    const cdc = yield* Logical.make({}, { slot: "docs_cdc_slot", publications: ["docs_cdc_pub"], createSlot: { temporary: true } })

    // The writer: once the stream replicates (its temporary slot created and consistent), every commit is
    // captured. The slot is listed, even active, before that: `ready` is the moment to wait for.
    yield* Effect.forkScoped(Effect.andThen(cdc.ready, admin.query("insert into docs_cdc values ($1, $2)", [1, "hello"])))

    const events = yield* cdc.changes.pipe(
      Stream.takeUntil((event) => event._tag === "Commit"),
      Stream.tap((event) => event._tag === "Insert" ? Effect.log("inserted", event.new) : Effect.void),
      cdc.acknowledge, // acknowledges each event once the steps above have handled it
      Stream.runCollect
    )
    const commit = events.find((event) => event._tag === "Commit")!
    return {
      tags: events.map((event) => event._tag),
      inserted: events.flatMap((event) => event._tag === "Insert" ? [event.new] : []),
      commitEnd: Lsn.format(commit.endLsn),
      confirmed: Lsn.format(cdc.positions().confirmed)
    }
  })
)
