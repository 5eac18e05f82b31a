/**
 * BASE_BACKUP (54.4) over a replication connection, as a stream of events: the start position and
 * tablespaces, then for each archive its name and tar data, progress reports, the backup manifest,
 * and the end position; plus `writeBaseBackup`, which writes the archives and the manifest to files.
 *
 * Invariants:
 * - Only the CopyOut format of PostgreSQL 15+ is spoken: one CopyOutResponse whose CopyData payloads
 *   are sub-messages 'n' (new archive: file name, tablespace path), 'd' (data of the current archive
 *   or of the manifest), 'p' (progress: Int64 bytes of the current tablespace done) and 'm' (the
 *   manifest starts). Any other sub-message, or data before an archive or manifest began, is a
 *   ProtocolError (the stream fails and the connection with it).
 * - Reply order is the server's: result set (start LSN, timeline), result set (tablespaces), COPY,
 *   result set (end LSN, timeline), CommandComplete, ReadyForQuery. `Start` is emitted when COPY
 *   begins, `End` when the last result set is complete; the stream ends at ReadyForQuery.
 * - Backpressure: events of one socket chunk go to a bounded queue (a `ReaderQueue`); the socket
 *   pauses while the consumer is behind. `data` is a view into the socket chunk (no copy):
 *   write or copy it before pulling again.
 * - `writeBaseBackup` writes each archive to `<directory>/<archive name>` and the manifest to
 *   `<directory>/backup_manifest`, fsyncs every file and the directory; nothing else is written.
 *   Only uncompressed backups to the client are produced (TARGET 'client', COMPRESSION none).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { decodeDataRow } from "@pgfx/codec/Query"
import { Reader } from "@pgfx/codec/internal/Reader"
import { decodeUtf8 } from "@pgfx/codec/internal/utf8"
import { ProtocolError } from "@pgfx/codec/ProtocolError"
import type { ConnectionApi } from "@pgfx/connection/Connection"
import { InvalidRequestError, type PgError, type PgServerError, serverError } from "@pgfx/connection/PgError"
import { encodeSimpleQuery, errorFieldsOf } from "@pgfx/connection/Query"
import { type Pending, ReaderQueue, type WireError } from "@pgfx/connection/Wire"
import { quoteLiteral } from "./Commands.ts"
import * as Lsn from "./Lsn.ts"

export interface BaseBackupOptions {
  readonly label?: string | undefined
  /** Ask the server for tablespace sizes up front (needed for a percentage). */
  readonly progress?: boolean | undefined
  readonly checkpoint?: "fast" | "spread" | undefined
  /** Include the WAL needed to make the backup consistent (in pg_wal/ of the base archive). */
  readonly wal?: boolean | undefined
  /** Wait for the last WAL segment to be archived (server default true). */
  readonly wait?: boolean | undefined
  readonly manifest?: "yes" | "no" | "force-encode" | undefined
  readonly manifestChecksums?: "NONE" | "CRC32C" | "SHA224" | "SHA256" | "SHA384" | "SHA512" | undefined
  /** Kilobytes per second (32 kB – 1 GB), 0 for no limit. */
  readonly maxRate?: number | undefined
  readonly tablespaceMap?: boolean | undefined
  readonly verifyChecksums?: boolean | undefined
  /** Socket chunks of events buffered ahead of the consumer. Default 16. */
  readonly bufferChunks?: number | undefined
}

export interface Tablespace {
  /** undefined for the main data directory. */
  readonly oid: number | undefined
  readonly location: string | undefined
  /** Approximate size in kB (with `progress`). */
  readonly sizeKb: bigint | undefined
}

export type BaseBackupEvent =
  | { readonly _tag: "Start"; readonly startLsn: Lsn.Lsn; readonly timeline: number; readonly tablespaces: ReadonlyArray<Tablespace> }
  | { readonly _tag: "Archive"; readonly name: string; readonly tablespaceLocation: string }
  | { readonly _tag: "ArchiveData"; readonly data: Uint8Array }
  | { readonly _tag: "Progress"; readonly bytesDone: bigint }
  | { readonly _tag: "Manifest" }
  | { readonly _tag: "ManifestData"; readonly data: Uint8Array }
  | { readonly _tag: "End"; readonly endLsn: Lsn.Lsn; readonly timeline: number }

export class BaseBackupError extends Schema.TaggedError<BaseBackupError>()("BaseBackupError", {
  reason: Schema.Literals(["FileSystem", "InvalidArchiveName"]),
  message: Schema.String,
  path: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Unknown)
}) {}

