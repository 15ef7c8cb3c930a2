import { relative } from "node:path";
import { glob } from "astro/loaders";
import type { Loader, LoaderContext } from "astro/loaders";
import { AstroError } from "astro/errors";

export const EXERCISE_HINT =
  "Every exercise field is described in contracts/content/exercise-schema.ts; docs/authoring.md has examples and the check kinds.";
export const QUIZ_HINT =
  "Every quiz field is described in contracts/content/quiz-schema.ts; docs/authoring.md has an example.";

/**
 * YAML files of one folder (content/exercises, content/quizzes) as a collection, validated by the
 * server's own schema (passed as the collection's `schema`), so the site and the grader can never
 * disagree about what a file means. Adds what the schema alone cannot say: the `id` must be the
 * file name (the server looks exercises up by it), and every mistake points to the schema.
 * Files whose name starts with `_` are ignored, as for lessons.
 */
export function yamlFolderLoader(options: { base: string; what: "exercise" | "quiz"; hint: string }): Loader {
  const inner = glob({ base: options.base, pattern: "**/[^_]*.{yaml,yml}" });
  return {
    name: `shipshape-${options.what}-files`,
    load: (context: LoaderContext) =>
      inner.load({
        ...context,
        parseData: async (props) => {
          const file = props.filePath ? relative(process.cwd(), props.filePath) : `${options.base}/${props.id}.yaml`;
          const declared = (props.data as { id?: unknown }).id;
          if (declared !== props.id) {
            throw new AstroError(
              `${file}: the ${options.what} id is ${declared === undefined ? "missing" : `"${String(declared)}"`}, but the file is called ${props.id}.yaml.`,
              `Write \`id: ${props.id}\` (the id is the file name; lessons and stored results use it). ${options.hint}`,
            );
          }
          try {
            return await context.parseData(props);
          } catch (error) {
            if (error instanceof Error && "setHint" in error && typeof error.setHint === "function") {
              error.setHint(`Fix the field(s) listed above in ${file}. ${options.hint}`);
            }
            throw error;
          }
        },
      }),
  };
}
