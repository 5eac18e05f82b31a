/**
 * node:crypto, loaded on first use (`process.getBuiltinModule`, synchronous): a connection that never
 * authenticates with a password (trust, peer, certificates) never loads it, nor the OpenSSL state it sets up.
 */
import type * as Crypto from "node:crypto"

export const nodeCrypto = (): typeof Crypto => process.getBuiltinModule("node:crypto")
