/**
 * A test server never outlives the process that started it: SIGTERM/SIGINT stop it and remove its
 * directories, and what a SIGKILLed process left behind is swept by the next process that starts one.
 * Each case runs the server in a child Node process, since the signals are the point.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"

const testServerModule = Path.resolve(import.meta.dirname, "../src/TestServer.ts")
const node = Path.resolve(import.meta.dirname, "../../node_modules/.bin/node")

interface Child {
  readonly process: ChildProcess.ChildProcess
  readonly dataDir: string
  readonly rootDir: string
  readonly postmasterPid: number
  readonly exited: Promise<NodeJS.Signals | number | null>
}

const children: Array<Child> = []

/** Starts a PostgreSQL 18 test server in a child process and waits until it is up. */
const spawnServer = (): Promise<Child> =>
  new Promise((resolve, reject) => {
    const script = `
      import { startTestServer } from ${JSON.stringify(testServerModule)}
      const server = await startTestServer({ version: 18 })
      process.stdout.write(JSON.stringify({ dataDir: server.info.dataDir }) + "\\n")
      setInterval(() => {}, 1000)
    `
    const child = ChildProcess.spawn(node, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] })
    const exited = new Promise<NodeJS.Signals | number | null>((r) => child.once("exit", (code, signal) => r(signal ?? code)))
    let out = ""
    let err = ""
    child.stderr.on("data", (d: Buffer) => (err += d.toString()))
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString()
      const line = out.split("\n")[0]
      if (out.includes("\n") && line !== undefined) {
        const { dataDir } = JSON.parse(line) as { dataDir: string }
        const postmasterPid = Number(Fs.readFileSync(Path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])
        const c = { process: child, dataDir, rootDir: Path.dirname(dataDir), postmasterPid, exited }
        children.push(c)
        resolve(c)
      }
    })
    exited.then((how) => reject(new Error(`child exited (${String(how)}) before the server was up: ${err}`)))
  })

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    // A postmaster that has exited but is not yet reaped by init still answers kill(0).
    return !/^State:\s+Z/m.test(Fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  } catch {
    return false
  }
}

const waitFor = async (what: string, condition: () => boolean, ms = 10_000) => {
  const until = Date.now() + ms
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

afterEach(() => {
  // Whatever a failed case left running.
  for (const c of children.splice(0)) {
    c.process.kill("SIGKILL")
    try {
      process.kill(c.postmasterPid, "SIGKILL")
    } catch {
      // already gone
    }
    Fs.rmSync(c.rootDir, { recursive: true, force: true })
  }
})

describe("cleanup", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`${signal} stops the server and removes its directories`, async () => {
      const child = await spawnServer()
      expect(isAlive(child.postmasterPid)).toBe(true)
      child.process.kill(signal)
      expect(await child.exited).toBe(signal)
      expect(Fs.existsSync(child.rootDir)).toBe(false)
      await waitFor("the postmaster to exit", () => !isAlive(child.postmasterPid))
    })
  }

  it("the next server sweeps what a SIGKILLed process left", async () => {
    const killed = await spawnServer()
    killed.process.kill("SIGKILL")
    await killed.exited
    expect(Fs.existsSync(killed.dataDir)).toBe(true)
    const next = await spawnServer()
    expect(Fs.existsSync(killed.rootDir)).toBe(false)
    await waitFor("the orphaned postmaster to exit", () => !isAlive(killed.postmasterPid))
    next.process.kill("SIGTERM")
    await next.exited
    expect(Fs.existsSync(next.rootDir)).toBe(false)
  })
})
