/**
 * SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677; channel binding tls-server-end-point,
 * RFC 5929) as pure state machines, client and server, for PostgreSQL's SASL exchange (54.3).
 *
 * Invariants:
 * - No I/O: bytes in, bytes out. Every failure is a thrown `ScramError` (never another exception,
 *   for any input); the connection maps it to its authentication error.
 * - Mutual authentication is complete or the exchange fails: the client refuses a server-first
 *   whose nonce does not extend its own, whose salt is not non-empty base64, whose iteration count
 *   is outside [minIterations, maxIterations], that carries a mandatory extension (`m=`) or
 *   attributes out of the RFC's order; and it refuses a server-final without a matching `v=`
 *   (compared in constant time). `e=` surfaces as reason "ServerError" with the server's text.
 * - Each state accepts exactly one message: a second call, or any message after the server was
 *   verified, is refused ("UnexpectedMessage"). `verified` tells the connection whether it may
 *   accept AuthenticationOk.
 * - Like libpq, the client sends an empty user name (`n=`): PostgreSQL takes it from the startup
 *   message. The password is SASLprep'd with PostgreSQL's fallbacks (see SaslPrep.ts).
 * - Salted passwords (the expensive PBKDF2 step) are cached per (password, salt, iterations) in a
 *   small LRU keyed by a SHA-256 of the three, so a pool re-authenticating pays it once and no
 *   password is kept as a map key.
 */
import { nodeCrypto } from "./internal/nodeCrypto.ts"
import * as Schema from "effect/Schema"
import { encodeUtf8 } from "./internal/utf8.ts"
import { preparePassword } from "./SaslPrep.ts"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export const ScramErrorReason = Schema.Literals([
  "UnsupportedMechanism", // no mechanism both sides accept
  "ChannelBindingRequired", // channel_binding=require, but no TLS or the server offered no -PLUS
  "PlusWithoutTls", // the server offered SCRAM-SHA-256-PLUS over a connection without TLS
  "InvalidOptions", // the caller's options are unusable (bad nonce, bad limits, empty binding data)
  "InvalidServerFirst", // malformed server-first-message (syntax, attribute order, missing attribute)
  "MandatoryExtension", // the server asked for an extension (`m=`) this client does not know
  "NonceMismatch", // the server nonce does not strictly extend the client nonce
  "InvalidSalt", // the salt is not non-empty base64
  "IterationCountTooLow", // below minIterations
  "IterationCountTooHigh", // above maxIterations (CPU-exhaustion guard)
  "InvalidServerFinal", // malformed server-final-message
  "ServerError", // the server-final-message carried `e=`
  "SignatureMismatch", // the server signature `v=` does not prove knowledge of the password
  "UnexpectedMessage", // a message in a state that accepts none (e.g. after the server was verified)
  "InvalidCertificate", // the certificate for channel binding is not DER this module can walk
  "UnsupportedCertificate", // its signature algorithm defines no tls-server-end-point hash (Ed25519…)
  "InvalidVerifier", // a stored verifier is not `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`
  "InvalidClientFirst", // server side: malformed client-first-message
  "InvalidClientFinal", // server side: malformed client-final-message
  "ChannelBindingMismatch", // server side: the client's binding flag or data is wrong (downgrade, MITM)
  "ClientProofMismatch" // server side: the client proof is wrong (wrong password)
])
export type ScramErrorReason = typeof ScramErrorReason.Type

export class ScramError extends Schema.TaggedError<ScramError>()("ScramError", {
  reason: ScramErrorReason,
  message: Schema.String,
  /** The server's `e=` value, for reason "ServerError". */
  serverError: Schema.optional(Schema.String)
}) {}

export const isScramError = (u: unknown): u is ScramError => u instanceof ScramError

const fail = (reason: ScramErrorReason, message: string, serverError?: string): never => {
  throw new ScramError({ reason, message, ...(serverError === undefined ? {} : { serverError }) })
}

// ---------------------------------------------------------------------------------------------
// Mechanisms and channel binding
// ---------------------------------------------------------------------------------------------

export const SCRAM_SHA_256 = "SCRAM-SHA-256"
export const SCRAM_SHA_256_PLUS = "SCRAM-SHA-256-PLUS"
export type ScramMechanism = typeof SCRAM_SHA_256 | typeof SCRAM_SHA_256_PLUS

/** The one channel binding type PostgreSQL implements. */
export interface TlsServerEndPointBinding {
  readonly type: "tls-server-end-point"
  /** `tlsServerEndPoint(serverCertificateDer)` */
  readonly data: Uint8Array
}

/**
 * What the client tells the server about channel binding (RFC 5802 gs2-cbind-flag):
 * a binding → `p=tls-server-end-point` (SCRAM-SHA-256-PLUS); "server-unsupported" → `y` (the client
 * could bind, but the server offered no -PLUS: a server that did would detect the downgrade);
 * "client-unsupported" → `n` (no TLS, or channel_binding=disable).
 */
export type ChannelBinding = TlsServerEndPointBinding | "client-unsupported" | "server-unsupported"

/** libpq's `channel_binding` connection setting. */
export type ChannelBindingSetting = "disable" | "prefer" | "require"

