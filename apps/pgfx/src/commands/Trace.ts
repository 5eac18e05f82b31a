/**
 * `pgfx trace`: a protocol tracing proxy. Clients (psql, pgbench, any driver) connect to a local port;
 * every session is forwarded to the server and every message in both directions is printed decoded,
 * one line each (or NDJSON), with the time since the session started.
 *
 * Invariants:
 * - Messages are forwarded unchanged and in order: the client's exact chunks after startup, the server's
 *   frame by frame. The one exception: over a TLS link to the server, AuthenticationSASL loses its
 *   `-PLUS` mechanisms (channel binding cannot cross a proxy that ends TLS, and libpq refuses a -PLUS
 *   offer on a plain connection); the trace says so. Decoding is a side path: a message the codec
 *   cannot decode is printed as such and forwarding goes on.
 * - The client side is plain TCP: the proxy answers SSLRequest and GSSENCRequest with 'N'. The server
 *   side uses TLS when the target's sslmode asks for it (require/verify-*: must; prefer: if offered), so
 *   a TLS-only server can be traced. CancelRequests are forwarded on their own connection like psql's.
 * - Secrets are never printed: password messages and SASL payloads are shown by size only.
 * - One session's end (either side closing) closes the other side; the proxy keeps serving others.
 *   Ctrl-C closes the listener and every session, and exits 0.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Tls from "node:tls"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Command, Flag } from "effect/cli"
import type { PasswordContext } from "@pgfx/codec/Auth"
import { decodeBackend } from "@pgfx/codec/BackendMessage"
import { Framer } from "@pgfx/codec/Frame"
import { decodeFrontend } from "@pgfx/codec/FrontendMessage"
import { decodeStartupPacket } from "@pgfx/codec/Startup"
import { type PgConfig, resolve as resolveConfig } from "@pgfx/connection/PgConfig"
import { conninfoArgument, connectionFlags, toConfigInput } from "../ConnectionFlags.ts"
import { parseDurationMs } from "../Duration.ts"
import { CliFailure, UsageError } from "../Errors.ts"
import { ioFailure } from "../Output.ts"
import { markStopIsClean } from "../Shutdown.ts"

type Direction = "F" | "B"

const SECRET_TAGS = new Set(["PasswordMessage", "SASLInitialResponse", "SASLResponse", "GSSResponse", "AuthenticationSASLContinue", "AuthenticationSASLFinal"])

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** A byte array as text when it is printable UTF-8, else hex; long values are cut. */
const bytesText = (b: Uint8Array, limit: number): string => {
  const shown = b.length > limit ? b.subarray(0, limit) : b
  let text: string
  try {
    text = utf8.decode(shown)
    if (/[\u0000-\u0008\u000e-\u001f]/.test(text)) throw new Error("binary")
  } catch {
    text = "\\x" + Buffer.from(shown).toString("hex")
  }
  return b.length > limit ? `${text}…(${b.length} bytes)` : text
}

/** The message's fields as plain JSON-able values (bytes as text or hex, secrets by size only). */
export const messageFields = (m: Record<string, unknown>, limit = 64): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  const secret = SECRET_TAGS.has(m["_tag"] as string)
  const convert = (v: unknown): unknown => {
    if (v instanceof Uint8Array) return secret ? `<${v.length} bytes>` : bytesText(v, limit)
    if (typeof v === "bigint") return v.toString()
    if (Array.isArray(v)) return v.map(convert)
    if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, convert(x)]))
    if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, convert(x)]))
    return v
  }
  for (const [k, v] of Object.entries(m)) {
    if (k === "_tag") continue
    out[k] = secret && (k === "password" || typeof v === "string") ? "<redacted>" : convert(v)
  }
  return out
}

const compactFields = (fields: Record<string, unknown>): string => {
  const parts: Array<string> = []
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue
    parts.push(`${k}=${JSON.stringify(v)}`)
  }
  const line = parts.join(" ")
  return line.length > 400 ? `${line.slice(0, 400)}…` : line
}

interface TraceOptions {
  readonly format: "text" | "ndjson"
  readonly write: (line: string) => void
  readonly limit: number
}

/** A typed frame's bytes: type, length, body. */
const frameBytes = (type: number, buf: Uint8Array, start: number, end: number): Uint8Array => {
  const out = Buffer.allocUnsafe(end - start + 5)
  out[0] = type
  out.writeInt32BE(end - start + 4, 1)
  out.set(buf.subarray(start, end), 5)
  return out
}

