/**
 * Captures golden protocol bytes from a live PostgreSQL 18 for packages/codec/test/Golden.test.ts.
 *
 *   node scripts/capture-golden.ts
 *
 * Starts a throw-away server (testing/src/TestServer.ts), connects over its Unix socket with trust
 * auth using only the codec's own encoders, framer and decoders and a `node:net` socket, and for
 * each exchange records the raw server bytes (`<name>.bin`) and the client bytes sent
 * (`<name>.client.bin`) into packages/codec/test/fixtures/golden/, with `index.json` describing
 * each. Every exchange's message tags are checked against a hand-written pattern before anything
 * is written, so a fixture never records something unexpected.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import type { BackendMessage } from "../packages/codec/src/BackendMessage.ts"
import { decodeBackend } from "../packages/codec/src/BackendMessage.ts"
import { Framer } from "../packages/codec/src/Frame.ts"
import type { FrontendMessage } from "../packages/codec/src/FrontendMessage.ts"
import { encodeFrontend } from "../packages/codec/src/FrontendMessage.ts"
import { Writer } from "../packages/codec/src/internal/Writer.ts"
import { startTestServer } from "../testing/src/TestServer.ts"
import type { TestServerInfo } from "../testing/src/TestServer.ts"

const OUT_DIR = Path.join(import.meta.dirname, "..", "packages", "codec", "test", "fixtures", "golden")
const utf8 = new TextEncoder()
const bytes = (s: string) => utf8.encode(s)
const int32 = (v: number) => Uint8Array.of((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff)

/** One connection: frames and decodes what the server sends, records raw bytes while asked to. */
class Session {
  private readonly framer = new Framer()
  private readonly inbox: Array<BackendMessage> = []
  private wake: (() => void) | undefined
  private failure: Error | undefined
  serverBytes: Array<Uint8Array> = []
  clientBytes: Array<Uint8Array> = []
  recording = false
  private readonly socket: Net.Socket

  constructor(socket: Net.Socket) {
    this.socket = socket
    socket.on("data", (chunk: Buffer) => {
      try {
        this.framer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength), (type, buf, start, end) => {
          // The header (type + length) sits just before the body in the same buffer.
          if (this.recording) this.serverBytes.push(buf.slice(start - 5, end))
          this.inbox.push(decodeBackend(type, buf, start, end))
        })
      } catch (e) {
        this.failure = e as Error
      }
      this.wake?.()
    })
    socket.on("close", () => {
      this.failure ??= new Error("server closed the connection")
      this.wake?.()
    })
    socket.on("error", (e) => {
      this.failure = e
      this.wake?.()
    })
  }

  static open(info: TestServerInfo): Promise<Session> {
    return new Promise((resolve, reject) => {
      const socket = Net.connect(Path.join(info.socketDir, `.s.PGSQL.${info.port}`))
      socket.once("connect", () => resolve(new Session(socket)))
      socket.once("error", reject)
    })
  }

  send(messages: ReadonlyArray<FrontendMessage>): void {
    const w = new Writer()
    for (const m of messages) encodeFrontend(w, m)
    const out = w.take().slice()
    if (this.recording) this.clientBytes.push(out)
    this.socket.write(out)
  }

  /** Messages up to and including the first one `done` accepts. */
  async until(done: (m: BackendMessage) => boolean): Promise<Array<BackendMessage>> {
    const out: Array<BackendMessage> = []
    const deadline = Date.now() + 15_000
    while (true) {
      while (this.inbox.length > 0) {
        const m = this.inbox.shift()!
        out.push(m)
        if (done(m)) return out
      }
      if (this.failure !== undefined) throw this.failure
      if (Date.now() > deadline) throw new Error(`timed out; got ${out.map((m) => m._tag).join(", ")}`)
      await new Promise<void>((resolve) => {
        this.wake = resolve
        setTimeout(resolve, 100)
      })
      this.wake = undefined
    }
  }

  /** Messages up to the `n`th ReadyForQuery. */
  async readyForQuery(n = 1): Promise<Array<BackendMessage>> {
    let seen = 0
    return this.until((m) => m._tag === "ReadyForQuery" && ++seen === n)
  }

  close(): void {
    this.socket.end()
  }
}

interface Exchange {
  readonly name: string
  readonly description: string
  /** Regular expression over the comma-joined tags the server sends (anchored). */
  readonly expect: string
  /** Connection options; default: protocol 3.2, normal (non-replication) connection. */
  readonly minorVersion?: number
  readonly extraParameters?: Record<string, string>
  /** Not recorded: runs after startup. */
  readonly setup?: (s: Session) => Promise<void>
  /** Recorded (unless `recordStartup`, which records the startup itself and runs nothing else). */
  readonly run?: (s: Session) => Promise<void>
}

