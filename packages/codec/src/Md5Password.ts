/**
 * PostgreSQL's MD5 password authentication (AuthenticationMD5Password, 54.7).
 *
 * Invariants:
 * - Pure; the answer is `"md5" + md5hex(md5hex(password ‖ user) ‖ salt)`, all text UTF-8 and the
 *   hex lower-case, as libpq's pg_md5_encrypt computes it. No SASLprep: MD5 hashes raw bytes.
 * - `md5Verifier` is the pg_authid form (`"md5" + md5hex(password ‖ user)`), and
 *   `md5PasswordFromVerifier` answers a salt from it, as the server checks a client's answer.
 */
import { nodeCrypto } from "./internal/nodeCrypto.ts"
import { encodeUtf8 } from "./internal/utf8.ts"

const md5Hex = (...parts: ReadonlyArray<Uint8Array>): string => {
  const h = nodeCrypto().createHash("md5")
  for (const part of parts) h.update(part)
  return h.digest("hex")
}

const bytesOf = (s: string | Uint8Array): Uint8Array => (typeof s === "string" ? encodeUtf8(s) : s)

/** The stored verifier PostgreSQL keeps in pg_authid for an MD5 password: `"md5" + md5hex(password ‖ user)`. */
export const md5Verifier = (user: string | Uint8Array, password: string | Uint8Array): string =>
  "md5" + md5Hex(bytesOf(password), bytesOf(user))

/** Answers the server's 4-byte salt from a stored MD5 verifier (what the server expects back). */
export const md5PasswordFromVerifier = (verifier: string, salt: Uint8Array): string =>
  "md5" + md5Hex(encodeUtf8(verifier.startsWith("md5") ? verifier.slice(3) : verifier), salt)

/** The PasswordMessage text answering AuthenticationMD5Password with `salt`. */
export const md5Password = (user: string | Uint8Array, password: string | Uint8Array, salt: Uint8Array): string =>
  md5PasswordFromVerifier(md5Verifier(user, password), salt)
