import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../sandbox-server/src/log.ts";
import { createServerMetrics, Metrics } from "../../../sandbox-server/src/metrics.ts";
import type { SandboxInfo, SandboxRuntime, SandboxSpec } from "../../../sandbox-server/src/runtime/types.ts";
import { SessionManager } from "../../../sandbox-server/src/sessions/session-manager.ts";
import { Store } from "../../../sandbox-server/src/store/store.ts";

/**
 * Issue 18: a class arriving at once waits in a line of sandbox starts (startsAtOnce at a time,
 * first come first served), so the first learners get their sandboxes early instead of fifty
 * starts finishing late together. A runtime whose starts finish only when the test says so.
 */
function fakeRuntime() {
  const starts: Array<{ spec: SandboxSpec; finish: () => void }> = [];
  const runtime = {
    name: "fake",
    ping: async () => {},
    create: (spec: SandboxSpec) =>
      new Promise<SandboxInfo>((resolve) => {
        const info: SandboxInfo = { id: `sb-${spec.sessionId}`, name: spec.sessionId, sessionId: spec.sessionId, ownerId: spec.ownerId, workshopId: undefined, createdAt: Date.now(), expiresAt: spec.expiresAt, running: true, address: undefined, exitReason: undefined };
        starts.push({ spec, finish: () => resolve(info) });
      }),
    inspect: async () => null,
    destroy: async () => {},
    list: async () => [],
    removeOrphanedStorage: async () => 0,
    onSandboxEvent: () => () => {},
    close: async () => {},
  } as unknown as SandboxRuntime;
  return { runtime, starts };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("the line of sandbox starts", () => {
  it("starts at most startsAtOnce sandboxes at once, the next in order of arrival as each is handed out", async () => {
    const { runtime, starts } = fakeRuntime();
    const sessions = new SessionManager({
      runtime,
      store: new Store(":memory:"),
      log: silentLogger,
      metrics: createServerMetrics(new Metrics()),
      policy: { ttlMs: 3_600_000, idleTimeoutMs: 600_000, reapIntervalMs: 600_000, maxSandboxes: 100, warmPoolSize: 0, startsAtOnce: 2, limits: { memoryBytes: 1, cpus: 1, pids: 1, diskBytes: 1 } },
    });
    const views = ["a", "b", "c", "d", "e"].map((owner) => sessions.open(owner));
    await tick();
    expect(starts.map((s) => s.spec.ownerId)).toEqual(["a", "b"]);
    // Each is handed out before its engine answers: it asked for that.
    expect(starts.every((s) => s.spec.engineLater)).toBe(true);
    expect(sessions.current("c")?.status).toMatchObject({ state: "starting", step: "Queued" });

    starts[1]!.finish();
    await tick();
    await tick();
    expect(starts.map((s) => s.spec.ownerId)).toEqual(["a", "b", "c"]);
    expect(sessions.current("b")?.status).toEqual({ state: "ready" });

    // A learner who leaves while in line starts nothing.
    const ended = sessions.end(views[3]!.sessionId, "ended by the learner");
    starts[0]!.finish();
    await ended;
    await tick();
    expect(starts.map((s) => s.spec.ownerId)).toEqual(["a", "b", "c", "e"]);
  });
});
