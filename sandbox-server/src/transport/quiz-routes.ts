import { quizAnswerSchema } from "../../../contracts/grading-api.ts";
import { json } from "../common/http.ts";
import { ShipshapeError } from "../errors.ts";
import type { GradingService } from "../grading/grading-service.ts";
import { newId, type Signer } from "../common/signing.ts";
import { readJson, setOwnerCookie, type Routes } from "./http-server.ts";
import { RateLimiter } from "./rate-limiter.ts";

/** Enough for a learner clicking through every quiz of a lesson twice; a script cannot fill the table. */
export const QUIZ_ANSWERS = { capacity: 30, refillPerMinute: 30 } as const;

/**
 * Concept questions. The browser sends the option it chose; the grading service judges it and
 * stores the verdict with the learner's progress, and the answer carries the explanation. Which
 * option is right is never in the page.
 */
export function quizRoutes(deps: { grading: GradingService; signer: Signer }): Routes {
  const answers = new RateLimiter(QUIZ_ANSWERS);
  return {
    "POST /api/quizzes/:id/answer": async (req, res, ownerId, params) => {
      const { choice } = quizAnswerSchema.parse(await readJson(req));
      // Refused before a cookie is set or an answer is counted against the rate limit.
      const quiz = deps.grading.quizFor(params.id ?? "", choice);
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
      json(res, 200, deps.grading.answerQuiz(owner, quiz, choice));
    },
  };
}
