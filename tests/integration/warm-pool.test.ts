import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";

const sandboxCount = (namespace: string) =>
  execFileSync("docker", ["ps", "-q", "--filter", `label=org.shipshape.namespace=${namespace}`, "--filter", "label=org.shipshape.role=sandbox"], {
    encoding: "utf8",
  })
    .split("\n")
    .filter(Boolean).length;

async function until(test: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("warm pool", () => {
  let app: App;
  let namespace: string;

  beforeAll(async () => {
    const env = testEnv({ SHIPSHAPE_WARM_POOL: "2" });
    namespace = env.SHIPSHAPE_NAMESPACE!;
    app = await startTestApp(env);
    await until(() => app.sessions.counts.warm === 2, 60_000, "two warm sandboxes");
  });

  afterAll(async () => {
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("hands out ready sandboxes at once, never one sandbox to two learners, and refills", async () => {
    const sessions = await Promise.all(Array.from({ length: 4 }, () => openSession(app.url)));
    const terms = sessions.map((s) => new TestTerminal(s));
    await Promise.all(terms.map((t) => t.ready(60_000)));
    const hosts = await Promise.all(terms.map(async (t) => (await t.run("cat /etc/hostname && cat /proc/1/cpuset && hostname -I")).split("\r\n").slice(1, 4).join(" ")));
    expect(new Set(hosts).size).toBe(4);
    const owners = (await app.runtime.list()).filter((s) => s.ownerId !== "").map((s) => s.id);
    const claimedIds = new Set((await app.store.sessions.live()).map((s) => s.sandboxId));
    expect(claimedIds.size).toBe(4);
    expect(owners.length).toBe(2); // the other two came from the pool, labelled with no owner
    await until(() => app.sessions.counts.warm === 2, 60_000, "the pool to refill");
    expect(sandboxCount(namespace)).toBe(6);
    for (const t of terms) t.close();
  });

  it("drains unclaimed sandboxes on shutdown", async () => {
    const live = (await app.store.sessions.live()).length;
    await app.sessions.stop();
    expect(sandboxCount(namespace)).toBe(live);
  });
});
