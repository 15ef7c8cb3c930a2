import { quizAnswerSchema, type QuizAnswerResult } from "../../../contracts/grading-api.ts";
import type { QuizProgress } from "../../../contracts/progress-api.ts";
import { ShipshapeError } from "../errors.ts";
import { QUIZ_TASK_ID, quizResultId, type Quiz } from "../../../contracts/content/quiz-schema.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import { newId, type Signer } from "../sessions/tokens.ts";
import type { Store, TaskProgress } from "../store/store.ts";
import { json, readJson, setOwnerCookie, type Routes } from "./http-server.ts";
import { RateLimiter } from "./rate-limiter.ts";

/** Enough for a learner clicking through every quiz of a lesson twice; a script cannot fill the table. */
export const QUIZ_ANSWERS = { capacity: 30, refillPerMinute: 30 } as const;

/**
 * Concept questions. The browser sends the option it chose; the server judges it, stores the
 * verdict with the learner's progress (results table, exercise `quiz:<id>`, task `answer`) and
 * answers with the explanation. Which option is right is never in the page.
 */
export function quizRoutes(deps: { quizzes: ReadonlyMap<string, Quiz>; sessions: SessionManager; store: Store; signer: Signer }): Routes {
  const answers = new RateLimiter(QUIZ_ANSWERS);
  return {
    "POST /api/quizzes/:id/answer": async (req, res, ownerId, params) => {
      const quiz = deps.quizzes.get(params.id ?? "");
      if (!quiz) throw new ShipshapeError("not_found", `There is no quiz called "${params.id}".`);
      const { choice } = quizAnswerSchema.parse(await readJson(req));
      if (choice >= quiz.options.length) {
        throw new ShipshapeError("bad_request", `Choose one of the ${quiz.options.length} options.`);
      }
      // A reading-only page has opened no sandbox, so this may be the browser's first request.
      let owner = ownerId;
      if (!owner) {
        owner = newId(16);
        setOwnerCookie(req, res, deps.signer.sign(owner));
      }
      if (!answers.take(owner)) {
        throw new ShipshapeError("rate_limited", "That was a lot of answers in a short time; wait a minute and try again.", undefined, {
          fields: { rule: "quiz_answers", retryAfterSeconds: Math.ceil(answers.waitMs(owner) / 1000) },
        });
      }
      const correct = choice === quiz.correct;
      const view = deps.sessions.current(owner);
      const at = Date.now();
      deps.store.results.insert({
        ownerId: owner,
        sessionId: view?.sessionId ?? "",
        workshopId: view?.workshopId ?? null,
        exerciseId: quizResultId(quiz.id),
        taskId: QUIZ_TASK_ID,
        passed: correct,
        message: `Answered "${quiz.options[choice]}": ${correct ? "right" : "not right"}.`,
        at,
      });
      const answer: QuizAnswerResult = { quizId: quiz.id, choice, correct, explanation: quiz.explanation, at: new Date(at).toISOString() };
      json(res, 200, answer);
    },
  };
}

/** The learner's quizzes, from their stored verdicts (for `GET /api/progress`). */
export function quizProgress(quizzes: ReadonlyMap<string, Quiz>, tasks: readonly TaskProgress[]): QuizProgress[] {
  return [...quizzes.values()].map((q) => {
    const row = tasks.find((t) => t.exerciseId === quizResultId(q.id) && t.taskId === QUIZ_TASK_ID);
    const passed = row?.passed ?? false;
    return {
      quizId: q.id,
      lesson: q.lesson,
      passed,
      attempts: row?.attempts ?? 0,
      choice: passed ? q.correct : null,
      explanation: passed ? q.explanation : null,
    };
  });
}