export type MechanismChoice =
  | { readonly mechanism: typeof SCRAM_SHA_256_PLUS; readonly channelBinding: "tls-server-end-point" }
  | { readonly mechanism: typeof SCRAM_SHA_256; readonly channelBinding: "client-unsupported" | "server-unsupported" }

/**
 * Picks the mechanism from AuthenticationSASL's list as libpq does (fe-auth.c pg_SASL_init):
 * - require without TLS → "ChannelBindingRequired" (before looking at the list);
 * - -PLUS offered over a connection without TLS → "PlusWithoutTls" (TLS was stripped on the way);
 * - -PLUS offered with TLS and binding not disabled → -PLUS;
 * - otherwise SCRAM-SHA-256 if offered, unless binding is required → "ChannelBindingRequired";
 * - nothing usable → "UnsupportedMechanism".
 * With SCRAM-SHA-256 over TLS (binding not disabled) the flag is "server-unsupported" (`y`).
 */
export const chooseMechanism = (
  serverMechanisms: ReadonlyArray<string>,
  channelBinding: ChannelBindingSetting,
  tlsAvailable: boolean
): MechanismChoice => {
  if (channelBinding === "require" && !tlsAvailable) {
    fail("ChannelBindingRequired", "channel binding is required, but the connection does not use TLS")
  }
  const offersPlus = serverMechanisms.includes(SCRAM_SHA_256_PLUS)
  if (offersPlus && !tlsAvailable) {
    fail("PlusWithoutTls", "server offered SCRAM-SHA-256-PLUS authentication over a non-TLS connection")
  }
  if (offersPlus && channelBinding !== "disable") {
    return { mechanism: SCRAM_SHA_256_PLUS, channelBinding: "tls-server-end-point" }
  }
  if (serverMechanisms.includes(SCRAM_SHA_256)) {
    if (channelBinding === "require") {
      fail(
        "ChannelBindingRequired",
        "channel binding is required, but the server did not offer an authentication method that supports it"
      )
    }
    return {
      mechanism: SCRAM_SHA_256,
      channelBinding: tlsAvailable && channelBinding !== "disable" ? "server-unsupported" : "client-unsupported"
    }
  }
  return fail(
    "UnsupportedMechanism",
    `none of the server's SASL authentication mechanisms are supported: ${serverMechanisms.join(", ") || "(none)"}`
  )
}

// ---------------------------------------------------------------------------------------------
// Crypto primitives and the salted-password cache
// ---------------------------------------------------------------------------------------------

const KEY_LENGTH = 32 // SHA-256 output

const hmac = (key: Uint8Array, data: Uint8Array | string): Uint8Array => nodeCrypto().createHmac("sha256", key).update(data).digest()
const sha256 = (data: Uint8Array): Uint8Array => nodeCrypto().createHash("sha256").update(data).digest()

const xor = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!
  return out
}

const constantTimeEqual = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && nodeCrypto().timingSafeEqual(a, b)

/** A small LRU of PBKDF2 results; keys are SHA-256(iterations ‖ salt length ‖ salt ‖ password). */
export class SaltedPasswordCache {
  readonly capacity: number
  hits = 0
  misses = 0
  private readonly entries = new Map<string, Uint8Array>()

  constructor(capacity = 32) {
    this.capacity = capacity
  }

  get size(): number {
    return this.entries.size
  }

  private keyOf(password: Uint8Array, salt: Uint8Array, iterations: number): string {
    const header = new Uint8Array(8)
    const view = new DataView(header.buffer)
    view.setUint32(0, iterations)
    view.setUint32(4, salt.length)
    return nodeCrypto().createHash("sha256").update(header).update(salt).update(password).digest("base64")
  }

  /**
   * Computes Hi(password, salt, iterations) off the event loop (libuv's thread pool) and caches it, so
   * the synchronous `get` that follows is a hit: a server asking for many iterations cannot stall the
   * process. `password` is the raw password (prepared here, as the client does).
   */
  prefetch(password: string | Uint8Array, salt: Uint8Array, iterations: number): Promise<void> {
    const prepared = preparePassword(password)
    const key = this.keyOf(prepared, salt, iterations)
    if (this.entries.has(key)) return Promise.resolve()
    return new Promise((resolve, reject) =>
      nodeCrypto().pbkdf2(prepared, salt, iterations, KEY_LENGTH, "sha256", (err, salted) => {
        if (err !== null) return reject(err)
        if (this.capacity > 0) {
          if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!)
          this.entries.set(key, new Uint8Array(salted))
        }
        resolve()
      })
    )
  }

  /** Hi(password, salt, iterations) of RFC 5802 (PBKDF2-HMAC-SHA-256); `password` is already prepared. */
  get(password: Uint8Array, salt: Uint8Array, iterations: number): Uint8Array {
    const key = this.keyOf(password, salt, iterations)
    const found = this.entries.get(key)
    if (found !== undefined) {
      this.hits++
      // Refresh: Map keeps insertion order, so the first key is the least recently used.
      this.entries.delete(key)
      this.entries.set(key, found)
      return found
    }
    this.misses++
    const salted = nodeCrypto().pbkdf2Sync(password, salt, iterations, KEY_LENGTH, "sha256")
    if (this.capacity > 0) {
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!)
      this.entries.set(key, salted)
    }
    return salted
  }

  clear(): void {
    this.entries.clear()
  }
}

/** The cache the client and `scramVerifier` use unless given another. */
export const defaultSaltedPasswordCache = new SaltedPasswordCache()

