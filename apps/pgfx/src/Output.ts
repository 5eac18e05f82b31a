/**
 * Where command output goes: a file or stdout, written in large synchronous writes.
 *
 * Invariants:
 * - A write error (ENOSPC on a full disk, EPIPE, EACCES…) fails with one CliFailure naming the file and
 *   the errno; nothing is retried except EAGAIN on a non-blocking stdout.
 * - A regular file is written as `<file>.partial` and renamed over `<file>` only when the command
 *   finished: an interrupted or failed command never leaves a half-written `<file>` (the partial file is
 *   removed, and the command says so). Devices and FIFOs are written in place.
 * - Memory is bounded: at most `bufferSize` bytes wait in memory before a write.
 */
import * as Fs from "node:fs"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { CliFailure } from "./Errors.ts"

const DEFAULT_BUFFER = 256 * 1024

export interface Output {
  readonly name: string
  /**
   * The open file (the partial file for a regular file), for a writer that writes it directly — nothing may
   * then be written through `write` meanwhile; for stdout only when it is a regular file.
   */
  readonly fd: number | undefined
  /** Bytes written so far (including buffered). */
  readonly bytes: () => number
  readonly write: (chunk: Uint8Array | string) => Effect.Effect<void, CliFailure>
  /** `write` for many chunks at once (one effect for a batch of COPY payloads). */
  readonly writeChunks: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, CliFailure>
  /** Writes out everything buffered (e.g. before a checkpoint records it as done). */
  readonly flush: Effect.Effect<void, CliFailure>
  /** Flushes and, for a file, renames the partial file into place. */
  readonly finish: Effect.Effect<void, CliFailure>
}

const encoder = new TextEncoder()

const errnoText = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException
  return err?.code !== undefined ? `${err.message.replace(/^\w+: /, "")}` : String(e)
}

export const ioFailure = (what: string, e: unknown): CliFailure =>
  new CliFailure({ message: `${what}: ${errnoText(e)}`, cause: e })

const isRegularFile = (fd: number): boolean => {
  try {
    return Fs.fstatSync(fd).isFile()
  } catch {
    return false
  }
}

/** Opens `path` ("-" or undefined: stdout) for writing in the current scope. */
export const openOutput = (
  path: string | undefined,
  options: { readonly bufferSize?: number; readonly append?: boolean } = {}
): Effect.Effect<Output, CliFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const toStdout = path === undefined || path === "-"
    const name = toStdout ? "stdout" : path
    let target = path
    let partial: string | undefined
    if (!toStdout) {
      let regular = true
      try {
        regular = Fs.statSync(path).isFile()
      } catch {
        regular = true // does not exist yet
      }
      if (regular && options.append !== true) {
        partial = `${path}.partial`
        target = partial
      }
    }
    const fd = toStdout
      ? 1
      : yield* Effect.try({
        try: () => Fs.openSync(target!, options.append === true ? "a" : "w"),
        catch: (e) => ioFailure(`cannot open ${name}`, e)
      })
    let finished = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (!toStdout) {
          try {
            Fs.closeSync(fd)
          } catch {
            // already closed
          }
        }
        if (!finished && partial !== undefined) Fs.rmSync(partial, { force: true })
      })
    )
    const limit = options.bufferSize ?? DEFAULT_BUFFER
    let pending: Array<Uint8Array> = []
    let pendingBytes = 0
    let total = 0

    const writeAll = (buf: Uint8Array): Effect.Effect<void, CliFailure> =>
      Effect.suspend(() => {
        let offset = 0
        const loop = (): Effect.Effect<void, CliFailure> => {
          while (offset < buf.length) {
            try {
              offset += Fs.writeSync(fd, buf, offset, buf.length - offset)
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code === "EAGAIN") return Effect.flatMap(Effect.sleep(5), loop)
              return Effect.fail(ioFailure(`cannot write ${name}`, e))
            }
          }
          return Effect.void
        }
        return loop()
      })

    const append = (buf: Uint8Array): void => {
      total += buf.length
      pending.push(buf)
      pendingBytes += buf.length
    }

    const flush: Effect.Effect<void, CliFailure> = Effect.suspend(() => {
      if (pendingBytes === 0) return Effect.void
      const parts = pending
      const size = pendingBytes
      pending = []
      pendingBytes = 0
      if (parts.length === 1) return writeAll(parts[0]!)
      const joined = new Uint8Array(size)
      let at = 0
      for (const p of parts) {
        joined.set(p, at)
        at += p.length
      }
      return writeAll(joined)
    })

    return {
      name,
      // stdout too when it is a regular file (`> file`): writes to it never meet EAGAIN.
      fd: toStdout ? (isRegularFile(1) ? 1 : undefined) : fd,
      bytes: () => total,
      write: (chunk) =>
        Effect.suspend(() => {
          append(typeof chunk === "string" ? encoder.encode(chunk) : chunk)
          return pendingBytes >= limit ? flush : Effect.void
        }),
      writeChunks: (chunks) =>
        Effect.suspend(() => {
          for (let i = 0; i < chunks.length; i++) append(chunks[i]!)
          return pendingBytes >= limit ? flush : Effect.void
        }),
      flush,
      finish: Effect.gen(function*() {
        yield* flush
        if (partial !== undefined) {
          yield* Effect.try({
            try: () => {
              Fs.fsyncSync(fd)
              Fs.renameSync(partial!, path!)
            },
            catch: (e) => ioFailure(`cannot finish ${name}`, e)
          })
        }
        finished = true
      })
    } satisfies Output
  })
