import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { CloseCode } from "../../contracts/close-codes.ts";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

/**
 * "Reset my sandbox" (issue 17): one session, two sandboxes in turn. What the learner built is gone,
 * the session and its progress stay, the open terminal is told to reconnect and finds a fresh
 * shell, the lesson's setup runs again, the old sandbox is destroyed, and nobody else can do it.
 */
describe("reset my sandbox", () => {
  let app: App;
  let session: Session;
  let term: TestTerminal;

  const post = (path: string, s: Session | undefined, origin = app.url) =>
    fetch(`${app.url}${path}`, { method: "POST", headers: { origin, ...(s ? { cookie: s.cookie } : {}) } });
  const sandboxOf = async (sessionId: string) => (await app.runtime.list()).filter((s) => s.sessionId === sessionId);

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

  it("gives the same session a fresh sandbox: state gone, progress kept, setup again, old one destroyed", async () => {
    // Progress: tidy-up's setup leaves two containers; cleaning them passes the exercise.
    expect(await (await post("/api/exercises/tidy-up/setup", session)).json()).toMatchObject({ state: "ran" });
    await term.run("docker run -d --name sleeper busybox sleep 3600 && docker container prune -f && docker volume create reset-keepsake && echo mine > /root/keepsake.txt", 60_000);
    const passed = await (await post("/api/exercises/tidy-up/check", session)).json();
    expect(passed).toMatchObject({ passed: true });
    const [old] = await sandboxOf(session.sessionId);
    expect(old?.running).toBe(true);

    // Nobody else: no owner cookie, or a foreign page with the learner's cookie, is refused.
    const stranger = await post("/api/sessions/current/reset", undefined);
    expect(stranger.status).toBe(404);
    const foreign = await post("/api/sessions/current/reset", session, "https://evil.example");
    expect(foreign.status).toBe(403);
    expect((await sandboxOf(session.sessionId)).map((s) => s.id)).toEqual([old!.id]);

    const reset = await post("/api/sessions/current/reset", session);
    expect(reset.status).toBe(202);
    expect(await reset.json()).toMatchObject({ sessionId: session.sessionId, state: "starting" });
    // The open terminal is told why, with a code the page reconnects on.
    expect(await term.waitForClose()).toMatchObject({ code: CloseCode.sandboxReset, reason: expect.stringMatching(/fresh one/) });
    expect(await app.runtime.inspect(old!.id).catch(() => null)).toBeFalsy();

    // The page reconnects with the credentials it already had.
    term = new TestTerminal(session);
    await term.ready(120_000);
    const [fresh] = await sandboxOf(session.sessionId);
    expect(fresh?.id).not.toBe(old!.id);
    const look = await term.run("docker volume ls -q; cat /root/keepsake.txt");
    expect(look).not.toMatch(/reset-keepsake/);
    expect(look).toMatch(/No such file or directory/);

    const current = (await (await fetch(`${app.url}/api/sessions/current`, { headers: { cookie: session.cookie } })).json()) as Record<string, unknown>;
    expect(current).toMatchObject({ sessionId: session.sessionId, state: "ready" });
    const progress = JSON.stringify(await (await fetch(`${app.url}/api/progress`, { headers: { cookie: session.cookie } })).json());
    expect(progress).toMatch(/tidy-up/);
    // Setups are per sandbox: the new one gets the exercise's starting state again.
    expect(await (await post("/api/exercises/tidy-up/setup", session)).json()).toMatchObject({ state: "ran" });
  });

  it("is rate-limited per browser, and a reset while one starts does not start another", async () => {
    // Three at once at most: of four quick presses the first resets, the last is refused.
    const answers: Response[] = [];
    for (let i = 0; i < 4; i++) answers.push(await post("/api/sessions/current/reset", session));
    expect(answers[0]!.status).toBe(202);
    expect(answers[3]!.status).toBe(429);
    expect(answers[3]!.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await answers[3]!.json()).toMatchObject({ error: "rate_limited", message: expect.stringMatching(/reset your sandbox 3 times/) });
    // However many were asked for, the session has one sandbox, and it starts.
    const again = new TestTerminal(session);
    await again.ready(120_000);
    again.close();
    expect(await sandboxOf(session.sessionId)).toHaveLength(1);
  });
});
