import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { copyFromFile, copyToFile } from "../src/Copy.ts"
import * as Connection from "../src/Connection.ts"
import { tcpConfig, unixConfig } from "./helpers.ts"

const open = () => Connection.make(unixConfig())

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "pgfx-copyfile-"))

/** A COPY text file of `rows` rows (id, a line of varying length); returns its path and the md5 of its lines. */
const writeFile = (name: string, rows: number): { path: string; md5: string } => {
  const lines: Array<string> = []
  for (let i = 1; i <= rows; i++) lines.push(`${i}\t${"row " + i + " " + "x".repeat(i % 97)}`)
  const path = Path.join(dir, name)
  Fs.writeFileSync(path, lines.join("\n") + "\n")
  return { path, md5: Crypto.createHash("md5").update(lines.join("\n")).digest("hex") }
}

const openFds = () => Fs.readdirSync("/proc/self/fd").length

/** After a failed or interrupted copy: no file left open and no row in `table`. */
const nothingCopied = (conn: Connection.ConnectionApi, table: string, fdsBefore: number) =>
  Effect.gen(function*() {
    assert.strictEqual(openFds(), fdsBefore, "the file was closed")
    const r = yield* conn.query(`select count(*)::int as n from ${table}`)
    assert.deepStrictEqual(r.rows, [{ n: 0 }])
  })

const tableMd5 = (conn: Connection.ConnectionApi, table: string) =>
  Effect.map(
    conn.query<{ md5: string; n: number }>(`select md5(string_agg(id || E'\\t' || t, E'\\n' order by id)) as md5, count(*)::int as n from ${table}`),
    (r) => r.rows[0]!
  )

describe("copyFromFile", () => {
  const big = writeFile("big.tsv", 60_000) // ~3.5 MB

  it.live("copies a whole file, every byte in order, whatever the read size and backpressure", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table cff(id int, t text)")
      const before = openFds()
      // Tiny reads and a tiny high-water mark keep many reused buffers in flight at once: a buffer reused
      // before the socket wrote it would corrupt the data, which the checksum would show.
      const variants = [
        { readSize: 1000, highWaterMark: 4096 },
        { readSize: 65_536 },
        {},
        { readSize: 7_777, blockingReads: true, highWaterMark: 1024 },
        { blockingReads: true }
      ]
      for (const options of variants) {
        yield* conn.simple("truncate cff")
        const n = yield* copyFromFile(conn, "copy cff from stdin", big.path, options)
        assert.strictEqual(n, 60_000, JSON.stringify(options))
        assert.deepStrictEqual(yield* tableMd5(conn, "cff"), { md5: big.md5, n: 60_000 }, JSON.stringify(options))
      }
      // onRead sees every byte once, in order.
      yield* conn.simple("truncate cff")
      const seen: Array<Uint8Array> = []
      yield* copyFromFile(conn, "copy cff from stdin", big.path, { readSize: 50_000, onRead: (d) => seen.push(d.slice()) })
      assert.isTrue(Buffer.concat(seen).equals(Fs.readFileSync(big.path)))
      assert.strictEqual(openFds(), before, "every file was closed")
    }))

  it.live("reads a named pipe as it is written", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table cfp(id int, t text)")
      const fifo = Path.join(dir, "rows.fifo")
      ChildProcess.execFileSync("mkfifo", [fifo])
      // The writer opens the pipe once the reader has; it writes in small pieces, then closes it.
      const writer = Fs.createWriteStream(fifo)
      for (let i = 1; i <= 2000; i++) writer.write(`${i}\tpiped ${i}\n`)
      writer.end()
      const n = yield* copyFromFile(conn, "copy cfp from stdin", fifo, { readSize: 4096 })
      assert.strictEqual(n, 2000)
      const r = yield* conn.query<{ s: number }>("select sum(id)::int as s from cfp where t = 'piped ' || id")
      assert.strictEqual(r.rows[0]!.s, 2000 * 2001 / 2)
    }))

  it.live("an empty file copies no rows", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table cfe(id int, t text)")
      const path = Path.join(dir, "empty.tsv")
      Fs.writeFileSync(path, "")
      assert.strictEqual(yield* copyFromFile(conn, "copy cfe from stdin", path), 0)
    }))

  it.live("a missing file fails with CopyFileError Open before any COPY starts", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table cfm(id int, t text)")
      const err = yield* Effect.flip(copyFromFile(conn, "copy cfm from stdin", Path.join(dir, "no-such-file")))
      assert.strictEqual(err._tag, "CopyFileError")
      if (err._tag === "CopyFileError") {
        assert.strictEqual(err.reason, "Open")
        assert.match(err.message, /no-such-file/)
      }
      assert.strictEqual(conn.transactionStatus(), "I")
      const r = yield* conn.query("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
    }))

  it.live("a read error ends the COPY with CopyFail and fails with CopyFileError Read; the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table cfr(id int, t text)")
      const before = openFds()
      // A directory opens for reading on Linux, and every read of it fails with EISDIR.
      const err = yield* Effect.flip(copyFromFile(conn, "copy cfr from stdin", dir))
      assert.strictEqual(err._tag, "CopyFileError")
      if (err._tag === "CopyFileError") assert.strictEqual(err.reason, "Read")
      yield* nothingCopied(conn, "cfr", before)
    }))

  it.live("a bad row fails with the server's error and its line; the file is closed and the connection usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table cfb(id int, t text)")
      const path = Path.join(dir, "bad.tsv")
      Fs.writeFileSync(path, Fs.readFileSync(big.path, "utf8").replace("\n40000\t", "\nforty thousand\t"))
      const before = openFds()
      const err = yield* Effect.flip(copyFromFile(conn, "copy cfb from stdin", path, { readSize: 16_384 }))
      assert.strictEqual(err._tag, "PgServerError")
      if (err._tag === "PgServerError") {
        assert.strictEqual(err.code, "22P02")
        assert.match(err.where ?? "", /COPY cfb, line 40000/)
      }
      yield* nothingCopied(conn, "cfb", before)
    }))

  it.live("interrupting it sends CopyFail, closes the file, and the next query works", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* conn.simple("create temp table cfi(id int, t text)")
      const before = openFds()
      // Slow enough to interrupt halfway: 1 KB reads, each waiting for the socket.
      const fiber = yield* Effect.forkChild(copyFromFile(conn, "copy cfi from stdin", big.path, { readSize: 1024, highWaterMark: 1 }))
      yield* Effect.sleep("30 millis")
      assert.isUndefined(fiber.pollUnsafe(), "the copy was still running when interrupted")
      yield* Fiber.interrupt(fiber)
      yield* nothingCopied(conn, "cfi", before)
      assert.strictEqual(conn.transactionStatus(), "I")
    }))
})

