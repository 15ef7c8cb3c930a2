import { readFile } from "node:fs/promises";
import { dirname, relative, resolve } from "node:path";
import { getCollection } from "astro:content";
import { AstroError } from "astro/errors";
import type { Lesson } from "../schemas/lesson.ts";
import { AUTHORING_HINT } from "./lesson-loader.ts";

/** A lesson from the `lessons` collection (the shape Astro's CollectionEntry<"lessons"> has). */
export interface LessonEntry {
  /** The slug: the file's path under content/lessons without `.mdx`. */
  id: string;
  collection: "lessons";
  data: Lesson;
  body?: string;
  /** Path of the .mdx file, relative to the project root. */
  filePath?: string;
}

/** A file to place in the sandbox, with `from` already read. */
export interface ResolvedLessonFile {
  path: string;
  content: string;
}

export function lessonHref(lesson: Pick<LessonEntry, "id">): string {
  return `/lessons/${lesson.id}/`;
}

/**
 * Published lessons in course order. Drafts appear only in `astro dev`. Two lessons with the same
 * `order` fail the build: the outline and previous/next links would depend on file-system order.
 */
export async function getLessons(): Promise<LessonEntry[]> {
  const lessons: LessonEntry[] = await getCollection("lessons", (lesson: LessonEntry) => import.meta.env.DEV || !lesson.data.draft);
  lessons.sort((a, b) => a.data.order - b.data.order || a.id.localeCompare(b.id));
  for (let i = 1; i < lessons.length; i++) {
    const previous = lessons[i - 1]!;
    const lesson = lessons[i]!;
    if (previous.data.order === lesson.data.order) {
      throw new AstroError(
        `Lessons ${fileOf(previous)} and ${fileOf(lesson)} both have \`order: ${lesson.data.order}\`.`,
        `Give each lesson its own \`order\` number; the course outline and previous/next links follow it. ${AUTHORING_HINT}`,
      );
    }
  }
  return lessons;
}

export function neighbours(lessons: LessonEntry[], id: string) {
  const index = lessons.findIndex((lesson) => lesson.id === id);
  return { previous: index > 0 ? lessons[index - 1] : undefined, next: index >= 0 ? lessons[index + 1] : undefined };
}

function fileOf(lesson: LessonEntry): string {
  return lesson.filePath ?? `content/lessons/${lesson.id}.mdx`;
}

/**
 * The lesson's `files`, with every `from` read from disk (relative to the lesson file). Done at
 * page build rather than in the loader so an edited `from` file is never served stale from the
 * content cache.
 */
export async function resolveLessonFiles(lesson: LessonEntry): Promise<ResolvedLessonFile[]> {
  const lessonFile = resolve(fileOf(lesson));
  return Promise.all(
    lesson.data.files.map(async (file) => {
      if (file.content !== undefined) return { path: file.path, content: file.content };
      const source = resolve(dirname(lessonFile), file.from ?? "");
      try {
        return { path: file.path, content: await readFile(source, "utf8") };
      } catch {
        throw new AstroError(
          `${relative(process.cwd(), lessonFile)}: \`files\` entry for ${file.path} has \`from: ${file.from}\`, but ${relative(process.cwd(), source)} does not exist.`,
          `\`from\` is relative to the lesson file. Create the file or fix the path. ${AUTHORING_HINT}`,
        );
      }
    }),
  );
}
