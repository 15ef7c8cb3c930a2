import type { SqliteStore } from "../../sandbox-server/src/store/store.ts";
import { execFileSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

/**
 * Issue 13, critical: a learner who took a warm (pooled) sandbox keeps its "pool" labels for
 * life, and a restarted server that decided pool membership by labels adopted that sandbox again
 * and handed it to the next new learner, whose terminal then stayed blank.
 */

async function until(test: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const sandboxIdOf = async (app: App, session: Session) => (await app.store.sessions.get(session.sessionId))?.sandboxId ?? null;

/** Sandbox ids bound to more than one session, live or ended: must always be none. */
const sharedSandboxes = (app: App) =>
  (app.store as SqliteStore).db
    .prepare("SELECT sandbox_id FROM sessions WHERE sandbox_id IS NOT NULL GROUP BY sandbox_id HAVING COUNT(*) > 1")
    .all()
    .map((r) => String(r.sandbox_id));

const containersIn = (namespace: string) =>
  execFileSync("docker", ["ps", "-aq", "--no-trunc", "--filter", `label=org.shipshape.namespace=${namespace}`, "--filter", "label=org.shipshape.role=sandbox"], {
    encoding: "utf8",
  })
    .split("\n")
    .filter(Boolean);

const plain = (t: TestTerminal) => t.output.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
const prompt = (t: TestTerminal, timeoutMs: number) => t.until(() => /sandbox:[^\n]*[#$] $/.test(plain(t)), timeoutMs, "a prompt");

/** A learner who took the pool's only warm sandbox and left a file in it. */
async function learnerOnPooledSandbox(app: App): Promise<{ session: Session; sandboxId: string }> {
  await until(() => app.sessions.counts.warm === 1, 90_000, "a warm sandbox");
  const session = await openSession(app.url);
  const sandboxId = (await sandboxIdOf(app, session))!;
  expect(sandboxId).toBeTruthy();
  expect((await app.runtime.inspect(sandboxId))?.sessionId).toMatch(/^pool-/); // it came from the pool: its labels say so
  const t = new TestTerminal(session);
  await t.ready(60_000);
  await t.run("echo owner-is-a > /owner-marker");
  t.close();
  // The pool refills; wait for it, so the restart finds no warm sandbox still starting: then the
  // only sandbox labelled "pool" that outlives the stop (which removes unclaimed ones) is A's.
  await until(() => app.sessions.counts.warm === 1, 90_000, "the pool to refill");
  return { session, sandboxId };
}

describe("restart hand-over of a claimed pool sandbox", () => {
  const apps: App[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) {
      for (const s of await app.runtime.list().catch(() => [])) await app.runtime.destroy(s.id).catch(() => {});
      await app.close().catch(() => {});
    }
  });

  it("keeps a claimed pool sandbox its learner's after a restart, and gives the next learner a fresh one with a prompt", async () => {
    const env = testEnv({ SHIPSHAPE_WARM_POOL: "1" });
    const first = await startTestApp(env);
    const a = await learnerOnPooledSandbox(first);
    await first.close(); // what SIGTERM does

    const second = await startTestApp({ ...env, PORT: String(first.port) });
    apps.push(second);
    const b = await openSession(second.url);
    const bTerminal = new TestTerminal(b);
    await bTerminal.ready(90_000);
    const bSandbox = await sandboxIdOf(second, b); // bound once the terminal is ready
    expect(bSandbox).toBeTruthy();
    expect(bSandbox, "the new learner was handed the first learner's sandbox").not.toBe(a.sandboxId);
    await prompt(bTerminal, 30_000);
    expect(await bTerminal.run("cat /owner-marker 2>&1")).toMatch(/No such file/);
    bTerminal.close();

    // A comes back to their own sandbox and shell, file and all, with a prompt.
    expect(await sandboxIdOf(second, a.session)).toBe(a.sandboxId);
    const aTerminal = new TestTerminal(a.session);
    await aTerminal.ready(30_000);
    await prompt(aTerminal, 15_000);
    expect(await aTerminal.run("cat /owner-marker")).toContain("owner-is-a");
    aTerminal.close();
    expect(sharedSandboxes(second)).toEqual([]);
  }, 240_000); // four sandbox starts: 20 to 30 s each on a saturated machine

  it("never adopts a claimed pool sandbox into the pool of a server with a fresh data directory", async () => {
    const env = testEnv({ SHIPSHAPE_WARM_POOL: "1" });
    const first = await startTestApp(env);
    const a = await learnerOnPooledSandbox(first);
    await first.close();

    // A new database in the same namespace: A's sandbox belongs to no record here, so it is an
    // orphan (removed), never a warm sandbox for a stranger.
    const second = await startTestApp(testEnv({ SHIPSHAPE_WARM_POOL: "1", SHIPSHAPE_NAMESPACE: env.SHIPSHAPE_NAMESPACE! }));
    apps.push(second);
    expect(containersIn(env.SHIPSHAPE_NAMESPACE!)).not.toContain(a.sandboxId);
    const b = await openSession(second.url);
    const bTerminal = new TestTerminal(b);
    await bTerminal.ready(90_000);
    await prompt(bTerminal, 30_000);
    expect(await sandboxIdOf(second, b)).not.toBe(a.sandboxId);
    expect(await bTerminal.run("cat /owner-marker 2>&1")).toMatch(/No such file/);
    bTerminal.close();
  }, 240_000);
});
