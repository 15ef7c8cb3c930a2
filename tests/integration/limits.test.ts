import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";
import type { App } from "../../sandbox-server/src/app.ts";

/** Small limits so each one is reached quickly; checks every second. */
describe("sandbox limits", () => {
  let app: App;
  let bystander: TestTerminal;

  beforeAll(async () => {
    app = await startTestApp(
      testEnv({
        SHIPSHAPE_SANDBOX_MEMORY: "256m",
        SHIPSHAPE_SANDBOX_PIDS: "200",
        SHIPSHAPE_SANDBOX_DISK: "200m",
        SHIPSHAPE_LIMIT_CHECK_INTERVAL: "1s",
      }),
    );
    bystander = new TestTerminal(await openSession(app.url));
    await bystander.ready(60_000);
  });

  afterAll(async () => {
    bystander?.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  /** The other learner's shell still answers promptly. */
  async function bystanderAnswers(): Promise<void> {
    const started = Date.now();
    expect(await bystander.run("echo alive", 10_000)).toContain("alive");
    expect(Date.now() - started).toBeLessThan(10_000);
  }

  it("contains a fork bomb and says which limit was hit", async () => {
    const t = new TestTerminal(await openSession(app.url));
    await t.ready(60_000);
    // After the engine answered, as a learner's first docker command would have it. (A fork bomb in
    // the seconds while the engine still starts behind the prompt can stop the whole sandbox, whose
    // first process is the engine: the learner is then told the sandbox stopped. docs/security.md)
    expect(await t.run("docker version --format 'engine {{.Server.Version}}'")).toMatch(/engine \d/);
    t.type("bomb() { bomb | bomb & }; bomb\r");
    const notice = await t.until(() => t.messages.some((m) => m.code === "pids_limit"), 20_000, "pids notice").then(
      () => t.messages.find((m) => m.code === "pids_limit")!,
    );
    expect(notice.message).toMatch(/limit of 200 processes/);
    await bystanderAnswers();
    t.close();
  });

  it("stops a memory hog and tells the learner about the memory limit", async () => {
    const t = new TestTerminal(await openSession(app.url));
    await t.ready(60_000);
    t.type("head -c 600m /dev/zero | tail > /dev/null\r");
    await t.until(() => t.messages.some((m) => m.code === "oom"), 30_000, "oom notice");
    expect(t.messages.find((m) => m.code === "oom")!.message).toMatch(/memory limit of 256 MiB/);
    // The sandbox itself survives: only the greedy program was stopped.
    expect(await t.run("echo survived")).toContain("survived");
    await bystanderAnswers();
    t.close();
  });

  it("ends a sandbox that fills far more than its disk limit, saying so", async () => {
    const t = new TestTerminal(await openSession(app.url));
    await t.ready(60_000);
    t.type("dd if=/dev/zero of=/var/lib/docker/filler bs=1M count=300 status=none; echo filled\r");
    const closed = await t.waitForClose(40_000);
    expect(closed.code).toBe(4011);
    expect(closed.reason).toMatch(/disk/);
    await bystanderAnswers();
  });
});
