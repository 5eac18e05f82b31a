/**
 * An incremental tar (ustar) extractor for the archives BASE_BACKUP sends: bytes in, files out.
 *
 * Invariants:
 * - Every entry lands under the target directory: absolute names and `..` components are refused
 *   (a hostile server cannot write outside it).
 * - Regular files, directories and symbolic links are created with their modes; other entry types
 *   are skipped. Data is written as it arrives; memory holds at most one 512-byte header.
 * - The end is two zero blocks (or the end of the input); a truncated entry is an error at `end()`.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

const BLOCK = 512

const field = (h: Uint8Array, start: number, length: number): string => {
  let end = start
  while (end < start + length && h[end] !== 0) end++
  return Buffer.from(h.subarray(start, end)).toString("utf8")
}

const octal = (h: Uint8Array, start: number, length: number): number => {
  const text = field(h, start, length).trim()
  return text.length === 0 ? 0 : Number.parseInt(text, 8)
}

export class TarExtractor {
  private header = new Uint8Array(BLOCK)
  private headerFill = 0
  /** Bytes of the current entry's data still to come, then padding to skip. */
  private remaining = 0
  private padding = 0
  private fd: number | undefined
  private ended = false
  files = 0
  bytes = 0
  readonly root: string

  constructor(root: string) {
    this.root = Path.resolve(root)
    Fs.mkdirSync(this.root, { recursive: true, mode: 0o700 })
  }

  private target(name: string): string {
    const clean = name.replace(/\/+$/, "")
    if (clean.startsWith("/") || clean.split("/").includes("..")) throw new Error(`unsafe path in archive: ${name}`)
    return Path.join(this.root, clean)
  }

  private startEntry(h: Uint8Array): void {
    if (h.every((b) => b === 0)) {
      this.ended = true
      return
    }
    const prefix = field(h, 345, 155)
    const name = (prefix.length > 0 ? `${prefix}/` : "") + field(h, 0, 100)
    const mode = octal(h, 100, 8) & 0o7777
    const size = octal(h, 124, 12)
    const type = String.fromCharCode(h[156] ?? 0)
    const path = this.target(name)
    if (type === "5") {
      Fs.mkdirSync(path, { recursive: true, mode: mode || 0o700 })
    } else if (type === "2") {
      Fs.mkdirSync(Path.dirname(path), { recursive: true })
      Fs.rmSync(path, { force: true })
      Fs.symlinkSync(field(h, 157, 100), path)
    } else if (type === "0" || type === "\0") {
      Fs.mkdirSync(Path.dirname(path), { recursive: true })
      this.fd = Fs.openSync(path, "w", mode || 0o600)
      this.files++
    }
    this.remaining = type === "0" || type === "\0" ? size : 0
    // Entries of other types may still carry data: skip it.
    const skipped = type === "0" || type === "\0" ? 0 : size
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK + skipped
    if (this.remaining === 0) this.finishFile()
  }

  private finishFile(): void {
    if (this.fd !== undefined) {
      Fs.closeSync(this.fd)
      this.fd = undefined
    }
  }

  push(chunk: Uint8Array): void {
    let pos = 0
    while (pos < chunk.length && !this.ended) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - pos)
        Fs.writeSync(this.fd!, chunk, pos, n)
        this.bytes += n
        this.remaining -= n
        pos += n
        if (this.remaining === 0) this.finishFile()
      } else if (this.padding > 0) {
        const n = Math.min(this.padding, chunk.length - pos)
        this.padding -= n
        pos += n
      } else {
        const n = Math.min(BLOCK - this.headerFill, chunk.length - pos)
        this.header.set(chunk.subarray(pos, pos + n), this.headerFill)
        this.headerFill += n
        pos += n
        if (this.headerFill === BLOCK) {
          this.headerFill = 0
          this.startEntry(this.header)
        }
      }
    }
  }

  end(): void {
    this.finishFile()
    if (this.remaining > 0) throw new Error(`archive ended inside an entry (${this.remaining} bytes missing)`)
  }
}
