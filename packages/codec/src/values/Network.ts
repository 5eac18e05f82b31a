/**
 * inet, cidr, macaddr, macaddr8 — as strings in PostgreSQL's text form.
 *
 * Invariants:
 * - Binary decode produces exactly the text the server prints: IPv4 dotted quad, IPv6 with the
 *   longest run (≥ 2 groups) of zero groups compressed and IPv4-embedded forms as PostgreSQL's
 *   inet_net_ntop prints them; "/bits" omitted for a full-length inet and always present for cidr.
 * - Binary format: family (2 = IPv4, 3 = IPv6), bits, is_cidr, address length (4 / 16), address bytes.
 * - Encoders accept the full forms (abbreviated cidr input such as "10/8" is refused, send text for it).
 * - MAC addresses are lowercase colon-separated hex; encoders also accept '-' or no separators.
 */
import type { Writer } from "../internal/Writer.ts"
import { decodeUtf8 } from "../internal/utf8.ts"
import { TypeOid } from "../TypeOid.ts"
import { HEX } from "./Primitives.ts"
import { encodeInvalid, invalidValue, type ValueCodec } from "./ValueCodec.ts"

const PGSQL_AF_INET = 2
const PGSQL_AF_INET6 = 3

const formatIpv6 = (b: Uint8Array, p: number): string => {
  const words: Array<number> = []
  for (let i = 0; i < 8; i++) words.push((b[p + 2 * i]! << 8) | b[p + 2 * i + 1]!)
  let bestBase = -1
  let bestLen = 0
  let curBase = -1
  let curLen = 0
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      if (curBase === -1) {
        curBase = i
        curLen = 1
      } else curLen++
    } else if (curBase !== -1) {
      if (bestBase === -1 || curLen > bestLen) {
        bestBase = curBase
        bestLen = curLen
      }
      curBase = -1
    }
  }
  if (curBase !== -1 && (bestBase === -1 || curLen > bestLen)) {
    bestBase = curBase
    bestLen = curLen
  }
  if (bestBase !== -1 && bestLen < 2) bestBase = -1
  let s = ""
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) s += ":"
      continue
    }
    if (i !== 0) s += ":"
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 7 && words[7] !== 1) || (bestLen === 5 && words[5] === 0xffff))) {
      s += `${b[p + 12]}.${b[p + 13]}.${b[p + 14]}.${b[p + 15]}`
      return s
    }
    s += words[i]!.toString(16)
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) s += ":"
  return s
}

const decodeInetBinary = (type: string, isCidrType: boolean) => (buf: Uint8Array, start: number, end: number): string => {
  if (end - start < 4) return invalidValue(type, "binary value too short", start)
  const family = buf[start]!
  const bits = buf[start + 1]!
  const isCidr = buf[start + 2]!
  const nb = buf[start + 3]!
  const size = family === PGSQL_AF_INET ? 4 : family === PGSQL_AF_INET6 ? 16 : invalidValue(type, `address family ${family}`, start)
  if (nb !== size || end - start !== 4 + size) return invalidValue(type, `address length ${nb}`, start + 3)
  if (bits > size * 8) return invalidValue(type, `${bits} bits`, start + 1)
  if (isCidr > 1) return invalidValue(type, `is_cidr ${isCidr}`, start + 2)
  const p = start + 4
  const addr = size === 4 ? `${buf[p]}.${buf[p + 1]}.${buf[p + 2]}.${buf[p + 3]}` : formatIpv6(buf, p)
  return bits !== size * 8 || isCidrType ? `${addr}/${bits}` : addr
}

const parseIpv4 = (s: string): Array<number> | undefined => {
  const parts = s.split(".")
  if (parts.length !== 4) return undefined
  const out: Array<number> = []
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined
    out.push(Number(part))
  }
  return out
}

const parseIpv6 = (s: string): Array<number> | undefined => {
  const halves = s.split("::")
  if (halves.length > 2) return undefined
  const groups = (h: string): Array<number> | undefined => {
    if (h === "") return []
    const out: Array<number> = []
    const parts = h.split(":")
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part)
        if (v4 === undefined) return undefined
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!)
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined
        out.push(parseInt(part, 16))
      }
    }
    return out
  }
  const head = groups(halves[0]!)
  const tail = halves.length === 2 ? groups(halves[1]!) : []
  if (head === undefined || tail === undefined) return undefined
  const missing = 8 - head.length - tail.length
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined
  const words = [...head, ...Array<number>(missing).fill(0), ...tail]
  const bytes: Array<number> = []
  for (const w of words) bytes.push(w >> 8, w & 0xff)
  return bytes
}