interface Keys {
  readonly storedKey: Uint8Array
  readonly serverKey: Uint8Array
  readonly clientKey: Uint8Array
}

const keysFromSalted = (salted: Uint8Array): Keys => {
  const clientKey = hmac(salted, "Client Key")
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, "Server Key") }
}

// ---------------------------------------------------------------------------------------------
// Message syntax (RFC 5802 §7)
// ---------------------------------------------------------------------------------------------

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

const messageText = (bytes: Uint8Array, reason: ScramErrorReason, what: string): string => {
  let text: string
  try {
    text = strictUtf8.decode(bytes)
  } catch {
    return fail(reason, `${what} is not valid UTF-8`)
  }
  if (text.indexOf("\u0000") !== -1) fail(reason, `${what} contains a NUL character`)
  return text
}

interface Attribute {
  readonly name: string
  readonly value: string
}

/** Splits `a=v,b=w` into attributes; every one must be one ASCII letter, "=", and a non-empty value. */
const attributes = (text: string, reason: ScramErrorReason, what: string, allowEmpty = ""): Array<Attribute> => {
  const out: Array<Attribute> = []
  for (const part of text.split(",")) {
    const c = part.charCodeAt(0)
    const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
    if (!letter || part.charCodeAt(1) !== 0x3d) fail(reason, `${what}: malformed attribute "${clip(part)}"`)
    const name = part[0]!
    if (part.length === 2 && !allowEmpty.includes(name)) fail(reason, `${what}: attribute "${name}" is empty`)
    out.push({ name, value: part.slice(2) })
  }
  return out
}

const clip = (s: string): string => (s.length > 40 ? s.slice(0, 40) + "…" : s)

/** Attribute names RFC 5802 defines; an extension must use another. */
const RESERVED_ATTRIBUTES = "acemnprsvi"

const checkExtensions = (attrs: ReadonlyArray<Attribute>, from: number, reason: ScramErrorReason, what: string) => {
  for (let i = from; i < attrs.length; i++) {
    const name = attrs[i]!.name
    if (RESERVED_ATTRIBUTES.includes(name)) {
      fail(reason, `${what}: unexpected attribute "${name}" at position ${i + 1}`)
    }
  }
}

/** RFC 5802 `printable`: %x21-2B / %x2D-7E. */
const isPrintableNonce = (s: string): boolean => {
  if (s.length === 0) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x21 || c > 0x7e || c === 0x2c) return false
  }
  return true
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Strict base64 (RFC 4648 alphabet, padded), or undefined. */
const decodeBase64 = (s: string): Uint8Array | undefined =>
  BASE64.test(s) ? new Uint8Array(Buffer.from(s, "base64")) : undefined

const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64")

/** saslname (RFC 5802): "=" → "=3D", "," → "=2C". */
const escapeSaslName = (name: string): string => name.replace(/=/g, "=3D").replace(/,/g, "=2C")

const gs2Header = (binding: ChannelBinding): string =>
  typeof binding === "object" ? "p=tls-server-end-point,," : binding === "server-unsupported" ? "y,," : "n,,"

