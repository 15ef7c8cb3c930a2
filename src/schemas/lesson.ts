import { z } from "zod";
// Terminal names travel in the `hello` message, so they follow the protocol's rule.
import { terminalNamePattern } from "../../contracts/terminal-protocol.ts";

/**
 * The frontmatter of a lesson (`content/lessons/*.mdx`).
 *
 * This schema is the authoring reference: every field says what it is for, and every error says
 * what to write instead, because the person reading it is a lesson author looking at a failed
 * `astro build`, not a TypeScript developer.
 */

const exerciseIdPattern = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/** zod's default messages ("Invalid input: expected string, received undefined") name no fix. */
function required(field: string, example: string, kind: string) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined
      ? `is missing. Add it to the frontmatter, e.g. \`${field}: ${example}\`.`
      : `must be ${kind}, got ${describeValue(issue.input)}. Example: \`${field}: ${example}\`.`;
}

function describeValue(value: unknown): string {
  if (value === null) return "an empty value";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Date) return "a date";
  if (typeof value === "string") return `the text "${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return `${typeof value === "object" ? "an object" : `the ${typeof value}`} ${typeof value === "object" ? "" : String(value)}`.trim();
}

// Whole numbers are checked with refine(Number.isInteger) rather than .int(): zod's int check
// aborts the whole object, which would hide the author's other mistakes (such as a misspelt key).

/** Closest known key within two edits, so `durration:` suggests `duration`. */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(key.toLowerCase(), name.toLowerCase());
    if (distance <= 2 && (!best || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * A strict object whose unknown keys are reported one by one, at their own path, with a
 * suggestion. zod's own strict mode reports them all at the object's path ("Unrecognized keys"),
 * which Astro prints without a field name.
 */
function strictFields<Shape extends z.ZodRawShape>(shape: Shape, what: string) {
  const known = Object.keys(shape);
  return z
    .looseObject(shape)
    .superRefine(
      (value, ctx) => {
        for (const key of Object.keys(value)) {
          if (known.includes(key)) continue;
          const guess = closest(key, known);
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: `is not a ${what} field${guess ? `; did you mean \`${guess}\`?` : "."} Allowed: ${known.join(", ")}.`,
          });
        }
      },
      // Run even when other fields failed, so every mistake is reported in one build.
      { when: () => true },
    )
    .transform((value) => {
      const result: Record<string, unknown> = {};
      for (const key of known) if (value[key] !== undefined) result[key] = value[key];
      return result as z.infer<z.ZodObject<Shape>>;
    });
}

export const lessonFileSchema = strictFields(
  {
    path: z
      .string({ error: required("path", "/root/app/Dockerfile", "text") })
      .startsWith("/", { error: "must be an absolute path inside the sandbox, e.g. `/root/app/Dockerfile`." })
      .refine((p) => !p.split("/").includes(".."), {
        error: "must not contain `..`; write the absolute path you mean.",
      })
      .describe("Absolute path of the file inside the sandbox, e.g. `/root/app/Dockerfile`. Parent folders are created."),
    content: z
      .string({ error: "must be text; use a YAML block (`content: |`) for several lines." })
      .optional()
      .describe("The file's text, written as is. Use a YAML block scalar (`content: |`) for several lines."),
    from: z
      .string({ error: "must be a path relative to the lesson file, e.g. `./files/app.py`." })
      .min(1)
      .optional()
      .describe("Instead of `content`: a file to copy, relative to the lesson's .mdx file, e.g. `./files/app.py`."),
  },
  "file",
)
  .refine((f) => (f.content === undefined) !== (f.from === undefined), {
    error: "needs exactly one of `content` (the text) or `from` (a file next to the lesson), not both or neither.",
  })
  .describe("A file placed in the learner's sandbox before the lesson starts.");

export type LessonFile = z.infer<typeof lessonFileSchema>;

export const lessonSchema = strictFields(
  {
    title: z
      .string({ error: required("title", "Your first containers", "text") })
      .trim()
      .min(1, { error: "is empty. Give the lesson a short title, e.g. `title: Your first containers`." })
      .max(80, { error: "is longer than 80 characters; keep titles short and put detail in `summary`." })
      .describe("The lesson's title: the page heading, the browser tab and the course outline. At most 80 characters."),
    summary: z
      .string({ error: required("summary", "Run, list, stop and remove containers.", "text") })
      .trim()
      .min(1, { error: "is empty. Write one sentence saying what the learner will be able to do." })
      .max(240, { error: "is longer than 240 characters; one or two sentences is enough." })
      .describe("One or two sentences shown under the title in the course outline and used as the page description."),
    order: z
      .number({ error: required("order", "1", "a whole number") })
      .refine(Number.isInteger, { error: "must be a whole number such as `1`, `2`, `3`." })
      .positive({ error: "must be 1 or more; the first lesson is `order: 1`." })
      .describe("Position in the course, starting at 1. Lessons are listed and linked (previous/next) in this order; two lessons must not share a number."),
    duration: z
      .number({ error: required("duration", "15", "a number of minutes") })
      .refine(Number.isInteger, { error: "must be a whole number of minutes, e.g. `duration: 15`." })
      .min(1, { error: "must be at least 1 minute." })
      .max(240, { error: "is more than 4 hours (240 minutes); split the lesson." })
      .describe("How long the lesson takes a learner, in minutes (shown in the outline)."),
    objectives: z
      .array(
        z.string({ error: "each objective must be text, e.g. `- Run a container in the background`." }).trim().min(1, { error: "an objective is empty." }),
        { error: required("objectives", "[\"Run a container\", \"List containers\"]", "a list") },
      )
      .min(1, { error: "needs at least one entry: what will the learner be able to do afterwards?" })
      .describe("What the learner will be able to do after the lesson, one short sentence each (shown at the top of the lesson)."),
    terminals: z
      .array(
        z.string({ error: "each terminal name must be text, e.g. `main`." }).regex(terminalNamePattern, {
          error: "terminal names use only lowercase letters, digits and dashes (at most 32), e.g. `main` or `logs`.",
        }),
        { error: "must be a list of terminal names, e.g. `terminals: [main, logs]`." },
      )
      .max(4, { error: "has more than 4 terminals; learners cannot follow more at once." })
      .refine((names) => new Set(names).size === names.length, { error: "lists the same terminal name twice." })
      .default(["main"])
      .describe("Terminals shown beside the lesson, top to bottom. Each name is its own shell in the learner's one sandbox; `<Run term=\"…\">` targets one by name. Empty list: a reading-only lesson. Default: `[main]`."),
    sandboxPanel: z
      .enum(["open", "closed", "off"], { error: "must be `open`, `closed` or `off`." })
      .default("open")
      .describe("The sandbox panel under the terminals (containers, images and layers, volumes, networks, published ports, live): `open` (default), `closed` (one line; the learner opens it) or `off`. Only lessons with terminals show it."),
    files: z
      .array(lessonFileSchema, { error: "must be a list of `{ path, content }` or `{ path, from }` entries." })
      .default([])
      .describe("Files placed in the sandbox when the learner opens the lesson (once per sandbox), so they do not retype them."),
    exercises: z
      .array(
        z.string({ error: "each exercise id must be text." }).regex(exerciseIdPattern, {
          error: "exercise ids are kebab-case, e.g. `run-nginx-detached`.",
        }),
        { error: "must be a list of exercise ids, e.g. `exercises: [run-hello-world]`." },
      )
      .default([])
      .describe("Ids of the exercises graded in this lesson: content/exercises/<id>.yaml, shown with `<Exercise id=\"…\" />`. Optional; when given, the build checks it lists exactly the exercises whose `lesson:` is this lesson. The lesson counts as done when all of them passed."),
    draft: z
      .boolean({ error: "must be `true` or `false`." })
      .default(false)
      .describe("When true, the lesson is built for `astro dev` only: it is left out of the production build and the course outline."),
  },
  "lesson frontmatter",
).describe("Frontmatter of a lesson in content/lessons/*.mdx.");

export type Lesson = z.infer<typeof lessonSchema>;
export type LessonInput = z.input<typeof lessonSchema>;
