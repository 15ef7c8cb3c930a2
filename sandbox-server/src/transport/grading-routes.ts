import type { ExerciseProgress, LearnerProgress } from "../../../contracts/progress-api.ts";
import { ShipshapeError } from "../errors.ts";
import type { Exercise } from "../../../contracts/content/exercise-schema.ts";
import type { Grader } from "../grading/grader.ts";
import type { Quiz } from "../../../contracts/content/quiz-schema.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { Store } from "../store/store.ts";
import { json, type Routes } from "./http-server.ts";
import { quizProgress } from "./quiz-routes.ts";

/**
 * Check and progress. The browser names an exercise; the server finds the learner's sandbox from
 * the owner cookie, grades it, and stores the verdict. There is no route to report a pass.
 */
export function gradingRoutes(deps: {
  exercises: ReadonlyMap<string, Exercise>;
  grader: Grader;
  sessions: SessionManager;
  store: Store;
  /** Concept questions; their answers are part of the progress (see quiz-routes.ts). */
  quizzes?: ReadonlyMap<string, Quiz>;
}): Routes {
  return {
    "POST /api/exercises/:id/check": async (_req, res, ownerId, params) => {
      const exercise = deps.exercises.get(params.id ?? "");
      if (!exercise) throw new ShipshapeError("not_found", `There is no exercise called "${params.id}".`);
      const view = ownerId ? deps.sessions.current(ownerId) : undefined;
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet: open a terminal first.");
      const sandboxId = await deps.sessions.sandboxOf(view.sessionId, view.ownerId);
      const result = await deps.grader.grade(exercise, sandboxId, {
        ownerId: view.ownerId,
        sessionId: view.sessionId,
        workshopId: view.workshopId,
      });
      json(res, 200, result);
    },
    "GET /api/progress": (_req, res, ownerId) => {
      const tasks = ownerId ? deps.store.results.progressOf(ownerId) : [];
      const exercises = [...deps.exercises.values()].map((e): ExerciseProgress => {
        const mine = tasks.filter((t) => t.exerciseId === e.id);
        return {
          exerciseId: e.id,
          lesson: e.lesson,
          passed: e.tasks.every((t) => mine.some((m) => m.taskId === t.id && m.passed)),
          tasks: e.tasks.map((t) => {
            const p = mine.find((m) => m.taskId === t.id);
            return { taskId: t.id, passed: p?.passed ?? false, attempts: p?.attempts ?? 0, lastMessage: p?.lastMessage ?? null };
          }),
        };
      });
      const progress: LearnerProgress = { exercises, quizzes: quizProgress(deps.quizzes ?? new Map(), tasks) };
      json(res, 200, progress);
    },
  };
}
