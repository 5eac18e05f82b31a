/**
 * Runs the real `pgfx` executable (`node apps/pgfx/src/bin.ts` with the repo's Node) as a child process,
 * against the PostgreSQL 18 of the vitest global setup.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { inject } from "vitest"
import type { TestServerInfo } from "@pgfx/testing/TestServer"
import "@pgfx/testing/vitest-context"

export const REPO = Path.resolve(import.meta.dirname, "../../..")
export const NODE = Path.join(REPO, "node_modules/.bin/node")
export const BIN = Path.join(REPO, "apps/pgfx/src/bin.ts")

export const pg18 = (): TestServerInfo => inject("pg18")

/** The superuser over TCP loopback (trust), TLS off. */
export const uriFor = (info: TestServerInfo = pg18(), database = info.database): string =>
  `postgresql://${info.superuser}@127.0.0.1:${info.port}/${database}?sslmode=disable`

/** An environment without the caller's PG* variables (and HOME pointing at an empty directory). */
export const cleanEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v
  return { ...env, ...extra }
}

export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface RunOptions {
  readonly env?: Record<string, string>
  readonly stdin?: string | Buffer
  /** A file descriptor or file path for the child's stdout. */
  readonly stdoutFile?: string
  readonly timeoutMs?: number
  readonly cwd?: string
}

export interface RunningCli {
  readonly child: ChildProcess.ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves once stdout or stderr matches. */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<void>
  readonly exited: Promise<CliResult>
}

export const spawnCli = (args: ReadonlyArray<string>, options: RunOptions = {}): RunningCli => {
  const stdoutFd = options.stdoutFile === undefined ? "pipe" : Fs.openSync(options.stdoutFile, "w")
  const child = ChildProcess.spawn(NODE, [BIN, ...args], {
    cwd: options.cwd ?? REPO,
    env: cleanEnv(options.env),
    stdio: ["pipe", stdoutFd, "pipe"]
  })
  if (typeof stdoutFd === "number") Fs.closeSync(stdoutFd)
  let stdout = ""
  let stderr = ""
  const watchers = new Set<() => void>()
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString("utf8")
    for (const w of watchers) w()
  })
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString("utf8")
    for (const w of watchers) w()
  })
  if (options.stdin !== undefined) child.stdin?.end(options.stdin)
  else child.stdin?.end()
  const timeout = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000)
  const exited = new Promise<CliResult>((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(timeout)
      resolve({ code, signal, stdout, stderr })
    })
  })
  const waitFor = (pattern: RegExp, timeoutMs = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(stdout) || pattern.test(stderr)) {
          watchers.delete(check)
          clearTimeout(timer)
          resolve()
        }
      }
      const timer = setTimeout(() => {
        watchers.delete(check)
        reject(new Error(`timed out waiting for ${pattern}\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`))
      }, timeoutMs)
      watchers.add(check)
      void exited.then(() => {
        if (watchers.has(check)) {
          check()
          if (watchers.has(check)) {
            watchers.delete(check)
            clearTimeout(timer)
            reject(new Error(`exited before ${pattern}\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`))
          }
        }
      })
      check()
    })
  return { child, stdout: () => stdout, stderr: () => stderr, waitFor, exited }
}

export const runCli = (args: ReadonlyArray<string>, options: RunOptions = {}): Promise<CliResult> => spawnCli(args, options).exited

/** A fresh temporary directory, removed by the returned function. */
export const tempDir = (): { readonly path: string; readonly remove: () => void } => {
  const path = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgfx-cli-"))
  // Servers run as the postgres OS user when we are root: it must be able to enter the directory.
  Fs.chmodSync(path, 0o755)
  return { path, remove: () => Fs.rmSync(path, { recursive: true, force: true }) }
}

/** A unique lower-case identifier for tables, slots and publications of one test. */
export const uniqueName = (prefix: string): string => `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`

import { Effect } from "effect"
import * as Connection from "@pgfx/connection/Connection"
import type { QueryResult } from "@pgfx/connection/Query"

/** Runs SQL (simple protocol, several statements allowed) on the test server; every statement's result. */
export const sql = (text: string, info: TestServerInfo = pg18()): Promise<ReadonlyArray<QueryResult>> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(
        Connection.make({ host: info.socketDir, port: info.port, user: info.superuser, database: info.database }),
        (c) => c.simple(text)
      )
    )
  )

/** The rows of the last statement. */
export const rows = async (text: string, info?: TestServerInfo): Promise<ReadonlyArray<Record<string, unknown>>> => {
  const results = await sql(text, info)
  return (results[results.length - 1]?.rows ?? []) as ReadonlyArray<Record<string, unknown>>
}

/** Runs the CLI with its stdout and stderr on a pseudo-terminal (util-linux `script`); everything it drew. */
export const runCliOnTty = (args: ReadonlyArray<string>, timeoutMs = 120_000): Promise<CliResult> => {
  const quoted = [NODE, BIN, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ")
  const child = ChildProcess.spawn("script", ["-qec", quoted, "/dev/null"], { cwd: REPO, env: cleanEnv({ COLUMNS: "120" }), stdio: ["pipe", "pipe", "pipe"] })
  child.stdin.end()
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")))
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")))
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  )
}
