/**
 * SCRAM-SHA-256(-PLUS): the RFC 7677 exchange byte for byte; a recorded PostgreSQL 18 exchange
 * replayed offline; live logins against the real PostgreSQL 18 (plain, TLS with channel binding,
 * wrong password, md5 user, pg_authid verifier); forged-server answers, each refused with its
 * reason; mechanism choice; the server side; and tls-server-end-point over certificates signed
 * with every common algorithm, plus hostile DER.
 */
import { assert, describe, inject, it } from "@effect/vitest"
import * as Crypto from "node:crypto"
import * as fc from "fast-check"
import { openRawSession, rowsOf } from "@pgfx/testing"
import {
  certificateSignatureHash,
  chooseMechanism,
  encodeServerError,
  isScramError,
  parseVerifier,
  SaltedPasswordCache,
  ScramClient,
  type ScramClientOptions,
  type ScramErrorReason,
  ScramServer,
  scramVerifier,
  tlsServerEndPoint
} from "../src/Scram.ts"
import certificates from "./fixtures/scram/certificates.json" with { type: "json" }
import recorded from "./fixtures/scram/recorded.json" with { type: "json" }
import { login } from "./fixtures/scram/liveLogin.ts"

const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)

const throwsScram = (f: () => unknown, reason: ScramErrorReason): void => {
  try {
    f()
  } catch (e) {
    if (!isScramError(e)) throw e
    assert.strictEqual(e.reason, reason, e.message)
    return
  }
  assert.fail(`expected ScramError ${reason}, but nothing was thrown`)
}

const throwsOnlyScram = (f: () => unknown): void => {
  try {
    f()
  } catch (e) {
    if (!isScramError(e)) throw e
  }
}

// RFC 7677 §3
const RFC = {
  password: "pencil",
  clientNonce: "rOprNGfwEbeRWgbNEkqO",
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal:
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
}

const rfcClient = (overrides: Partial<ScramClientOptions> = {}) =>
  ScramClient.start({
    username: "user",
    password: RFC.password,
    channelBinding: "client-unsupported",
    nonce: RFC.clientNonce,
    ...overrides
  })

describe("ScramClient", () => {
  it("reproduces the RFC 7677 SCRAM-SHA-256 exchange byte for byte", () => {
    const first = rfcClient()
    assert.strictEqual(first.mechanism, "SCRAM-SHA-256")
    assert.strictEqual(text(first.clientFirstMessage), RFC.clientFirst)
    const final = first.next.onServerFirst(bytes(RFC.serverFirst))
    assert.strictEqual(text(final.clientFinalMessage), RFC.clientFinal)
    assert.isFalse(final.next.verified)
    final.next.onServerFinal(bytes(RFC.serverFinal))
    assert.isTrue(final.next.verified)
  })

  it("sends an empty user name, as libpq does, when none is given; random nonces differ", () => {
    const a = ScramClient.start({ password: "x", channelBinding: "client-unsupported" })
    const b = ScramClient.start({ password: "x", channelBinding: "client-unsupported" })
    assert.match(text(a.clientFirstMessage), /^n,,n=,r=[A-Za-z0-9+/]{24}$/)
    assert.notStrictEqual(text(a.clientFirstMessage), text(b.clientFirstMessage))
  })

  it("escapes '=' and ',' in the user name", () => {
    const first = rfcClient({ username: "a=b,c" })
    assert.strictEqual(text(first.clientFirstMessage), `n,,n=a=3Db=2Cc,r=${RFC.clientNonce}`)
  })

  it("writes the GS2 header for each channel binding case", () => {
    const data = new Uint8Array([1, 2, 3, 4])
    const plus = rfcClient({ channelBinding: { type: "tls-server-end-point", data } })
    assert.strictEqual(plus.mechanism, "SCRAM-SHA-256-PLUS")
    assert.isTrue(text(plus.clientFirstMessage).startsWith("p=tls-server-end-point,,n=user,"))
    const y = rfcClient({ channelBinding: "server-unsupported" })
    assert.strictEqual(y.mechanism, "SCRAM-SHA-256")
    assert.isTrue(text(y.clientFirstMessage).startsWith("y,,n=user,"))
    assert.isTrue(text(rfcClient().clientFirstMessage).startsWith("n,,n=user,"))
    // c= carries the header, and the binding data after it for p.
    const cOf = (first: ReturnType<typeof rfcClient>) =>
      Buffer.from(/^c=([^,]*)/.exec(text(first.next.onServerFirst(bytes(RFC.serverFirst)).clientFinalMessage))![1]!, "base64")
    assert.deepStrictEqual([...cOf(plus)], [...Buffer.from("p=tls-server-end-point,,"), 1, 2, 3, 4])
    assert.strictEqual(cOf(rfcClient({ channelBinding: "server-unsupported" })).toString(), "y,,")
  })

  it("refuses unusable options", () => {
    throwsScram(() => rfcClient({ nonce: "a,b" }), "InvalidOptions")
    throwsScram(() => rfcClient({ nonce: "" }), "InvalidOptions")
    throwsScram(() => rfcClient({ minIterations: 0 }), "InvalidOptions")
    throwsScram(() => rfcClient({ minIterations: 10, maxIterations: 5 }), "InvalidOptions")
    throwsScram(
      () => rfcClient({ channelBinding: { type: "tls-server-end-point", data: new Uint8Array(0) } }),
      "InvalidOptions"
    )
  })

  it("caches the salted password per (password, salt, iterations)", () => {
    const cache = new SaltedPasswordCache(2)
    const run = (password: string, salt = RFC.salt) =>
      rfcClient({ password, cache }).next.onServerFirst(
        bytes(`r=${RFC.clientNonce}xyz,s=${salt},i=4096`)
      )
    run("pencil")
    run("pencil")
    assert.deepStrictEqual([cache.hits, cache.misses], [1, 1])
    run("pencil", "AAAAAAAAAAAAAAAAAAAAAA==")
    run("other")
    assert.deepStrictEqual([cache.hits, cache.misses, cache.size], [1, 3, 2])
    run("pencil") // evicted as least recently used
    assert.deepStrictEqual([cache.hits, cache.misses], [1, 4])
  })
})

