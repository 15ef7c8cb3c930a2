import { z } from "zod";

/**
 * A quiz is one concept question with one right answer: a YAML file in content/quizzes/, validated
 * by this schema when the site is built and when the server starts. The server judges answers
 * (`POST /api/quizzes/:id/answer`), so which option is right never reaches the page before the
 * learner has answered. Every field is described: this file is the reference for authors.
 */

export const quizIdPattern = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

export const quizSchema = z
  .object({
    id: z
      .string()
      .regex(quizIdPattern, "a kebab-case id such as container-vs-vm")
      .max(64)
      .describe("stable id, the file name without .yaml (e.g. `container-vs-vm`); answers are stored under it, so do not rename it once learners have answered"),
    lesson: z.string().min(1).describe("slug of the lesson that shows it (`<Quiz id=\"…\" />` in content/lessons/<slug>.mdx)"),
    question: z
      .string()
      .trim()
      .min(3)
      .max(400)
      .describe("the question, one or two sentences; `backticks` become code"),
    options: z
      .array(z.string().trim().min(1, "an option is empty").max(300).describe("one possible answer; `backticks` become code"))
      .min(2, "give at least two options")
      .max(6, "give at most six options; more is a reading test, not a question")
      .describe("the possible answers, shown in this order as a radio group"),
    correct: z
      .number()
      .int("must be a whole number")
      .min(0, "counts from 0: the first option is 0")
      .describe("which option is right, counted from 0 (the first option is 0, the second 1, …); never sent to the page"),
    explanation: z
      .string()
      .trim()
      .min(3)
      .max(1000)
      .describe("why the right answer is right (and the tempting wrong one wrong), shown after any answer; `backticks` become code"),
  })
  .strict()
  .superRefine((quiz, ctx) => {
    if (quiz.correct >= quiz.options.length) {
      ctx.addIssue({
        code: "custom",
        path: ["correct"],
        message: `is ${quiz.correct}, but there are only ${quiz.options.length} options (0 to ${quiz.options.length - 1}); it counts from 0`,
      });
    }
    const seen = new Set<string>();
    quiz.options.forEach((option, i) => {
      if (seen.has(option)) ctx.addIssue({ code: "custom", path: ["options", i], message: `"${option}" is listed twice` });
      seen.add(option);
    });
  })
  .describe("A concept question in content/quizzes/<id>.yaml.");

export type Quiz = z.infer<typeof quizSchema>;

/** What pages may show before an answer: no `correct`, no `explanation`. */
export function publicQuiz(q: Quiz) {
  return { id: q.id, lesson: q.lesson, question: q.question, options: q.options };
}
export type PublicQuiz = ReturnType<typeof publicQuiz>;

/** Quiz answers share the results table with exercises, under this exercise id and task id. */
export const QUIZ_RESULT_PREFIX = "quiz:";
export const QUIZ_TASK_ID = "answer";

export function quizResultId(quizId: string): string {
  return `${QUIZ_RESULT_PREFIX}${quizId}`;
}
