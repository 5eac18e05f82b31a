// Physical streaming replication: the server's WAL, byte for byte, on a replication connection
// (replication=true). Here: from the start of the current WAL segment up to the server's flush position.
import { Effect, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as Commands from "@pgfx/replication/Commands"
import * as Lsn from "@pgfx/replication/Lsn"
import * as Physical from "@pgfx/replication/Physical"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const repl = yield* Connection.make({ replication: true })
    const system = yield* Commands.identifySystem(repl)
    const segmentSize = yield* Commands.walSegmentSize(repl)
    const start = Lsn.segmentFloor(Lsn.add(system.xlogPos, -1), segmentSize) // the segment of the last byte flushed

    const received = yield* Physical.streamPhysical(repl, { startLsn: start }).pipe(
      Stream.takeUntil((chunk) => Lsn.add(chunk.walStart, chunk.data.length) >= system.xlogPos),
      Stream.runFold(() => 0, (bytes, chunk) => bytes + chunk.data.length)
    )
    return {
      timeline: system.timeline,
      segment: Lsn.walFileName(system.timeline, Lsn.segmentNumber(start, segmentSize), segmentSize),
      expected: Number(Lsn.diff(system.xlogPos, start)),
      received
    }
  })
)
