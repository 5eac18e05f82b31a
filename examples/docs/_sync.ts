/**
 * Rewrites every README's example blocks from the files they name (run after editing an example):
 * `node_modules/.bin/node examples/docs/_sync.ts`. docs.test.ts fails while a block and its file differ.
 *
 * Invariant: only the text between `<!-- example: F -->` and `<!-- /example -->` changes; it becomes a
 * ```ts fence holding F verbatim.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "../..")
const readmes = ["README.md", "packages/codec/README.md", "packages/connection/README.md", "packages/replication/README.md", "packages/sql/README.md", "testing/README.md"]
const docsDir = Path.join(root, "docs")
if (Fs.existsSync(docsDir)) for (const f of Fs.readdirSync(docsDir)) if (f.endsWith(".md")) readmes.push(`docs/${f}`)

for (const readme of readmes) {
  const path = Path.join(root, readme)
  if (!Fs.existsSync(path)) continue
  const before = Fs.readFileSync(path, "utf8")
  const after = before.replace(/<!-- example: (\S+) -->\n[\s\S]*?<!-- \/example -->/g, (_, file: string) => {
    const code = Fs.readFileSync(Path.join(root, file), "utf8")
    return `<!-- example: ${file} -->\n\`\`\`ts\n${code}\`\`\`\n<!-- /example -->`
  })
  if (after !== before) {
    Fs.writeFileSync(path, after)
    console.log(`updated ${readme}`)
  }
}