const simple = (sql: string, readyCount = 1) => async (s: Session) => {
  s.send([{ _tag: "Query", sql }])
  await s.readyForQuery(readyCount)
}

const STARTUP_PATTERN = "AuthenticationOk,(ParameterStatus,)+BackendKeyData,ReadyForQuery"

const exchanges: ReadonlyArray<Exchange> = [
  {
    name: "startup-3.2",
    description: "StartupMessage (protocol 3.2, trust auth) through ReadyForQuery; 3.2 sends a 32-byte cancel key",
    expect: STARTUP_PATTERN
  },
  {
    name: "startup-3.0",
    description: "StartupMessage (protocol 3.0) through ReadyForQuery; 4-byte cancel key",
    minorVersion: 0,
    expect: STARTUP_PATTERN
  },
  {
    name: "startup-negotiate",
    description: "StartupMessage asking for 3.9 with an unknown _pq_ option: NegotiateProtocolVersion first",
    minorVersion: 9,
    extraParameters: { "_pq_.pgfx_unknown": "1" },
    expect: "NegotiateProtocolVersion,AuthenticationOk,(ParameterStatus,)+BackendKeyData,ReadyForQuery"
  },
  {
    name: "simple-multi",
    description: "one Query with several statements: a SELECT, a NOTICE from DO, an error (division by zero) that aborts the rest",
    run: simple(
      "SELECT 1 AS a, 'x'::text AS b, NULL::int AS c; DO $$BEGIN RAISE NOTICE 'hello %', 42; END$$; SELECT 1/0; SELECT 'never'"
    ),
    expect: "RowDescription,DataRow,CommandComplete,NoticeResponse,CommandComplete,ErrorResponse,ReadyForQuery"
  },
  {
    name: "simple-failed-transaction",
    description: "BEGIN; a failing statement (ReadyForQuery 'E'); then ROLLBACK (ReadyForQuery 'I')",
    run: async (s) => {
      await simple("BEGIN; SELECT * FROM no_such_table")(s)
      await simple("ROLLBACK")(s)
    },
    expect: "CommandComplete,ErrorResponse,ReadyForQuery,CommandComplete,ReadyForQuery"
  },
  {
    name: "simple-rows",
    description: "a SELECT of several rows and types (text format), and a transaction block ('T')",
    run: async (s) => {
      await simple(
        "BEGIN; SELECT g AS n, repeat('ab', g) AS s, g::float8 / 3 AS f, now() IS NOT NULL AS b FROM generate_series(1, 5) g"
      )(s)
      await simple("COMMIT")(s)
    },
    expect: "CommandComplete,RowDescription,(DataRow,){5}CommandComplete,ReadyForQuery,CommandComplete,ReadyForQuery"
  },
  {
    name: "extended-text",
    description: "Parse/Bind/Describe(S and P)/Execute/Sync with text parameters and results, unnamed statement",
    run: async (s) => {
      s.send([
        { _tag: "Parse", name: "", query: "SELECT $1::int4 + 1 AS n, $2::text AS t", parameterTypes: [23, 25] },
        { _tag: "Describe", kind: "S", name: "" },
        {
          _tag: "Bind",
          portal: "",
          statement: "",
          parameterFormats: [],
          parameters: [bytes("41"), bytes("héllo")],
          resultFormats: []
        },
        { _tag: "Describe", kind: "P", name: "" },
        { _tag: "Execute", portal: "", maxRows: 0 },
        { _tag: "Sync" }
      ])
      await s.readyForQuery()
    },
    expect: "ParseComplete,ParameterDescription,RowDescription,BindComplete,RowDescription,DataRow,CommandComplete,ReadyForQuery"
  },
  {
    name: "extended-binary",
    description: "named statement, binary parameters and results, Execute with maxRows (PortalSuspended), Close, NoData",
    run: async (s) => {
      s.send([
        {
          _tag: "Parse",
          name: "s1",
          query: "SELECT g, $1::int4 * g AS m, $2::bytea AS b FROM generate_series(1, 3) g",
          parameterTypes: [23, 17]
        },
        {
          _tag: "Bind",
          portal: "p1",
          statement: "s1",
          parameterFormats: [1],
          parameters: [int32(7), Uint8Array.of(0, 1, 2, 255)],
          resultFormats: [1]
        },
        { _tag: "Describe", kind: "P", name: "p1" },
        { _tag: "Execute", portal: "p1", maxRows: 2 },
        { _tag: "Execute", portal: "p1", maxRows: 0 },
        { _tag: "Close", kind: "P", name: "p1" },
        { _tag: "Close", kind: "S", name: "s1" },
        { _tag: "Parse", name: "", query: "SET application_name = 'golden'", parameterTypes: [] },
        { _tag: "Bind", portal: "", statement: "", parameterFormats: [], parameters: [], resultFormats: [] },
        { _tag: "Describe", kind: "P", name: "" },
        { _tag: "Execute", portal: "", maxRows: 0 },
        { _tag: "Parse", name: "", query: "SELECT NULL::int4 AS nothing", parameterTypes: [] },
        { _tag: "Bind", portal: "", statement: "", parameterFormats: [], parameters: [], resultFormats: [1] },
        { _tag: "Execute", portal: "", maxRows: 0 },
        { _tag: "Sync" }
      ])
      await s.readyForQuery()
    },
    expect:
      "ParseComplete,BindComplete,RowDescription,DataRow,DataRow,PortalSuspended,DataRow,CommandComplete," +
      "CloseComplete,CloseComplete,ParseComplete,BindComplete,NoData,CommandComplete," +
      // The changed application_name is reported once the server is about to go idle.
      "ParseComplete,BindComplete,DataRow,CommandComplete,ParameterStatus,ReadyForQuery"
  },
  {
    name: "extended-error",
    description: "an error during Bind (invalid input): the rest is skipped up to Sync",
    run: async (s) => {
      s.send([
        { _tag: "Parse", name: "", query: "SELECT $1::int4", parameterTypes: [] },
        { _tag: "Bind", portal: "", statement: "", parameterFormats: [], parameters: [bytes("nope")], resultFormats: [] },
        { _tag: "Execute", portal: "", maxRows: 0 },
        { _tag: "Sync" }
      ])
      await s.readyForQuery()
    },
    expect: "ParseComplete,ErrorResponse,ReadyForQuery"
  },
  {
    name: "copy-out",
    description: "COPY ... TO STDOUT, text and binary",
    run: async (s) => {
      await simple("COPY (SELECT g, 'row ' || g FROM generate_series(1, 3) g) TO STDOUT")(s)
      await simple("COPY (SELECT g, 'row ' || g FROM generate_series(1, 2) g) TO STDOUT WITH (FORMAT binary)")(s)
    },
    expect:
      "CopyOutResponse,(CopyData,){3}CopyDone,CommandComplete,ReadyForQuery," +
      "CopyOutResponse,(CopyData,){2,4}CopyDone,CommandComplete,ReadyForQuery"
  },
  {
    name: "copy-in",
    description: "COPY ... FROM STDIN: CopyInResponse, client CopyData/CopyDone; then a COPY aborted with CopyFail",
    setup: simple("CREATE TEMP TABLE golden_copy (n int, s text)"),
    run: async (s) => {
      s.send([{ _tag: "Query", sql: "COPY golden_copy FROM STDIN" }])
      await s.until((m) => m._tag === "CopyInResponse")
      s.send([
        { _tag: "CopyData", data: bytes("1\tone\n2\ttwo\n") },
        { _tag: "CopyData", data: bytes("3\tthree\n") },
        { _tag: "CopyDone" }
      ])
      await s.readyForQuery()
      s.send([{ _tag: "Query", sql: "COPY golden_copy FROM STDIN" }])
      await s.until((m) => m._tag === "CopyInResponse")
      s.send([{ _tag: "CopyData", data: bytes("4\tfour\n") }, { _tag: "CopyFail", message: "client gave up" }])
      await s.readyForQuery()
    },
    expect: "CopyInResponse,CommandComplete,ReadyForQuery,CopyInResponse,ErrorResponse,ReadyForQuery"
  },
  {
    name: "notify",
    description: "LISTEN and NOTIFY to itself in one Query: NotificationResponse before ReadyForQuery",
    run: simple("LISTEN golden; NOTIFY golden, 'payload ✓'"),
    expect: "CommandComplete,CommandComplete,NotificationResponse,ReadyForQuery"
  },
  (() => {
    // Looked up during setup (not recorded): OIDs of built-in functions are stable, but do not guess them.
    let md5Oid = 0
    let int4plOid = 0
    return {
      name: "function-call",
      description: "FunctionCall of int4pl (binary), md5(text) (text), and int4pl with a NULL argument (NULL result)",
      setup: async (s: Session) => {
        s.send([{ _tag: "Query", sql: "SELECT 'md5(text)'::regprocedure::oid, 'int4pl(int4,int4)'::regprocedure::oid" }])
        const row = (await s.readyForQuery()).find((m) => m._tag === "DataRow")!
        const text = (v: Uint8Array | null | undefined) => Number(new TextDecoder().decode(v!))
        md5Oid = text(row.values[0])
        int4plOid = text(row.values[1])
      },
      run: async (s: Session) => {
        s.send([
          { _tag: "FunctionCall", functionOid: int4plOid, argumentFormats: [1], arguments: [int32(40), int32(2)], resultFormat: 1 }
        ])
        await s.readyForQuery()
        s.send([{ _tag: "FunctionCall", functionOid: md5Oid, argumentFormats: [], arguments: [bytes("abc")], resultFormat: 0 }])
        await s.readyForQuery()
        // int4pl is strict: a NULL argument gives a NULL result.
        s.send([
          { _tag: "FunctionCall", functionOid: int4plOid, argumentFormats: [1], arguments: [null, int32(2)], resultFormat: 1 }
        ])
        await s.readyForQuery()
      },
      expect: "FunctionCallResponse,ReadyForQuery,FunctionCallResponse,ReadyForQuery,FunctionCallResponse,ReadyForQuery"
    }
  })(),
  {
    name: "empty-query",
    description: "an empty query string: EmptyQueryResponse instead of CommandComplete",
    run: simple(""),
    expect: "EmptyQueryResponse,ReadyForQuery"
  },
  {
    name: "show",
    description: "SHOW client_encoding, and SHOW of a setting that does not exist (an error)",
    run: async (s) => {
      await simple("SHOW client_encoding")(s)
      await simple("SHOW pgfx.no_such_setting")(s)
    },
    expect: "RowDescription,DataRow,CommandComplete,ReadyForQuery,ErrorResponse,ReadyForQuery"
  },
  {
    name: "replication-identify-system",
    description: "a replication=database connection running IDENTIFY_SYSTEM",
    extraParameters: { replication: "database" },
    run: simple("IDENTIFY_SYSTEM"),
    expect: "RowDescription,DataRow,CommandComplete,ReadyForQuery"
  }
]

