import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadExercises } from "../../sandbox-server/src/content/exercise-loader.ts";
import { Grader } from "../../sandbox-server/src/grading/grader.ts";
import { silentLogger } from "../../sandbox-server/src/log.ts";
import { lessonSelected, loadLessonsForCi, placeLessonFiles, runScript } from "../support/lessons.ts";
import { repoRoot } from "../support/server.ts";
import { freshSandbox, testRuntime } from "../support/sandbox.ts";

/**
 * The whole course in ONE sandbox, in lesson order, as a learner takes it: each lesson's files,
 * then each exercise's setup and reference solution (which must pass there too, after everything
 * the earlier lessons left), then the Run blocks of the lesson's "Clean up" section, after which no
 * container may be left. A lesson that reuses a name or a port another lesson left behind fails
 * here ("Conflict. The container name is already in use", "port is already allocated").
 */
const exercises = loadExercises(path.join(repoRoot, "content", "exercises"));
const lessons = loadLessonsForCi().filter((l) => !l.draft && lessonSelected(l.slug));
const runtime = testRuntime();
const grader = new Grader({ runtime, log: silentLogger });

afterAll(async () => {
  for (const s of await runtime.list()) await runtime.destroy(s.id);
  await runtime.close();
});

describe("the course in order, in one sandbox", () => {
  it("every lesson ends with a clean-up that leaves no container behind, and no lesson collides with another", { timeout: 3_600_000 }, async () => {
    const sandbox = await freshSandbox(runtime, "whole-course");
    try {
      for (const lesson of lessons) {
        await placeLessonFiles(runtime, sandbox.id, lesson);
        for (const id of lesson.exercises) {
          const exercise = exercises.get(id)!;
          const where = `${lesson.slug} / ${id}`;
          if (exercise.setup) {
            const setup = await runScript(runtime, sandbox.id, exercise.setup);
            expect(setup.exitCode, `${where}: setup failed after the lessons before it:\n${setup.stderr.slice(-1500)}`).toBe(0);
          }
          const solution = await runScript(runtime, sandbox.id, exercise.solution);
          expect(solution.exitCode, `${where}: the solution failed after the lessons before it:\n${solution.stdout.slice(-1500)}\n${solution.stderr.slice(-1500)}`).toBe(0);
          const result = await grader.grade(exercise, sandbox.id);
          expect(result.tasks.filter((t) => !t.passed).map((t) => `${t.taskId}: ${t.message}`), `${where}: tasks that fail in the course run`).toEqual([]);
        }
        expect(lesson.cleanup.length, `${lesson.slug} has a "## Clean up" section with Run blocks`).toBeGreaterThan(0);
        // A learner presses each Run; a command that finds nothing to remove is not a failure.
        for (const command of lesson.cleanup) await runtime.exec(sandbox.id, ["bash", "-c", command], { timeoutMs: 120_000, env: ["HOME=/root"] });
        const left = await runtime.exec(sandbox.id, ["docker", "ps", "-a", "--format", "{{.Names}}"]);
        expect(left.stdout.trim().split("\n").filter(Boolean), `containers left after the clean-up of ${lesson.slug}`).toEqual([]);
      }
    } finally {
      await runtime.destroy(sandbox.id);
    }
  });
});