/** AuthenticationSASL without the channel-binding (-PLUS) mechanisms, or undefined if it is not one / has none. */
const withoutPlusMechanisms = (buf: Uint8Array, start: number, end: number): Uint8Array | undefined => {
  if (end - start < 4 || new DataView(buf.buffer, buf.byteOffset + start, 4).getInt32(0) !== 10) return undefined
  const names = Buffer.from(buf.subarray(start + 4, end)).toString("utf8").split("\0").filter((n) => n.length > 0)
  if (!names.some((n) => n.endsWith("-PLUS"))) return undefined
  const kept = names.filter((n) => !n.endsWith("-PLUS"))
  const body = Buffer.concat([Buffer.from([0, 0, 0, 10]), ...kept.map((n) => Buffer.from(n + "\0", "utf8")), Buffer.from([0])])
  return frameBytes(0x52, body, 0, body.length)
}

/** One proxied session. */
const session = (client: Net.Socket, id: number, target: PgConfig, options: TraceOptions) => {
  const started = process.hrtime.bigint()
  const host = target.hosts[0]!
  const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6
  let lastFrontend = 0

  const print = (dir: Direction, type: string, fields: Record<string, unknown>, size: number) => {
    const t = elapsedMs()
    const sinceRequest = dir === "B" ? t - lastFrontend : 0
    if (dir === "F") lastFrontend = t
    if (options.format === "ndjson") {
      options.write(JSON.stringify({ session: id, t_ms: Number(t.toFixed(3)), dir: dir === "F" ? "frontend" : "backend", type, size, ...(dir === "B" ? { since_request_ms: Number(sinceRequest.toFixed(3)) } : {}), fields }))
    } else {
      const arrow = dir === "F" ? "F→B" : "B→F"
      const timing = dir === "B" ? ` (+${sinceRequest.toFixed(3)})` : ""
      options.write(`#${id} ${t.toFixed(3).padStart(10)} ms${timing.padEnd(12)} ${arrow} ${type} ${compactFields(fields)}`.trimEnd())
    }
  }
  const note = (text: string) => {
    if (options.format === "ndjson") options.write(JSON.stringify({ session: id, t_ms: Number(elapsedMs().toFixed(3)), event: text }))
    else options.write(`#${id} ${elapsedMs().toFixed(3).padStart(10)} ms ${text}`)
  }

  let passwordContext: PasswordContext = "password"
  const frontend = new Framer({ mode: "untyped" })
  const backend = new Framer({ mode: "typed" })
  let frontendBroken = false
  let backendBroken = false
  let startupDone = false
  let server: Net.Socket | undefined
  const pendingToServer: Array<Uint8Array> = []
  let closed = false

  const close = (why: string) => {
    if (closed) return
    closed = true
    note(`session closed (${why})`)
    client.destroy()
    server?.destroy()
  }

  const toServer = (bytes: Uint8Array) => {
    if (server === undefined) pendingToServer.push(bytes)
    else server.write(bytes)
  }

  const onBackendFrame = (type: number, buf: Uint8Array, start: number, end: number) => {
    try {
      const m = decodeBackend(type, buf, start, end) as unknown as Record<string, unknown>
      const tag = m["_tag"] as string
      if (tag === "AuthenticationSASL") passwordContext = "sasl-initial"
      else if (tag === "AuthenticationSASLContinue") passwordContext = "sasl"
      else if (tag === "AuthenticationGSS" || tag === "AuthenticationSSPI") passwordContext = "gss"
      else if (tag === "AuthenticationCleartextPassword" || tag === "AuthenticationMD5Password") passwordContext = "password"
      print("B", tag, messageFields(m, options.limit), end - start + 5)
    } catch (e) {
      print("B", `undecodable '${String.fromCharCode(type)}'`, { error: e instanceof Error ? e.message : String(e) }, end - start + 5)
    }
  }

  const onFrontendFrame = (type: number, buf: Uint8Array, start: number, end: number) => {
    if (type === 0) {
      // Untyped: startup packets, before the session starts.
      let packet
      try {
        packet = decodeStartupPacket(buf, start, end)
      } catch (e) {
        print("F", "undecodable startup packet", { error: e instanceof Error ? e.message : String(e) }, end - start + 4)
        close("bad startup packet")
        return
      }
      print("F", packet._tag, messageFields(packet as unknown as Record<string, unknown>, options.limit), end - start + 4)
      if (packet._tag === "SSLRequest" || packet._tag === "GSSENCRequest") {
        client.write("N")
        note(`answered ${packet._tag} with 'N' (the client side is plain TCP)`)
        return
      }
      const length = end - start + 4
      const bytes = new Uint8Array(length)
      new DataView(bytes.buffer).setInt32(0, length)
      bytes.set(buf.subarray(start, end), 4)
      toServer(bytes)
      if (packet._tag === "StartupMessage") {
        frontend.mode = "typed"
        startupDone = true
      }
      return
    }
    try {
      const m = decodeFrontend(type, buf, start, end, passwordContext) as unknown as Record<string, unknown>
      print("F", m["_tag"] as string, messageFields(m, options.limit), end - start + 5)
    } catch (e) {
      print("F", `undecodable '${String.fromCharCode(type)}'`, { error: e instanceof Error ? e.message : String(e) }, end - start + 5)
    }
  }

  client.on("data", (chunk: Buffer) => {
    if (startupDone) toServer(chunk)
    if (frontendBroken) {
      if (!startupDone) close("undecodable client data before startup")
      return
    }
    const wasStarted = startupDone
    let afterStartup: Uint8Array | undefined
    try {
      frontend.push(chunk, (type, buf, start, end) => {
        onFrontendFrame(type, buf, start, end)
        // Bytes after the StartupMessage in the same buffer are regular traffic (the framer goes on
        // decoding them in typed mode); forward them as they are.
        if (!wasStarted && startupDone && afterStartup === undefined) afterStartup = buf.subarray(end)
      })
    } catch (e) {
      frontendBroken = true
      note(`client stream no longer decodable: ${e instanceof Error ? e.message : String(e)}`)
    }
    if (afterStartup !== undefined && afterStartup.length > 0) toServer(afterStartup)
  })
  client.on("error", (e) => close(`client error: ${e.message}`))
  client.on("close", () => close("client closed"))

  // Connect to the server (optionally over TLS), then flush what the client already sent.
  const connectUpstream = (): void => {
    const raw = host.kind === "unix"
      ? Net.connect({ path: `${host.host}/.s.PGSQL.${host.port}` })
      : Net.connect({ host: host.hostaddr ?? host.host, port: host.port })
    raw.on("error", (e) => close(`server error: ${e.message}`))
    const wantTls = host.kind !== "unix" && target.sslMode !== "disable" && target.sslMode !== "allow"
    const ready = (socket: Net.Socket, tls: boolean) => {
      server = socket
      note(`connected to ${host.kind === "unix" ? host.host : `${host.host}:${host.port}`}${tls ? " over TLS" : ""}`)
      socket.on("data", (chunk: Buffer) => {
        if (backendBroken) {
          client.write(chunk)
          return
        }
        const out: Array<Uint8Array> = []
        try {
          backend.push(chunk, (type, buf, start, end) => {
            const replaced = tls && type === 0x52 ? withoutPlusMechanisms(buf, start, end) : undefined
            if (replaced !== undefined) note("removed the -PLUS SASL mechanisms from AuthenticationSASL (no channel binding through the proxy)")
            out.push(replaced ?? frameBytes(type, buf, start, end))
            onBackendFrame(type, buf, start, end)
          })
        } catch (e) {
          backendBroken = true
          note(`server stream no longer decodable: ${e instanceof Error ? e.message : String(e)}`)
          const rest = backend.drain()
          if (rest.length > 0) out.push(rest)
        }
        if (out.length === 1) client.write(out[0]!)
        else if (out.length > 1) client.write(Buffer.concat(out))
      })
      socket.on("close", () => close("server closed"))
      socket.on("error", (e) => close(`server error: ${e.message}`))
      for (const b of pendingToServer.splice(0)) socket.write(b)
    }
    if (!wantTls) {
      raw.once("connect", () => ready(raw, false))
      return
    }
    raw.once("connect", () => {
      const request = Buffer.alloc(8)
      request.writeInt32BE(8, 0)
      request.writeInt32BE(80877103, 4)
      raw.write(request)
      raw.once("data", (answer: Buffer) => {
        if (answer[0] === 0x53) {
          const verify = target.sslMode === "verify-ca" || target.sslMode === "verify-full"
          const tls = Tls.connect({
            socket: raw,
            rejectUnauthorized: verify,
            ...(target.sslRootCert !== undefined && target.sslRootCert !== "system" ? { ca: Fs.readFileSync(target.sslRootCert) } : {}),
            ...(target.sslMode === "verify-full" ? {} : { checkServerIdentity: () => undefined }),
            ...(Net.isIP(host.host) === 0 ? { servername: host.host } : {})
          })
          tls.once("secureConnect", () => ready(tls, true))
          tls.on("error", (e) => close(`TLS to the server failed: ${e.message}`))
        } else if (target.sslMode === "prefer") {
          ready(raw, false)
        } else {
          close(`the server refused TLS and sslmode is ${target.sslMode}`)
        }
      })
    })
  }
  note(`client connected from ${client.remoteAddress ?? "?"}:${client.remotePort ?? "?"}`)
  connectUpstream()
  return close
}

