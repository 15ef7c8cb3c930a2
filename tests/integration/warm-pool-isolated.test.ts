/**
 * The warm pool on the isolated tier (LXD): a learner gets a sandbox that was started before they
 * came, the pool refills, and unclaimed sandboxes go at shutdown (warm-pool.test.ts proves the
 * same, and more, on the classroom tier).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { lxdSkipped, reportLxdSkip } from "../support/lxd.ts";
import { lxdImage, startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";

reportLxdSkip("warm-pool-isolated.test.ts");

async function until(test: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(lxdSkipped())("warm pool on the isolated tier", () => {
  let app: App;

  beforeAll(async () => {
    app = await startTestApp(testEnv({ SHIPSHAPE_TIER: "isolated", SHIPSHAPE_LXD_IMAGE: lxdImage(), SHIPSHAPE_WARM_POOL: "1" }));
    expect(app.runtime.name).toBe("lxd");
    await until(() => app.sessions.counts.warm === 1, 120_000, "a warm sandbox");
  }, 180_000);

  afterAll(async () => {
    for (const s of (await app?.runtime.list().catch(() => [])) ?? []) await app.runtime.destroy(s.id).catch(() => {});
    await app?.close();
  }, 120_000);

  it("hands the warm LXD sandbox to the next learner at once, refills, and drains unclaimed ones at shutdown", async () => {
    const [warm] = await app.runtime.list();
    expect(warm?.ownerId).toBe("");
    const started = performance.now();
    const session = await openSession(app.url);
    const term = new TestTerminal(session);
    await term.ready(60_000);
    const ms = Math.round(performance.now() - started);
    console.log(`isolated tier, warm pool: session to prompt ${ms} ms`);
    // The learner's sandbox is the one that was waiting, not a new one.
    expect((await app.store.sessions.live()).map((s) => s.sandboxId)).toEqual([warm!.id]);
    await until(() => app.sessions.counts.warm === 1, 120_000, "the pool to refill");
    expect((await app.runtime.list()).length).toBe(2);
    term.close();
    await app.sessions.stop();
    // Only the learner's sandbox is left; the unclaimed one went with the pool.
    expect((await app.runtime.list()).map((s) => s.id)).toEqual([warm!.id]);
  }, 240_000);
});
