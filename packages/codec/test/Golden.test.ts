/**
 * Golden bytes captured from a live PostgreSQL 18 (see fixtures/golden/index.json;
 * `node scripts/capture-golden.ts` regenerates them). Every fixture must decode to the same
 * messages at every split point, carry the expected tags, and re-encode to the exact bytes.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { BackendMessage } from "../src/BackendMessage.ts"
import { decodeBackend, encodeBackend } from "../src/BackendMessage.ts"
import { Framer } from "../src/Frame.ts"
import type { FrontendMessage } from "../src/FrontendMessage.ts"
import { decodeFrontend, decodeStartupPacket, encodeFrontend } from "../src/FrontendMessage.ts"
import { scanDataRow } from "../src/Query.ts"
import { Writer } from "../src/internal/Writer.ts"

interface FixtureIndexEntry {
  readonly name: string
  readonly description: string
  readonly server: string
  readonly client: string
  readonly tags: ReadonlyArray<string>
  readonly recordsStartup: boolean
  readonly minorVersion: number
}

const DIR = Path.join(import.meta.dirname, "fixtures", "golden")
const index: { readonly fixtures: ReadonlyArray<FixtureIndexEntry> } = JSON.parse(
  Fs.readFileSync(Path.join(DIR, "index.json"), "utf8")
)
const read = (file: string) => new Uint8Array(Fs.readFileSync(Path.join(DIR, file)))
const text = (v: Uint8Array | null | undefined) => (v == null ? null : new TextDecoder().decode(v))

interface Decoded {
  readonly messages: Array<BackendMessage>
  /** Each message's bytes as the server sent them (type byte and length included). */
  readonly raw: Array<Uint8Array>
}

const decodeServer = (chunks: ReadonlyArray<Uint8Array>): Decoded => {
  const framer = new Framer()
  const messages: Array<BackendMessage> = []
  const raw: Array<Uint8Array> = []
  for (const chunk of chunks) {
    framer.push(chunk, (type, buf, start, end) => {
      const m = decodeBackend(type, buf, start, end)
      if (m._tag === "DataRow") assert.strictEqual(scanDataRow(buf, start, end, m.values.length), m.values.length)
      messages.push(m)
      raw.push(buf.slice(start - 5, end))
    })
  }
  assert.strictEqual(framer.buffered, 0)
  return { messages, raw }
}

const decodeClient = (bytes: Uint8Array, startup: boolean): Array<FrontendMessage> => {
  const framer = new Framer({ mode: startup ? "untyped" : "typed" })
  const out: Array<FrontendMessage> = []
  framer.push(bytes, (type, buf, start, end) => {
    if (type === 0) {
      out.push(decodeStartupPacket(buf, start, end))
      framer.mode = "typed"
    } else out.push(decodeFrontend(type, buf, start, end))
  })
  assert.strictEqual(framer.buffered, 0)
  return out
}

const find = <T extends BackendMessage["_tag"]>(ms: ReadonlyArray<BackendMessage>, tag: T) =>
  ms.filter((m): m is Extract<BackendMessage, { _tag: T }> => m._tag === tag)

