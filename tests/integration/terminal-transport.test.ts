import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";
import type { App } from "../../sandbox-server/src/app.ts";

describe("terminal transport", () => {
  let app: App;
  let session: Session;

  beforeAll(async () => {
    app = await startTestApp();
    session = await openSession(app.url);
    const t = new TestTerminal(session);
    await t.ready(60_000);
    t.close();
  });

  afterAll(async () => {
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("brings back the same shell with its screen after a reload", async () => {
    const first = new TestTerminal(session);
    await first.ready();
    await first.run("export SHIPSHAPE_MARK=kept-$((20+3)); echo before-reload");
    first.close();
    await first.waitForClose();

    const second = new TestTerminal(session);
    const ready = await second.ready();
    expect(ready.replayed).toBe(true);
    // The replayed screen shows what happened before the reload...
    await second.waitFor("before-reload", 2_000);
    // ...and the shell is the same one: its variables are still set.
    expect(await second.run("echo value=$SHIPSHAPE_MARK")).toContain("value=kept-23");
    second.close();
  });

  it("lets two terminals with different names share one sandbox", async () => {
    const one = new TestTerminal(session, { terminal: "main" });
    const two = new TestTerminal(session, { terminal: "second" });
    await Promise.all([one.ready(), two.ready()]);
    await one.run("echo shared-$((2*21)) > /tmp/shared");
    expect(await two.run("cat /tmp/shared")).toContain("shared-42");
    expect(await two.run("echo $$")).not.toEqual(await one.run("echo $$"));
    one.close();
    two.close();
  });

  it("answers malformed JSON and unknown types with an error and keeps the connection", async () => {
    const t = new TestTerminal(session);
    await t.ready();
    t.send("{not json");
    t.send({ type: "teleport" });
    t.send({ type: "resize", cols: "wide" });
    await t.until(() => t.messages.filter((m) => m.type === "error").length >= 3, 5_000, "three errors");
    const codes = t.messages.filter((m) => m.type === "error").map((m) => m.code);
    expect(codes).toEqual(["malformed_json", "unknown_type", "invalid_message"]);
    expect(await t.run("echo still-here")).toContain("still-here");
    t.send({ type: "ping", t: 7 });
    expect(await t.waitForMessage("pong")).toEqual({ type: "pong", t: 7 });
    t.close();
  });

  it("clamps an absurd resize", async () => {
    const t = new TestTerminal(session);
    await t.ready();
    t.send({ type: "resize", cols: 100000, rows: -5 });
    await new Promise((r) => setTimeout(r, 300));
    expect(await t.run("stty size")).toMatch(/\r1 500\r\n/);
    t.send({ type: "resize", cols: 120, rows: 30 });
    t.close();
  });

  it("closes a socket that sends an oversized frame with 1009", async () => {
    const t = new TestTerminal(session);
    await t.ready();
    t.ws.send(Buffer.alloc(70 * 1024, 0x61));
    expect((await t.waitForClose()).code).toBe(1009);
  });

  it("refuses a token that belongs to another browser with 4001", async () => {
    const other = await openSession(app.url);
    const stolen = new TestTerminal({ ...other, token: session.token });
    const closed = await stolen.waitForClose();
    expect(closed.code).toBe(4001);
    expect(closed.reason).toMatch(/another browser/);
  });

  it("refuses an unknown session with 4004", async () => {
    const owner = session.cookie.split("=")[1]!.split(".")[0]!;
    // A well-signed token for a session that does not exist needs the secret: forge via the server's own signer.
    const { Signer } = await import("../../sandbox-server/src/common/signing.ts");
    const { readFileSync } = await import("node:fs");
    const secret = readFileSync(`${(app as App & { env: Record<string, string> }).env.SHIPSHAPE_DATA_DIR}/secret`, "utf8").trim();
    const token = new Signer(secret).sessionToken("nosuchsession", decodeURIComponent(owner));
    const t = new TestTerminal({ ...session, token });
    const closed = await t.waitForClose();
    expect(closed.code).toBe(4004);
    expect(closed.reason).toMatch(/no longer exists/);
  });

  it("refuses a WebSocket from a foreign origin before it opens", async () => {
    const ws = new WebSocket(app.url.replace("http", "ws") + "/ws/terminal", {
      headers: { origin: "https://evil.example", cookie: session.cookie },
    });
    const status = await new Promise<number>((resolve) => ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).toBe(403);
  });

  it("refuses API calls from a foreign origin", async () => {
    const res = await fetch(`${app.url}/api/sessions`, { method: "POST", headers: { origin: "https://evil.example" } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { message: string }).message).toMatch(/another site/);
  });

  it("writes a file into the sandbox for a file block", async () => {
    const res = await fetch(`${app.url}/api/sessions/current/files`, {
      method: "POST",
      headers: { origin: app.url, cookie: session.cookie, "content-type": "application/json" },
      body: JSON.stringify({ path: "/root/app/Dockerfile", content: "FROM busybox\nCMD [\"echo\", \"it's here\"]\n" }),
    });
    expect(res.status).toBe(200);
    const t = new TestTerminal(session);
    await t.ready();
    expect(await t.run("cat /root/app/Dockerfile")).toContain(`CMD ["echo", "it's here"]`);
    t.close();
    const bad = await fetch(`${app.url}/api/sessions/current/files`, {
      method: "POST",
      headers: { origin: app.url, cookie: session.cookie, "content-type": "application/json" },
      body: JSON.stringify({ path: "relative.txt", content: "x" }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/absolute path/);
  });
});