/** The `c=` value: base64 of the GS2 header, followed by the binding data for `p`. */
const channelBindingValue = (header: string, data: Uint8Array | undefined): string => {
  const headerBytes = encodeUtf8(header)
  if (data === undefined) return toBase64(headerBytes)
  const joined = new Uint8Array(headerBytes.length + data.length)
  joined.set(headerBytes)
  joined.set(data, headerBytes.length)
  return toBase64(joined)
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

export const DEFAULT_MIN_ITERATIONS = 4096
export const DEFAULT_MAX_ITERATIONS = 10_000_000

export interface ScramClientOptions {
  /** PostgreSQL ignores it (it uses the startup message's user); omitted → `n=` as libpq sends. */
  readonly username?: string | undefined
  /** Text (SASLprep'd) or raw bytes (SASLprep'd when valid UTF-8, as PostgreSQL does). */
  readonly password: string | Uint8Array
  readonly channelBinding: ChannelBinding
  /** The client nonce; random (18 bytes, base64, as libpq) unless given (tests). */
  readonly nonce?: string | undefined
  /** Lowest iteration count accepted from the server; default 4096 (PostgreSQL's default). */
  readonly minIterations?: number | undefined
  /** Highest iteration count accepted; default 10,000,000, so a hostile server cannot pin a CPU. */
  readonly maxIterations?: number | undefined
  readonly cache?: SaltedPasswordCache | undefined
}

export interface ScramClientFirst {
  readonly mechanism: ScramMechanism
  /** The SASLInitialResponse data. */
  readonly clientFirstMessage: Uint8Array
  readonly next: ScramClientAwaitingServerFirst
}

export interface ScramClientAwaitingServerFirst {
  /** Takes AuthenticationSASLContinue's data; returns the SASLResponse data. */
  onServerFirst(serverFirstMessage: Uint8Array): ScramClientFinal
}

export interface ScramClientFinal {
  /** The SASLResponse data. */
  readonly clientFinalMessage: Uint8Array
  readonly next: ScramClientAwaitingServerFinal
}

export interface ScramClientAwaitingServerFinal {
  /** Takes AuthenticationSASLFinal's data and verifies the server signature; throws unless it proves the server. */
  onServerFinal(serverFinalMessage: Uint8Array): void
  /** True once the server's signature has been verified: only then may AuthenticationOk be accepted. */
  readonly verified: boolean
}

const positiveInteger = (n: number): boolean => Number.isSafeInteger(n) && n > 0

const start = (options: ScramClientOptions): ScramClientFirst => {
  const binding = options.channelBinding
  if (typeof binding === "object") {
    if (binding.type !== "tls-server-end-point") fail("InvalidOptions", `unsupported channel binding type ${binding.type}`)
    if (!(binding.data instanceof Uint8Array) || binding.data.length === 0) {
      fail("InvalidOptions", "channel binding data is empty")
    }
  }
  const minIterations = options.minIterations ?? DEFAULT_MIN_ITERATIONS
  const maxIterations = options.maxIterations ?? DEFAULT_MAX_ITERATIONS
  if (!positiveInteger(minIterations) || !positiveInteger(maxIterations) || maxIterations < minIterations) {
    fail("InvalidOptions", `invalid iteration limits [${minIterations}, ${maxIterations}]`)
  }
  const clientNonce = options.nonce ?? nodeCrypto().randomBytes(18).toString("base64")
  if (!isPrintableNonce(clientNonce)) fail("InvalidOptions", "the client nonce must be printable ASCII without ','")
  const header = gs2Header(binding)
  const clientFirstBare = `n=${escapeSaslName(options.username ?? "")},r=${clientNonce}`
  const state: ClientContext = {
    password: options.password,
    binding,
    header,
    clientNonce,
    clientFirstBare,
    minIterations,
    maxIterations,
    cache: options.cache ?? defaultSaltedPasswordCache
  }
  return {
    mechanism: typeof binding === "object" ? SCRAM_SHA_256_PLUS : SCRAM_SHA_256,
    clientFirstMessage: encodeUtf8(header + clientFirstBare),
    next: new AwaitingServerFirst(state)
  }
}

interface ClientContext {
  readonly password: string | Uint8Array
  readonly binding: ChannelBinding
  readonly header: string
  readonly clientNonce: string
  readonly clientFirstBare: string
  readonly minIterations: number
  readonly maxIterations: number
  readonly cache: SaltedPasswordCache
}

class AwaitingServerFirst implements ScramClientAwaitingServerFirst {
  private context: ClientContext | undefined
  constructor(context: ClientContext) {
    this.context = context
  }

  onServerFirst(serverFirstMessage: Uint8Array): ScramClientFinal {
    const ctx = this.context
    if (ctx === undefined) return fail("UnexpectedMessage", "a server-first-message was already received")
    this.context = undefined
    const what = "server-first-message"
    const text = messageText(serverFirstMessage, "InvalidServerFirst", what)
    const attrs = attributes(text, "InvalidServerFirst", what)
    if (attrs[0]!.name === "m") {
      fail("MandatoryExtension", `the server requires an unsupported SCRAM extension (m=${clip(attrs[0]!.value)})`)
    }
    if (attrs.length < 3 || attrs[0]!.name !== "r" || attrs[1]!.name !== "s" || attrs[2]!.name !== "i") {
      fail("InvalidServerFirst", `${what} must be r=…,s=…,i=… in that order, got "${clip(text)}"`)
    }
    checkExtensions(attrs, 3, "InvalidServerFirst", what)
    const nonce = attrs[0]!.value
    if (!isPrintableNonce(nonce)) fail("InvalidServerFirst", `${what}: the nonce has non-printable characters`)
    if (!nonce.startsWith(ctx.clientNonce) || nonce.length <= ctx.clientNonce.length) {
      fail("NonceMismatch", "the server nonce does not extend the client nonce")
    }
    const salt = decodeBase64(attrs[1]!.value)
    if (salt === undefined || salt.length === 0) fail("InvalidSalt", `${what}: the salt is not valid non-empty base64`)
    const iterationText = attrs[2]!.value
    if (!/^[1-9][0-9]*$/.test(iterationText)) {
      fail("InvalidServerFirst", `${what}: the iteration count "${clip(iterationText)}" is not a positive integer`)
    }
    const iterations = iterationText.length > 15 ? Infinity : Number(iterationText)
    if (iterations < ctx.minIterations) {
      fail("IterationCountTooLow", `the server's iteration count ${iterations} is below the minimum ${ctx.minIterations}`)
    }
    if (iterations > ctx.maxIterations) {
      fail(
        "IterationCountTooHigh",
        `the server's iteration count ${clip(iterationText)} is above the maximum ${ctx.maxIterations}`
      )
    }
    const salted = ctx.cache.get(preparePassword(ctx.password), salt!, iterations)
    const keys = keysFromSalted(salted)
    const withoutProof = `c=${
      channelBindingValue(ctx.header, typeof ctx.binding === "object" ? ctx.binding.data : undefined)
    },r=${nonce}`
    const authMessage = `${ctx.clientFirstBare},${text},${withoutProof}`
    const clientSignature = hmac(keys.storedKey, authMessage)
    const proof = xor(keys.clientKey, clientSignature)
    const serverSignature = hmac(keys.serverKey, authMessage)
    return {
      clientFinalMessage: encodeUtf8(`${withoutProof},p=${toBase64(proof)}`),
      next: new AwaitingServerFinal(serverSignature)
    }
  }
}

class AwaitingServerFinal implements ScramClientAwaitingServerFinal {
  private expected: Uint8Array | undefined
  private done = false
  verified = false

  constructor(expected: Uint8Array) {
    this.expected = expected
  }

  onServerFinal(serverFinalMessage: Uint8Array): void {
    const expected = this.expected
    if (this.done || expected === undefined) {
      fail(
        "UnexpectedMessage",
        this.verified ? "a message arrived after the server was verified" : "a server-final-message was already received"
      )
    }
    this.done = true
    this.expected = undefined
    const what = "server-final-message"
    const text = messageText(serverFinalMessage, "InvalidServerFinal", what)
    const attrs = attributes(text, "InvalidServerFinal", what)
    const first = attrs[0]!
    if (first.name === "e") fail("ServerError", `the server reported a SCRAM error: ${clip(first.value)}`, first.value)
    if (first.name !== "v") fail("InvalidServerFinal", `${what} must start with v= or e=, got "${clip(text)}"`)
    checkExtensions(attrs, 1, "InvalidServerFinal", what)
    const signature = decodeBase64(first.value)
    if (signature === undefined || signature.length !== KEY_LENGTH) {
      fail("InvalidServerFinal", `${what}: the server signature is not ${KEY_LENGTH} bytes of base64`)
    }
    if (!constantTimeEqual(signature!, expected!)) {
      fail("SignatureMismatch", "the server signature is wrong: the server does not know the password")
    }
    this.verified = true
  }
}

/** The client side: `ScramClient.start(options)` → client-first → `onServerFirst` → `onServerFinal`. */
export const ScramClient = { start } as const

// ---------------------------------------------------------------------------------------------
// Verifiers
// ---------------------------------------------------------------------------------------------

export const DEFAULT_SALT_LENGTH = 16

export interface ScramVerifier {
  readonly iterations: number
  readonly salt: Uint8Array
  readonly storedKey: Uint8Array
  readonly serverKey: Uint8Array
}

/** PostgreSQL's stored form (pg_authid.rolpassword): `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`. */
export const scramVerifier = (
  password: string | Uint8Array,
  salt: Uint8Array = nodeCrypto().randomBytes(DEFAULT_SALT_LENGTH),
  iterations = DEFAULT_MIN_ITERATIONS
): string => formatVerifier(makeVerifier(password, salt, iterations))

const makeVerifier = (password: string | Uint8Array, salt: Uint8Array, iterations: number): ScramVerifier => {
  if (!positiveInteger(iterations)) fail("InvalidOptions", `invalid iteration count ${iterations}`)
  if (salt.length === 0) fail("InvalidOptions", "the salt is empty")
  const keys = keysFromSalted(defaultSaltedPasswordCache.get(preparePassword(password), salt, iterations))
  return { iterations, salt, storedKey: keys.storedKey, serverKey: keys.serverKey }
}

export const formatVerifier = (v: ScramVerifier): string =>
  `SCRAM-SHA-256$${v.iterations}:${toBase64(v.salt)}$${toBase64(v.storedKey)}:${toBase64(v.serverKey)}`

export const parseVerifier = (verifier: string): ScramVerifier => {
  const m = /^SCRAM-SHA-256\$([1-9][0-9]{0,9}):([^$:]+)\$([^$:]+):([^$:]+)$/.exec(verifier)
  if (m === null) return fail("InvalidVerifier", "not a SCRAM-SHA-256 verifier")
  const iterations = Number(m[1])
  const salt = decodeBase64(m[2]!)
  const storedKey = decodeBase64(m[3]!)
  const serverKey = decodeBase64(m[4]!)
  if (!positiveInteger(iterations) || iterations > 0x7fffffff) fail("InvalidVerifier", "bad iteration count")
  if (salt === undefined || salt.length === 0) fail("InvalidVerifier", "bad salt")
  if (storedKey?.length !== KEY_LENGTH || serverKey?.length !== KEY_LENGTH) fail("InvalidVerifier", "bad keys")
  return { iterations, salt: salt!, storedKey: storedKey!, serverKey: serverKey! }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

export interface ScramServerOptions {
  /** The server's part of the nonce, appended to the client's; random (18 bytes, base64) unless given. */
  readonly nonce?: string | undefined
  /**
   * The binding of this connection's TLS certificate, when the connection uses TLS: the server
   * then offers SCRAM-SHA-256-PLUS and refuses a client that claims (`y`) it saw no -PLUS.
   */
  readonly channelBinding?: TlsServerEndPointBinding | undefined
}

export interface ScramServerFirst {
  /** The AuthenticationSASLContinue data. */
  readonly serverFirstMessage: Uint8Array
  readonly next: ScramServerAwaitingClientFinal
}

export interface ScramServerAwaitingClientFinal {
  /** Verifies the proof and the channel binding; returns the AuthenticationSASLFinal data. */
  onClientFinal(clientFinalMessage: Uint8Array): { readonly serverFinalMessage: Uint8Array }
}

/**
 * The server side, as PostgreSQL's auth-scram.c behaves: for mock servers and round-trip tests.
 * One instance per exchange (it refuses a second client-first).
 */
export class ScramServer {
  readonly verifier: ScramVerifier
  readonly mechanisms: ReadonlyArray<ScramMechanism>
  private readonly options: ScramServerOptions
  private started = false

  private constructor(verifier: ScramVerifier, options: ScramServerOptions) {
    this.verifier = verifier
    this.options = options
    this.mechanisms = options.channelBinding === undefined ? [SCRAM_SHA_256] : [SCRAM_SHA_256_PLUS, SCRAM_SHA_256]
    if (options.nonce !== undefined && !isPrintableNonce(options.nonce)) {
      fail("InvalidOptions", "the server nonce must be printable ASCII without ','")
    }
  }

  static fromVerifier(verifier: string | ScramVerifier, options: ScramServerOptions = {}): ScramServer {
    return new ScramServer(typeof verifier === "string" ? parseVerifier(verifier) : verifier, options)
  }

  static fromPassword(
    password: string | Uint8Array,
    options: ScramServerOptions & { readonly salt?: Uint8Array; readonly iterations?: number } = {}
  ): ScramServer {
    const verifier = makeVerifier(
      password,
      options.salt ?? nodeCrypto().randomBytes(DEFAULT_SALT_LENGTH),
      options.iterations ?? DEFAULT_MIN_ITERATIONS
    )
    return new ScramServer(verifier, options)
  }

  /** Takes SASLInitialResponse's mechanism and data; returns the AuthenticationSASLContinue data. */
  onClientFirst(mechanism: string, clientFirstMessage: Uint8Array): ScramServerFirst {
    if (this.started) fail("UnexpectedMessage", "a client-first-message was already received")
    this.started = true
    const binding = this.options.channelBinding
    if (!this.mechanisms.includes(mechanism as ScramMechanism)) {
      fail("UnsupportedMechanism", `mechanism ${clip(mechanism)} is not offered`)
    }
    const what = "client-first-message"
    const text = messageText(clientFirstMessage, "InvalidClientFirst", what)
    // gs2-header = gs2-cbind-flag "," [authzid] ","
    const firstComma = text.indexOf(",")
    const secondComma = firstComma < 0 ? -1 : text.indexOf(",", firstComma + 1)
    if (secondComma < 0) fail("InvalidClientFirst", `${what}: no GS2 header`)
    const flag = text.slice(0, firstComma)
    const authzid = text.slice(firstComma + 1, secondComma)
    const header = text.slice(0, secondComma + 1)
    const bare = text.slice(secondComma + 1)
    if (authzid !== "") fail("InvalidClientFirst", `${what}: authorization identities are not supported`)
    let bindingData: Uint8Array | undefined
    if (flag === "p=tls-server-end-point") {
      if (mechanism !== SCRAM_SHA_256_PLUS || binding === undefined) {
        fail("ChannelBindingMismatch", "channel binding requested, but SCRAM-SHA-256-PLUS was not selected")
      }
      bindingData = binding!.data
    } else if (flag.startsWith("p=")) {
      fail("ChannelBindingMismatch", `unsupported channel binding type ${clip(flag.slice(2))}`)
    } else if (flag === "y" || flag === "n") {
      if (mechanism === SCRAM_SHA_256_PLUS) {
        fail("ChannelBindingMismatch", "SCRAM-SHA-256-PLUS selected without channel binding")
      }
      // `y`: the client could bind but saw no -PLUS. We offered it, so someone removed it.
      if (flag === "y" && binding !== undefined) {
        fail("ChannelBindingMismatch", "the client supports channel binding but believes the server does not")
      }
    } else {
      fail("InvalidClientFirst", `${what}: unknown GS2 channel binding flag "${clip(flag)}"`)
    }
    const attrs = attributes(bare, "InvalidClientFirst", what, "n")
    if (attrs[0]!.name === "m") fail("InvalidClientFirst", `${what}: unsupported mandatory extension`)
    if (attrs.length < 2 || attrs[0]!.name !== "n" || attrs[1]!.name !== "r") {
      fail("InvalidClientFirst", `${what} must be n=…,r=… in that order`)
    }
    checkExtensions(attrs, 2, "InvalidClientFirst", what)
    const clientNonce = attrs[1]!.value
    if (!isPrintableNonce(clientNonce)) fail("InvalidClientFirst", `${what}: the nonce has non-printable characters`)
    const nonce = clientNonce + (this.options.nonce ?? nodeCrypto().randomBytes(18).toString("base64"))
    const v = this.verifier
    const serverFirst = `r=${nonce},s=${toBase64(v.salt)},i=${v.iterations}`
    const expectedBinding = channelBindingValue(header, bindingData)
    let done = false
    return {
      serverFirstMessage: encodeUtf8(serverFirst),
      next: {
        onClientFinal: (clientFinalMessage) => {
          if (done) fail("UnexpectedMessage", "a client-final-message was already received")
          done = true
          return verifyClientFinal(v, bare, serverFirst, nonce, expectedBinding, clientFinalMessage)
        }
      }
    }
  }
}

const verifyClientFinal = (
  v: ScramVerifier,
  clientFirstBare: string,
  serverFirst: string,
  nonce: string,
  expectedBinding: string,
  message: Uint8Array
): { readonly serverFinalMessage: Uint8Array } => {
  const what = "client-final-message"
  const text = messageText(message, "InvalidClientFinal", what)
  const attrs = attributes(text, "InvalidClientFinal", what)
  const last = attrs.length - 1
  if (attrs.length < 3 || attrs[0]!.name !== "c" || attrs[1]!.name !== "r" || attrs[last]!.name !== "p") {
    fail("InvalidClientFinal", `${what} must be c=…,r=…[,ext],p=…`)
  }
  for (let i = 2; i < last; i++) {
    if (RESERVED_ATTRIBUTES.includes(attrs[i]!.name)) fail("InvalidClientFinal", `${what}: unexpected attribute`)
  }
  // Compare the decoded bytes, so the check does not depend on base64 spelling.
  const cbind = decodeBase64(attrs[0]!.value)
  const expected = decodeBase64(expectedBinding)!
  if (cbind === undefined || !constantTimeEqual(cbind, expected)) {
    fail("ChannelBindingMismatch", "the channel binding data does not match this connection")
  }
  if (attrs[1]!.value !== nonce) fail("InvalidClientFinal", `${what}: the nonce does not match`)
  const proof = decodeBase64(attrs[last]!.value)
  if (proof === undefined || proof.length !== KEY_LENGTH) fail("InvalidClientFinal", `${what}: bad proof`)
  const withoutProof = text.slice(0, text.lastIndexOf(",p="))
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`
  const clientSignature = hmac(v.storedKey, authMessage)
  const clientKey = xor(proof!, clientSignature)
  if (!constantTimeEqual(sha256(clientKey), v.storedKey)) {
    fail("ClientProofMismatch", "password authentication failed: wrong client proof")
  }
  return { serverFinalMessage: encodeUtf8(`v=${toBase64(hmac(v.serverKey, authMessage))}`) }
}

/** A server-final-message reporting an error (RFC 5802 `e=`), e.g. "invalid-proof". */
export const encodeServerError = (value: string): Uint8Array => encodeUtf8(`e=${value}`)

// ---------------------------------------------------------------------------------------------
// tls-server-end-point (RFC 5929 §4.1)
// ---------------------------------------------------------------------------------------------

/** DER of an OBJECT IDENTIFIER's contents, as hex, from dotted notation. */
const oidHex = (dotted: string): string => {
  const arcs = dotted.split(".").map(Number)
  const bytes: Array<number> = [arcs[0]! * 40 + arcs[1]!]
  for (const arc of arcs.slice(2)) {
    const groups: Array<number> = []
    let n = arc
    do {
      groups.unshift(n & 0x7f)
      n = Math.floor(n / 128)
    } while (n > 0)
    for (let i = 0; i < groups.length - 1; i++) groups[i]! |= 0x80
    bytes.push(...groups)
  }
  return Buffer.from(bytes).toString("hex")
}

/** Hash OIDs (as used in RSASSA-PSS parameters) → node:crypto names. */
const HASH_OIDS = new Map<string, string>([
  [oidHex("1.2.840.113549.2.5"), "md5"],
  [oidHex("1.3.14.3.2.26"), "sha1"],
  [oidHex("2.16.840.1.101.3.4.2.4"), "sha224"],
  [oidHex("2.16.840.1.101.3.4.2.1"), "sha256"],
  [oidHex("2.16.840.1.101.3.4.2.2"), "sha384"],
  [oidHex("2.16.840.1.101.3.4.2.3"), "sha512"],
  [oidHex("2.16.840.1.101.3.4.2.7"), "sha3-224"],
  [oidHex("2.16.840.1.101.3.4.2.8"), "sha3-256"],
  [oidHex("2.16.840.1.101.3.4.2.9"), "sha3-384"],
  [oidHex("2.16.840.1.101.3.4.2.10"), "sha3-512"]
])

/** Signature algorithm OIDs → the hash they sign with. */
const SIGNATURE_OIDS = new Map<string, string>([
  [oidHex("1.2.840.113549.1.1.4"), "md5"], // md5WithRSAEncryption
  [oidHex("1.2.840.113549.1.1.5"), "sha1"], // sha1WithRSAEncryption
  [oidHex("1.2.840.113549.1.1.14"), "sha224"],
  [oidHex("1.2.840.113549.1.1.11"), "sha256"],
  [oidHex("1.2.840.113549.1.1.12"), "sha384"],
  [oidHex("1.2.840.113549.1.1.13"), "sha512"],
  [oidHex("1.2.840.10045.4.1"), "sha1"], // ecdsa-with-SHA1
  [oidHex("1.2.840.10045.4.3.1"), "sha224"],
  [oidHex("1.2.840.10045.4.3.2"), "sha256"],
  [oidHex("1.2.840.10045.4.3.3"), "sha384"],
  [oidHex("1.2.840.10045.4.3.4"), "sha512"],
  [oidHex("1.2.840.10040.4.3"), "sha1"], // dsa-with-sha1
  [oidHex("2.16.840.1.101.3.4.3.1"), "sha224"], // dsa-with-sha224
  [oidHex("2.16.840.1.101.3.4.3.2"), "sha256"], // dsa-with-sha256
  [oidHex("2.16.840.1.101.3.4.3.9"), "sha3-224"], // ecdsa-with-SHA3-*
  [oidHex("2.16.840.1.101.3.4.3.10"), "sha3-256"],
  [oidHex("2.16.840.1.101.3.4.3.11"), "sha3-384"],
  [oidHex("2.16.840.1.101.3.4.3.12"), "sha3-512"],
  [oidHex("2.16.840.1.101.3.4.3.13"), "sha3-224"], // RSASSA-PKCS1-v1_5 with SHA3-*
  [oidHex("2.16.840.1.101.3.4.3.14"), "sha3-256"],
  [oidHex("2.16.840.1.101.3.4.3.15"), "sha3-384"],
  [oidHex("2.16.840.1.101.3.4.3.16"), "sha3-512"]
])

const RSASSA_PSS = oidHex("1.2.840.113549.1.1.10")

/** One DER TLV: tag, and its contents at [start, end). */
interface Tlv {
  readonly tag: number
  readonly start: number
  readonly end: number
}

/** Reads the TLV at `pos`, bounded by `limit`; definite lengths of up to 4 bytes only (DER). */
const readTlv = (der: Uint8Array, pos: number, limit: number): Tlv => {
  if (pos + 2 > limit) return fail("InvalidCertificate", `certificate DER is truncated at byte ${pos}`)
  const tag = der[pos]!
  if ((tag & 0x1f) === 0x1f) fail("InvalidCertificate", `unsupported multi-byte DER tag at byte ${pos}`)
  let lengthByte = der[pos + 1]!
  let at = pos + 2
  let length = lengthByte
  if (lengthByte & 0x80) {
    const n = lengthByte & 0x7f
    if (n === 0 || n > 4) fail("InvalidCertificate", `unsupported DER length form at byte ${pos + 1}`)
    if (at + n > limit) fail("InvalidCertificate", `certificate DER is truncated at byte ${at}`)
    length = 0
    for (let i = 0; i < n; i++) {
      lengthByte = der[at++]!
      length = length * 256 + lengthByte
    }
  }
  if (at + length > limit) fail("InvalidCertificate", `DER element at byte ${pos} runs past its container`)
  return { tag, start: at, end: at + length }
}

const SEQUENCE = 0x30
const OBJECT_IDENTIFIER = 0x06

const expectTag = (tlv: Tlv, tag: number, what: string): Tlv => {
  if (tlv.tag !== tag) fail("InvalidCertificate", `expected ${what} (tag 0x${tag.toString(16)}), got 0x${tlv.tag.toString(16)}`)
  return tlv
}

const oidAt = (der: Uint8Array, tlv: Tlv): string => Buffer.from(der.subarray(tlv.start, tlv.end)).toString("hex")

/**
 * The hash RFC 5929 §4.1 prescribes for a certificate: its signature's hash, with MD5 and SHA-1
 * replaced by SHA-256. For RSASSA-PSS the hash is the `hashAlgorithm` parameter; when it is absent
 * its ASN.1 DEFAULT, SHA-1, applies (RFC 4055), hence SHA-256. This is what the server computes:
 * PostgreSQL (be_tls_get_certificate_hash) asks OpenSSL's X509_get_signature_info, which reports
 * the PSS parameter's digest, defaulting to SHA-1, then maps MD5/SHA-1 to SHA-256. Algorithms with
 * no separate hash (Ed25519, Ed448) have no tls-server-end-point: "UnsupportedCertificate".
 */
export const certificateSignatureHash = (certificateDer: Uint8Array): string => {
  const der = certificateDer
  const certificate = expectTag(readTlv(der, 0, der.length), SEQUENCE, "Certificate SEQUENCE")
  const tbs = expectTag(readTlv(der, certificate.start, certificate.end), SEQUENCE, "TBSCertificate SEQUENCE")
  const algorithm = expectTag(readTlv(der, tbs.end, certificate.end), SEQUENCE, "AlgorithmIdentifier SEQUENCE")
  const oid = expectTag(readTlv(der, algorithm.start, algorithm.end), OBJECT_IDENTIFIER, "signature algorithm OID")
  const oidText = oidAt(der, oid)
  let hash: string | undefined
  if (oidText === RSASSA_PSS) {
    hash = "sha1" // RFC 4055 DEFAULT
    if (oid.end < algorithm.end) {
      const params = expectTag(readTlv(der, oid.end, algorithm.end), SEQUENCE, "RSASSA-PSS-params SEQUENCE")
      if (params.start < params.end) {
        const first = readTlv(der, params.start, params.end)
        if (first.tag === 0xa0) {
          // hashAlgorithm [0] EXPLICIT AlgorithmIdentifier
          const hashAlgorithm = expectTag(readTlv(der, first.start, first.end), SEQUENCE, "hashAlgorithm SEQUENCE")
          const hashOid = expectTag(
            readTlv(der, hashAlgorithm.start, hashAlgorithm.end),
            OBJECT_IDENTIFIER,
            "hash algorithm OID"
          )
          hash = HASH_OIDS.get(oidAt(der, hashOid))
        }
      }
    }
  } else {
    hash = SIGNATURE_OIDS.get(oidText)
  }
  if (hash === undefined) {
    return fail("UnsupportedCertificate", `the certificate's signature algorithm (OID hex ${oidText}) has no tls-server-end-point hash`)
  }
  return hash === "md5" || hash === "sha1" ? "sha256" : hash
}

/** The tls-server-end-point channel binding data for a server certificate (DER). */
export const tlsServerEndPoint = (certificateDer: Uint8Array): Uint8Array =>
  new Uint8Array(nodeCrypto().createHash(certificateSignatureHash(certificateDer)).update(certificateDer).digest())
