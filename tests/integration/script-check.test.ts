import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exerciseSchema, type Exercise } from "../../contracts/content/exercise-schema.ts";
import { Grader } from "../../sandbox-server/src/grading/grader.ts";
import { silentLogger } from "../../sandbox-server/src/log.ts";
import type { SandboxInfo } from "../../sandbox-server/src/runtime/types.ts";
import { freshSandbox, testRuntime } from "../support/sandbox.ts";

/**
 * The `script` check (an imported verify.sh) against a real sandbox: it runs in the probe with the
 * probe's tools, sees the sandbox's files, engine and ports, is bounded in time, and its output
 * never reaches the learner.
 */
const runtime = testRuntime();
const grader = new Grader({ runtime, log: silentLogger });
let sandbox: SandboxInfo;

const exercise = (script: string, timeoutSeconds?: number): Exercise =>
  exerciseSchema.parse({
    id: "script-check",
    lesson: "demo",
    title: "A script check",
    tasks: [{ id: "verify", title: "The step is done", check: { kind: "script", script, ...(timeoutSeconds ? { timeoutSeconds } : {}) } }],
    solution: "true",
    wrongAttempts: [{ name: "nothing done", script: "true" }],
  });
const grade = async (script: string, timeoutSeconds?: number) => (await grader.grade(exercise(script, timeoutSeconds), sandbox.id)).tasks[0]!;
const inSandbox = (script: string) => runtime.exec(sandbox.id, ["sh", "-c", script], { timeoutMs: 120_000 });

beforeAll(async () => {
  sandbox = await freshSandbox(runtime, "script-check");
}, 180_000);

afterAll(async () => {
  for (const s of await runtime.list()) await runtime.destroy(s.id);
  await runtime.close();
});

describe("script checks", () => {
  it("read the sandbox's files through HOME and $SANDBOX_ROOT, and its engine", async () => {
    expect((await grade('grep -q "buy milk" ~/todo.txt')).passed).toBe(false);
    await inSandbox("echo 'buy milk' > /root/todo.txt && docker run -d --name web busybox sleep 600");
    expect((await grade('grep -q "buy milk" ~/todo.txt && test -f "$SANDBOX_ROOT/root/todo.txt"')).passed).toBe(true);
    expect((await grade("docker ps --format '{{.Names}}' | grep -qx web")).passed).toBe(true);
  }, 180_000);

  it("use the probe's own tools, so a fake docker in the sandbox cannot pass them", async () => {
    await inSandbox("cp /usr/bin/docker /root/docker.real && printf '#!/bin/sh\\necho db\\n' > /usr/bin/docker && chmod +x /usr/bin/docker");
    try {
      expect((await inSandbox("docker ps")).stdout.trim()).toBe("db");
      expect((await grade("docker ps --format '{{.Names}}' | grep -qx db")).passed).toBe(false);
    } finally {
      await inSandbox("cp /root/docker.real /usr/bin/docker");
    }
  }, 120_000);

  it("fail when any command fails, even if the script ends in `echo done`", async () => {
    expect((await grade("grep -q nothing-like-this ~/todo.txt\necho done")).passed).toBe(false);
  }, 60_000);

  it("are killed at their time limit, and say so", async () => {
    const started = Date.now();
    const verdict = await grade("sleep 100", 2);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(verdict).toMatchObject({ passed: false, message: "The check did not finish within 2 s, so it does not pass yet." });
  }, 60_000);

  it("keep their output from the learner", async () => {
    const verdict = await grade("echo 'the answer is docker rm -f old'; cat ~/todo.txt; exit 3");
    expect(verdict.passed).toBe(false);
    expect(verdict.message).toBe("Not done yet.");
  }, 60_000);
});
