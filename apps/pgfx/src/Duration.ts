/** `30s`, `2m`, `1h`, `500ms`, `100us`, or a plain number of seconds → milliseconds (undefined if unparsable). */
export const parseDurationMs = (text: string): number | undefined => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|sec|m|min|h)?\s*$/i.exec(text)
  if (m === null) return undefined
  const n = Number(m[1])
  switch ((m[2] ?? "s").toLowerCase()) {
    case "us":
    case "µs":
      return n / 1000
    case "ms":
      return n
    case "s":
    case "sec":
      return n * 1000
    case "m":
    case "min":
      return n * 60_000
    case "h":
      return n * 3_600_000
    default:
      return undefined
  }
}
