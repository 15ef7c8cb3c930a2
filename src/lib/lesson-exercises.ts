import { getCollection } from "astro:content";
import { AstroError } from "astro/errors";
import type { PublicExercise } from "../../contracts/content/exercise-schema.ts";
import type { LessonEntry } from "./lessons.ts";

/** An entry of the `exercises` collection (what CollectionEntry<"exercises"> is). */
interface ExerciseEntry {
  id: string;
  data: PublicExercise;
}

/**
 * A lesson's frontmatter `exercises` and the exercises' own `lesson:` fields must agree: progress,
 * the course outline and workshop grids count an exercise for the lesson its YAML names. Fails the
 * build with the file and the fix when they do not.
 */
export async function checkLessonExercises(lessons: LessonEntry[]): Promise<void> {
  const exercises: ExerciseEntry[] = await getCollection("exercises");
  const byId = new Map(exercises.map((e) => [e.id, e.data]));
  for (const lesson of lessons) {
    const file = lesson.filePath ?? `content/lessons/${lesson.id}.mdx`;
    const listed = lesson.data.exercises;
    for (const id of listed) {
      const exercise = byId.get(id);
      if (!exercise) {
        throw new AstroError(
          `${file}: \`exercises\` lists "${id}", but there is no content/exercises/${id}.yaml.`,
          `Create the exercise (fields: contracts/content/exercise-schema.ts) or remove the id. Known: ${[...byId.keys()].sort().join(", ")}.`,
        );
      }
      if (exercise.lesson !== lesson.id) {
        throw new AstroError(
          `${file}: \`exercises\` lists "${id}", but content/exercises/${id}.yaml says \`lesson: ${exercise.lesson}\`.`,
          `Write \`lesson: ${lesson.id}\` in the exercise, or list it in content/lessons/${exercise.lesson}.mdx instead.`,
        );
      }
    }
    const unlisted = exercises.filter((e) => e.data.lesson === lesson.id && !listed.includes(e.id)).map((e) => e.id);
    if (listed.length > 0 && unlisted.length > 0) {
      throw new AstroError(
        `${file}: ${unlisted.map((id) => `content/exercises/${id}.yaml`).join(", ")} ${unlisted.length === 1 ? "says" : "say"} \`lesson: ${lesson.id}\`, but \`exercises\` does not list ${unlisted.length === 1 ? "it" : "them"}.`,
        `Add ${unlisted.join(", ")} to the lesson's \`exercises\`, or point the exercise's \`lesson:\` elsewhere.`,
      );
    }
  }
}