describe("ScramClient against forged server answers", () => {
  const serverFirst = (fields: string) => () => rfcClient().next.onServerFirst(bytes(fields))
  const nonce = RFC.clientNonce + RFC.serverNonce

  it("refuses a nonce that does not strictly extend ours", () => {
    throwsScram(serverFirst(`r=${RFC.serverNonce},s=${RFC.salt},i=4096`), "NonceMismatch")
    throwsScram(serverFirst(`r=${RFC.clientNonce},s=${RFC.salt},i=4096`), "NonceMismatch")
    throwsScram(serverFirst(`r=${RFC.clientNonce.slice(0, -1)}X${RFC.serverNonce},s=${RFC.salt},i=4096`), "NonceMismatch")
    throwsScram(serverFirst(`r=${RFC.clientNonce}ab\u0001c,s=${RFC.salt},i=4096`), "InvalidServerFirst")
    throwsScram(serverFirst(`r=${RFC.clientNonce}ab c,s=${RFC.salt},i=4096`), "InvalidServerFirst")
  })

  it("refuses low, huge and malformed iteration counts", () => {
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=4095`), "IterationCountTooLow")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=1`), "IterationCountTooLow")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=10000001`), "IterationCountTooHigh")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=99999999999999999999999`), "IterationCountTooHigh")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=0`), "InvalidServerFirst")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=-4096`), "InvalidServerFirst")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=04096`), "InvalidServerFirst")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=4096.0`), "InvalidServerFirst")
    // The limits are the caller's: a lower minimum accepts a low count, a higher maximum a high one.
    const low = rfcClient({ minIterations: 1 }).next.onServerFirst(bytes(`r=${nonce},s=${RFC.salt},i=2`))
    assert.match(text(low.clientFinalMessage), /^c=biws,r=.*,p=/)
    throwsScram(() => rfcClient({ maxIterations: 4096 }).next.onServerFirst(bytes(`r=${nonce},s=${RFC.salt},i=4097`)), "IterationCountTooHigh")
  })

  it("refuses a salt that is not non-empty base64", () => {
    throwsScram(serverFirst(`r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096`), "InvalidSalt") // unpadded
    throwsScram(serverFirst(`r=${nonce},s=W22Z*J0SNY7soEsUEjb6gQ==,i=4096`), "InvalidSalt")
    throwsScram(serverFirst(`r=${nonce},s=====,i=4096`), "InvalidSalt")
    throwsScram(serverFirst(`r=${nonce},s=,i=4096`), "InvalidServerFirst") // empty attribute
  })

  it("refuses mandatory extensions, missing attributes and attributes out of order", () => {
    throwsScram(serverFirst(`m=must-understand,r=${nonce},s=${RFC.salt},i=4096`), "MandatoryExtension")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt}`), "InvalidServerFirst")
    throwsScram(serverFirst(`r=${nonce},i=4096`), "InvalidServerFirst")
    throwsScram(serverFirst(`s=${RFC.salt},r=${nonce},i=4096`), "InvalidServerFirst")
    throwsScram(serverFirst(`r=${nonce},i=4096,s=${RFC.salt}`), "InvalidServerFirst")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=4096,r=${nonce}`), "InvalidServerFirst")
    throwsScram(serverFirst(`r=${nonce},s=${RFC.salt},i=4096,`), "InvalidServerFirst")
    throwsScram(serverFirst(``), "InvalidServerFirst")
    throwsScram(serverFirst(`e=other-error`), "InvalidServerFirst")
    throwsScram(() => rfcClient().next.onServerFirst(new Uint8Array([0x72, 0x3d, 0xff, 0xfe])), "InvalidServerFirst")
    // An optional extension after i= is allowed by RFC 5802 and ignored.
    const ok = rfcClient().next.onServerFirst(bytes(`${RFC.serverFirst},x=hello`))
    assert.match(text(ok.clientFinalMessage), /^c=biws,/)
  })

  it("refuses a wrong or malformed server signature, in constant-time comparison", () => {
    const final = () => rfcClient().next.onServerFirst(bytes(RFC.serverFirst)).next
    const flipped = Buffer.from(RFC.serverFinal.slice(2), "base64")
    flipped[31]! ^= 1
    throwsScram(() => final().onServerFinal(bytes(`v=${flipped.toString("base64")}`)), "SignatureMismatch")
    throwsScram(() => final().onServerFinal(bytes(`v=${Buffer.alloc(31).toString("base64")}`)), "InvalidServerFinal")
    throwsScram(() => final().onServerFinal(bytes(`v=not base64`)), "InvalidServerFinal")
    throwsScram(() => final().onServerFinal(bytes(``)), "InvalidServerFinal")
    throwsScram(() => final().onServerFinal(bytes(`x=1,${RFC.serverFinal}`)), "InvalidServerFinal")
    // A signature from another password (a server that does not know ours).
    const other = ScramServer.fromPassword("not pencil", { salt: Buffer.from(RFC.salt, "base64"), nonce: RFC.serverNonce })
    const client = rfcClient()
    const sf = other.onClientFirst("SCRAM-SHA-256", client.clientFirstMessage)
    const cf = client.next.onServerFirst(sf.serverFirstMessage)
    throwsScram(() => other.onClientFirst("SCRAM-SHA-256", client.clientFirstMessage), "UnexpectedMessage")
    throwsScram(() => sf.next.onClientFinal(cf.clientFinalMessage), "ClientProofMismatch")
    const forged = Crypto.createHmac("sha256", Buffer.alloc(32)).update("x").digest("base64")
    throwsScram(() => cf.next.onServerFinal(bytes(`v=${forged}`)), "SignatureMismatch")
    assert.isFalse(cf.next.verified)
  })

  it("reports e= as the server's error", () => {
    const final = rfcClient().next.onServerFirst(bytes(RFC.serverFirst)).next
    try {
      final.onServerFinal(encodeServerError("invalid-proof"))
      assert.fail("accepted e=")
    } catch (e) {
      assert.isTrue(isScramError(e))
      if (isScramError(e)) {
        assert.strictEqual(e.reason, "ServerError")
        assert.strictEqual(e.serverError, "invalid-proof")
      }
    }
    assert.isFalse(final.verified)
  })

  it("refuses any message after verification, and every repeated message", () => {
    const first = rfcClient()
    const final = first.next.onServerFirst(bytes(RFC.serverFirst))
    throwsScram(() => first.next.onServerFirst(bytes(RFC.serverFirst)), "UnexpectedMessage")
    final.next.onServerFinal(bytes(RFC.serverFinal))
    throwsScram(() => final.next.onServerFinal(bytes(RFC.serverFinal)), "UnexpectedMessage")
    assert.isTrue(final.next.verified)
    // A failed step also ends the exchange.
    const failed = rfcClient()
    throwsScram(() => failed.next.onServerFirst(bytes("garbage")), "InvalidServerFirst")
    throwsScram(() => failed.next.onServerFirst(bytes(RFC.serverFirst)), "UnexpectedMessage")
  })

  it("throws nothing but ScramError for arbitrary server messages", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string({ maxLength: 200 }).map(bytes)), (msg) => {
        throwsOnlyScram(() => rfcClient({ minIterations: 1, maxIterations: 64 }).next.onServerFirst(msg))
        throwsOnlyScram(() => rfcClient().next.onServerFirst(bytes(RFC.serverFirst)).next.onServerFinal(msg))
      }),
      { numRuns: 300 }
    )
  })
})

