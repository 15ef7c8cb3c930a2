import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadExercises } from "../../sandbox-server/src/content/exercise-loader.ts";
import type { Exercise } from "../../contracts/content/exercise-schema.ts";
import { Grader } from "../../sandbox-server/src/grading/grader.ts";
import { silentLogger } from "../../sandbox-server/src/log.ts";
import { lessonSelected, placeLessonFiles, readLesson, runScript } from "../support/lessons.ts";
import { repoRoot } from "../support/server.ts";
import { freshSandbox, testRuntime } from "../support/sandbox.ts";
import { testLxdRuntime } from "../support/lxd.ts";

/**
 * Lesson CI proves every exercise three ways, each in a sandbox of its own that starts as a
 * learner's does (the lesson's files placed, then the exercise's setup):
 *  1. fresh: every check fails, and says what is missing;
 *  2. each wrong attempt (the shortcut a learner would try) does not pass, and fails the tasks it
 *     names;
 *  3. the reference solution passes every check.
 * Exercises run in parallel (at most three at once); an exercise's sandboxes one after another.
 */
const exercises = [...loadExercises(path.join(repoRoot, "content", "exercises")).values()].filter((e) => lessonSelected(e.lesson));
// SHIPSHAPE_TIER=isolated proves the exercises on LXD sandboxes, graded by the isolated tier's host-side probe.
const runtime = process.env.SHIPSHAPE_TIER === "isolated" ? testLxdRuntime() : testRuntime();
const grader = new Grader({ runtime, log: silentLogger });

afterAll(async () => {
  for (const s of await runtime.list()) await runtime.destroy(s.id);
  await runtime.close();
});

async function inLearnersSandbox<T>(exercise: Exercise, label: string, body: (sandboxId: string) => Promise<T>): Promise<T> {
  const sandbox = await freshSandbox(runtime, `${exercise.id}-${label}`);
  try {
    await placeLessonFiles(runtime, sandbox.id, readLesson(exercise.lesson));
    if (exercise.setup) {
      const setup = await runScript(runtime, sandbox.id, exercise.setup);
      expect(setup.exitCode, `setup failed: ${setup.stderr}`).toBe(0);
    }
    return await body(sandbox.id);
  } finally {
    await runtime.destroy(sandbox.id);
  }
}

describe.concurrent("every exercise: fresh fails, each wrong attempt fails, the solution passes", () => {
  it("has exercises to prove", () => {
    expect(exercises.length).toBeGreaterThan(0);
  });

  for (const exercise of exercises) {
    it(`${exercise.lesson} / ${exercise.id}`, async () => {
      await inLearnersSandbox(exercise, "solution", async (sandboxId) => {
        const before = await grader.grade(exercise, sandboxId);
        const guards = new Set(exercise.tasks.filter((t) => t.guard).map((t) => t.id));
        const passedEarly = before.tasks.filter((t) => t.passed && !guards.has(t.taskId)).map((t) => t.taskId);
        expect(passedEarly, "checks that pass on a fresh sandbox").toEqual([]);
        for (const t of before.tasks) expect(t.message.length, `task ${t.taskId} explains what is missing`).toBeGreaterThan(10);

        const solution = await runScript(runtime, sandboxId, exercise.solution);
        expect(solution.exitCode, `solution failed:\n${solution.stdout.slice(-2000)}\n${solution.stderr.slice(-2000)}`).toBe(0);

        const after = await grader.grade(exercise, sandboxId);
        const failing = after.tasks.filter((t) => !t.passed).map((t) => `${t.taskId}: ${t.message}`);
        expect(failing, "checks that fail after the reference solution").toEqual([]);
      });

      for (const attempt of exercise.wrongAttempts) {
        await inLearnersSandbox(exercise, "wrong", async (sandboxId) => {
          const run = await runScript(runtime, sandboxId, attempt.script);
          expect(run.exitCode, `wrong attempt "${attempt.name}" did not run as written:\n${run.stdout.slice(-1500)}\n${run.stderr.slice(-1500)}`).toBe(0);
          const result = await grader.grade(exercise, sandboxId);
          expect(result.passed, `wrong attempt "${attempt.name}" passes`).toBe(false);
          const shouldFail = attempt.fails ?? [];
          const passedWrongly = result.tasks.filter((t) => shouldFail.includes(t.taskId) && t.passed).map((t) => t.taskId);
          expect(passedWrongly, `tasks that wrong attempt "${attempt.name}" passes though it must not`).toEqual([]);
        });
      }
    });
  }
});
