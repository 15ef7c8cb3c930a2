import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import { quizSchema, type Quiz } from "./quiz-schema.ts";

export class QuizError extends Error {}

/**
 * Reads every content/quizzes/*.yaml (files starting with `_` are ignored, as for lessons). An
 * author's mistake stops the server with the file, the field and what to write instead; the site
 * build reports the same mistakes through its `quizzes` collection.
 */
export function loadQuizzes(dir: string): Map<string, Quiz> {
  const quizzes = new Map<string, Quiz>();
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => (f.endsWith(".yaml") || f.endsWith(".yml")) && !f.startsWith("_"))
      .sort();
  } catch {
    return quizzes;
  }
  for (const file of files) {
    const full = path.join(dir, file);
    const quiz = parseQuiz(readFileSync(full, "utf8"), full);
    const expectedId = file.replace(/\.ya?ml$/, "");
    if (quiz.id !== expectedId) throw new QuizError(`${full}: id "${quiz.id}" must match the file name; write id: ${expectedId}`);
    quizzes.set(quiz.id, quiz);
  }
  return quizzes;
}

export function parseQuiz(text: string, file: string): Quiz {
  let raw: unknown;
  try {
    raw = yaml.load(text);
  } catch (e) {
    const mark = (e as { mark?: { line: number; column: number } }).mark;
    const where = mark ? `:${mark.line + 1}:${mark.column + 1}` : "";
    throw new QuizError(`${file}${where}: this is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  const parsed = quizSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const field = i.path.length ? i.path.join(".") : "(top level)";
      const key = i.path.find((p): p is string => typeof p === "string");
      const line = key ? text.split("\n").findIndex((l) => l.startsWith(`${key}:`)) + 1 : 0;
      return `  ${file}${line ? `:${line}` : ""}: ${field}: ${i.message}`;
    });
    throw new QuizError(`The quiz ${file} has mistakes (fields are described in sandbox-server/src/grading/quiz-schema.ts):\n${lines.join("\n")}`);
  }
  return parsed.data;
}
