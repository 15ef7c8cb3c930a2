import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";
import { HIGH_WATERMARK } from "../../sandbox-server/src/sessions/terminal-hub.ts";
import type { App } from "../../sandbox-server/src/app.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("flow control", () => {
  let app: App;
  let session: Session;

  beforeAll(async () => {
    app = await startTestApp();
    session = await openSession(app.url);
  });

  afterAll(async () => {
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("stops sending to a tab that stops acknowledging, and Ctrl-C still gets through", async () => {
    const t = new TestTerminal(session);
    await t.ready(60_000);
    await t.run("echo ready");
    t.autoAck = false;
    const before = t.received;
    t.type("yes shipshape\r");
    await sleep(2_000);
    const stalled = t.received - before;
    // Only the window the protocol allows (plus at most one batch in flight) arrives unacknowledged.
    expect(stalled).toBeGreaterThan(HIGH_WATERMARK / 2);
    expect(stalled).toBeLessThan(HIGH_WATERMARK + 128 * 1024);
    await sleep(1_000);
    expect(t.received - before).toBe(stalled); // nothing more while stalled

    // Acknowledging lets output flow again, fast.
    t.autoAck = true;
    t.ack(t.received);
    await t.until(() => t.received - before > 4 * 1024 * 1024, 15_000, "4 MiB more output");

    // Ctrl-C stops `yes` at once and the prompt comes back.
    t.type("\x03");
    const marker = `after-${Date.now()}`;
    await sleep(200);
    t.type(`echo ${marker}\r`);
    await t.waitFor(new RegExp(`\\r${marker}\\r\\n`), 5_000, Math.max(0, t.output.length - 100_000));
    t.close();
  });
});
