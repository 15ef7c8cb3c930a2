import { z } from "zod";

/**
 * Check and quiz answers (docs/grading.md): the browser names an exercise or picks a quiz option;
 * the server judges, stores the verdict and answers with these shapes. The browser imports only the
 * types (`import type`).
 */

/** One task's verdict in the answer to Check. */
export interface TaskResult {
  taskId: string;
  title: string;
  passed: boolean;
  /** What is missing, or what was found, in words for the learner. */
  message: string;
}

/** `POST /api/exercises/:id/check` */
export interface CheckResult {
  exerciseId: string;
  /** Every task passed in this run. */
  passed: boolean;
  tasks: TaskResult[];
  /** ISO time of the verdict, as stored. */
  at: string;
}

/** `POST /api/quizzes/:id/answer`: the option the learner chose, counted from 0. */
export const quizAnswerSchema = z.object({ choice: z.number().int().min(0).max(100) }).strict();
export type QuizAnswer = z.infer<typeof quizAnswerSchema>;

export interface QuizAnswerResult {
  quizId: string;
  choice: number;
  correct: boolean;
  explanation: string;
  /** ISO time of the verdict, as stored. */
  at: string;
}

/**
 * `POST /api/exercises/:id/setup`: the exercise's starting state in the learner's sandbox.
 * `ran`: it ran now; `already`: it ran in this sandbox before (a reload); `none`: the exercise has no setup.
 */
export interface SetupResult {
  exerciseId: string;
  state: "ran" | "already" | "none";
  /** With `ran`: the exercise's `start` command, for the page to type into the learner's terminal. */
  start?: string;
}