/** What each exchange must contain beyond its tags: facts about the server's answers. */
const semantics: Record<string, (ms: ReadonlyArray<BackendMessage>) => void> = {
  "startup-3.2": (ms) => {
    const [key] = find(ms, "BackendKeyData")
    assert.strictEqual(key!.secretKey.length, 32)
    const params = Object.fromEntries(find(ms, "ParameterStatus").map((p) => [p.name, p.value]))
    expect(params).toMatchObject({ client_encoding: "UTF8", application_name: "pgfx-golden" })
    expect(params.server_version).toMatch(/^18\./)
  },
  "startup-3.0": (ms) => {
    assert.strictEqual(find(ms, "BackendKeyData")[0]!.secretKey.length, 4)
  },
  "startup-negotiate": (ms) => {
    expect(ms[0]).toEqual({ _tag: "NegotiateProtocolVersion", newestMinorVersion: 2, unrecognizedOptions: ["_pq_.pgfx_unknown"] })
  },
  "simple-multi": (ms) => {
    const [rd] = find(ms, "RowDescription")
    expect(rd!.fields.map((f) => [f.name, f.typeOid, f.format])).toEqual([["a", 23, 0], ["b", 25, 0], ["c", 23, 0]])
    expect(find(ms, "DataRow")[0]!.values.map(text)).toEqual(["1", "x", null])
    expect(find(ms, "NoticeResponse")[0]!.fields).toMatchObject({ severity: "NOTICE", code: "00000", message: "hello 42" })
    expect(find(ms, "ErrorResponse")[0]!.fields).toMatchObject({
      severity: "ERROR",
      code: "22012",
      message: "division by zero"
    })
    expect(find(ms, "CommandComplete").map((c) => c.tag)).toEqual(["SELECT 1", "DO"])
  },
  "simple-failed-transaction": (ms) => {
    expect(find(ms, "ReadyForQuery").map((r) => r.status)).toEqual(["E", "I"])
    expect(find(ms, "ErrorResponse")[0]!.fields).toMatchObject({ code: "42P01", position: "22" })
  },
  "simple-rows": (ms) => {
    expect(find(ms, "ReadyForQuery").map((r) => r.status)).toEqual(["T", "I"])
    expect(find(ms, "DataRow").map((r) => text(r.values[1]))).toEqual(["ab", "abab", "ababab", "abababab", "ababababab"])
  },
  "extended-text": (ms) => {
    expect(find(ms, "ParameterDescription")[0]!.parameterTypes).toEqual([23, 25])
    expect(find(ms, "DataRow")[0]!.values.map(text)).toEqual(["42", "héllo"])
  },
  "extended-binary": (ms) => {
    const rows = find(ms, "DataRow").slice(0, 3)
    expect(rows.map((r) => Array.from(r.values[1]!))).toEqual([[0, 0, 0, 7], [0, 0, 0, 14], [0, 0, 0, 21]])
    expect(Array.from(rows[0]!.values[2]!)).toEqual([0, 1, 2, 255])
    expect(find(ms, "RowDescription")[0]!.fields.map((f) => f.format)).toEqual([1, 1, 1])
    expect(find(ms, "DataRow")[3]!.values).toEqual([null])
  },
  "extended-error": (ms) => {
    expect(find(ms, "ErrorResponse")[0]!.fields).toMatchObject({ code: "22P02", routine: expect.any(String) })
  },
  "copy-out": (ms) => {
    expect(find(ms, "CopyOutResponse").map((c) => [c.format, c.columnFormats])).toEqual([[0, [0, 0]], [1, [1, 1]]])
    expect(find(ms, "CopyData").slice(0, 3).map((d) => text(d.data))).toEqual(["1\trow 1\n", "2\trow 2\n", "3\trow 3\n"])
  },
  "copy-in": (ms) => {
    expect(find(ms, "CommandComplete")[0]!.tag).toBe("COPY 3")
    expect(find(ms, "ErrorResponse")[0]!.fields.message).toContain("client gave up")
  },
  notify: (ms) => {
    expect(find(ms, "NotificationResponse")[0]).toMatchObject({ channel: "golden", payload: "payload ✓" })
  },
  "function-call": (ms) => {
    const results = find(ms, "FunctionCallResponse").map((r) => r.result)
    expect(Array.from(results[0]!)).toEqual([0, 0, 0, 42])
    expect(text(results[1])).toBe("900150983cd24fb0d6963f7d28e17f72")
    expect(results[2]).toBeNull()
  },
  "empty-query": (ms) => {
    expect(ms).toEqual([{ _tag: "EmptyQueryResponse" }, { _tag: "ReadyForQuery", status: "I" }])
  },
  show: (ms) => {
    expect(text(find(ms, "DataRow")[0]!.values[0])).toBe("UTF8")
    expect(find(ms, "RowDescription")[0]!.fields.map((f) => f.name)).toEqual(["client_encoding"])
    expect(find(ms, "ErrorResponse")[0]!.fields.code).toBe("42704")
  },
  "replication-identify-system": (ms) => {
    expect(find(ms, "RowDescription")[0]!.fields.map((f) => f.name)).toEqual(["systemid", "timeline", "xlogpos", "dbname"])
    const row = find(ms, "DataRow")[0]!.values.map(text)
    expect(row[0]).toMatch(/^\d+$/)
    expect(row[1]).toBe("1")
    expect(row[2]).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
    expect(row[3]).toEqual(expect.any(String)) // replication=database names the database
  }
}

describe("golden fixtures from PostgreSQL 18", () => {
  it("the index lists every exchange the capture script records", () => {
    expect(index.fixtures.map((f) => f.name).sort()).toEqual(Object.keys(semantics).sort())
  })

  for (const fixture of index.fixtures) {
    describe(fixture.name, () => {
      const server = read(fixture.server)
      const whole = decodeServer([server])

      it("has the expected tags and answers", () => {
        expect(whole.messages.map((m) => m._tag)).toEqual(fixture.tags)
        semantics[fixture.name]!(whole.messages)
      })

      it("decodes identically at every split point", () => {
        for (let i = 0; i <= server.length; i++) {
          expect(decodeServer([server.subarray(0, i), server.subarray(i)]).messages).toEqual(whole.messages)
        }
        // and one byte at a time
        expect(decodeServer(Array.from(server, (b) => Uint8Array.of(b))).messages).toEqual(whole.messages)
      })

      it("re-encodes every message to the exact bytes", () => {
        const w = new Writer()
        for (let i = 0; i < whole.messages.length; i++) {
          encodeBackend(w, whole.messages[i]!)
          expect(w.take()).toEqual(whole.raw[i])
        }
      })

      it("the client's bytes decode (mock-server direction) and re-encode exactly", () => {
        const client = read(fixture.client)
        const messages = decodeClient(client, fixture.recordsStartup)
        assert.isAbove(messages.length, 0)
        if (fixture.recordsStartup) {
          expect(messages[0]).toMatchObject({ _tag: "StartupMessage", majorVersion: 3, minorVersion: fixture.minorVersion })
        }
        const w = new Writer()
        for (const m of messages) encodeFrontend(w, m)
        expect(w.take()).toEqual(client)
      })
    })
  }
})
