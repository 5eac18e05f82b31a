/**
 * Replication slot health: how far a slot lags behind the server's WAL, in bytes and in time, and
 * whether the server is about to give up on it (`wal_status`, `safe_wal_size`).
 *
 * Invariants:
 * - One reading is one query on an ordinary (non-replication) connection to the slot's server:
 *   `pg_replication_slots` joined with `pg_stat_replication` (for the active walsender's lags) and
 *   `pg_current_wal_lsn()`, all in one snapshot, so the numbers agree with each other.
 * - `lagBytes` is `pg_current_wal_lsn() - confirmed_flush_lsn` (logical) or `- restart_lsn`
 *   (physical), never negative; `retainedBytes` is the WAL the slot holds back (`- restart_lsn`).
 * - `lagTime` of a `watch` stream is measured by this client: how long ago the server's WAL position
 *   first passed what the slot has confirmed now (from the readings' history; 0 when caught up). It
 *   works for inactive slots too. `flushLag` is the server's own measure for an active walsender.
 * - A slot that does not exist is a reading with `exists: false`, not a failure: slots come and go.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { ConnectionApi } from "@pgfx/connection/Connection"
import type { PgError } from "@pgfx/connection/PgError"
import * as Lsn from "./Lsn.ts"

export type WalStatus = "reserved" | "extended" | "unreserved" | "lost"

export interface SlotHealthReading {
  readonly slot: string
  readonly exists: boolean
  readonly slotType: "logical" | "physical" | undefined
  readonly active: boolean
  readonly activePid: number | undefined
  /** `wal_status`: "lost" means the slot can no longer be used. */
  readonly walStatus: WalStatus | undefined
  /** Bytes that can still be written before the slot is in danger of losing WAL (null: unlimited). */
  readonly safeWalSize: bigint | undefined
  readonly restartLsn: Lsn.Lsn | undefined
  readonly confirmedFlushLsn: Lsn.Lsn | undefined
  readonly currentLsn: Lsn.Lsn
  readonly lagBytes: bigint
  readonly retainedBytes: bigint
  /** The server's flush lag of the active walsender (pg_stat_replication.flush_lag). */
  readonly flushLag: Duration.Duration | undefined
  /** How far behind in time (see the module header); undefined for a single `read`. */
  readonly lagTime: Duration.Duration | undefined
  readonly at: Date
}

const readingSql = `select s.slot_name::text as slot_name, s.slot_type::text as slot_type, s.active, s.active_pid,
  s.wal_status::text as wal_status, s.safe_wal_size::text as safe_wal_size,
  s.restart_lsn::text as restart_lsn, s.confirmed_flush_lsn::text as confirmed_flush_lsn,
  pg_current_wal_lsn()::text as current_lsn,
  (extract(epoch from r.flush_lag) * 1000)::float8 as flush_lag_ms
from (select 1) one
left join pg_replication_slots s on s.slot_name = $1
left join pg_stat_replication r on r.pid = s.active_pid`

interface RawReading {
  readonly slot_name: string | null
  readonly slot_type: string | null
  readonly active: boolean | null
  readonly active_pid: number | null
  readonly wal_status: string | null
  readonly safe_wal_size: string | null
  readonly restart_lsn: string | null
  readonly confirmed_flush_lsn: string | null
  readonly current_lsn: string
  readonly flush_lag_ms: number | null
}

const lsnOrUndefined = (s: string | null): Lsn.Lsn | undefined => (s === null ? undefined : Lsn.fromStringUnsafe(s))

/** One reading of `slot` (without `lagTime`). */
export const read = (conn: ConnectionApi, slot: string): Effect.Effect<SlotHealthReading, PgError> =>
  Effect.map(conn.query<RawReading>(readingSql, [slot]), (r) => {
    const row = r.rows[0]!
    const currentLsn = Lsn.fromStringUnsafe(row.current_lsn)
    const restartLsn = lsnOrUndefined(row.restart_lsn)
    const confirmedFlushLsn = lsnOrUndefined(row.confirmed_flush_lsn)
    const position = confirmedFlushLsn ?? restartLsn
    const behind = (p: Lsn.Lsn | undefined) => (p === undefined || p >= currentLsn ? 0n : currentLsn - p)
    return {
      slot,
      exists: row.slot_name !== null,
      slotType: row.slot_type === "logical" || row.slot_type === "physical" ? row.slot_type : undefined,
      active: row.active === true,
      activePid: row.active_pid ?? undefined,
      walStatus: (row.wal_status ?? undefined) as WalStatus | undefined,
      safeWalSize: row.safe_wal_size === null ? undefined : BigInt(row.safe_wal_size),
      restartLsn,
      confirmedFlushLsn,
      currentLsn,
      lagBytes: behind(position),
      retainedBytes: behind(restartLsn),
      flushLag: row.flush_lag_ms === null ? undefined : Duration.millis(Math.max(0, row.flush_lag_ms)),
      lagTime: undefined,
      at: new Date()
    }
  })

/**
 * Readings of `slot` every `interval` (the first at once), with `lagTime` measured from the history
 * of the server's WAL position. Runs until interrupted; fails with the first query error.
 */
export const watch = (
  conn: ConnectionApi,
  slot: string,
  interval: Duration.Input = Duration.seconds(5)
): Stream.Stream<SlotHealthReading, PgError> =>
  Stream.suspend(() => {
    // (time, current WAL position) samples, oldest first; pruned to what is still ahead of the slot.
    const samples: Array<{ readonly at: number; readonly lsn: Lsn.Lsn }> = []
    return Stream.fromEffectSchedule(read(conn, slot), Schedule.spaced(interval)).pipe(
      Stream.map((reading) => {
        const now = reading.at.getTime()
        const position = reading.confirmedFlushLsn ?? reading.restartLsn
        if (samples.length === 0 || samples[samples.length - 1]!.lsn < reading.currentLsn) {
          samples.push({ at: now, lsn: reading.currentLsn })
        }
        if (position === undefined || !reading.exists) return { ...reading, lagTime: undefined }
        // Drop samples the slot has reached, keeping the newest of them: the WAL passed the slot's
        // position somewhere after it.
        while (samples.length > 1 && samples[1]!.lsn <= position) samples.shift()
        const first = samples[0]!
        const lagTime = reading.lagBytes === 0n
          ? Duration.zero
          : Duration.millis(now - (first.lsn <= position && samples.length > 1 ? samples[1]!.at : first.at))
        return { ...reading, lagTime }
      })
    )
  })

/** The reading, or None when the slot does not exist. */
export const find = (conn: ConnectionApi, slot: string): Effect.Effect<Option.Option<SlotHealthReading>, PgError> =>
  Effect.map(read(conn, slot), (r) => (r.exists ? Option.some(r) : Option.none()))
