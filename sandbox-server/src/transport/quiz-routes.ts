import { quizAnswerSchema } from "../../../contracts/grading-api.ts";
import { json } from "../common/http.ts";
import { ShipshapeError } from "../errors.ts";
import type { IncomingMessage } from "node:http";
import type { GradingService } from "../grading/grading-service.ts";
import { newId, type Signer } from "../common/signing.ts";
import type { CookieNames } from "../common/public-origin.ts";
import { readJson, setOwnerCookie, type Routes } from "./http-server.ts";
import { RateLimiter } from "./rate-limiter.ts";

/** Enough for a learner clicking through every quiz of a lesson twice; a script cannot fill the table. */
export const QUIZ_ANSWERS = { capacity: 30, refillPerMinute: 30 } as const;
/**
 * Answers one client address may send a minute: a browser that drops its cookie is a new
 * learner, its address is not. Enough for a class of 100 behind one NAT answering at once.
 */
export const QUIZ_ANSWERS_PER_ADDRESS = { capacity: 300, refillPerMinute: 300 } as const;

/**
 * Concept questions. The browser sends the option it chose; the grading service judges it and
 * stores the verdict with the learner's progress, and the answer carries the explanation. Which
 * option is right is never in the page.
 */
export function quizRoutes(deps: {
  grading: GradingService;
  signer: Signer;
  cookies: CookieNames;
  /** The client address the trusted proxy reports (its /64 for IPv6). */
  clientKey: (req: IncomingMessage) => string;
}): Routes {
  const answers = new RateLimiter(QUIZ_ANSWERS);
  const answersPerAddress = new RateLimiter(QUIZ_ANSWERS_PER_ADDRESS);
  return {
    "POST /api/quizzes/:id/answer": async (req, res, ownerId, params) => {
      const { choice } = quizAnswerSchema.parse(await readJson(req));
      // Refused before a cookie is set or an answer is counted against the rate limit.
      const quiz = deps.grading.quizFor(params.id ?? "", choice);
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
      await deps.grading.checkQuizAttempts(ownerId, quiz);
      answersPerAddress.take(address);
      answers.take(owner);
      if (!ownerId) setOwnerCookie(res, deps.cookies, deps.signer.sign(owner));
      json(res, 200, await deps.grading.answerQuiz(owner, quiz, choice));
    },
  };
}
