import { readFile } from "node:fs/promises";
import { relative } from "node:path";
import { glob } from "astro/loaders";
import type { Loader, LoaderContext } from "astro/loaders";
import { lessonSchema } from "../schemas/lesson.ts";

export const AUTHORING_HINT =
  "Every lesson field is described in src/schemas/lesson.ts, with examples in docs/authoring.md.";

/**
 * Astro's glob loader, with author-friendly errors: a frontmatter mistake is reported at the line
 * of the first bad field, with a code frame and a hint that points to the schema, instead of
 * `file.mdx:0:0` and a link to Astro's generic docs.
 */
export function lessonLoader(options: { base: string }): Loader {
  const inner = glob({ base: options.base, pattern: "**/[^_]*.mdx" });
  return {
    name: "shipshape-lessons",
    load: (context: LoaderContext) =>
      inner.load({
        ...context,
        parseData: async (props) => {
          try {
            return await context.parseData(props);
          } catch (error) {
            if (props.filePath) await explain(error, props.filePath, props.data, context);
            throw error;
          }
        },
      }),
  };
}

interface AstroErrorLike {
  setLocation(location: { file: string; line: number; column: number }): void;
  setHint(hint: string): void;
  setFrame(source: string, location: { line: number; column: number }): void;
}

function isAstroErrorLike(error: unknown): error is AstroErrorLike {
  return typeof error === "object" && error !== null && "setHint" in error && "setFrame" in error;
}

async function explain(error: unknown, filePath: string, data: unknown, context: LoaderContext) {
  if (!isAstroErrorLike(error)) return;
  const file = relative(process.cwd(), filePath);
  error.setHint(`Fix the field(s) listed above in the frontmatter of ${file}. ${AUTHORING_HINT}`);
  const result = lessonSchema.safeParse(data);
  const source = await readFile(filePath, "utf8").catch(() => undefined);
  if (result.success || source === undefined) return;
  // Point at the first bad field that is in the file; a missing field has no line of its own,
  // so it points at the frontmatter's first line.
  const lines = result.error.issues
    .map((issue) => issue.path[0])
    .filter((key): key is string => typeof key === "string")
    .map((key) => frontmatterLineOf(source, key))
    .filter((line): line is number => line !== undefined);
  const location = { line: lines[0] ?? 1, column: 1 };
  error.setLocation({ file: filePath, ...location });
  error.setFrame(source, location);
  context.logger.debug(`frontmatter error in ${file} at line ${location.line}`);
}

/** 1-based line of a top-level frontmatter key, or undefined when it is missing (a required field). */
export function frontmatterLineOf(source: string, key: string): number | undefined {
  const lines = source.split("\n");
  if (lines[0]?.trim() !== "---") return undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.trim() === "---") return undefined;
    if (line.startsWith(`${key}:`)) return i + 1;
  }
  return undefined;
}
