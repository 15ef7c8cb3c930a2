import { describe, expect, it } from "vitest";
import { Grader } from "../../../sandbox-server/src/grading/grader.ts";
import type { Exercise } from "../../../contracts/content/exercise-schema.ts";
import { silentLogger } from "../../../sandbox-server/src/log.ts";
import type { ExecResult, SandboxProbe, SandboxRuntime } from "../../../sandbox-server/src/runtime/types.ts";

const ok = (stdout: string): ExecResult => ({ exitCode: 0, stdout, stderr: "", timedOut: false, truncated: false });
const genuineEngine = ok("/usr/sbin/dockerd\n---\nu_str LISTEN 0 4096 /run/docker.sock 1234 * 0 users:((\"dockerd\",pid=1,fd=5))\n");

/** A runtime whose probes answer like a real engine, and which counts how many are open at once. */
function countingRuntime() {
  const state = { open: 0, most: 0, order: [] as string[] };
  const runtime = {
    probe: async (sandboxId: string): Promise<SandboxProbe> => {
      state.open++;
      state.most = Math.max(state.most, state.open);
      state.order.push(sandboxId);
      return {
        exec: async (cmd) => {
          await new Promise((r) => setTimeout(r, 5));
          if (cmd[0] === "sh") return genuineEngine;
          return ok("[]");
        },
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

  it("fails every task when the engine socket is not PID 1's, and says why", async () => {
    const { runtime } = countingRuntime();
    const fake = runtime.probe.bind(runtime);
    runtime.probe = async (id) => {
      const p = await fake(id);
      return { ...p, exec: async (cmd) => (cmd[0] === "sh" ? ok("/usr/sbin/dockerd\n---\nu_str LISTEN 0 5 /run/docker.sock 99 * 0 users:((\"python3\",pid=77,fd=3))\n") : p.exec(cmd)) };
    };
    const result = await new Grader({ runtime, log: silentLogger }).grade(exercise, "sb");
    expect(result.passed).toBe(false);
    expect(result.tasks[0]!.message).toMatch(/socket in your sandbox was replaced/);
  });
});
