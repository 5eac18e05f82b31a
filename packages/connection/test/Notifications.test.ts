import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, Stream } from "effect"
import * as Connection from "../src/Connection.ts"
import {
  type ListenEvent,
  listen,
  listenReconnecting,
  listenScoped,
  type Notification,
  notices,
  notify,
  parameterChanges
} from "../src/Notifications.ts"
import { quoteIdentifier } from "../src/Quote.ts"
import { unixConfig } from "./helpers.ts"

const open = () => Connection.make(unixConfig())

const listening = (conn: Connection.ConnectionApi) =>
  Effect.map(
    conn.query<{ c: string }>("select pg_listening_channels() as c order by 1", [], { prepare: false }),
    (r) => r.rows.map((row) => row.c)
  )

/** Polls until `conn` listens on `channel` (for `listen`, whose LISTEN runs when the stream starts). */
const waitListening = (conn: Connection.ConnectionApi, channel: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 250; i++) {
      if ((yield* listening(conn)).includes(channel)) return
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.die(new Error(`never started listening on ${channel}`))
  })

/** Repeats `action` every `every` until `done()` holds (at most 10 s). */
const repeatUntil = <E>(action: Effect.Effect<unknown, E>, done: () => boolean, every = "100 millis" as const) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100 && !done(); i++) {
      yield* action
      yield* Effect.sleep(every)
    }
    assert.isTrue(done(), "condition not reached within 10 s")
  })

