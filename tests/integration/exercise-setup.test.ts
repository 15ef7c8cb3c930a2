import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

/**
 * Starting states through the API, as the lesson page asks for them: tidy-up's setup (two leftover
 * hello-world containers) runs in the learner's own sandbox when they open the lesson, once per
 * sandbox, and again in a new sandbox. Before, it ran only in lesson CI, so "no hello-world left"
 * passed in a sandbox that never had one.
 */
describe("exercise setup (starting state)", () => {
  let app: App;
  let session: Session;
  let term: TestTerminal;

  const setup = async (exercise: string, s: Session = session) => {
    const res = await fetch(`${app.url}/api/exercises/${exercise}/setup`, { method: "POST", headers: { origin: app.url, cookie: s.cookie } });
    return { status: res.status, body: (await res.json()) as { state?: string; message?: string } };
  };
  const check = async (exercise: string, s: Session = session) => {
    const res = await fetch(`${app.url}/api/exercises/${exercise}/check`, { method: "POST", headers: { origin: app.url, cookie: s.cookie } });
    return (await res.json()) as { tasks: Array<{ taskId: string; passed: boolean; message: string }> };
  };
  beforeAll(async () => {
    app = await startTestApp();
    session = await openSession(app.url);
    term = new TestTerminal(session);
    await term.ready(120_000);
  });

  afterAll(async () => {
    term?.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("runs the setup in the learner's sandbox, so the clean-up task has something to clean", async () => {
    const { status, body } = await setup("tidy-up");
    expect(status).toBe(200);
    expect(body.state).toBe("ran");
    await term.run("docker ps -a --format '{{.Names}} {{.Image}} {{.Status}}'");
    expect(term.output).toMatch(/leftover-2 hello-world Created\s+leftover-1 hello-world Created/);
    const verdict = await check("tidy-up");
    expect(verdict.tasks.find((t) => t.taskId === "no-hello-left")).toMatchObject({ passed: false });
  });

  it("does not run it again in the same sandbox (a reload keeps the learner's work)", async () => {
    await term.run("docker container prune -f");
    const { body } = await setup("tidy-up");
    expect(body.state).toBe("already");
    const verdict = await check("tidy-up");
    expect(verdict.tasks.find((t) => t.taskId === "no-hello-left")).toMatchObject({ passed: true });
  });

  it("runs it again in a new sandbox", async () => {
    const fresh = await openSession(app.url, session.cookie, { fresh: true });
    expect(fresh.sessionId).not.toBe(session.sessionId);
    const { body } = await setup("tidy-up", fresh);
    expect(body.state).toBe("ran");
    const verdict = await check("tidy-up", fresh);
    expect(verdict.tasks.find((t) => t.taskId === "no-hello-left")).toMatchObject({ passed: false, message: expect.stringMatching(/still there/) });
  });

  it("says so for an exercise without setup, and refuses unknown ones", async () => {
    expect((await setup("run-and-stop")).body.state).toBe("none");
    const unknown = await setup("no-such-exercise");
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toMatch(/no exercise called "no-such-exercise"/);
  });
});
