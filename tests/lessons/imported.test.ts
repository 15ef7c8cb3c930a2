import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Exercise } from "../../contracts/content/exercise-schema.ts";
import { loadExercises } from "../../sandbox-server/src/content/exercise-loader.ts";
import { Grader } from "../../sandbox-server/src/grading/grader.ts";
import { importScenario } from "../../sandbox-server/src/import-cli.ts";
import { silentLogger } from "../../sandbox-server/src/log.ts";
import type { DockerRuntime } from "../../sandbox-server/src/runtime/docker-runtime.ts";
import { repoRoot } from "../support/server.ts";
import { freshSandbox, testRuntime } from "../support/sandbox.ts";

/**
 * Lesson CI for imported Killercoda scenarios, as tests/lessons/exercises.test.ts is for ours: the
 * fixture scenarios are imported into a content folder of their own (the real course stays as it
 * is), and in a real sandbox each step's check fails until its solution ran and passes after it.
 * A scenario that ships assets/solution.sh is proved with that too: after the starting state
 * every step fails, after the scenario's own solution every step passes.
 */
const fixtures = path.join(repoRoot, "tests/fixtures/killercoda");
const contentDir = mkdtempSync(path.join(tmpdir(), "shipshape-imported-"));
const scenarios = [
  { folder: "first-web-server", slug: "first-web-server", solutionScript: undefined },
  { folder: "build-from-assets", slug: "build-from-assets", solutionScript: "/root/solution.sh" },
];
for (const s of scenarios) importScenario({ folder: path.join(fixtures, s.folder), contentDir, slug: s.slug });
const exercises = loadExercises(path.join(contentDir, "exercises"));
const runtime = testRuntime();
const grader = new Grader({ runtime, log: silentLogger });

afterAll(async () => {
  for (const s of await runtime.list()) await runtime.destroy(s.id);
  await runtime.close();
  rmSync(contentDir, { recursive: true, force: true });
});

const stepsOf = (slug: string): Exercise[] =>
  [...exercises.values()].filter((e) => e.lesson === slug).sort((a, b) => a.id.localeCompare(b.id, "en", { numeric: true }));

async function bash(r: DockerRuntime, sandboxId: string, script: string, what: string): Promise<void> {
  const result = await r.exec(sandboxId, ["bash", "-euo", "pipefail", "-c", script], { timeoutMs: 300_000, env: ["HOME=/root"] });
  expect(result.exitCode, `${what} failed:\n${result.stdout.slice(-2000)}\n${result.stderr.slice(-2000)}`).toBe(0);
}

describe.concurrent("imported scenarios are solvable and not solved from the start", () => {
  for (const scenario of scenarios) {
    it(`${scenario.slug}: step by step, each step fails until its own commands ran`, async () => {
      const steps = stepsOf(scenario.slug);
      expect(steps.length).toBe(2);
      const sandbox = await freshSandbox(runtime, scenario.slug);
      try {
        for (const step of steps) if (step.setup) await bash(runtime, sandbox.id, step.setup, `${step.id} setup`);
        for (const step of steps) {
          const before = await grader.grade(step, sandbox.id);
          expect(before.passed, `${step.id} passes before its solution`).toBe(false);
          expect(before.tasks[0]!.message).toMatch(/^Not done yet: /);
          await bash(runtime, sandbox.id, step.solution, `${step.id} solution`);
          const after = await grader.grade(step, sandbox.id);
          expect(after.tasks, `${step.id} after its solution`).toEqual([expect.objectContaining({ passed: true })]);
        }
      } finally {
        await runtime.destroy(sandbox.id);
      }
    });

    if (scenario.solutionScript) {
      it(`${scenario.slug}: the scenario's own ${path.basename(scenario.solutionScript)} passes every step`, async () => {
        const steps = stepsOf(scenario.slug);
        const sandbox = await freshSandbox(runtime, `${scenario.slug}-sol`);
        try {
          for (const step of steps) if (step.setup) await bash(runtime, sandbox.id, step.setup, `${step.id} setup`);
          for (const step of steps) expect((await grader.grade(step, sandbox.id)).passed, `${step.id} before the solution`).toBe(false);
          await bash(runtime, sandbox.id, `bash ${scenario.solutionScript}`, "the scenario's solution");
          for (const step of steps) expect((await grader.grade(step, sandbox.id)).passed, `${step.id} after the solution`).toBe(true);
        } finally {
          await runtime.destroy(sandbox.id);
        }
      });
    }
  }
});
