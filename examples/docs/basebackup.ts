// A base backup on a replication connection: base.tar (with the WAL it needs) and backup_manifest in a
// new directory, as `pg_basebackup -F tar` writes them, every file fsynced.
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import * as BaseBackup from "@pgfx/replication/BaseBackup"
import * as Lsn from "@pgfx/replication/Lsn"

export const program = Effect.scoped(
  Effect.gen(function*() {
    const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgfx-backup-"))
    const repl = yield* Connection.make({ replication: true })
    const backup = yield* BaseBackup.writeBaseBackup(repl, directory, { checkpoint: "fast", wal: true, manifest: "yes" })

    const manifest = JSON.parse(Fs.readFileSync(backup.manifest!, "utf8"))
    return {
      directory,
      files: Fs.readdirSync(directory).sort(), // ["backup_manifest", "base.tar"]
      walBytes: Number(Lsn.diff(backup.endLsn, backup.startLsn)),
      manifestLists: manifest.Files.length // the data directory's files, with sizes and checksums
    }
  })
)
