import { json } from "../common/http.ts";
import type { ExerciseSetup } from "../grading/exercise-setup.ts";
import type { Routes } from "./http-server.ts";

/**
 * The page asks for each exercise's starting state when the sandbox is ready; the server decides
 * whether it runs (once per sandbox) and in which sandbox (the owner's own, never named by the page).
 */
export function setupRoutes(deps: { setup: ExerciseSetup }): Routes {
  return {
    "POST /api/exercises/:id/setup": async (_req, res, ownerId, params) => {
      json(res, 200, await deps.setup.prepare(ownerId, params.id ?? ""));
    },
  };
}