interface Inet {
  readonly family: number
  readonly bits: number
  readonly bytes: ReadonlyArray<number>
}

const parseInet = (type: string, s: string, isCidr: boolean): Inet => {
  if (typeof s !== "string") return encodeInvalid(type, `${typeof s} is not a string`)
  const slash = s.indexOf("/")
  const addr = slash === -1 ? s : s.slice(0, slash)
  const v4 = parseIpv4(addr)
  const bytes = v4 ?? parseIpv6(addr)
  if (bytes === undefined) return encodeInvalid(type, JSON.stringify(s))
  const max = bytes.length * 8
  const bitsText = slash === -1 ? undefined : s.slice(slash + 1)
  if (bitsText !== undefined && !/^\d{1,3}$/.test(bitsText)) return encodeInvalid(type, JSON.stringify(s))
  const bits = bitsText === undefined ? max : Number(bitsText)
  if (bits > max) return encodeInvalid(type, `${bits} bits in ${JSON.stringify(s)}`)
  if (isCidr) {
    // PostgreSQL refuses cidr values with bits set right of the netmask.
    for (let i = 0; i < bytes.length; i++) {
      const keep = Math.max(0, Math.min(8, bits - i * 8))
      if ((bytes[i]! & (0xff >> keep)) !== 0) return encodeInvalid(type, `${JSON.stringify(s)} has bits set to the right of the mask`)
    }
  }
  return { family: v4 !== undefined ? PGSQL_AF_INET : PGSQL_AF_INET6, bits, bytes }
}

const inetCodec = (name: string, oid: number, isCidr: boolean): ValueCodec<string> => ({
  name,
  oid,
  decodeText: decodeUtf8,
  decodeBinary: decodeInetBinary(name, isCidr),
  encodeText: (v) => {
    parseInet(name, v, isCidr)
    return v
  },
  encodeBinary: (w: Writer, v) => {
    const a = parseInet(name, v, isCidr)
    w.u8(a.family).u8(a.bits).u8(isCidr ? 1 : 0).u8(a.bytes.length)
    for (const b of a.bytes) w.u8(b)
  }
})

export const inet = inetCodec("inet", TypeOid.inet, false)
export const cidr = inetCodec("cidr", TypeOid.cidr, true)

const macCodec = (name: string, oid: number, size: number): ValueCodec<string> => {
  const parse = (s: string): Array<number> => {
    if (typeof s !== "string") return encodeInvalid(name, `${typeof s} is not a string`)
    const hex = s.replace(/[:.-]/g, "")
    if (!new RegExp(`^[0-9a-fA-F]{${size * 2}}$`).test(hex)) return encodeInvalid(name, JSON.stringify(s))
    const out: Array<number> = []
    for (let i = 0; i < size; i++) out.push(parseInt(hex.slice(2 * i, 2 * i + 2), 16))
    return out
  }
  const format = (bytes: ArrayLike<number>, p: number): string => {
    let s = HEX[bytes[p]!]!
    for (let i = 1; i < size; i++) s += ":" + HEX[bytes[p + i]!]!
    return s
  }
  return {
    name,
    oid,
    decodeText: (buf, start, end) => {
      const s = decodeUtf8(buf, start, end)
      return /^[0-9a-f]{2}(:[0-9a-f]{2})*$/.test(s) && s.length === size * 3 - 1 ? s : invalidValue(name, JSON.stringify(s), start)
    },
    decodeBinary: (buf, start, end) => {
      if (end - start !== size) return invalidValue(name, `binary value is ${end - start} byte(s), expected ${size}`, start)
      return format(buf, start)
    },
    encodeText: (v) => format(parse(v), 0),
    encodeBinary: (w, v) => {
      for (const b of parse(v)) w.u8(b)
    }
  }
}

export const macaddr = macCodec("macaddr", TypeOid.macaddr, 6)
export const macaddr8 = macCodec("macaddr8", TypeOid.macaddr8, 8)
