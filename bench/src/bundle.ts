/**
 * Bundles the benchmark worker (bench/src/worker.ts and everything it imports: pgfx, effect and the
 * peers) into plain JavaScript under bench/.build, so workers run without Node's TypeScript
 * type-stripping loader. That loader alone costs ~60 MB of RSS and start-up time in every process,
 * which would drown the peak-RSS figures; every contender runs from the same bundle, so none is
 * favoured. Rebuilt at the start of every `npm run bench` (about a second), never stale.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { build } from "rolldown"

export const BUNDLE_DIR = Path.resolve(import.meta.dirname, "..", ".build")
export const BUNDLED_WORKER = Path.join(BUNDLE_DIR, "worker.mjs")

export const bundleWorker = async (): Promise<string> => {
  // Chunk names carry content hashes: start empty so old chunks do not pile up.
  Fs.rmSync(BUNDLE_DIR, { recursive: true, force: true })
  await build({
    input: Path.resolve(import.meta.dirname, "worker.ts"),
    platform: "node",
    logLevel: "warn",
    // Optional native bindings of the peers stay out of the bundle (they are resolved at run time).
    external: [/^node:/, "pg-native", "cloudflare:sockets"],
    output: { dir: BUNDLE_DIR, format: "esm", entryFileNames: "worker.mjs", chunkFileNames: "[name]-[hash].mjs" }
  })
  return BUNDLED_WORKER
}
