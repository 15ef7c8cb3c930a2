import { loadYamlFolder, parseYamlFile } from "./content-files.ts";
import { quizSchema, type Quiz } from "../../../contracts/content/quiz-schema.ts";

/**
 * Reads every content/quizzes/*.yaml. An author's mistake stops the server with the file, the
 * field and what to write instead; the site build reports the same mistakes through its
 * `quizzes` collection.
 */
export function loadQuizzes(dir: string): Map<string, Quiz> {
  return loadYamlFolder(dir, parseQuiz);
}

export function parseQuiz(text: string, file: string): Quiz {
  return parseYamlFile(text, file, quizSchema, "quiz", "contracts/content/quiz-schema.ts");
}
