import Docker from "dockerode";
import { afterAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";

// A sandbox whose container stops while its inner engine starts (dockerd giving up on a loaded
// machine does exactly that) is replaced by the server: the learner gets a prompt, not "try again".
describe("a sandbox that stops while it starts", () => {
  let app: App | undefined;
  afterAll(async () => {
    for (const s of (await app?.runtime.list().catch(() => [])) ?? []) await app!.runtime.destroy(s.id);
    await app?.close();
  });

  it("is replaced by a fresh one and the learner still gets a shell", async () => {
    const env = testEnv();
    app = await startTestApp(env);
    const docker = new Docker();
    const events = await docker.getEvents({
      filters: { type: ["container"], event: ["start"], label: [`org.shipshape.namespace=${env.SHIPSHAPE_NAMESPACE}`] },
    });
    // The first sandbox this server starts is killed the moment it starts; later ones are left alone.
    const killed = new Promise<string>((resolve) => {
      events.once("data", (chunk: Buffer) => {
        const id = (JSON.parse(chunk.toString().split("\n")[0]!) as { id: string }).id;
        void docker.getContainer(id).kill().catch(() => {}).then(() => resolve(id));
      });
    });
    try {
      const session = await openSession(app.url);
      const term = new TestTerminal(session);
      await term.ready(90_000);
      expect(await term.run("echo alive-$((6*7))")).toContain("alive-42");
      term.close();

      const victim = await killed;
      const sandboxes = await app.runtime.list();
      expect(sandboxes.map((s) => s.sessionId)).toEqual([session.sessionId]);
      expect(sandboxes[0]!.id).not.toBe(victim);
      // The stopped one is removed, not left for a reaper.
      await expect(docker.getContainer(victim).inspect()).rejects.toThrow(/no such container/i);
    } finally {
      (events as unknown as { destroy(): void }).destroy();
    }
  }, 120_000);
});