/** The BASE_BACKUP command text; only options that are set are written. */
export const baseBackupCommand = (options: BaseBackupOptions = {}): string => {
  const parts: Array<string> = []
  const bool = (name: string, v: boolean | undefined) => {
    if (v !== undefined) parts.push(`${name} ${v ? "true" : "false"}`)
  }
  if (options.label !== undefined) parts.push(`LABEL ${quoteLiteral(options.label)}`)
  bool("PROGRESS", options.progress)
  if (options.checkpoint !== undefined) parts.push(`CHECKPOINT ${quoteLiteral(options.checkpoint)}`)
  bool("WAL", options.wal)
  bool("WAIT", options.wait)
  if (options.manifest !== undefined) parts.push(`MANIFEST ${quoteLiteral(options.manifest)}`)
  if (options.manifestChecksums !== undefined) parts.push(`MANIFEST_CHECKSUMS ${quoteLiteral(options.manifestChecksums)}`)
  if (options.maxRate !== undefined) {
    if (!Number.isSafeInteger(options.maxRate) || options.maxRate < 0) {
      throw new InvalidRequestError({ reason: "Other", message: `invalid MAX_RATE ${options.maxRate}` })
    }
    parts.push(`MAX_RATE ${options.maxRate}`)
  }
  bool("TABLESPACE_MAP", options.tablespaceMap)
  bool("VERIFY_CHECKSUMS", options.verifyChecksums)
  // Always to the client, uncompressed: the archives this module writes are plain tar files.
  parts.push(`TARGET 'client'`)
  return `BASE_BACKUP (${parts.join(", ")})`
}

const COPY_OUT = 0x48 // H
const COPY_DATA = 0x64 // d
const COPY_DONE = 0x63 // c
const ROW_DESCRIPTION = 0x54 // T
const DATA_ROW = 0x44 // D
const COMMAND_COMPLETE = 0x43 // C
const ERROR = 0x45 // E
const READY = 0x5a // Z

const bad = (message: string, messageType: string): never => {
  throw new ProtocolError({ reason: "InvalidValue", message: `BASE_BACKUP: ${message}`, messageType })
}

const text = (v: Uint8Array | null): string | undefined => (v === null ? undefined : decodeUtf8(v, 0, v.length))

/** BASE_BACKUP's replies up to ReadyForQuery; runs in the connection's reader. */
class BaseBackupRequest implements Pending {
  abandoned = false
  private readonly queue: Queue.Queue<ReadonlyArray<BaseBackupEvent>, PgError | Cause.Done>
  /** The reader's way into `queue` (in order, waiting only while it is full). */
  private readonly toConsumer: ReaderQueue<ReadonlyArray<BaseBackupEvent>, PgError>
  private readonly command: string
  private batch: Array<BaseBackupEvent> = []
  /** Result sets seen: 1 start position, 2 tablespaces, 3 end position. */
  private resultSet = 0
  private inCopy = false
  private copyDone = false
  /** What 'd' sub-messages belong to. */
  private target: "none" | "archive" | "manifest" = "none"
  private start: { lsn: Lsn.Lsn; timeline: number } | undefined
  private readonly tablespaces: Array<Tablespace> = []
  private error: PgServerError | undefined
  resume: ((effect: Effect.Effect<void, PgError>) => void) | undefined

  constructor(conn: ConnectionApi, command: string, queue: Queue.Queue<ReadonlyArray<BaseBackupEvent>, PgError | Cause.Done>) {
    this.command = command
    this.queue = queue
    this.toConsumer = new ReaderQueue(conn.internal.wire, queue)
  }

  private push(e: BaseBackupEvent): void {
    if (!this.abandoned) this.batch.push(e)
  }