const flags = {
  conninfo: conninfoArgument,
  ...connectionFlags,
  listen: Flag.Int("listen").pipe(Flag.withAlias("l"), Flag.withDescription("local port to listen on (default: a free port, printed at start)"), Flag.withDefault(0)),
  bind: Flag.String("bind").pipe(Flag.withDescription("local address to listen on (default 127.0.0.1)"), Flag.withDefault("127.0.0.1")),
  format: Flag.Literals("format", ["text", "ndjson"] as const).pipe(Flag.withDescription("one line per message as text (default) or NDJSON"), Flag.withDefault("text" as const)),
  output: Flag.String("output").pipe(Flag.withAlias("o"), Flag.withDescription("write the trace to this file instead of stdout"), Flag.optional),
  limit: Flag.Int("limit").pipe(Flag.withDescription("bytes of each value shown before it is cut (default 64)"), Flag.withDefault(64)),
  duration: Flag.String("duration").pipe(Flag.withDescription("stop after this long (default: until Ctrl-C)"), Flag.optional)
}

export const command = Command.make("trace", flags, (args) =>
  Effect.scoped(
    Effect.gen(function*() {
      markStopIsClean()
      let durationMs: number | undefined
      if (Option.isSome(args.duration)) {
        durationMs = parseDurationMs(args.duration.value)
        if (durationMs === undefined) return yield* Effect.fail(new UsageError({ message: `--duration: cannot read "${args.duration.value}"` }))
      }
      const target = yield* resolveConfig(toConfigInput(args.conninfo, args))
      const host = target.hosts[0]!
      let fd = 1
      if (Option.isSome(args.output)) {
        const path = args.output.value
        fd = yield* Effect.acquireRelease(
          Effect.try({ try: () => Fs.openSync(path, "a"), catch: (e) => ioFailure(`cannot open ${path}`, e) }),
          (f) => Effect.sync(() => Fs.closeSync(f))
        )
      }
      let writeError: unknown
      const write = (line: string) => {
        if (writeError !== undefined) return
        try {
          Fs.writeSync(fd, line + "\n")
        } catch (e) {
          writeError = e
        }
      }
      const closers = new Set<(why: string) => void>()
      let sessions = 0
      const listener = yield* Effect.acquireRelease(
        Effect.callback<Net.Server, CliFailure>((resume) => {
          const srv = Net.createServer((socket) => {
            const close = session(socket, ++sessions, target, { format: args.format, write, limit: args.limit })
            closers.add(close)
            socket.once("close", () => closers.delete(close))
          })
          srv.once("error", (e) => resume(Effect.fail(new CliFailure({ message: `cannot listen on ${args.bind}:${args.listen}: ${e.message}`, cause: e }))))
          srv.listen(args.listen, args.bind, () => resume(Effect.succeed(srv)))
        }),
        (srv) =>
          Effect.callback<void>((resume) => {
            for (const close of closers) close("proxy stopping")
            srv.close(() => resume(Effect.void))
          })
      )
      const address = listener.address() as Net.AddressInfo
      const upstream = host.kind === "unix" ? `${host.host}/.s.PGSQL.${host.port}` : `${host.host}:${host.port}`
      process.stderr.write(
        `pgfx trace: listening on ${address.address}:${address.port} → ${upstream}${host.kind !== "unix" && target.sslMode !== "disable" ? ` (sslmode ${target.sslMode})` : ""}\n`
      )
      const failOnWriteError = Effect.gen(function*() {
        while (writeError === undefined) yield* Effect.sleep("100 millis")
        return yield* Effect.fail(ioFailure(`cannot write ${Option.getOrElse(args.output, () => "stdout")}`, writeError))
      })
      const until = durationMs === undefined ? Effect.never : Effect.sleep(Duration.millis(durationMs))
      yield* Effect.raceFirst(until, failOnWriteError)
    })
  )).pipe(
    Command.withDescription(
      "A protocol tracing proxy: listens on a local port, forwards to the server (TLS when sslmode asks), and prints every message in both directions decoded, with timings."
    ),
    Command.withExamples([
      { command: "pgfx trace -h db.example.com -p 5432 --listen 6432", description: "then: psql -h 127.0.0.1 -p 6432 app" },
      { command: "pgfx trace 'host=db sslmode=require' --listen 6432 --format ndjson -o trace.ndjson", description: "NDJSON to a file, TLS to the server" },
      { command: "pgfx trace -h /var/run/postgresql --listen 6432", description: "trace a server on its Unix socket" }
    ])
  )
