/**
 * The instructor's grid, computed from stored verdicts: pure functions of their inputs (and the
 * clock), so the rules for "in progress", "stuck" and "idle" are unit-tested without a server.
 */
import type { Cell, CellState, ExerciseColumn } from "../../../contracts/workshop-api.ts";

/** One task's verdict as the results table keeps it (one row per task per Check). */
export interface RecordedVerdict {
  exerciseId: string;
  taskId: string;
  passed: boolean;
  at: number;
}

export interface ProgressRules {
  /** No keystroke for this long: idle. */
  idleAfterMs: number;
  /** This many failed checks in a row on an exercise not yet passed: stuck. */
  stuckAfterFailedChecks: number;
}

export const DEFAULT_RULES: ProgressRules = { idleAfterMs: 5 * 60_000, stuckAfterFailedChecks: 3 };

/**
 * One learner's cell for one exercise. The grader stores one row per task per check, all with the
 * same time, so rows sharing `at` are one check run.
 */
export function cellFor(exercise: ExerciseColumn, verdicts: readonly RecordedVerdict[], rules: ProgressRules = DEFAULT_RULES): Cell {
  const mine = verdicts.filter((v) => v.exerciseId === exercise.id).sort((a, b) => a.at - b.at);
  const known = new Set(exercise.tasks.map((t) => t.id));
  const runs = new Map<number, RecordedVerdict[]>();
  for (const v of mine) {
    if (!known.has(v.taskId)) continue; // a task renamed since: it no longer counts
    const run = runs.get(v.at) ?? [];
    run.push(v);
    runs.set(v.at, run);
  }
  const passed = new Set<string>();
  let failedChecks = 0;
  let failedSinceProgress = 0;
  let passedAt: number | null = null;
  let lastCheckAt: number | null = null;
  for (const [at, run] of runs) {
    lastCheckAt = at;
    const before = passed.size;
    for (const v of run) if (v.passed) passed.add(v.taskId);
    const wholeRunPassed = exercise.tasks.every((t) => run.some((v) => v.taskId === t.id && v.passed));
    if (passed.size === known.size && passedAt === null) passedAt = at;
    if (!wholeRunPassed) failedChecks++;
    failedSinceProgress = passed.size > before || wholeRunPassed ? 0 : failedSinceProgress + 1;
  }
  const state: CellState = passed.size === known.size ? "passed" : runs.size > 0 ? "in_progress" : "not_started";
  return {
    state,
    passedTasks: passed.size,
    tasks: known.size,
    checks: runs.size,
    failedChecks,
    failedSinceProgress,
    stuck: state !== "passed" && failedSinceProgress >= rules.stuckAfterFailedChecks,
    lastCheckAt,
    passedAt,
  };
}

export function isIdle(lastActiveAt: number | null, now: number, rules: ProgressRules = DEFAULT_RULES): boolean {
  return lastActiveAt !== null && now - lastActiveAt >= rules.idleAfterMs;
}