describe("copyToFile", () => {
  const rows = 60_000
  const expected = writeFile("expected.tsv", rows) // the bytes COPY TO must write, by construction
  const expectedBytes = Fs.readFileSync(expected.path)
  const load = (conn: Connection.ConnectionApi, table: string) =>
    Effect.gen(function*() {
      yield* conn.simple(`create temp table ${table}(id int, t text)`)
      assert.strictEqual(yield* copyFromFile(conn, `copy ${table} from stdin`, expected.path), rows)
    })

  it.live("writes every byte in order, whatever the write size, piece threshold and write mode, over unix, TCP and TLS", () =>
    Effect.gen(function*() {
      for (const config of [unixConfig(), tcpConfig("scram"), tcpConfig("scram", { sslMode: "require" })]) {
        const conn = yield* Connection.make(config)
        assert.strictEqual(conn.info.tls, config.sslMode === "require")
        yield* load(conn, "ctf")
        const before = openFds()
        const variants = [{}, { writeSize: 65_536 }, { blockingWrites: true }, { writeSize: 70_001, blockingWrites: true }, { pieceThreshold: 8 }]
        for (const options of variants) {
          const out = Path.join(dir, "out.tsv")
          const lentBefore = conn.internal.wire.transport.lentReads
          const n = yield* copyToFile(conn, "copy (select * from ctf order by id) to stdout", out, options)
          assert.strictEqual(n, rows, JSON.stringify(options))
          assert.isTrue(Fs.readFileSync(out).equals(expectedBytes), `file content, ${JSON.stringify(options)}`)
          // Over a plain socket the reads were lent to it (not copied): the path whose views must not outlive a
          // read. TLS delivers its own chunks (copies), never lent.
          if (conn.info.tls) assert.strictEqual(conn.internal.wire.transport.lentReads, 0)
          else assert.isAbove(conn.internal.wire.transport.lentReads, lentBefore, JSON.stringify(options))
        }
        assert.strictEqual(openFds(), before, "every file was closed")
        // Lending ends with the COPY: later results are intact.
        const r = yield* conn.query<{ n: number; s: string; t: string }>("select count(*)::int as n, sum(id)::text as s, max(t) as t from ctf where id > 59990")
        assert.deepStrictEqual(r.rows, [{ n: 10, s: String(59991 * 5 + 60000 * 5), t: "row 60000 " + "x".repeat(60000 % 97) }])
      }
    }))

  it.live("writes CopyData larger than the read buffer and the piece threshold; appends when asked", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const out = Path.join(dir, "wide.tsv")
      const sql = "copy (select i, repeat(chr(64 + i), 300000 * i) from generate_series(1, 3) i) to stdout"
      assert.strictEqual(yield* copyToFile(conn, sql, out, { writeSize: 100_000 }), 3)
      const text = [1, 2, 3].map((i) => `${i}\t${String.fromCharCode(64 + i).repeat(300_000 * i)}\n`).join("")
      assert.strictEqual(Fs.readFileSync(out, "latin1"), text)
      assert.strictEqual(yield* copyToFile(conn, sql, out, { append: true }), 3)
      assert.strictEqual(Fs.readFileSync(out, "latin1"), text + text)
    }))

  it.live("writes to a descriptor the caller opened (left open, from its position); onData counts every row and byte", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* load(conn, "ctd")
      const out = Path.join(dir, "by-fd.tsv")
      const fd = Fs.openSync(out, "w")
      Fs.writeSync(fd, "# exported\n")
      let messages = 0
      let bytes = 0
      const n = yield* copyToFile(conn, "copy (select * from ctd order by id) to stdout", { fd, name: out }, {
        onData: (m, b) => {
          messages += m
          bytes += b
        }
      })
      Fs.writeSync(fd, "# end\n") // still open: the caller closes it
      Fs.closeSync(fd)
      assert.strictEqual(n, rows)
      assert.strictEqual(messages, rows)
      assert.strictEqual(bytes, expectedBytes.length)
      assert.strictEqual(Fs.readFileSync(out, "utf8"), `# exported\n${expectedBytes.toString("utf8")}# end\n`)
      // A message larger than the piece threshold counts once.
      let wide = 0
      yield* copyToFile(conn, "copy (select repeat('x', 1000000)) to stdout", "/dev/null", { pieceThreshold: 1000, onData: (m) => void (wide += m) })
      assert.strictEqual(wide, 1)
    }))

  it.live("a named pipe is written as its reader takes it (short writes, backpressure)", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      yield* load(conn, "ctp")
      const fifo = Path.join(dir, "out.fifo")
      ChildProcess.execFileSync("mkfifo", [fifo])
      const copied = Path.join(dir, "from-fifo.tsv")
      const reader = ChildProcess.spawn("sh", ["-c", `cat "${fifo}" > "${copied}"`])
      const exited = new Promise<number | null>((resolve) => reader.on("exit", resolve))
      const n = yield* copyToFile(conn, "copy (select * from ctp order by id) to stdout", fifo, { writeSize: 65_536 })
      assert.strictEqual(n, rows)
      assert.strictEqual(yield* Effect.promise(() => exited), 0)
      assert.isTrue(Fs.readFileSync(copied).equals(expectedBytes))
    }))

  it.live("a file that cannot be opened fails with CopyFileError Open before any COPY starts", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const err = yield* Effect.flip(copyToFile(conn, "copy (select 1) to stdout", dir))
      assert.strictEqual(err._tag, "CopyFileError")
      if (err._tag === "CopyFileError") assert.strictEqual(err.reason, "Open")
      const r = yield* conn.query("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
    }))

  it.live("a write error (a full disk) cancels the COPY and fails with CopyFileError Write; the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const before = openFds()
      // /dev/full fails every write with ENOSPC; the query would run for minutes if it were not cancelled.
      const started = Date.now()
      const err = yield* Effect.flip(copyToFile(conn, "copy (select generate_series(1, 100000000), repeat('x', 100)) to stdout", "/dev/full"))
      assert.strictEqual(err._tag, "CopyFileError")
      if (err._tag === "CopyFileError") {
        assert.strictEqual(err.reason, "Write")
        assert.match(err.message, /\/dev\/full/)
      }
      assert.isBelow(Date.now() - started, 10_000)
      assert.strictEqual(openFds(), before, "the file was closed")
      assert.strictEqual(conn.transactionStatus(), "I")
      const r = yield* conn.query("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
    }))

  it.live("a server error mid-copy fails with it; the rows received before it are in the file; the connection stays usable", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const out = Path.join(dir, "partial.tsv")
      const before = openFds()
      for (const blockingWrites of [true, false]) {
        const err = yield* Effect.flip(
          copyToFile(conn, "copy (select i, 1 / (i - 50000) from generate_series(1, 60000) i) to stdout", out, { blockingWrites })
        )
        assert.strictEqual(err._tag, "PgServerError")
        if (err._tag === "PgServerError") assert.strictEqual(err.code, "22012")
        assert.strictEqual(openFds(), before, "the file was closed")
        // Rows 1..49,999 were sent before the error (1 / (i - 50000) is 0 but for the last, -1).
        const lines = Fs.readFileSync(out, "utf8").split("\n")
        assert.strictEqual(lines.length - 1, 49_999)
        assert.strictEqual(lines[0], "1\t0")
        assert.strictEqual(lines[49_998], "49999\t-1")
      }
      const r = yield* conn.query("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
    }))

  it.live("interrupting it cancels the COPY on the server within 1 s, closes the file, and the next query works", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const watcher = yield* open()
      const pid = conn.info.processId
      const before = openFds()
      const fiber = yield* Effect.forkChild(
        copyToFile(conn, "copy (select generate_series(1, 100000000), repeat('x', 100)) to stdout", "/dev/null")
      )
      yield* Effect.sleep("300 millis")
      assert.isUndefined(fiber.pollUnsafe(), "the copy was still running when interrupted")
      yield* Fiber.interrupt(fiber)
      const stoppedAt = Date.now()
      let state = ""
      while (Date.now() - stoppedAt < 1000) {
        const r = yield* watcher.query<{ state: string }>("select state from pg_stat_activity where pid = $1", [pid])
        state = r.rows[0]?.state ?? "gone"
        if (state !== "active") break
        yield* Effect.sleep("20 millis")
      }
      assert.notStrictEqual(state, "active", "the backend stopped within 1 s")
      assert.strictEqual(openFds(), before, "the file was closed")
      const r = yield* conn.query("select 1 as one")
      assert.deepStrictEqual(r.rows, [{ one: 1 }])
    }))
})
