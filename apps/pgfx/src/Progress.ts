/**
 * Terminal progress and live views on stderr.
 *
 * Invariants:
 * - Nothing is drawn when the stream is not a TTY or the command is quiet: output stays clean for
 *   pipes, files and tests. In-place redraws use `\r` + clear-line, at most every `intervalMs`.
 * - Drawing never fails the command (a write error on stderr is ignored).
 */

export const formatBytes = (n: number): string => {
  const units = ["B", "kB", "MB", "GB", "TB"]
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`
}

export const formatDuration = (ms: number): string => {
  if (!Number.isFinite(ms) || ms < 0) return "--:--"
  const s = Math.round(ms / 1000)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  const mm = String(m).padStart(2, "0")
  const ss = String(sec).padStart(2, "0")
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

const SPARKS = "▁▂▃▄▅▆▇█"

/** A one-line chart of the last values (scaled to their maximum). */
export const sparkline = (values: ReadonlyArray<number>): string => {
  const max = Math.max(1, ...values)
  let out = ""
  for (const v of values) out += SPARKS[Math.min(SPARKS.length - 1, Math.round((v / max) * (SPARKS.length - 1)))]
  return out
}

export interface ProgressOptions {
  readonly quiet?: boolean
  readonly stream?: NodeJS.WriteStream
  readonly intervalMs?: number
  /** Total bytes, when known: enables the bar and the ETA. */
  readonly totalBytes?: number | undefined
  readonly label?: string
}

/** rows / bytes / bytes per second / ETA, redrawn in place. */
export class ProgressBar {
  private readonly stream: NodeJS.WriteStream
  private readonly enabled: boolean
  private readonly intervalMs: number
  private readonly started = Date.now()
  private lastDraw = 0
  private drawn = false
  rows = 0
  bytes = 0
  totalBytes: number | undefined

  readonly options: ProgressOptions

  constructor(options: ProgressOptions = {}) {
    this.options = options
    this.stream = options.stream ?? process.stderr
    this.enabled = options.quiet !== true && this.stream.isTTY === true
    this.intervalMs = options.intervalMs ?? 100
    this.totalBytes = options.totalBytes
  }

  update(rows: number, bytes: number): void {
    this.rows += rows
    this.bytes += bytes
    if (!this.enabled) return
    const now = Date.now()
    if (now - this.lastDraw < this.intervalMs) return
    this.lastDraw = now
    this.draw(now)
  }

  private line(now: number): string {
    const elapsed = Math.max(1, now - this.started)
    const rate = (this.bytes * 1000) / elapsed
    const parts = [`${this.options.label ?? "copy"}: ${this.rows.toLocaleString("en-US")} rows`, formatBytes(this.bytes), `${formatBytes(rate)}/s`]
    if (this.totalBytes !== undefined && this.totalBytes > 0) {
      const fraction = Math.min(1, this.bytes / this.totalBytes)
      const width = 24
      const filled = Math.round(fraction * width)
      const eta = rate > 0 ? ((this.totalBytes - this.bytes) / rate) * 1000 : Number.NaN
      parts.unshift(`[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`)
      parts.push(`ETA ${formatDuration(eta)}`)
    } else {
      parts.push(formatDuration(elapsed))
    }
    return parts.join("  ")
  }

  private draw(now: number): void {
    try {
      this.stream.write(`\r\x1b[2K${this.line(now)}`)
      this.drawn = true
    } catch {
      // drawing is best effort
    }
  }

  /** Draws the final state and ends the line. */
  done(): void {
    if (!this.enabled) return
    this.draw(Date.now())
    if (this.drawn) this.stream.write("\n")
  }
}
