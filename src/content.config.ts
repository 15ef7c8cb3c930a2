import { defineCollection } from "astro:content";
import { exerciseSchema, publicExercise } from "../contracts/content/exercise-schema.ts";
import { publicQuiz, quizSchema } from "../contracts/content/quiz-schema.ts";
import { EXERCISE_HINT, QUIZ_HINT, yamlFolderLoader } from "./lib/grading-loaders.ts";
import { lessonLoader } from "./lib/lesson-loader.ts";
import { lessonSchema } from "./schemas/lesson.ts";

// Lessons live outside src/ (content/lessons/*.mdx) so authors never touch the site's code.
// Files whose name starts with `_` are ignored (partials, notes). The schema is its own module
// so unit tests and docs use it without Astro.
//
// Exercises and quizzes are validated by the grading server's own schemas, then cut down to what
// a page may show: the reference `solution` and `setup`, a quiz's right answer and explanation,
// never enter the site's data store, so no page can leak them.
export const collections = {
  lessons: defineCollection({
    loader: lessonLoader({ base: "./content/lessons" }),
    schema: lessonSchema,
  }),
  exercises: defineCollection({
    loader: yamlFolderLoader({ base: "./content/exercises", what: "exercise", hint: EXERCISE_HINT }),
    schema: exerciseSchema.transform(publicExercise),
  }),
  quizzes: defineCollection({
    loader: yamlFolderLoader({ base: "./content/quizzes", what: "quiz", hint: QUIZ_HINT }),
    schema: quizSchema.transform(publicQuiz),
  }),
};
