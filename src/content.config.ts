import { defineCollection } from "astro:content";
import { lessonLoader } from "./lib/lesson-loader.ts";
import { lessonSchema } from "./schemas/lesson.ts";

// Lessons live outside src/ (content/lessons/*.mdx) so authors never touch the site's code.
// Files whose name starts with `_` are ignored (partials, notes). The schema is its own module
// so unit tests and docs use it without Astro.
export const collections = {
  lessons: defineCollection({
    loader: lessonLoader({ base: "./content/lessons" }),
    schema: lessonSchema,
  }),
};
