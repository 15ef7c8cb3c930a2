import { execFileSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";
import type { App } from "../../sandbox-server/src/app.ts";

/** What the engine holds for a namespace, counted with the docker CLI as an operator would. */
function leftovers(namespace: string): { containers: number; volumes: number } {
  const label = `label=org.shipshape.namespace=${namespace}`;
  const count = (args: string[]) => execFileSync("docker", args, { encoding: "utf8" }).split("\n").filter(Boolean).length;
  return {
    containers: count(["ps", "-aq", "--filter", label]),
    volumes: count(["volume", "ls", "-q", "--filter", label]),
  };
}

/** Polls until `read` returns `expected` (bounded); removal finishes a moment after the close. */
async function eventually<T>(read: () => T, expected: T, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      expect(read()).toEqual(expected);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  expect(read()).toEqual(expected);
}

describe("sandbox lifecycle", () => {
  const apps: App[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) {
      for (const s of await app.runtime.list().catch(() => [])) await app.runtime.destroy(s.id);
      await app.close().catch(() => {});
    }
  });

  it("reattaches a restarted server to the same shell", async () => {
    const env = testEnv();
    const first = await startTestApp(env);
    const session = await openSession(first.url);
    const t1 = new TestTerminal(session);
    await t1.ready(60_000);
    const pid = (await t1.run("echo shell-pid=$$")).match(/shell-pid=(\d+)/)?.[1];
    expect(pid).toBeTruthy();
    await first.close();
    expect((await t1.waitForClose()).code).toBe(1001);

    // Same data dir, same port: the learner's page reconnects to the same URL.
    const second = await startTestApp({ ...env, PORT: String(first.port) });
    apps.push(second);
    const t2 = new TestTerminal(session);
    await t2.ready();
    // The server's screen mirror is new and empty: the shell redraws its prompt without a key pressed.
    const plain = () => t2.output.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
    await t2.until(() => /sandbox:[^\n]*[#$] $/.test(plain()), 10_000, "the prompt, redrawn without a key");
    expect(await t2.run("echo shell-pid=$$")).toContain(`shell-pid=${pid}`);
    t2.close();
  });

  it("removes an expired sandbox and everything it made, and tells the learner", async () => {
    const env = testEnv({ SHIPSHAPE_SESSION_TTL: "20s", SHIPSHAPE_REAP_INTERVAL: "1s" });
    const app = await startTestApp(env);
    apps.push(app);
    const t = new TestTerminal(await openSession(app.url));
    await t.ready(60_000);
    await t.run("docker volume create learner-data >/dev/null && echo made");
    // The sandbox, and perhaps its grading probe, kept ready once the engine answered (issue 18).
    const sandboxes = execFileSync("docker", ["ps", "-aq", "--filter", `label=org.shipshape.namespace=${env.SHIPSHAPE_NAMESPACE!}`, "--filter", "label=org.shipshape.role=sandbox"], { encoding: "utf8" });
    expect(sandboxes.split("\n").filter(Boolean)).toHaveLength(1);
    expect(leftovers(env.SHIPSHAPE_NAMESPACE!).volumes).toBe(1);
    const closed = await t.waitForClose(40_000);
    expect(closed.code).toBe(4010);
    expect(closed.reason).toMatch(/time limit/);
    await eventually(() => leftovers(env.SHIPSHAPE_NAMESPACE!), { containers: 0, volumes: 0 });
  });

  it("reaps sandboxes that no session owns when a server starts", async () => {
    const env = testEnv();
    const first = await startTestApp(env);
    await new TestTerminal(await openSession(first.url)).ready(60_000);
    await first.close();
    // A new database: the sandbox is now an orphan of this namespace.
    const fresh = testEnv({ SHIPSHAPE_NAMESPACE: env.SHIPSHAPE_NAMESPACE! });
    const second = await startTestApp(fresh);
    apps.push(second);
    expect(leftovers(env.SHIPSHAPE_NAMESPACE!)).toEqual({ containers: 0, volumes: 0 });
  });

  it("destroys a sandbox with nothing left behind when the learner ends it", async () => {
    const env = testEnv();
    const app = await startTestApp(env);
    apps.push(app);
    const session = await openSession(app.url);
    await new TestTerminal(session).ready(60_000);
    const res = await fetch(`${app.url}/api/sessions/current`, { method: "DELETE", headers: { origin: app.url, cookie: session.cookie } });
    expect(res.status).toBe(204);
    expect(leftovers(env.SHIPSHAPE_NAMESPACE!)).toEqual({ containers: 0, volumes: 0 });
  });

  it("tells the learner when the sandbox is killed under them", async () => {
    const app = await startTestApp();
    apps.push(app);
    const t = new TestTerminal(await openSession(app.url));
    await t.ready(60_000);
    const [sandbox] = await app.runtime.list();
    execFileSync("docker", ["kill", sandbox!.id]);
    const closed = await t.waitForClose(15_000);
    expect(closed.code).toBe(4011);
    expect(closed.reason).toMatch(/stopped/);
  });
});