  onFrame(type: number, buf: Uint8Array, start: number, end: number): boolean {
    switch (type) {
      case COPY_DATA: {
        if (!this.inCopy || this.copyDone) return bad("CopyData outside COPY", "d")
        if (start >= end) return bad("empty CopyData", "d")
        const kind = buf[start]!
        if (kind === 0x64) {
          // 'd': archive or manifest data, the bulk of the backup
          const data = buf.subarray(start + 1, end)
          if (this.target === "archive") this.push({ _tag: "ArchiveData", data })
          else if (this.target === "manifest") this.push({ _tag: "ManifestData", data })
          else bad("data before any archive or manifest", "d")
          return false
        }
        const r = new Reader(buf, start + 1, end, "CopyData")
        if (kind === 0x6e) {
          // 'n': a new archive
          const name = r.cstring()
          const tablespaceLocation = r.cstring()
          r.done()
          this.target = "archive"
          this.push({ _tag: "Archive", name, tablespaceLocation })
        } else if (kind === 0x70) {
          // 'p': progress
          const bytesDone = r.i64()
          r.done()
          this.push({ _tag: "Progress", bytesDone })
        } else if (kind === 0x6d) {
          // 'm': the manifest follows
          r.done()
          this.target = "manifest"
          this.push({ _tag: "Manifest" })
        } else {
          throw new ProtocolError({
            reason: "UnknownMessageType",
            message: `BASE_BACKUP: unknown CopyData sub-message '${String.fromCharCode(kind)}' (0x${kind.toString(16)})`,
            messageType: "d"
          })
        }
        return false
      }
      case COPY_OUT:
        if (this.inCopy) return bad("a second CopyOutResponse (a pre-15 server?)", "H")
        this.inCopy = true
        if (this.start === undefined) return bad("COPY before the start position", "H")
        this.push({ _tag: "Start", startLsn: this.start.lsn, timeline: this.start.timeline, tablespaces: [...this.tablespaces] })
        return false
      case COPY_DONE:
        if (!this.inCopy) return bad("CopyDone outside COPY", "c")
        this.copyDone = true
        this.target = "none"
        return false
      case ROW_DESCRIPTION:
        this.resultSet++
        return false
      case DATA_ROW: {
        const { values } = decodeDataRow(new Reader(buf, start, end, "D"))
        if (this.resultSet === 2) {
          const oid = text(values[0] ?? null)
          const size = text(values[2] ?? null)
          this.tablespaces.push({
            oid: oid === undefined ? undefined : Number(oid),
            location: text(values[1] ?? null),
            sizeKb: size === undefined ? undefined : BigInt(size)
          })
          return false
        }
        const lsnText = text(values[0] ?? null)
        const tliText = text(values[1] ?? null)
        const lsn = lsnText === undefined ? undefined : Lsn.fromString(lsnText)
        const timeline = tliText === undefined ? NaN : Number(tliText)
        if (lsn === undefined || lsn._tag === "None" || !Number.isSafeInteger(timeline)) {
          return bad(`invalid position row (${String(lsnText)}, ${String(tliText)})`, "D")
        }
        if (this.resultSet === 1) this.start = { lsn: lsn.value, timeline }
        else if (this.resultSet === 3) this.push({ _tag: "End", endLsn: lsn.value, timeline })
        else bad(`unexpected result set ${this.resultSet}`, "D")
        return false
      }
      case COMMAND_COMPLETE:
        return false
      case ERROR:
        this.error = serverError(errorFieldsOf(buf, start, end), this.command)
        this.inCopy = false
        return false
      case READY: {
        this.afterChunk()
        const error = this.error
        this.toConsumer.end(error)
        const resume = this.resume
        this.resume = undefined
        resume?.(error === undefined ? Effect.void : Effect.fail(error))
        return true
      }
      default:
        return bad(`message '${String.fromCharCode(type)}' is not legal here`, String.fromCharCode(type))
    }
  }

  afterChunk(): void {
    if (this.batch.length === 0) return
    const b = this.batch
    this.batch = []
    this.toConsumer.offer(b)
  }

  onFail(error: WireError): void {
    Queue.failCauseUnsafe(this.queue, Cause.fail(error))
    const resume = this.resume
    this.resume = undefined
    resume?.(Effect.fail(error))
  }
}

/**
 * Runs BASE_BACKUP and streams its events (see the module header). The connection must be a
 * replication connection; it is busy until the stream ends. Ending the stream early abandons the
 * backup: the rest of it is read and discarded (or cancelled when nothing else is queued).
 */
export const baseBackup = (conn: ConnectionApi, options: BaseBackupOptions = {}): Stream.Stream<BaseBackupEvent, PgError> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const command = yield* Effect.try({
        try: () => baseBackupCommand(options),
        catch: (e) =>
          e instanceof InvalidRequestError ? e : new InvalidRequestError({ reason: "Other", message: e instanceof Error ? e.message : String(e) })
      })
      const queue = yield* Queue.bounded<ReadonlyArray<BaseBackupEvent>, PgError | Cause.Done>(Math.max(1, options.bufferChunks ?? 16))
      const request = new BaseBackupRequest(conn, command, queue)
      yield* Effect.forkScoped(
        conn.internal.run<void>((resume) => {
          request.resume = resume
          return { request, bytes: encodeSimpleQuery(conn.internal.writer, command) }
        }).pipe(Effect.catch((e) => Effect.sync(() => Queue.failCauseUnsafe(queue, Cause.fail(e)))))
      )
      // The consumer went away: let a reader waiting on the full queue go on (the rest is discarded).
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          request.abandoned = true
          Queue.shutdownUnsafe(queue)
        })
      )
      const pull = Queue.take(queue) as Effect.Effect<Arr.NonEmptyReadonlyArray<BaseBackupEvent>, PgError | Cause.Done>
      return Stream.fromPull(Effect.succeed(pull))
    })
  )

