/**
 * The libpq password file (`~/.pgpass`, `PGPASSFILE`, or the `passfile` keyword).
 *
 * Each line is `hostname:port:database:username:password`. The rules are libpq's
 * (`passwordFromFile` / `pwdfMatchesString` in fe-connect.c), reproduced exactly:
 * - a field of exactly `*` matches anything; otherwise fields compare byte for byte;
 * - `\:` and `\\` escape a colon or a backslash inside a field (a backslash escapes any character);
 * - the password is the rest of the line up to the first unescaped `:`, de-escaped;
 * - a line starting with `#` is a comment; trailing `\r`/`\n` are stripped; nothing else is trimmed;
 * - the first matching line wins;
 * - the host name `localhost` matches a Unix-socket connection to the default socket directory
 *   (libpq compares against its compiled-in DEFAULT_PGSOCKET_DIR; pgfx against its chosen default);
 * - a file that is not a regular file, or that is group- or world-accessible (any of mode 0077), is
 *   ignored; the warning libpq prints to stderr is returned as a value instead.
 *
 * Invariants:
 * - Nothing here throws: a missing or unreadable file is "no password".
 * - Passwords never appear in warnings.
 */
import * as Fs from "node:fs"

/** What a pgpass line is matched against: the values libpq uses for one host of a connection. */
export interface PassfileKey {
  /** The host name as given, the hostaddr when no host name was given, or `localhost` (see `hostForLookup`). */
  readonly host: string
  readonly port: string
  readonly database: string
  readonly user: string
}

/**
 * The host name libpq looks up for a connection target: `localhost` for an empty host or for the
 * default socket directory, otherwise the host (or socket directory) exactly as given.
 */
export const hostForLookup = (host: string, defaultSocketDir: string | undefined): string =>
  host === "" || (defaultSocketDir !== undefined && host === defaultSocketDir) ? "localhost" : host

/**
 * Matches one field of `line` starting at `start` against `token`. Returns the index just past the
 * field's terminating `:`, or -1 when the field does not match (libpq's `pwdfMatchesString`).
 */
const matchField = (line: string, start: number, token: string): number => {
  if (line.charCodeAt(start) === 42 /* * */ && line.charCodeAt(start + 1) === 58 /* : */) return start + 2
  let i = start
  let j = 0
  let escaped = false
  while (i < line.length) {
    if (line.charCodeAt(i) === 92 /* \ */ && !escaped) {
      i++
      escaped = true
    }
    if (line.charCodeAt(i) === 58 /* : */ && j === token.length && !escaped) return i + 1
    escaped = false
    if (j === token.length) return -1
    if (i < line.length && line[i] === token[j]) {
      i++
      j++
    } else {
      return -1
    }
  }
  return -1
}

/** The password of one line if the line matches `key`, else undefined. Comments and empty lines never match. */
export const matchLine = (rawLine: string, key: PassfileKey): string | undefined => {
  let end = rawLine.length
  while (end > 0 && (rawLine.charCodeAt(end - 1) === 10 || rawLine.charCodeAt(end - 1) === 13)) end--
  const line = end === rawLine.length ? rawLine : rawLine.slice(0, end)
  if (line.length === 0 || line.charCodeAt(0) === 35 /* # */) return undefined
  let at = matchField(line, 0, key.host)
  if (at < 0) return undefined
  at = matchField(line, at, key.port)
  if (at < 0) return undefined
  at = matchField(line, at, key.database)
  if (at < 0) return undefined
  at = matchField(line, at, key.user)
  if (at < 0) return undefined
  let password = ""
  for (let i = at; i < line.length && line.charCodeAt(i) !== 58; i++) {
    if (line.charCodeAt(i) === 92 && i + 1 < line.length) i++
    password += line[i]
  }
  return password
}

/** The password of the first line of `content` matching `key`, else undefined. */
export const lookup = (content: string, key: PassfileKey): string | undefined => {
  if (key.database === "" || key.user === "") return undefined
  for (const line of content.split("\n")) {
    const password = matchLine(line, key)
    if (password !== undefined) return password
  }
  return undefined
}

/** Escapes a value for use as a pgpass field (`:` and `\`), e.g. to write a file. */
export const escapeField = (value: string): string => value.replace(/[\\:]/g, (c) => "\\" + c)

/** The outcome of reading a password file. */
export type PassfileContent =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Ignored"; readonly warning: string }
  | { readonly _tag: "Loaded"; readonly content: string }

/** The file-system calls `read` needs; tests may substitute them. */
export interface PassfileFs {
  readonly stat: (path: string) => { readonly mode: number; readonly isFile: boolean } | undefined
  readonly readFile: (path: string) => string | undefined
}

export const nodeFs: PassfileFs = {
  stat: (path) => {
    try {
      const s = Fs.statSync(path)
      return { mode: s.mode, isFile: s.isFile() }
    } catch {
      return undefined
    }
  },
  readFile: (path) => {
    try {
      return Fs.readFileSync(path, "utf8")
    } catch {
      return undefined
    }
  }
}

/**
 * Reads a password file with libpq's checks: missing or unreadable is `Missing`; not a regular file
 * or group/world-accessible is `Ignored` with libpq's warning text.
 */
export const read = (path: string, fs: PassfileFs = nodeFs): PassfileContent => {
  const stat = fs.stat(path)
  if (stat === undefined) return { _tag: "Missing" }
  if (!stat.isFile) return { _tag: "Ignored", warning: `password file "${path}" is not a plain file` }
  if ((stat.mode & 0o077) !== 0) {
    return {
      _tag: "Ignored",
      warning: `password file "${path}" has group or world access; permissions should be u=rw (0600) or less`
    }
  }
  const content = fs.readFile(path)
  return content === undefined ? { _tag: "Missing" } : { _tag: "Loaded", content }
}
