import { describe, expect, it } from "vitest";
import { ShipshapeError } from "../../../sandbox-server/src/errors.ts";
import { Grader } from "../../../sandbox-server/src/grading/grader.ts";
import type { Exercise } from "../../../contracts/content/exercise-schema.ts";
import { silentLogger } from "../../../sandbox-server/src/log.ts";
import type { ExecResult, SandboxProbe, SandboxRuntime } from "../../../sandbox-server/src/runtime/types.ts";

const ok = (stdout: string): ExecResult => ({ exitCode: 0, stdout, stderr: "", timedOut: false, truncated: false });

/** A runtime whose probes answer like a real engine, and which counts how many are open at once. */
function countingRuntime() {
  const state = { open: 0, most: 0, order: [] as string[] };
  const runtime = {
    probe: async (sandboxId: string): Promise<SandboxProbe> => {
      state.open++;
      state.most = Math.max(state.most, state.open);
      state.order.push(sandboxId);
      return {
        exec: async () => {
          await new Promise((r) => setTimeout(r, 5));
          return ok("[]");
        },
        readFile: async () => undefined,
        authorScript: () => Promise.reject(new Error("no script checks here")),
        close: async () => {
          state.open--;
        },
      };
    },
  } as unknown as SandboxRuntime;
  return { runtime, state };
}

const exercise = {
  id: "demo",
  tasks: [{ id: "none-left", title: "No containers are left", check: { kind: "no-containers" } }],
} as unknown as Exercise;

describe("grader", () => {
  it("grades a whole class that presses Check at once, a few probes at a time, in the order they asked", async () => {
    const { runtime, state } = countingRuntime();
    const grader = new Grader({ runtime, log: silentLogger, maxProbes: 3 });
    const sandboxes = Array.from({ length: 12 }, (_, i) => `sb${i}`);
    const results = await Promise.all(sandboxes.map((sb) => grader.grade(exercise, sb)));
    expect(results.every((r) => r.tasks.length === 1)).toBe(true);
    expect(state.most).toBe(3);
    expect(state.order).toEqual(sandboxes);
    await new Promise((r) => setTimeout(r, 20));
    expect(state.open).toBe(0); // every probe was removed
  });

  it("fails every task with the probe's reason when the engine could not be verified", async () => {
    const { runtime } = countingRuntime();
    const fake = runtime.probe.bind(runtime);
    const refused = new ShipshapeError("sandbox_failed", "The Docker engine socket in your sandbox was replaced, so your engine could not be verified.", "peer 77");
    runtime.probe = async (id) => ({ ...(await fake(id)), exec: async () => Promise.reject(refused) });
    const twoTasks = { ...exercise, tasks: [...exercise.tasks, { id: "again", title: "Again", check: { kind: "no-containers" } }] } as unknown as Exercise;
    const result = await new Grader({ runtime, log: silentLogger }).grade(twoTasks, "sb");
    expect(result.passed).toBe(false);
    expect(result.tasks.map((t) => t.message)).toEqual([refused.userMessage, refused.userMessage]);
  });

  it("does not read an engine that fails to answer as one with no containers", async () => {
    const { runtime } = countingRuntime();
    const fake = runtime.probe.bind(runtime);
    const broken: ExecResult = { exitCode: 1, stdout: "", stderr: "Cannot connect to the Docker daemon", timedOut: false, truncated: false };
    runtime.probe = async (id) => ({ ...(await fake(id)), exec: async () => broken });
    const result = await new Grader({ runtime, log: silentLogger }).grade(exercise, "sb");
    expect(result.tasks[0]).toMatchObject({ passed: false, message: "This check could not run; try again." });
  });
});
