/**
 * A learner's prompt does not wait for their sandbox's inner Docker engine (issue 18): a class
 * arriving at once got its prompts only after fifty engines had booted on two cores. The shell
 * comes first; the first `docker` command waits for the engine, saying so, and then works; a
 * Check pressed meanwhile waits for the engine too, and grades.
 *
 * To hold the engine back for as long as the test needs, the sandbox's first process (its
 * entrypoint, which becomes dockerd) is stopped with SIGSTOP from the host the moment the host's
 * engine reports the container started, and continued later. Shells are not its children (the
 * host's engine starts them), so they run meanwhile.
 */
import Docker from "dockerode";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";

const docker = new Docker();

/** Stops the first process of the next sandbox of `namespace` to start; resolves with its host pid. */
async function freezeNextEngine(namespace: string): Promise<{ pid: Promise<number>; stop(): void }> {
  const events = (await docker.getEvents({
    filters: JSON.stringify({ type: ["container"], event: ["start"], label: [`org.shipshape.namespace=${namespace}`, "org.shipshape.role=sandbox"] }),
  } as Docker.GetEventsOptions)) as NodeJS.ReadableStream & { destroy(): void };
  const pid = new Promise<number>((resolve, reject) => {
    events.on("data", (chunk: Buffer) => {
      const id = (JSON.parse(chunk.toString("utf8").split("\n")[0]!) as { id: string }).id;
      docker
        .getContainer(id)
        .inspect()
        .then((c) => {
          process.kill(c.State.Pid, "SIGSTOP");
          resolve(c.State.Pid);
        }, reject);
    });
  });
  return { pid, stop: () => events.destroy() };
}

describe("the prompt before the engine", () => {
  let app: App;
  let namespace: string;

  beforeAll(async () => {
    const env = testEnv({ SHIPSHAPE_WARM_POOL: "0" });
    namespace = env.SHIPSHAPE_NAMESPACE!;
    app = await startTestApp(env);
  });

  afterAll(async () => {
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("gives the learner a prompt while the engine starts; the first docker command and a Check wait for it, then work", async () => {
    const freeze = await freezeNextEngine(namespace);
    let pid: number | undefined;
    try {
      const session = await openSession(app.url);
      pid = await freeze.pid;
      const sandboxRoot = `/proc/${pid}/root`;
      const terminal = new TestTerminal(session);
      // The engine is frozen: before this change, no prompt came until it answered.
      await terminal.waitFor(/sandbox\S*:\S*~\S*# /, 20_000);
      // Nobody has had an answer from it yet (the mark the server and `docker` leave when it answers).
      expect(existsSync(`${sandboxRoot}/run/shipshape/engine-ready`)).toBe(false);

      const from = terminal.output.length;
      terminal.type("docker version --format 'engine={{.Server.Os}}'; echo exit-$?\r");
      const check = fetch(`${app.url}/api/exercises/run-and-stop/check`, { method: "POST", headers: { origin: app.url, cookie: session.cookie } });
      // It says what it waits for (not "Cannot connect to the Docker daemon") and keeps waiting.
      await terminal.waitFor("Starting Docker in your sandbox", 15_000, from);
      await new Promise((r) => setTimeout(r, 1_500));
      expect(terminal.output.slice(from)).not.toMatch(/exit-\d|Cannot connect/);

      process.kill(pid, "SIGCONT");
      pid = undefined;
      await terminal.waitFor(/engine=linux\s+exit-0/, 60_000, from);
      expect(terminal.output.slice(from)).not.toContain("Cannot connect");

      const res = await check;
      expect(res.status).toBe(200);
      const body = (await res.json()) as { tasks: Array<{ passed: boolean; message: string }> };
      // Graded against the real (now running) engine: the fresh sandbox's tasks fail with the
      // task's own hints, not with "could not run" or an engine refusal.
      expect(body.tasks.length).toBeGreaterThan(0);
      for (const t of body.tasks) {
        expect(t.passed).toBe(false);
        expect(t.message).not.toMatch(/could not run|could not be verified/);
      }

      // Once the engine answers, `docker` is Debian's client at once, with no message.
      const again = await terminal.run("docker ps --format x; echo second-$?", 30_000);
      expect(again).toContain("second-0");
      expect(again).not.toContain("Starting Docker");
      terminal.close();
    } finally {
      if (pid !== undefined) process.kill(pid, "SIGCONT");
      freeze.stop();
    }
  }, 150_000);
});