export interface WrittenBackup {
  readonly startLsn: Lsn.Lsn
  readonly endLsn: Lsn.Lsn
  readonly timeline: number
  readonly tablespaces: ReadonlyArray<Tablespace>
  /** Paths of the archives written, in order. */
  readonly archives: ReadonlyArray<string>
  /** The manifest's path, when one was requested. */
  readonly manifest: string | undefined
  readonly bytes: number
}

const fsError = (what: string, path: string) => (cause: unknown) =>
  new BaseBackupError({
    reason: "FileSystem",
    message: `${what} ${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
    path,
    cause
  })

/**
 * Takes a base backup into `directory` (created if missing): one tar file per archive as the server
 * names it (`base.tar`, `<oid>.tar`), and `backup_manifest`. `onProgress` sees every progress report.
 */
export const writeBaseBackup = (
  conn: ConnectionApi,
  directory: string,
  options: BaseBackupOptions & {
    readonly onProgress?: ((bytesDone: bigint, archive: string) => void) | undefined
  } = {}
): Effect.Effect<WrittenBackup, PgError | BaseBackupError> =>
  Effect.gen(function*() {
    yield* Effect.try({ try: () => Fs.mkdirSync(directory, { recursive: true }), catch: fsError("cannot create", directory) })
    let fd: number | undefined
    let path = ""
    const archives: Array<string> = []
    let manifest: string | undefined
    let start: Extract<BaseBackupEvent, { _tag: "Start" }> | undefined
    let endEvent: Extract<BaseBackupEvent, { _tag: "End" }> | undefined
    let bytes = 0

    const close = () => {
      if (fd === undefined) return
      const f = fd
      fd = undefined
      Fs.fsyncSync(f)
      Fs.closeSync(f)
    }
    const open = (name: string) => {
      close()
      // The server names archives itself; a name that could leave the directory is refused.
      if (name === "" || name !== Path.basename(name) || name === "." || name === "..") {
        throw new BaseBackupError({ reason: "InvalidArchiveName", message: `refusing archive name ${JSON.stringify(name)}` })
      }
      path = Path.join(directory, name)
      fd = Fs.openSync(path, "w")
    }
    const write = (data: Uint8Array) => {
      let done = 0
      while (done < data.length) done += Fs.writeSync(fd!, data, done, data.length - done)
      bytes += data.length
    }

    const handle = (e: BaseBackupEvent): void => {
      switch (e._tag) {
        case "Start":
          start = e
          return
        case "Archive":
          open(e.name)
          archives.push(path)
          return
        case "ArchiveData":
        case "ManifestData":
          write(e.data)
          return
        case "Manifest":
          open("backup_manifest")
          manifest = path
          return
        case "Progress":
          options.onProgress?.(e.bytesDone, path)
          return
        case "End":
          close()
          endEvent = e
          return
      }
    }

    yield* baseBackup(conn, options).pipe(
      Stream.runForEachArray((events) =>
        Effect.try({
          try: () => {
            for (const e of events) handle(e)
          },
          catch: (e) => (e instanceof BaseBackupError ? e : fsError("cannot write", path)(e))
        })
      ),
      Effect.ensuring(Effect.sync(() => {
        try {
          close()
        } catch {
          // already failing: the first error is the one reported
        }
      }))
    )
    yield* Effect.try({
      try: () => {
        const d = Fs.openSync(directory, "r")
        Fs.fsyncSync(d)
        Fs.closeSync(d)
      },
      catch: fsError("cannot fsync", directory)
    })
    if (start === undefined || endEvent === undefined) {
      return yield* Effect.fail(new ProtocolError({ reason: "UnexpectedMessage", message: "BASE_BACKUP ended without its start and end positions" }))
    }
    return {
      startLsn: start.startLsn,
      endLsn: endEvent.endLsn,
      timeline: start.timeline,
      tablespaces: start.tablespaces,
      archives,
      manifest,
      bytes
    }
  })
