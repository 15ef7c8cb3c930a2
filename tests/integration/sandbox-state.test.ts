/**
 * The sandbox panel's watcher against a real sandbox: the learner's commands reach the page as
 * snapshots through /ws/sandbox-state, driven by the inner engine's events; nothing runs in the
 * sandbox while nobody looks, and the watch (and its `docker events`) ends with the last page.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { App } from "../../sandbox-server/src/app.ts";
import type { SandboxStateMessage, SandboxState } from "../../contracts/sandbox-state.ts";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("sandbox state watcher (real sandbox)", () => {
  let app: App;
  let session: Session;
  let term: TestTerminal;
  let sandboxId: string;

  beforeAll(async () => {
    app = await startTestApp();
    session = await openSession(app.url);
    term = new TestTerminal(session);
    await term.ready(90_000);
    sandboxId = (await app.runtime.list()).find((s) => s.sessionId === session.sessionId)!.id;
  }, 120_000);

  afterAll(async () => {
    term?.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  const sh = async (command: string) => {
    const r = await app.runtime.exec(sandboxId, ["sh", "-c", command], { timeoutMs: 120_000 });
    if (r.exitCode !== 0) throw new Error(`${command}: ${r.exitCode} ${r.stderr}`);
    return r.stdout;
  };
  const eventWatchersInSandbox = async () => Number((await sh("ps -eo args | grep -c '^[^ ]*docker events' || true")).trim());

  function listen(cookie = session.cookie) {
    const ws = new WebSocket(`${app.url.replace(/^http/, "ws")}/ws/sandbox-state`, { headers: { cookie, origin: app.url } });
    const messages: SandboxStateMessage[] = [];
    ws.on("message", (d: Buffer) => messages.push(JSON.parse(d.toString()) as SandboxStateMessage));
    const states = () => messages.filter((m): m is Extract<SandboxStateMessage, { type: "state" }> => m.type === "state");
    const latest = (): SandboxState | undefined => states().at(-1)?.state;
    return { ws, messages, states, latest };
  }

  it("sends nothing and runs nothing in the sandbox while nobody looks", async () => {
    const readsBefore = app.sandboxState.counters.reads;
    await sh("docker volume create idle-vol >/dev/null && docker volume rm idle-vol >/dev/null");
    await new Promise((r) => setTimeout(r, 3_000));
    expect(app.sandboxState.counters).toEqual({ watches: 0, reads: readsBefore });
    expect(await eventWatchersInSandbox()).toBe(0);
  });

  it("pushes a snapshot when the learner's commands change the engine, with the change in words", async () => {
    const page = listen();
    await until("the first snapshot", () => page.latest());
    expect(app.sandboxState.counters.watches).toBe(1);
    expect(await eventWatchersInSandbox()).toBe(1);
    const readsAtRest = app.sandboxState.counters.reads;
    await new Promise((r) => setTimeout(r, 4_000));
    // A quiet engine costs nothing: no read without an event (one confirming read may trail the first).
    expect(app.sandboxState.counters.reads - readsAtRest).toBeLessThanOrEqual(1);

    term.type("docker run -d --name web -e SECRET_TOKEN=hunter2 -v site:/usr/share/nginx/html -p 8080:80 nginx\r");
    const web = await until("web running in a snapshot", () => page.latest()?.containers.find((c) => c.name === "web" && c.status === "running"), 60_000);
    expect(web.mounts).toEqual([{ type: "volume", source: "site", destination: "/usr/share/nginx/html", readOnly: false }]);
    expect(web.envNames).toContain("SECRET_TOKEN");
    const state = page.latest()!;
    expect(state.volumes).toContainEqual({ name: "site", driver: "local", usedBy: ["web"] });
    expect(state.ports).toEqual([{ port: 8080, containerPort: 80, container: "web", reachable: true, url: `/preview/${session.sessionId}/8080/` }]);
    expect(state.images.find((i) => i.tags.includes("nginx:latest"))?.usedBy).toEqual(["web"]);
    expect(state.images.find((i) => i.tags.includes("nginx:latest"))!.layers.length).toBeGreaterThan(2);
    expect(JSON.stringify(page.messages)).not.toContain("hunter2");
    expect(page.states().flatMap((m) => m.changes)).toContain("container web started, publishes 8080");

    // Log lines on demand, bounded: nginx logs the request just made.
    await until("nginx answering", async () => ((await sh("curl -s -o /dev/null -w %{http_code} http://localhost:8080/panel-probe || true")) === "404" ? true : undefined));
    page.ws.send(JSON.stringify({ type: "logs", container: web.id }));
    const logs = await until("log lines", () => page.messages.find((m) => m.type === "logs"));
    expect(logs).toMatchObject({ type: "logs", container: web.id });
    expect(logs).not.toHaveProperty("error");
    expect((logs as { lines: string[] }).lines.join("\n")).toContain("GET /panel-probe");
    expect((logs as { lines: string[] }).lines.length).toBeLessThanOrEqual(50);

    term.type("docker rm -f web && docker volume rm site\r");
    await until("web and its volume gone", () => {
      const s = page.latest();
      return s && !s.containers.some((c) => c.name === "web") && !s.volumes.some((v) => v.name === "site") ? true : undefined;
    });
    expect(page.latest()!.ports).toEqual([]);
    expect(page.states().flatMap((m) => m.changes)).toEqual(expect.arrayContaining(["container web removed", "volume site removed"]));

    // The last page leaves: the watch ends and its `docker events` with it.
    page.ws.close();
    await until("the watch to stop", () => (app.sandboxState.counters.watches === 0 ? true : undefined), 5_000);
    await until("docker events to end in the sandbox", async () => ((await eventWatchersInSandbox()) === 0 ? true : undefined), 10_000);
    const readsAfter = app.sandboxState.counters.reads;
    await sh("docker volume create after-vol >/dev/null");
    await new Promise((r) => setTimeout(r, 2_000));
    expect(app.sandboxState.counters.reads).toBe(readsAfter);
  }, 180_000);

  it("shares one watch between two pages of one learner", async () => {
    const a = listen();
    const b = listen();
    await until("both pages' first snapshot", () => (a.latest() && b.latest() ? true : undefined));
    expect(app.sandboxState.counters.watches).toBe(1);
    expect(await eventWatchersInSandbox()).toBe(1);
    a.ws.close();
    await new Promise((r) => setTimeout(r, 500));
    expect(app.sandboxState.counters.watches).toBe(1);
    b.ws.close();
    await until("the watch to stop", () => (app.sandboxState.counters.watches === 0 ? true : undefined), 5_000);
  });

  it("treats the sandbox's output as untrusted: a fake docker can neither inject markup, leak env values nor pick a link", async () => {
    const A = "a".repeat(64);
    const B = "b".repeat(64);
    const IMG = `sha256:${"c".repeat(64)}`;
    const records = [
      { id: A, name: "/<img src=x onerror=alert(1)>", image: "x", imageId: IMG, state: { status: "running" } },
      {
        id: B,
        name: "/evil",
        image: "nginx",
        imageId: IMG,
        state: { status: "running", exitCode: 0 },
        env: ["TOKEN=leaked-value"],
        ports: { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8080" }] },
        url: "http://evil.example/",
      },
    ];
    const fake = [
      "#!/bin/sh",
      'case "$1" in',
      "  events) exec sleep 1000 ;;",
      `  ps) echo ${A}; echo ${B} ;;`,
      `  inspect) cat <<'EOF'\n${records.map((r) => JSON.stringify(r)).join("\n")}\n@@end\nEOF\n ;;`,
      "  history) head -c 3000000 /dev/zero | tr '\\0' x ;;",
      "esac",
    ].join("\n");
    await sh(`mkdir -p /usr/local/sbin && cat > /usr/local/sbin/docker <<'SCRIPT'\n${fake}\nSCRIPT\nchmod +x /usr/local/sbin/docker && command -v docker`);
    try {
      const page = listen();
      const state = await until("a snapshot from the fake docker", () => page.latest());
      expect(state.containers.map((c) => c.name)).toEqual(["evil"]);
      expect(state.containers[0]!.envNames).toEqual(["TOKEN"]);
      // The link is the server's own preview path for that port, whatever the output said.
      expect(state.ports).toEqual([{ port: 8080, containerPort: 80, container: "evil", reachable: true, url: `/preview/${session.sessionId}/8080/` }]);
      const all = JSON.stringify(page.messages);
      expect(all).not.toContain("leaked-value");
      expect(all).not.toContain("<img");
      expect(all).not.toContain("evil.example");
      page.ws.close();
      await until("the watch to stop", () => (app.sandboxState.counters.watches === 0 ? true : undefined), 5_000);
    } finally {
      await sh("rm -f /usr/local/sbin/docker");
    }
  });

  it("refuses a foreign origin, and tells a page without a sandbox so", async () => {
    const foreign = new WebSocket(`${app.url.replace(/^http/, "ws")}/ws/sandbox-state`, { headers: { cookie: session.cookie, origin: "http://evil.example" } });
    const status = await new Promise<number>((r) => foreign.once("unexpected-response", (_q, res) => r(res.statusCode ?? 0)));
    expect(status).toBe(403);
    const fresh = new WebSocket(`${app.url.replace(/^http/, "ws")}/ws/sandbox-state`, { headers: { origin: app.url } });
    const said = await new Promise<string>((r) => fresh.once("message", (d: Buffer) => r(d.toString())));
    const code = await new Promise<number>((r) => fresh.once("close", (c) => r(c)));
    expect(JSON.parse(said)).toEqual({ type: "none", message: "You have no sandbox yet." });
    expect(code).toBe(4004);
  });
});
