import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";
import type { App } from "../../sandbox-server/src/app.ts";

describe("sandbox isolation", () => {
  let app: App;
  const terms: TestTerminal[] = [];
  const sessionIds: string[] = [];

  beforeAll(async () => {
    app = await startTestApp();
    for (let i = 0; i < 2; i++) {
      const session = await openSession(app.url);
      sessionIds.push(session.sessionId);
      terms.push(new TestTerminal(session));
    }
    await Promise.all(terms.map((t) => t.ready(60_000)));
  });

  afterAll(async () => {
    for (const t of terms) t.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("gives each browser its own sandbox", async () => {
    const sandboxes = await app.runtime.list();
    expect(sandboxes).toHaveLength(2);
    expect(new Set(sandboxes.map((s) => s.ownerId)).size).toBe(2);
  });

  it("does not let one sandbox reach another", async () => {
    const [a, b] = terms as [TestTerminal, TestTerminal];
    // B's address on the sandbox network, as the server knows it (not its inner docker0).
    const addrB = (await app.runtime.list()).find((s) => s.sessionId === sessionIds[1])?.address;
    expect(addrB).toBeTruthy();
    // Sandbox B publishes a web server on its own address; B can reach it, A must not.
    await b.run("docker run -d -p 7000:80 nginx", 120_000);
    const fromB = await b.run(`for i in $(seq 50); do curl -s -m 2 http://${addrB}:7000/ && break; sleep 0.2; done`);
    expect(fromB).toContain("Welcome to nginx!");
    const fromA = await a.run(`curl -s -m 3 http://${addrB}:7000/ >/dev/null && echo REACHED || echo BLOCKED`);
    expect(fromA).toMatch(/BLOCKED\r\n/);
    expect(fromA).not.toMatch(/REACHED\r\n/);
  });
});
