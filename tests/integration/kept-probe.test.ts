/**
 * A Check does not start a container per press (issue 18): each sandbox a learner uses keeps one
 * grading probe, started when their terminal attaches, which serves every check of theirs through
 * its command server, sees what they did since the last check, and goes with their sandbox.
 */
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

const probesOf = (sessionId: string) =>
  execFileSync("docker", ["ps", "-aq", "--no-trunc", "--filter", "label=org.shipshape.role=probe", "--filter", `label=org.shipshape.session=${sessionId}`], {
    encoding: "utf8",
  })
    .split("\n")
    .filter(Boolean);

async function until<T>(test: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = test();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe("the kept grading probe", () => {
  let app: App;
  let session: Session;
  let term: TestTerminal;

  const check = async (exercise: string) => {
    const res = await fetch(`${app.url}/api/exercises/${exercise}/check`, { method: "POST", headers: { origin: app.url, cookie: session.cookie } });
    return { status: res.status, body: (await res.json()) as { passed: boolean; tasks: Array<{ taskId: string; passed: boolean; message: string }> } };
  };

  beforeAll(async () => {
    app = await startTestApp();
    session = await openSession(app.url);
    term = new TestTerminal(session);
    await term.ready(60_000);
  });

  afterAll(async () => {
    term?.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("is ready before the first Check, serves every check, sees new work, and goes with the sandbox", async () => {
    // Started because the learner's terminal attached, before anyone pressed Check.
    const [probe] = await until(() => (probesOf(session.sessionId).length === 1 ? probesOf(session.sessionId) : undefined), 60_000, "the warmed probe");

    const first = await check("run-and-stop");
    expect(first.status).toBe(200);
    const said = () => first.body.tasks.find((t) => t.taskId === "busybox-said")!;
    expect(said().passed).toBe(false);
    expect(said().message).not.toMatch(/could not run/);

    await term.run("docker run busybox echo Containers are processes", 120_000);
    const second = await check("run-and-stop");
    expect(second.status).toBe(200);
    // The same probe answered, and it saw the container made since the last check.
    expect(second.body.tasks.find((t) => t.taskId === "busybox-said")).toMatchObject({ passed: true });
    expect(second.body.tasks.find((t) => t.taskId === "cache-stopped")).toMatchObject({ passed: false });
    expect(probesOf(session.sessionId)).toEqual([probe]);

    // Ending the session removes the sandbox and its probe.
    const res = await fetch(`${app.url}/api/sessions/current`, { method: "DELETE", headers: { origin: app.url, cookie: session.cookie } });
    expect(res.status).toBeLessThan(300);
    await until(() => probesOf(session.sessionId).length === 0, 30_000, "the probe to go with the sandbox");
  }, 240_000);
});