describe("chooseMechanism (libpq's rules)", () => {
  const both = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
  const plain = ["SCRAM-SHA-256"]

  it("prefers -PLUS with TLS unless disabled", () => {
    assert.deepStrictEqual(chooseMechanism(both, "prefer", true), {
      mechanism: "SCRAM-SHA-256-PLUS",
      channelBinding: "tls-server-end-point"
    })
    assert.deepStrictEqual(chooseMechanism(both, "require", true), {
      mechanism: "SCRAM-SHA-256-PLUS",
      channelBinding: "tls-server-end-point"
    })
    assert.deepStrictEqual(chooseMechanism(both, "disable", true), {
      mechanism: "SCRAM-SHA-256",
      channelBinding: "client-unsupported"
    })
  })

  it("says y when it could bind but the server offered no -PLUS, n without TLS", () => {
    assert.deepStrictEqual(chooseMechanism(plain, "prefer", true), {
      mechanism: "SCRAM-SHA-256",
      channelBinding: "server-unsupported"
    })
    assert.deepStrictEqual(chooseMechanism(plain, "prefer", false), {
      mechanism: "SCRAM-SHA-256",
      channelBinding: "client-unsupported"
    })
  })

  it("refuses what libpq refuses", () => {
    throwsScram(() => chooseMechanism(plain, "require", true), "ChannelBindingRequired")
    throwsScram(() => chooseMechanism(both, "require", false), "ChannelBindingRequired")
    throwsScram(() => chooseMechanism(plain, "require", false), "ChannelBindingRequired")
    throwsScram(() => chooseMechanism(both, "prefer", false), "PlusWithoutTls")
    throwsScram(() => chooseMechanism(["SCRAM-SHA-256-PLUS"], "disable", true), "UnsupportedMechanism")
    throwsScram(() => chooseMechanism(["OAUTHBEARER"], "prefer", true), "UnsupportedMechanism")
    throwsScram(() => chooseMechanism([], "prefer", false), "UnsupportedMechanism")
  })
})

