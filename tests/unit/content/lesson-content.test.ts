import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadExercises } from "../../../sandbox-server/src/content/exercise-loader.ts";
import { loadQuizzes } from "../../../sandbox-server/src/content/quiz-loader.ts";

const repoRoot = path.resolve(import.meta.dirname, "../../..");
const lessonSource = (slug: string) => {
  const file = path.join(repoRoot, "content", "lessons", `${slug}.mdx`);
  return existsSync(file) ? readFileSync(file, "utf8") : undefined;
};

/**
 * An exercise or quiz that no page shows can never be checked or answered: each one's lesson
 * exists and shows it. (The build checks the other direction: a page naming an unknown id fails.)
 */
describe("graded content is reachable from its lesson", () => {
  for (const exercise of loadExercises(path.join(repoRoot, "content", "exercises")).values()) {
    it(`exercise ${exercise.id} is shown in content/lessons/${exercise.lesson}.mdx`, () => {
      const source = lessonSource(exercise.lesson);
      expect(source, `content/lessons/${exercise.lesson}.mdx exists`).toBeDefined();
      expect(source).toMatch(new RegExp(`<Exercise\\s+id="${exercise.id}"`));
    });
  }
  for (const quiz of loadQuizzes(path.join(repoRoot, "content", "quizzes")).values()) {
    it(`quiz ${quiz.id} is shown in content/lessons/${quiz.lesson}.mdx`, () => {
      const source = lessonSource(quiz.lesson);
      expect(source, `content/lessons/${quiz.lesson}.mdx exists`).toBeDefined();
      expect(source).toMatch(new RegExp(`<Quiz\\s+id="${quiz.id}"`));
    });
  }
});