interface FixtureIndexEntry {
  readonly name: string
  readonly description: string
  readonly server: string
  readonly client: string
  readonly tags: ReadonlyArray<string>
  readonly recordsStartup: boolean
  readonly minorVersion: number
}

const capture = async (info: TestServerInfo, x: Exchange): Promise<FixtureIndexEntry> => {
  const s = await Session.open(info)
  const minorVersion = x.minorVersion ?? 2
  const recordsStartup = x.run === undefined
  s.recording = recordsStartup
  s.send([
    {
      _tag: "StartupMessage",
      majorVersion: 3,
      minorVersion,
      parameters: {
        user: info.superuser,
        database: info.database,
        client_encoding: "UTF8",
        application_name: "pgfx-golden",
        ...x.extraParameters
      }
    }
  ])
  await s.readyForQuery()
  if (!recordsStartup) {
    await x.setup?.(s)
    s.recording = true
    await x.run!(s)
  }
  s.recording = false
  s.send([{ _tag: "Terminate" }])
  s.close()

  const server = concat(s.serverBytes)
  const client = concat(s.clientBytes)
  const messages: Array<BackendMessage> = []
  new Framer().push(server, (type, buf, start, end) => messages.push(decodeBackend(type, buf, start, end)))
  const tags = messages.map((m) => m._tag)
  if (!new RegExp(`^(?:${x.expect}),$`).test(tags.join(",") + ",")) {
    const errors = messages.flatMap((m) => (m._tag === "ErrorResponse" ? [m.fields.message] : []))
    throw new Error(`${x.name}: server sent ${tags.join(", ")}; expected /${x.expect}/; errors: ${errors.join("; ")}`)
  }
  Fs.writeFileSync(Path.join(OUT_DIR, `${x.name}.bin`), server)
  Fs.writeFileSync(Path.join(OUT_DIR, `${x.name}.client.bin`), client)
  return {
    name: x.name,
    description: x.description,
    server: `${x.name}.bin`,
    client: `${x.name}.client.bin`,
    tags,
    recordsStartup,
    minorVersion
  }
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const main = async () => {
  Fs.mkdirSync(OUT_DIR, { recursive: true })
  const server = await startTestServer({ version: 18 })
  try {
    const entries: Array<FixtureIndexEntry> = []
    for (const x of exchanges) {
      entries.push(await capture(server.info, x))
      console.log(`captured ${x.name}`)
    }
    const index = {
      regenerate: "node scripts/capture-golden.ts (starts a PostgreSQL 18 test server; rewrites every file here)",
      about:
        "Raw bytes from a live PostgreSQL 18 over its Unix socket: <name>.bin is what the server sent (whole " +
        "messages, type byte and length included), <name>.client.bin what the client sent (startup packets " +
        "untyped, then typed messages). When recordsStartup is false the startup exchange is not recorded.",
      capturedAt: new Date().toISOString(),
      fixtures: entries
    }
    Fs.writeFileSync(Path.join(OUT_DIR, "index.json"), JSON.stringify(index, null, 2) + "\n")
  } finally {
    await server.stop()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
