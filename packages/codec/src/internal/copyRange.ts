/**
 * Copies `buf[start, end)` into a new array. Not `buf.slice`: on a Node Buffer (what sockets deliver) that is a
 * view sharing the receive buffer's memory, which would keep it alive and see it change if it is reused.
 */
export const copyRange = (buf: Uint8Array, start?: number, end?: number): Uint8Array =>
  Uint8Array.prototype.slice.call(buf, start, end)