describe("ScramServer", () => {
  const binding = { type: "tls-server-end-point" as const, data: Crypto.randomBytes(32) }

  it("round-trips with the client, with and without channel binding", () => {
    for (const [server, channelBinding] of [
      [ScramServer.fromPassword("pencil"), "client-unsupported"],
      [ScramServer.fromPassword("pencil", { channelBinding: binding, iterations: 5000 }), binding]
    ] as const) {
      const client = ScramClient.start({ password: "pencil", channelBinding })
      const sf = server.onClientFirst(client.mechanism, client.clientFirstMessage)
      const cf = client.next.onServerFirst(sf.serverFirstMessage)
      const fin = sf.next.onClientFinal(cf.clientFinalMessage)
      cf.next.onServerFinal(fin.serverFinalMessage)
      assert.isTrue(cf.next.verified)
      throwsScram(() => sf.next.onClientFinal(cf.clientFinalMessage), "UnexpectedMessage")
    }
  })

  it("refuses channel binding to another certificate (a man in the middle)", () => {
    const server = ScramServer.fromPassword("pencil", { channelBinding: binding })
    const client = ScramClient.start({
      password: "pencil",
      channelBinding: { type: "tls-server-end-point", data: Crypto.randomBytes(32) }
    })
    const sf = server.onClientFirst(client.mechanism, client.clientFirstMessage)
    throwsScram(() => sf.next.onClientFinal(client.next.onServerFirst(sf.serverFirstMessage).clientFinalMessage), "ChannelBindingMismatch")
  })

  it("refuses binding flags that contradict the mechanism, and a downgraded y", () => {
    const first = (channelBinding: ScramClientOptions["channelBinding"]) =>
      ScramClient.start({ password: "p", channelBinding }).clientFirstMessage
    const withPlus = () => ScramServer.fromPassword("p", { channelBinding: binding })
    throwsScram(() => withPlus().onClientFirst("SCRAM-SHA-256", first("server-unsupported")), "ChannelBindingMismatch")
    throwsScram(() => withPlus().onClientFirst("SCRAM-SHA-256-PLUS", first("client-unsupported")), "ChannelBindingMismatch")
    throwsScram(() => withPlus().onClientFirst("SCRAM-SHA-256", first(binding)), "ChannelBindingMismatch")
    throwsScram(() => ScramServer.fromPassword("p").onClientFirst("SCRAM-SHA-256-PLUS", first(binding)), "UnsupportedMechanism")
    throwsScram(() => withPlus().onClientFirst("SCRAM-SHA-1", first("client-unsupported")), "UnsupportedMechanism")
    throwsScram(() => withPlus().onClientFirst("SCRAM-SHA-256", bytes("n,a=admin,n=,r=abc")), "InvalidClientFirst")
    throwsScram(() => withPlus().onClientFirst("SCRAM-SHA-256", bytes("n,,m=x,n=,r=abc")), "InvalidClientFirst")
    throwsScram(() => withPlus().onClientFirst("SCRAM-SHA-256", bytes("n,,r=abc")), "InvalidClientFirst")
    throwsScram(() => withPlus().onClientFirst("SCRAM-SHA-256", bytes("q,,n=,r=abc")), "InvalidClientFirst")
    // y is fine for a server that has no -PLUS to offer.
    const sf = ScramServer.fromPassword("p").onClientFirst("SCRAM-SHA-256", first("server-unsupported"))
    assert.isTrue(text(sf.serverFirstMessage).startsWith("r="))
  })

  it("refuses a client-final with a wrong nonce, a missing proof or a wrong password", () => {
    const server = () => ScramServer.fromPassword("pencil", { salt: Buffer.from(RFC.salt, "base64"), nonce: RFC.serverNonce })
    const withFinal = (final: string) => () => {
      const sf = server().onClientFirst("SCRAM-SHA-256", bytes(RFC.clientFirst))
      sf.next.onClientFinal(bytes(final))
    }
    withFinal(RFC.clientFinal)() // the RFC's own client-final is accepted
    throwsScram(withFinal(RFC.clientFinal.replace("k0,p=", "k1,p=")), "InvalidClientFinal")
    throwsScram(withFinal(RFC.clientFinal.replace(/,p=.*$/, "")), "InvalidClientFinal")
    throwsScram(withFinal(RFC.clientFinal.replace("c=biws", "c=eSws")), "ChannelBindingMismatch")
    throwsScram(withFinal(RFC.clientFinal.replace("p=dHzb", "p=dHzc")), "ClientProofMismatch")
  })

  it("produces and reads PostgreSQL's verifier format", () => {
    const salt = Buffer.from(RFC.salt, "base64")
    const verifier = scramVerifier("pencil", salt, 4096)
    assert.match(verifier, /^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/)
    const parsed = parseVerifier(verifier)
    assert.strictEqual(parsed.iterations, 4096)
    const fromVerifier = ScramServer.fromVerifier(verifier, { nonce: RFC.serverNonce })
    const sf = fromVerifier.onClientFirst("SCRAM-SHA-256", bytes(RFC.clientFirst))
    assert.strictEqual(text(sf.serverFirstMessage), RFC.serverFirst)
    assert.strictEqual(text(sf.next.onClientFinal(bytes(RFC.clientFinal)).serverFinalMessage), RFC.serverFinal)
    for (const bad of ["md5abc", "SCRAM-SHA-256$0:AA==$AA==:AA==", verifier.replace(/:[^:]*$/, ":AAAA"), verifier + "$"]) {
      throwsScram(() => parseVerifier(bad), "InvalidVerifier")
    }
  })
})

