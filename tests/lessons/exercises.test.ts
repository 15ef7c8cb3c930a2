import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadExercises } from "../../sandbox-server/src/content/exercise-loader.ts";
import { Grader } from "../../sandbox-server/src/grading/grader.ts";
import { silentLogger } from "../../sandbox-server/src/log.ts";
import { repoRoot } from "../support/server.ts";
import { freshSandbox, testRuntime } from "../support/sandbox.ts";

/**
 * Lesson CI: for every exercise, a fresh sandbox fails every check, and after the reference
 * solution every check passes. Exercises run in parallel, each in its own sandbox.
 */
const exercises = [...loadExercises(path.join(repoRoot, "content", "exercises")).values()];
const runtime = testRuntime();
const grader = new Grader({ runtime, log: silentLogger });

afterAll(async () => {
  for (const s of await runtime.list()) await runtime.destroy(s.id);
  await runtime.close();
});

describe.concurrent("every exercise is solvable and not solved from the start", () => {
  it("has exercises to prove", () => {
    expect(exercises.length).toBeGreaterThan(0);
  });

  for (const exercise of exercises) {
    it(`${exercise.lesson} / ${exercise.id}`, async () => {
      const sandbox = await freshSandbox(runtime, exercise.id);
      try {
        if (exercise.setup) {
          const setup = await runtime.exec(sandbox.id, ["bash", "-euo", "pipefail", "-c", exercise.setup], { timeoutMs: 300_000 });
          expect(setup.exitCode, `setup failed: ${setup.stderr}`).toBe(0);
        }
        const before = await grader.grade(exercise, sandbox.id);
        const passedEarly = before.tasks.filter((t) => t.passed).map((t) => t.taskId);
        expect(passedEarly, "checks that pass on a fresh sandbox").toEqual([]);
        for (const t of before.tasks) expect(t.message.length, `task ${t.taskId} explains what is missing`).toBeGreaterThan(10);

        const solution = await runtime.exec(sandbox.id, ["bash", "-euo", "pipefail", "-c", exercise.solution], {
          timeoutMs: 300_000,
          env: ["HOME=/root"],
        });
        expect(solution.exitCode, `solution failed:\n${solution.stdout.slice(-2000)}\n${solution.stderr.slice(-2000)}`).toBe(0);

        const after = await grader.grade(exercise, sandbox.id);
        const failing = after.tasks.filter((t) => !t.passed).map((t) => `${t.taskId}: ${t.message}`);
        expect(failing, "checks that fail after the reference solution").toEqual([]);
      } finally {
        await runtime.destroy(sandbox.id);
      }
    });
  }
});
