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
// SHIPSHAPE_CONTENT_DIR, as the server reads it: a test (or an author trying an import) can build
// the site from a content folder of its own, e.g. imported Killercoda scenarios in a temporary one.
const contentDir = (process.env.SHIPSHAPE_CONTENT_DIR ?? "./content").replace(/\/+$/, "");

export const collections = {
  lessons: defineCollection({
    loader: lessonLoader({ base: `${contentDir}/lessons` }),
    schema: lessonSchema,
  }),
  exercises: defineCollection({
    loader: yamlFolderLoader({ base: `${contentDir}/exercises`, what: "exercise", hint: EXERCISE_HINT }),
    schema: exerciseSchema.transform(publicExercise),
  }),
  quizzes: defineCollection({
    loader: yamlFolderLoader({ base: `${contentDir}/quizzes`, what: "quiz", hint: QUIZ_HINT }),
    schema: quizSchema.transform(publicQuiz),
  }),
};