const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`

describe("LISTEN / NOTIFY", () => {
  it("quotes identifiers by doubling double quotes", () => {
    assert.strictEqual(quoteIdentifier("plain"), "\"plain\"")
    assert.strictEqual(quoteIdentifier("a\"b\"\"c"), "\"a\"\"b\"\"\"\"c\"")
  })

  it.live("delivers channels and payloads with quotes, spaces and unicode exactly, with the sender's pid", () =>
    Effect.gen(function*() {
      const listener = yield* open()
      const sender = yield* open()
      const channel = "we\"ird Chan 'é ☃'"
      const other = "We\"ird chan 'é ☃'" // differs only in case: must not be delivered
      const payloads = ["it's \"quoted\"", "  spaces  ", "ünïcödé ☃ 𝄞", ""]
      const stream = yield* listenScoped(listener, channel)
      const otherStream = yield* listenScoped(listener, other)
      assert.deepStrictEqual(yield* listening(listener), [other, channel].sort())
      for (const p of payloads) yield* notify(sender, channel, p)
      yield* notify(sender, other, "the other one")
      const got = yield* stream.pipe(Stream.take(payloads.length), Stream.runCollect)
      assert.deepStrictEqual(got.map((n) => n.payload), payloads)
      for (const n of got) {
        assert.strictEqual(n.channel, channel)
        assert.strictEqual(n.processId, sender.info.processId)
      }
      const gotOther = yield* otherStream.pipe(Stream.take(1), Stream.runCollect)
      assert.deepStrictEqual(gotOther.map((n) => [n.channel, n.payload]), [[other, "the other one"]])
    }))

  it.live("refuses channel names PostgreSQL would truncate or reject", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const tooLong = yield* Effect.flip(Stream.runCollect(listen(conn, "x".repeat(64))))
      assert.strictEqual(tooLong._tag, "InvalidRequestError")
      const empty = yield* Effect.flip(Stream.runCollect(listen(conn, "")))
      assert.strictEqual(empty._tag, "InvalidRequestError")
      // 63 bytes is the limit, in bytes not characters: 21 three-byte characters fit, 22 do not.
      const ok = yield* listenScoped(conn, "☃".repeat(21))
      void ok
      const err = yield* Effect.flip(Stream.runCollect(listen(conn, "☃".repeat(22))))
      assert.strictEqual(err._tag, "InvalidRequestError")
      assert.deepStrictEqual(yield* listening(conn), ["☃".repeat(21)])
    }))

  it.live("several listeners on one channel: one LISTEN, each gets every notification, UNLISTEN after the last", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const sender = yield* open()
      const channel = uniqueName("shared")
      const scopeA = yield* Scope.make()
      const scopeB = yield* Scope.make()
      const a = yield* Scope.provide(scopeA)(listenScoped(conn, channel))
      const b = yield* Scope.provide(scopeB)(listenScoped(conn, channel))
      assert.deepStrictEqual(yield* listening(conn), [channel])
      for (const p of ["1", "2", "3"]) yield* notify(sender, channel, p)
      const fromA = yield* a.pipe(Stream.take(3), Stream.runCollect)
      const fromB = yield* b.pipe(Stream.take(3), Stream.runCollect)
      assert.deepStrictEqual(fromA.map((n) => n.payload), ["1", "2", "3"])
      assert.deepStrictEqual(fromB.map((n) => n.payload), ["1", "2", "3"])

      // The first listener ends: the channel stays LISTENed for the second.
      yield* Scope.close(scopeA, Exit.void)
      assert.deepStrictEqual(yield* listening(conn), [channel])
      // A third joins and leaves while the second is still there.
      const third = yield* Effect.scoped(
        Effect.gen(function*() {
          const c = yield* listenScoped(conn, channel)
          yield* notify(sender, channel, "4")
          return yield* c.pipe(Stream.take(1), Stream.runCollect)
        })
      )
      assert.deepStrictEqual(third.map((n) => n.payload), ["4"])
      assert.deepStrictEqual(yield* listening(conn), [channel])
      const fromB2 = yield* b.pipe(Stream.take(1), Stream.runCollect)
      assert.deepStrictEqual(fromB2.map((n) => n.payload), ["4"])

      // The last one ends: UNLISTEN.
      yield* Scope.close(scopeB, Exit.void)
      assert.deepStrictEqual(yield* listening(conn), [])
    }))

  it.live("listen(): LISTEN when the stream starts, UNLISTEN when it ends", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const sender = yield* open()
      const channel = uniqueName("lazy")
      assert.deepStrictEqual(yield* listening(conn), [])
      const fiber = yield* listen(conn, channel).pipe(Stream.take(2), Stream.runCollect, Effect.forkChild)
      yield* waitListening(conn, channel)
      yield* notify(sender, channel, "a")
      yield* notify(sender, channel, "b")
      const got = yield* Fiber.join(fiber)
      assert.deepStrictEqual(got.map((n) => n.payload), ["a", "b"])
      assert.deepStrictEqual(yield* listening(conn), [])
    }))

  it.live("a flood of 50,000 notifications to a slow consumer fails its stream with the limit, losing nothing before it", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const sender = yield* open()
      const channel = uniqueName("flood")
      const received: Array<number> = []
      const consumer = yield* listen(conn, channel).pipe(
        Stream.runForEach((n: Notification) => {
          received.push(Number(n.payload))
          // A consumer that stalls after its first notification.
          return received.length === 1 ? Effect.sleep("3 seconds") : Effect.void
        }),
        Effect.flip,
        Effect.forkChild
      )
      yield* waitListening(conn, channel)
      yield* sender.query("select pg_notify($1, g::text) from generate_series(1, 50000) g", [channel])
      const error = yield* Fiber.join(consumer)
      assert.strictEqual(error._tag, "NotificationOverflowError")
      if (error._tag === "NotificationOverflowError") {
        assert.strictEqual(error.limit, 10_000)
        assert.strictEqual(error.channel, channel)
        assert.include(error.message, "bufferSize")
        assert.include(error.message, "10000")
      }
      // Bounded: at most the first batch plus one full buffer was held; no silent drop: a gap-free prefix.
      assert.isAtLeast(received.length, 10_000)
      assert.isAtMost(received.length, 20_000)
      received.forEach((v, i) => {
        if (v !== i + 1) assert.fail(`notification ${i + 1} was ${v}`)
      })
      // The stream ended, so the channel was UNLISTENed; the connection works.
      assert.deepStrictEqual(yield* listening(conn), [])
      assert.isTrue(conn.isOpen())
    }), 60_000)

  it.live("a consumer that keeps up receives a flood of 50,000 in order (raised bufferSize)", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const sender = yield* open()
      const channel = uniqueName("flood_ok")
      const stream = yield* listenScoped(conn, channel, { bufferSize: 50_000 })
      yield* sender.query("select pg_notify($1, g::text) from generate_series(1, 50000) g", [channel])
      const got = yield* stream.pipe(Stream.take(50_000), Stream.runCollect)
      assert.strictEqual(got.length, 50_000)
      got.forEach((n, i) => {
        if (n.payload !== String(i + 1)) assert.fail(`notification ${i + 1} was ${n.payload}`)
      })
    }), 60_000)

  it.live("a small bufferSize overflows under a burst", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const sender = yield* open()
      const channel = uniqueName("small")
      const stream = yield* listenScoped(conn, channel, { bufferSize: 100 })
      yield* sender.query("select pg_notify($1, g::text) from generate_series(1, 1000) g", [channel])
      // Let everything reach the listener before consuming, so the burst meets a full buffer.
      yield* conn.query("select 1")
      yield* Effect.sleep("300 millis")
      const received: Array<string> = []
      const error = yield* stream.pipe(Stream.runForEach((n) => Effect.sync(() => received.push(n.payload))), Effect.flip)
      assert.strictEqual(error._tag, "NotificationOverflowError")
      assert.deepStrictEqual(received, Array.from({ length: 100 }, (_, i) => String(i + 1)))
    }))

  it.live("a listener's stream fails with the connection's error when its connection dies", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const admin = yield* open()
      const stream = yield* listenScoped(conn, uniqueName("dies"))
      const fiber = yield* stream.pipe(Stream.runDrain, Effect.flip, Effect.forkChild)
      yield* admin.query("select pg_terminate_backend($1)", [conn.info.processId])
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "ConnectionError")
    }))
})

describe("listenReconnecting", () => {
  it.live("reconnects after the backend is terminated, LISTENs again and emits a Gap before later notifications", () =>
    Effect.gen(function*() {
      const appName = uniqueName("relisten")
      const channels = [uniqueName("re_a"), uniqueName("re b \"q\"")]
      const admin = yield* open()
      const events: Array<ListenEvent> = []
      const fiber = yield* listenReconnecting(Connection.make(unixConfig(18, { applicationName: appName })), channels, {
        initialDelay: "50 millis"
      }).pipe(
        Stream.runForEach((e) => Effect.sync(() => events.push(e))),
        Effect.forkChild
      )
      const has = (channel: string, payload: string) =>
        events.some((e) => e._tag === "Notification" && e.channel === channel && e.payload === payload)
      yield* repeatUntil(notify(admin, channels[0]!, "before"), () => has(channels[0]!, "before"))
      const first = events.find((e) => e._tag === "Notification")!
      assert.strictEqual(first._tag === "Notification" && first.processId, admin.info.processId)

      const killed = yield* admin.query<{ ok: boolean }>(
        "select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = $1",
        [appName]
      )
      assert.deepStrictEqual(killed.rows, [{ ok: true }])
      yield* repeatUntil(notify(admin, channels[0]!, "after"), () => has(channels[0]!, "after"))
      yield* repeatUntil(notify(admin, channels[1]!, "after too"), () => has(channels[1]!, "after too"))

      const gaps = events.filter((e) => e._tag === "Gap")
      assert.strictEqual(gaps.length, 1)
      const gap = gaps[0]!
      assert.strictEqual(gap._tag === "Gap" && gap.cause._tag, "ConnectionError")
      if (gap._tag === "Gap") assert.isTrue(gap.since.getTime() <= gap.reconnectedAt.getTime())
      const gapAt = events.indexOf(gap)
      const firstAfter = events.findIndex((e) => e._tag === "Notification" && e.payload === "after")
      assert.isTrue(gapAt < firstAfter, "the Gap comes before the new session's notifications")
      events.slice(0, gapAt).forEach((e) => assert.isTrue(e._tag === "Notification" && e.payload === "before"))
      // The new session is a different backend, listening on every channel.
      const now = yield* admin.query<{ c: number }>(
        "select count(*)::int as c from pg_stat_activity where application_name = $1",
        [appName]
      )
      assert.deepStrictEqual(now.rows, [{ c: 1 }])
      yield* Fiber.interrupt(fiber)
    }), 30_000)

  it.live("fails with the last error after maxAttempts consecutive failed connections", () =>
    Effect.gen(function*() {
      const info = unixConfig()
      let attempts = 0
      const failing = Effect.suspend(() => {
        attempts++
        return Connection.make({ ...info, database: "no_such_database_pgfx" })
      })
      const error = yield* listenReconnecting(failing, ["x"], { initialDelay: "10 millis", maxAttempts: 3 }).pipe(
        Stream.runDrain,
        Effect.flip
      )
      assert.strictEqual(attempts, 3)
      assert.strictEqual(error._tag, "ConnectionError")
      assert.include(error.message, "no_such_database_pgfx")
    }))
})

describe("notices and parameter changes", () => {
  it.live("RAISE NOTICE arrives on conn.notices", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const fiber = yield* conn.notices.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
      yield* repeatUntil(
        conn.simple("DO $$ BEGIN RAISE NOTICE 'hello % ☃', 42; END $$"),
        () => fiber.pollUnsafe() !== undefined
      )
      const [notice] = yield* Fiber.join(fiber)
      assert.strictEqual(notice!.message, "hello 42 ☃")
      assert.strictEqual(notice!.severity, "NOTICE")
      assert.strictEqual(notice!.code, "00000")
    }))

  it.live("SET application_name produces a ParameterStatus change", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const fiber = yield* conn.parameterChanges.pipe(
        Stream.filter((c) => c.name === "application_name"),
        Stream.take(1),
        Stream.runCollect,
        Effect.forkChild
      )
      let n = 0
      yield* repeatUntil(
        Effect.suspend(() => conn.simple(`SET application_name = 'x${n++}'`)),
        () => fiber.pollUnsafe() !== undefined
      )
      const [change] = yield* Fiber.join(fiber)
      assert.strictEqual(change!.name, "application_name")
      assert.match(change!.value, /^x\d+$/)
      assert.strictEqual(conn.parameters.get("application_name"), `x${n - 1}`)
    }))

  it.live("notices(): a slow consumer loses the oldest beyond bufferSize, and every loss is counted", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      let dropped = 0
      const pull = yield* Stream.toPull(notices(conn, { onDropped: (total) => (dropped = total) }))
      // The stream registers on its first pull: raise notices until that pull returns.
      const firstFiber = yield* Effect.forkChild(pull)
      yield* repeatUntil(
        conn.simple("DO $$ BEGIN RAISE NOTICE 'first'; END $$"),
        () => firstFiber.pollUnsafe() !== undefined
      )
      assert.isTrue((yield* Fiber.join(firstFiber)).every((n) => n.message === "first"))
      yield* conn.simple("DO $$ BEGIN FOR i IN 1..1500 LOOP RAISE NOTICE '%', i; END LOOP; END $$")
      const numbers: Array<number> = []
      while (numbers[numbers.length - 1] !== 1500) {
        for (const n of yield* pull) if (n.message !== "first") numbers.push(Number(n.message))
      }
      // 1500 raised, 1024 kept: the newest ones, in order; the 476 oldest dropped and counted.
      assert.strictEqual(numbers.length, 1024)
      assert.deepStrictEqual(numbers, Array.from({ length: 1024 }, (_, i) => 477 + i))
      assert.strictEqual(dropped, 476)
    }))

  it.live("notices({ overflow: \"fail\" }) fails with the limit once the buffered notices are consumed", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const pull = yield* Stream.toPull(notices(conn, { bufferSize: 10, overflow: "fail" }))
      const firstFiber = yield* Effect.forkChild(pull)
      yield* repeatUntil(
        conn.simple("DO $$ BEGIN RAISE NOTICE 'first'; END $$"),
        () => firstFiber.pollUnsafe() !== undefined
      )
      yield* Fiber.join(firstFiber)
      yield* conn.simple("DO $$ BEGIN FOR i IN 1..50 LOOP RAISE NOTICE '%', i; END LOOP; END $$")
      const got: Array<string> = []
      const error = yield* Effect.flip(
        Effect.forever(Effect.flatMap(pull, (batch) => Effect.sync(() => got.push(...batch.map((n) => n.message ?? "")))))
      )
      assert.strictEqual(error._tag, "AsyncMessageOverflowError")
      if (error._tag === "AsyncMessageOverflowError") {
        assert.strictEqual(error.limit, 10)
        assert.strictEqual(error.kind, "NoticeResponse")
      }
      assert.deepStrictEqual(got.filter((m) => m !== "first"), ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"])
    }))

  it.live("parameterChanges(): SET produces changes; the stream ends with the connection", () =>
    Effect.gen(function*() {
      const conn = yield* open()
      const admin = yield* open()
      const seen: Array<string> = []
      const fiber = yield* parameterChanges(conn).pipe(
        Stream.filter((c) => c.name === "application_name"),
        Stream.runForEach((c) => Effect.sync(() => seen.push(c.value))),
        Effect.forkChild
      )
      let n = 0
      yield* repeatUntil(Effect.suspend(() => conn.simple(`SET application_name = 'p${n++}'`)), () => seen.length > 0)
      yield* conn.simple("SET application_name = 'last one'")
      yield* repeatUntil(Effect.void, () => seen.includes("last one"))
      yield* admin.query("select pg_terminate_backend($1)", [conn.info.processId])
      yield* Fiber.join(fiber)
      assert.strictEqual(seen[seen.length - 1], "last one")
    }))
})
