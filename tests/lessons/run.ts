import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

/**
 * `npm run lesson-ci [-- <lesson-slug>...]`: lesson CI for the whole course, or only the named
 * lessons (their exercises proven three ways, and those lessons run in order in one sandbox).
 */
const root = path.resolve(import.meta.dirname, "../..");
const slugs = process.argv.slice(2);
for (const slug of slugs) {
  if (!existsSync(path.join(root, "content", "lessons", `${slug}.mdx`))) {
    process.stderr.write(`There is no lesson content/lessons/${slug}.mdx. Name lessons by their file name without .mdx.\n`);
    process.exit(2);
  }
}
const result = spawnSync(process.execPath, [path.join(root, "node_modules/vitest/vitest.mjs"), "run", "--project", "lessons"], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, ...(slugs.length ? { SHIPSHAPE_LESSONS: slugs.join(",") } : {}) },
});
process.exit(result.status ?? 1);
