import { json } from "../common/http.ts";
import type { GradingService } from "../grading/grading-service.ts";
import type { Routes } from "./http-server.ts";

/**
 * Check and progress. The browser names an exercise; the grading service finds the learner's
 * sandbox from the owner cookie, grades it and stores the verdict. There is no route to report a pass.
 */
export function gradingRoutes(deps: { grading: GradingService }): Routes {
  return {
    "POST /api/exercises/:id/check": async (_req, res, ownerId, params) => {
      json(res, 200, await deps.grading.check(ownerId, params.id ?? ""));
    },
    "GET /api/progress": async (_req, res, ownerId) => {
      json(res, 200, await deps.grading.progress(ownerId));
    },
  };
}
