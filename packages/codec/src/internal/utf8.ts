/**
 * UTF-8 between strings and byte ranges, with a fast path for short ASCII strings
 * (identifiers, command tags, most column values) that avoids TextDecoder's per-call cost.
 * Pure; never throws. Invalid UTF-8 decodes to U+FFFD, as TextDecoder does.
 */
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true })
const encoder = new TextEncoder()

type NodeBuffer = Uint8Array & { utf8Slice(start: number, end: number): string }
const NodeBufferCtor: { prototype: NodeBuffer } | undefined = (globalThis as any).Buffer
const utf8Slice: ((this: Uint8Array, start: number, end: number) => string) | undefined = NodeBufferCtor?.prototype
  .utf8Slice

/**
 * Up to this length a string is built a character at a time: below it that beats the per-call cost
 * of the native decoder, and every intermediate stays a flat string (V8 makes a concatenation of 13
 * or more characters a rope, one allocation per character that its first reader must flatten).
 */
const ASCII_LOOP_MAX = 12

export const decodeUtf8 = (buf: Uint8Array, start: number, end: number): string => {
  const len = end - start
  if (len <= ASCII_LOOP_MAX) {
    let s = ""
    for (let i = start; i < end; i++) {
      const c = buf[i]!
      if (c >= 0x80) return slowDecode(buf, start, end)
      s += String.fromCharCode(c)
    }
    return s
  }
  return slowDecode(buf, start, end)
}

const slowDecode = (buf: Uint8Array, start: number, end: number): string =>
  utf8Slice !== undefined ? utf8Slice.call(buf, start, end) : decoder.decode(buf.subarray(start, end))

/** Number of bytes `s` takes in UTF-8. */
export const utf8Length = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4
        i++
      } else n += 3
    } else n += 3
  }
  return n
}

/** Writes `s` at `pos` (the caller has ensured room for 3 bytes per UTF-16 unit); returns the new position. */
export const encodeUtf8Into = (s: string, buf: Uint8Array, pos: number): number => {
  const n = s.length
  let i = 0
  for (; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x80) break
    buf[pos++] = c
  }
  if (i === n) return pos
  const { written } = encoder.encodeInto(i === 0 ? s : s.slice(i), buf.subarray(pos))
  return pos + written
}

export const encodeUtf8 = (s: string): Uint8Array => encoder.encode(s)
