import { assert, describe, it } from "@effect/vitest"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect, Exit, Stream } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import { baseBackup, baseBackupCommand, type BaseBackupEvent, writeBaseBackup } from "../src/BaseBackup.ts"
import * as Commands from "../src/Commands.ts"
import * as Lsn from "../src/Lsn.ts"
import { configFor, privateServer, unixConfig } from "./helpers.ts"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgfx-basebackup-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** Regular files of a ustar archive: path → size (parsed by hand, independently of tar(1)). */
const tarFiles = (archive: Uint8Array): Map<string, number> => {
  const files = new Map<string, number>()
  const field = (at: number, len: number) => {
    const b = archive.subarray(at, at + len)
    const nul = b.indexOf(0)
    return Buffer.from(nul < 0 ? b : b.subarray(0, nul)).toString("utf8")
  }
  let at = 0
  while (at + 512 <= archive.length) {
    if (archive.subarray(at, at + 512).every((b) => b === 0)) break
    const name = field(at, 100)
    const size = Number.parseInt(field(at + 124, 12).trim() || "0", 8)
    const type = field(at + 156, 1)
    const prefix = field(at + 345, 155)
    const full = prefix === "" ? name : `${prefix}/${name}`
    if (type === "0" || type === "") files.set(full, size)
    at += 512 + Math.ceil(size / 512) * 512
  }
  return files
}

describe("BASE_BACKUP", () => {
  it("writes only the options that are set, always to the client", () => {
    assert.strictEqual(baseBackupCommand(), "BASE_BACKUP (TARGET 'client')")
    assert.strictEqual(
      baseBackupCommand({ label: "it's", progress: true, checkpoint: "fast", wal: true, wait: false, manifest: "yes", maxRate: 0 }),
      "BASE_BACKUP (LABEL 'it''s', PROGRESS true, CHECKPOINT 'fast', WAL true, WAIT false, MANIFEST 'yes', MAX_RATE 0, TARGET 'client')"
    )
  })

  it.live("takes a base backup of a private PostgreSQL 18 into tar files and a manifest", () =>
    Effect.gen(function*() {
      const server = yield* privateServer(18)
      const config = configFor(server.info)
      const sql = yield* Connection.make(config)
      yield* sql.simple("create table b(id int, v text); insert into b select g, md5(g::text) from generate_series(1, 1000) g")
      const repl = yield* Connection.make({ ...config, replication: "true" })
      const dir = yield* tempDir
      const progress: Array<bigint> = []
      const backup = yield* writeBaseBackup(repl, dir, {
        label: "pgfx test's backup",
        progress: true,
        checkpoint: "fast",
        wal: true,
        wait: false,
        manifest: "yes",
        onProgress: (done) => progress.push(done)
      })
      assert.strictEqual(backup.timeline, 1)
      assert.isTrue(Lsn.isValid(backup.startLsn) && backup.endLsn >= backup.startLsn)
      assert.strictEqual(backup.tablespaces.length, 1)
      assert.strictEqual(backup.tablespaces[0]!.oid, undefined)
      assert.isTrue((backup.tablespaces[0]!.sizeKb ?? 0n) > 0n)
      assert.deepStrictEqual(backup.archives, [Path.join(dir, "base.tar")])
      assert.strictEqual(backup.manifest, Path.join(dir, "backup_manifest"))
      assert.isAbove(progress.length, 0)
      for (let i = 1; i < progress.length; i++) assert.isTrue(progress[i]! >= progress[i - 1]!)

      // tar(1) accepts the archive and lists the files a data directory must have.
      const listing = ChildProcess.execFileSync("tar", ["-tf", Path.join(dir, "base.tar")], { encoding: "utf8" }).split("\n")
      for (const f of ["PG_VERSION", "global/pg_control", "backup_label"]) assert.include(listing, f)
      assert.isTrue(listing.some((f) => /^pg_wal\/[0-9A-F]{24}$/.test(f)), "WAL included")
      const archive = Fs.readFileSync(Path.join(dir, "base.tar"))
      const files = tarFiles(archive)
      assert.strictEqual(files.get("PG_VERSION"), 3)
      assert.include(archive.toString("latin1"), "LABEL: pgfx test's backup")

      // The manifest is JSON and lists the archive's files with their sizes.
      const manifest = JSON.parse(Fs.readFileSync(backup.manifest!, "utf8")) as {
        "PostgreSQL-Backup-Manifest-Version": number
        Files: Array<{ Path: string; Size: number }>
        "WAL-Ranges": Array<{ Timeline: number; "Start-LSN": string; "End-LSN": string }>
      }
      assert.isAbove(manifest.Files.length, 100)
      for (const f of manifest.Files) {
        assert.strictEqual(files.get(f.Path), f.Size, f.Path)
      }
      assert.isTrue(manifest.Files.some((f) => f.Path === "global/pg_control"))
      assert.deepStrictEqual(manifest["WAL-Ranges"], [
        { Timeline: 1, "Start-LSN": Lsn.format(backup.startLsn), "End-LSN": Lsn.format(backup.endLsn) }
      ])
      // The connection is usable after the backup.
      assert.strictEqual((yield* Commands.identifySystem(repl)).timeline, 1)
    }), { timeout: 120_000 })

  it.live("streams events in the server's order and reports the server's errors (shared PostgreSQL 18 and 15)", () =>
    Effect.gen(function*() {
      for (const version of [18, 15] as const) {
        const repl = yield* Connection.make(unixConfig(version, { replication: "true" }))
        // The events of a backup without WAL or manifest, counted (data is not kept).
        const tags: Array<BaseBackupEvent["_tag"]> = []
        let dataBytes = 0
        yield* baseBackup(repl, { checkpoint: "fast", wait: false, manifest: "no" }).pipe(
          Stream.runForEach((e) =>
            Effect.sync(() => {
              if (e._tag === "ArchiveData") dataBytes += e.data.length
              // Progress reports may come between data chunks: collapse runs of the other events.
              if (e._tag !== "Progress" && tags[tags.length - 1] !== e._tag) tags.push(e._tag)
            })
          )
        )
        assert.deepStrictEqual(tags, ["Start", "Archive", "ArchiveData", "End"])
        assert.isAbove(dataBytes, 1_000_000)
        // An invalid option is the server's error, and the connection stays usable.
        const exit = yield* Effect.exit(Stream.runDrain(baseBackup(repl, { maxRate: 1 })))
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
        assert.strictEqual((error as { error: { _tag: string; code: string } } | undefined)?.error.code, "22003") // numeric_value_out_of_range: MAX_RATE below 32 kB
        assert.strictEqual((yield* Commands.identifySystem(repl)).timeline, 1)
      }
    }), { timeout: 120_000 })
})
