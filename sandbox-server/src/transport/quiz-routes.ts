import { z } from "zod";
import { ShipshapeError } from "../errors.ts";
import { QUIZ_TASK_ID, quizResultId, type Quiz } from "../grading/quiz-schema.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import { newId, type Signer } from "../sessions/tokens.ts";
import type { Store, TaskProgress } from "../store/store.ts";
import type { IncomingMessage } from "node:http";
import { json, readJson, setOwnerCookie, type Routes } from "./http-server.ts";
import type { CookieNames } from "./public-origin.ts";
import { RateLimiter } from "./rate-limiter.ts";

const answerBodySchema = z.object({ choice: z.number().int().min(0).max(100) }).strict();

/** Enough for a learner clicking through every quiz of a lesson twice; a script cannot fill the table. */
export const QUIZ_ANSWERS = { capacity: 30, refillPerMinute: 30 } as const;
/**
 * Answers one client address may send a minute: a browser that drops its cookie is a new
 * learner, its address is not. Enough for a class of 100 behind one NAT answering at once.
 */
export const QUIZ_ANSWERS_PER_ADDRESS = { capacity: 300, refillPerMinute: 300 } as const;
/**
 * Answers one learner may give to one quiz. A quiz has at most six options, so trying each still
 * fits; guessing past that is not learning, and each answer is a row in the gradebook.
 */
export const QUIZ_ATTEMPTS_PER_QUIZ = 10;

/**
 * Concept questions. The browser sends the option it chose; the server judges it, stores the
 * verdict with the learner's progress (results table, exercise `quiz:<id>`, task `answer`) and
 * answers with the explanation. Which option is right is never in the page.
 */
export function quizRoutes(deps: {
  quizzes: ReadonlyMap<string, Quiz>;
  sessions: SessionManager;
  store: Store;
  signer: Signer;
  cookies: CookieNames;
  /** The client address the trusted proxy reports (its /64 for IPv6). */
  clientKey: (req: IncomingMessage) => string;
}): Routes {
  const answers = new RateLimiter(QUIZ_ANSWERS);
  const answersPerAddress = new RateLimiter(QUIZ_ANSWERS_PER_ADDRESS);
  return {
    "POST /api/quizzes/:id/answer": async (req, res, ownerId, params) => {
      const quiz = deps.quizzes.get(params.id ?? "");
      if (!quiz) throw new ShipshapeError("not_found", `There is no quiz called "${params.id}".`);
      const { choice } = answerBodySchema.parse(await readJson(req));
      if (choice >= quiz.options.length) {
        throw new ShipshapeError("bad_request", `Choose one of the ${quiz.options.length} options.`);
      }
      // A reading-only page has opened no sandbox, so this may be the browser's first request;
      // its identity is handed out only once the limits below have let it through.
      const owner = ownerId ?? newId(16);
      const address = deps.clientKey(req);
      if (answersPerAddress.waitMs(address) > 0 || answers.waitMs(owner) > 0) {
        const waitMs = Math.max(answersPerAddress.waitMs(address), answers.waitMs(owner));
        throw new ShipshapeError("rate_limited", "That was a lot of answers in a short time; wait a minute and try again.", undefined, {
          fields: { rule: "quiz_answers", retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) },
        });
      }
      const attempts = deps.store.results.countOf(owner, quizResultId(quiz.id), QUIZ_TASK_ID);
      if (attempts >= QUIZ_ATTEMPTS_PER_QUIZ) {
        throw new ShipshapeError(
          "limit_reached",
          `You have answered this question ${attempts} times, the most one learner may (${QUIZ_ATTEMPTS_PER_QUIZ}). ` +
            `Your answers so far are kept; read the lesson again and go on to the next part.`,
          `quiz ${quiz.id}: ${attempts} attempts`,
          { fields: { rule: "quiz_attempts" } },
        );
      }
      answersPerAddress.take(address);
      answers.take(owner);
      if (!ownerId) setOwnerCookie(res, deps.cookies, deps.signer.sign(owner));
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
      json(res, 200, { quizId: quiz.id, choice, correct, explanation: quiz.explanation, at: new Date(at).toISOString() });
    },
  };
}

export interface QuizProgress {
  quizId: string;
  lesson: string;
  /** Answered right at least once. */
  passed: boolean;
  attempts: number;
  /** Once passed: the right option and why, so a reload shows the answered question. */
  choice: number | null;
  explanation: string | null;
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