describe("recorded PostgreSQL 18 exchange (offline replay)", () => {
  it("produces the same client messages for the same nonce and verifies the server's signature", () => {
    const first = ScramClient.start({
      password: recorded.password,
      channelBinding: "client-unsupported",
      nonce: recorded.clientNonce
    })
    assert.strictEqual(first.mechanism, recorded.mechanism)
    assert.strictEqual(text(first.clientFirstMessage), recorded.clientFirst)
    const final = first.next.onServerFirst(bytes(recorded.serverFirst))
    assert.strictEqual(text(final.clientFinalMessage), recorded.clientFinal)
    final.next.onServerFinal(bytes(recorded.serverFinal))
    assert.isTrue(final.next.verified)
  })

  it("fails the replay with a wrong password", () => {
    const first = ScramClient.start({ password: "wrong", channelBinding: "client-unsupported", nonce: recorded.clientNonce })
    const final = first.next.onServerFirst(bytes(recorded.serverFirst))
    assert.notStrictEqual(text(final.clientFinalMessage), recorded.clientFinal)
    throwsScram(() => final.next.onServerFinal(bytes(recorded.serverFinal)), "SignatureMismatch")
  })
})

describe("tls-server-end-point", () => {
  for (const cert of certificates) {
    it(`hashes a ${cert.name} certificate with ${cert.hash}`, () => {
      const der = new Uint8Array(Buffer.from(cert.der, "base64"))
      if (cert.hash === "none") {
        throwsScram(() => tlsServerEndPoint(der), "UnsupportedCertificate")
        return
      }
      assert.strictEqual(certificateSignatureHash(der), cert.hash)
      assert.deepStrictEqual(tlsServerEndPoint(der), new Uint8Array(Crypto.createHash(cert.hash).update(der).digest()))
    })
  }

  it("agrees with node:crypto's own DER parser on the signature algorithm", () => {
    // RFC 5929's table, keyed by the OID X509Certificate reports, independent of the walk under test.
    const hashByOid: Record<string, string> = {
      "1.2.840.113549.1.1.5": "sha256", // sha1WithRSAEncryption → SHA-256
      "1.2.840.113549.1.1.14": "sha224",
      "1.2.840.113549.1.1.11": "sha256",
      "1.2.840.113549.1.1.12": "sha384",
      "1.2.840.113549.1.1.13": "sha512",
      "1.2.840.10045.4.1": "sha256", // ecdsa-with-SHA1 → SHA-256
      "1.2.840.10045.4.3.2": "sha256",
      "1.2.840.10045.4.3.3": "sha384",
      "1.2.840.10045.4.3.4": "sha512"
    }
    let compared = 0
    for (const cert of certificates) {
      const der = Buffer.from(cert.der, "base64")
      const oid = new Crypto.X509Certificate(der).signatureAlgorithmOid
      const expected = hashByOid[oid]
      if (expected === undefined) {
        assert.include(["1.2.840.113549.1.1.10", "1.3.101.112"], oid) // RSASSA-PSS, Ed25519: covered above
        continue
      }
      assert.strictEqual(certificateSignatureHash(der), expected, cert.name)
      compared++
    }
    assert.strictEqual(compared, 9)
  })

  it("throws only ScramError for truncated, corrupted or random DER", () => {
    const der = new Uint8Array(Buffer.from(certificates[0]!.der, "base64"))
    for (let cut = 0; cut < der.length; cut++) {
      throwsScram(() => tlsServerEndPoint(der.subarray(0, cut)), "InvalidCertificate")
    }
    fc.assert(
      fc.property(fc.nat({ max: der.length - 1 }), fc.integer({ min: 0, max: 255 }), (at, value) => {
        const copy = der.slice()
        copy[at] = value
        throwsOnlyScram(() => tlsServerEndPoint(copy))
      }),
      { numRuns: 2000 }
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (random) => throwsOnlyScram(() => tlsServerEndPoint(random))),
      { numRuns: 500 }
    )
    // A length that claims more than the buffer holds.
    throwsScram(() => tlsServerEndPoint(new Uint8Array([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30, 0x00])), "InvalidCertificate")
  })
})

