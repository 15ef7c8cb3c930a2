import Docker from "dockerode";
import { afterAll, describe, expect, it } from "vitest";
import { testNamespace } from "../support/namespaces.ts";
import { freshSandbox, testRuntime } from "../support/sandbox.ts";

// A sandbox whose container stops before it is handed out (its inner dockerd giving up on a loaded
// machine does exactly that: the engine is the container's first process) is replaced by the
// runtime: the caller gets a working sandbox, not "try again". Sandboxes that wait for their engine
// (the warm pool, workshop reserves, lesson CI) meet this window in full; a learner's cold start
// is handed out before its engine (issue 18), so there the window is the port pin.
describe("a sandbox that stops while it starts", () => {
  const namespace = testNamespace("t");
  const runtime = testRuntime(namespace);
  afterAll(async () => {
    for (const s of await runtime.list()) await runtime.destroy(s.id);
    await runtime.close();
  });

  it("is replaced by a fresh one whose engine answers, and the stopped one is removed", async () => {
    const docker = new Docker();
    const events = await docker.getEvents({
      filters: { type: ["container"], event: ["start"], label: [`org.shipshape.namespace=${namespace}`] },
    });
    // The first sandbox of this runtime is killed the moment it starts; later ones are left alone.
    const killed = new Promise<string>((resolve) => {
      events.once("data", (chunk: Buffer) => {
        const id = (JSON.parse(chunk.toString().split("\n")[0]!) as { id: string }).id;
        void docker.getContainer(id).kill().catch(() => {}).then(() => resolve(id));
      });
    });
    try {
      const sandbox = await freshSandbox(runtime, "start-retry");
      const victim = await killed;
      expect(sandbox.id).not.toBe(victim);
      expect(sandbox.running).toBe(true);
      const engine = await runtime.exec(sandbox.id, ["docker", "version", "--format", "{{.Server.Version}}"], { timeoutMs: 30_000 });
      expect(engine.exitCode, engine.stderr).toBe(0);
      expect((await runtime.list()).map((s) => s.id)).toEqual([sandbox.id]);
      await expect(docker.getContainer(victim).inspect()).rejects.toThrow(/no such container/i);
    } finally {
      (events as unknown as { destroy(): void }).destroy();
    }
  }, 120_000);
});