describe("live PostgreSQL 18", () => {
  const pg = () => inject("pg18")

  it("logs in with SCRAM-SHA-256 over plain TCP", async () => {
    const { host, port, users } = pg()
    const result = await login({ host, port, user: users.scram.user, password: users.scram.password })
    assert.strictEqual(result.outcome, "ok")
    assert.deepStrictEqual(result.mechanisms, ["SCRAM-SHA-256"])
    assert.strictEqual(result.mechanism, "SCRAM-SHA-256")
    assert.match(result.clientFirst!, /^n,,n=,r=/)
  })

  it("logs in with SCRAM-SHA-256-PLUS over TLS, binding the server certificate", async () => {
    const { host, port, users, caFile } = pg()
    const result = await login({
      host,
      port,
      user: users.scram.user,
      password: users.scram.password,
      tls: { caFile },
      channelBinding: "require"
    })
    assert.strictEqual(result.outcome, "ok")
    assert.deepStrictEqual(result.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
    assert.strictEqual(result.mechanism, "SCRAM-SHA-256-PLUS")
    assert.isTrue(result.clientFirst!.startsWith("p=tls-server-end-point,,"))
    assert.strictEqual(result.channelBindingData!.length, Crypto.createHash(certificateSignatureHash(result.certificate!)).digest().length)
  })

  it("logs in over TLS without binding (n) when channel binding is disabled", async () => {
    const { host, port, users, caFile } = pg()
    const result = await login({
      host,
      port,
      user: users.scram.user,
      password: users.scram.password,
      tls: { caFile },
      channelBinding: "disable"
    })
    assert.strictEqual(result.outcome, "ok")
    assert.strictEqual(result.mechanism, "SCRAM-SHA-256")
    assert.isTrue(result.clientFirst!.startsWith("n,,"))
  })

  it("is refused by the server when it claims y (a downgrade) or binds another certificate", async () => {
    const { host, port, users, caFile } = pg()
    const base = { host, port, user: users.scram.user, password: users.scram.password, tls: { caFile } }
    const downgraded = await login({ ...base, forceBinding: "server-unsupported" })
    assert.isTrue(downgraded.clientFirst!.startsWith("y,,"))
    assert.deepStrictEqual(downgraded.outcome, { code: "28000", message: "SCRAM channel binding negotiation error" })
    const other = await login({
      ...base,
      forceBinding: { type: "tls-server-end-point", data: new Uint8Array(Crypto.randomBytes(32)) }
    })
    assert.strictEqual(other.mechanism, "SCRAM-SHA-256-PLUS")
    assert.deepStrictEqual(other.outcome, { code: "28000", message: "SCRAM channel binding check failed" })
    assert.isUndefined(other.serverFinal)
  })

  it("fails with the server's 28P01 for a wrong password, plain and over TLS", async () => {
    const { host, port, users, caFile } = pg()
    for (const tls of [undefined, { caFile }]) {
      const result = await login({ host, port, user: users.scram.user, password: "wrong password", tls })
      assert.notStrictEqual(result.outcome, "ok")
      if (result.outcome !== "ok") assert.strictEqual(result.outcome.code, "28P01")
      assert.isUndefined(result.serverFinal)
    }
  })

  it("computes the verifier PostgreSQL stored in pg_authid from the same salt and iterations", async () => {
    const info = pg()
    const session = await openRawSession(info)
    let stored: string
    try {
      const rows = rowsOf(await session.query(`SELECT rolpassword FROM pg_authid WHERE rolname = '${info.users.scram.user}'`))
      stored = rows[0]![0]!
    } finally {
      await session.close()
    }
    const parsed = parseVerifier(stored)
    assert.strictEqual(scramVerifier(info.users.scram.password, parsed.salt, parsed.iterations), stored)
  })
})
