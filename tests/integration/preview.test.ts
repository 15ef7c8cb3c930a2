import { readFileSync } from "node:fs";
import http, { type IncomingHttpHeaders } from "node:http";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startApp, type App } from "../../sandbox-server/src/app.ts";
import { loadConfig } from "../../sandbox-server/src/config.ts";
import { createLogger } from "../../sandbox-server/src/log.ts";
import { repoRoot, testEnv } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

const APP_SCRIPT = readFileSync(path.join(repoRoot, "tests/support/preview-app.py"), "utf8");

const NOT_OWNER = "This preview belongs to another learner's sandbox.\n";
const PRIVATE = "This preview is private. Open it from the port list on your lesson page, or ask its owner for a share link.\n";
const BAD_ADDRESS = "This is not a preview address. Open previews from the port list on your lesson page.\n";
const BAD_PORT = "That is not a port number: ports go from 1 to 65535.\n";
const BAD_TOKEN = "This preview link is not valid or has expired. Open the preview again from the port list on your lesson page.\n";
const nothingListening = (port: number) => `Nothing is listening on port ${port} in your sandbox yet. Start your app, then reload.\n`;

type LogLine = Record<string, unknown>;

interface Learner {
  session: Session;
  term: TestTerminal;
  sandboxId: string;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** A request exactly as written: the path is sent raw (no normalising of `..` or escapes). */
function request(
  base: string,
  target: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {},
): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: target, method: options.method ?? "GET", headers: options.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString("utf8") }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

async function newLearner(app: App): Promise<Learner> {
  const session = await openSession(app.url);
  const term = new TestTerminal(session);
  await term.ready(90_000);
  const sandbox = (await app.runtime.list()).find((s) => s.sessionId === session.sessionId);
  if (!sandbox) throw new Error("no sandbox for the session");
  return { session, term, sandboxId: sandbox.id };
}

/** Runs a command in the sandbox as the learner would, failing the test when it fails. */
async function sh(app: App, l: Learner, command: string, timeoutMs = 180_000): Promise<string> {
  const r = await app.runtime.exec(l.sandboxId, ["sh", "-c", command], { timeoutMs });
  if (r.exitCode !== 0) throw new Error(`${command} exited ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}

async function startApps(app: App, l: Learner, which: { nginx?: boolean; python?: boolean }): Promise<void> {
  if (which.python) {
    const res = await fetch(`${app.url}/api/sessions/current/files`, {
      method: "POST",
      headers: { origin: app.url, cookie: l.session.cookie, "content-type": "application/json" },
      body: JSON.stringify({ path: "/root/app/app.py", content: APP_SCRIPT }),
    });
    expect(res.status).toBe(200);
    await sh(app, l, "docker run -d --name app -p 8000:8000 -v /root/app:/app python:3.11-slim python3 /app/app.py");
  }
  if (which.nginx) await sh(app, l, "docker run -d --name web -p 8080:80 nginx");
  const urls = [...(which.nginx ? ["http://localhost:8080/"] : []), ...(which.python ? ["http://localhost:8000/headers"] : [])];
  for (const url of urls) {
    await until(`${url} in the sandbox`, async () => {
      const r = await app.runtime.exec(l.sandboxId, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url]);
      return r.stdout === "200" ? true : undefined;
    });
  }
}

function openSocket(url: string, headers: Record<string, string>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body: Buffer.concat(chunks).toString() })));
    });
    ws.once("error", reject);
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once("message", (data: Buffer, binary: boolean) => resolve({ data, binary }));
    ws.once("close", (code) => reject(new Error(`closed ${code}`)));
  });
}

function refusals(logs: LogLine[]): LogLine[] {
  return logs.filter((l) => l.msg === "preview refused");
}

async function cleanup(app: App | undefined, learners: Learner[]): Promise<void> {
  for (const l of learners) l.term.close();
  for (const s of (await app?.runtime.list()) ?? []) await app!.runtime.destroy(s.id);
  await app?.close();
}

describe("port preview on the site's origin (/preview/<session>/<port>/)", () => {
  let app: App;
  let a: Learner;
  let b: Learner;
  const logs: LogLine[] = [];
  const learners: Learner[] = [];

  beforeAll(async () => {
    // The path form on purpose (the warned fallback): preview-origin.test.ts covers the default.
    app = await startApp(loadConfig(testEnv({ SHIPSHAPE_PREVIEW_DOMAIN: "off" })), createLogger("debug", {}, (line) => logs.push(JSON.parse(line) as LogLine)));
    [a, b] = await Promise.all([newLearner(app), newLearner(app)]);
    learners.push(a, b);
    await startApps(app, a, { nginx: true, python: true });
  }, 300_000);

  afterAll(() => cleanup(app, learners));

  const get = (l: Learner, target: string, headers: Record<string, string> = {}) =>
    request(app.url, target, { headers: { cookie: l.session.cookie, ...headers } });

  it("lists the published ports with container, image and preview link", async () => {
    const res = await get(a, "/api/sessions/current/ports");
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({
      sessionId: a.session.sessionId,
      state: "ready",
      ports: [
        { port: 8000, containerPort: 8000, container: "app", image: "python:3.11-slim", reachable: true, url: `/preview/${a.session.sessionId}/8000/`, previewUrl: `/preview/${a.session.sessionId}/8000/` },
        { port: 8080, containerPort: 80, container: "web", image: "nginx", reachable: true, url: `/preview/${a.session.sessionId}/8080/`, previewUrl: `/preview/${a.session.sessionId}/8080/` },
      ],
    });
    const none = await request(app.url, "/api/sessions/current/ports");
    expect(none.status).toBe(404);
  });

  it("shows nginx's welcome page through the preview link, byte for byte", async () => {
    const inside = await sh(app, a, "curl -s http://localhost:8080/");
    expect(inside).toContain("<title>Welcome to nginx!</title>");
    const res = await get(a, `/preview/${a.session.sessionId}/8080/`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html");
    expect(res.body).toBe(inside);
  });

  it("adds the slash after the port, and passes the app's redirects back without following them", async () => {
    const sid = a.session.sessionId;
    const bare = await get(a, `/preview/${sid}/8080?x=1`);
    expect(bare.status).toBe(308);
    expect(bare.headers.location).toBe(`/preview/${sid}/8080/?x=1`);

    const absolute = await get(a, `/preview/${sid}/8000/redirect?to=${encodeURIComponent("http://localhost:8000/headers?a=1")}`);
    expect(absolute.status).toBe(302);
    expect(absolute.headers.location).toBe(`/preview/${sid}/8000/headers?a=1`);
    const rooted = await get(a, `/preview/${sid}/8000/redirect?to=/login`);
    expect(rooted.headers.location).toBe(`/preview/${sid}/8000/login`);
    const external = await get(a, `/preview/${sid}/8000/redirect?to=${encodeURIComponent("https://example.org/x")}`);
    expect(external.headers.location).toBe("https://example.org/x");

    // nginx redirects a directory to its own port 80 (it was published as 8080:80): still this preview.
    await sh(app, a, "docker exec web mkdir -p /usr/share/nginx/html/docs");
    const dir = await get(a, `/preview/${sid}/8080/docs`);
    expect(dir.status).toBe(301);
    expect(dir.headers.location).toBe(`/preview/${sid}/8080/docs/`);
  });

  it("strips the platform's cookies and Authorization, and sets its own forwarding headers", async () => {
    const res = await get(a, `/preview/${a.session.sessionId}/8000/headers?q=1`, {
      cookie: `${a.session.cookie}; app=1; shipshape_preview=x; shipshape_instructor=y`,
      authorization: "Bearer platform-secret",
      "x-forwarded-host": "127.0.0.1:22",
      "x-forwarded-for": "10.0.0.1",
      forwarded: "for=10.0.0.1;host=evil",
    });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body) as { path: string; headers: Record<string, string[]> };
    expect(seen.path).toBe("/headers?q=1");
    expect(seen.headers.cookie).toEqual(["app=1"]);
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers.host).toEqual(["localhost:8000"]);
    expect(seen.headers["x-forwarded-host"]).toEqual([new URL(app.url).host]);
    expect(seen.headers["x-forwarded-prefix"]).toEqual([`/preview/${a.session.sessionId}/8000`]);
    expect(seen.headers["x-forwarded-for"]).toBeUndefined();
    expect(seen.headers.forwarded).toBeUndefined();
  });

  it("confines the app's cookies to its preview and drops origin-wide headers", async () => {
    const res = await get(a, `/preview/${a.session.sessionId}/8000/cookies`);
    expect(res.status).toBe(200);
    expect(res.headers["set-cookie"]).toEqual([`app=1; Path=/preview/${a.session.sessionId}/8000/; HttpOnly`]);
    expect(res.headers["service-worker-allowed"]).toBeUndefined();
    expect(res.headers["clear-site-data"]).toBeUndefined();
  });

  it("streams large requests and responses", async () => {
    const size = 24 * 1024 * 1024;
    const down = await get(a, `/preview/${a.session.sessionId}/8000/big?n=${size}`);
    expect(down.status).toBe(200);
    expect(down.body.length).toBe(size);
    const up = await request(app.url, `/preview/${a.session.sessionId}/8000/count`, {
      method: "POST",
      headers: { cookie: a.session.cookie, "content-type": "application/octet-stream" },
      body: Buffer.alloc(8 * 1024 * 1024, 7),
    });
    expect(up.status).toBe(200);
    expect(JSON.parse(up.body)).toEqual({ received: 8 * 1024 * 1024 });
  });

  it("carries a WebSocket app both ways", async () => {
    const url = `${app.url.replace(/^http/, "ws")}/preview/${a.session.sessionId}/8000/ws`;
    const ws = await openSocket(url, { cookie: a.session.cookie, origin: app.url });
    ws.send("hello");
    const text = await nextMessage(ws);
    expect(text.data.toString()).toBe("echo: hello");
    expect(text.binary).toBe(false);
    const blob = Buffer.alloc(300_000, 0x5a);
    ws.send(blob);
    const back = await nextMessage(ws);
    expect(back.binary).toBe(true);
    expect(Buffer.compare(back.data, blob)).toBe(0);
    ws.close();
  });

  it("says clearly when nothing is listening on the port", async () => {
    const res = await get(a, `/preview/${a.session.sessionId}/3000/`);
    expect(res.status).toBe(502);
    expect(res.body).toBe(nothingListening(3000));
    const page = await get(a, `/preview/${a.session.sessionId}/3000/`, { accept: "text/html" });
    expect(page.status).toBe(502);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.body).toContain("<p>Nothing is listening on port 3000 in your sandbox yet. Start your app, then reload.</p>");
    // The host owner sees them on /metrics.
    const metrics = await fetch(`${app.url}/metrics`, { headers: { authorization: `Bearer ${app.instructorSignIn.secret}` } }).then((r) => r.text());
    expect(metrics).toMatch(/^shipshape_preview_errors_total\{reason="nothing_listening"\} 2$/m);
  });

  it("refuses another learner's preview (403), over HTTP and WebSocket, and logs it", async () => {
    const sid = a.session.sessionId;
    const res = await get(b, `/preview/${sid}/8080/`);
    expect(res.status).toBe(403);
    expect(res.body).toBe(NOT_OWNER);
    const anonymous = await request(app.url, `/preview/${sid}/8080/`);
    expect(anonymous.status).toBe(403);
    expect(anonymous.body).toBe(PRIVATE);
    const ws = openSocket(`${app.url.replace(/^http/, "ws")}/preview/${sid}/8000/ws`, { cookie: b.session.cookie, origin: app.url });
    await expect(ws).rejects.toMatchObject({ status: 403, body: NOT_OWNER });
    expect(refusals(logs)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ sessionId: sid, reason: "not the sandbox's owner", status: 403, url: `/preview/${sid}/8080/` }),
        expect.objectContaining({ sessionId: sid, reason: "no owner cookie", status: 403 }),
        expect.objectContaining({ sessionId: sid, reason: "not the sandbox's owner", status: 403, url: `/preview/${sid}/8000/ws` }),
      ]),
    );
  });

  it("reaches only the learner's own sandbox, whatever the request names", async () => {
    // A service on the host's loopback, and a server in the other learner's sandbox on the same port.
    let hostConnections = 0;
    const hostService = net.createServer((s) => {
      hostConnections++;
      s.end("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET");
    });
    await new Promise<void>((r) => hostService.listen(0, "127.0.0.1", () => r()));
    const hostPort = (hostService.address() as net.AddressInfo).port;
    await sh(app, b, `docker run -d --name other -p ${hostPort}:80 nginx`);
    try {
      const sid = a.session.sessionId;
      // The host's port, named through the preview: it goes to A's sandbox, where nothing listens.
      const direct = await get(a, `/preview/${sid}/${hostPort}/`);
      expect(direct.status).toBe(502);
      expect(direct.body).toBe(nothingListening(hostPort));
      // Host and forwarding headers naming the host service change nothing.
      const tricks: Array<Record<string, string>> = [
        { host: `127.0.0.1:${hostPort}` },
        { "x-forwarded-host": `127.0.0.1:${hostPort}`, "x-forwarded-port": String(hostPort) },
        { forwarded: `host=127.0.0.1:${hostPort}` },
        { host: `p${hostPort}-${b.session.sessionId}.preview.example` },
      ];
      for (const headers of tricks) {
        const res = await get(a, `/preview/${sid}/8080/`, headers);
        // A Host that is not the server's is refused before the proxy (DNS rebinding, docs/security.md).
        if (headers.host) {
          expect(res.status).toBe(421);
          continue;
        }
        expect(res.status).toBe(200);
        expect(res.body).toContain("<title>Welcome to nginx!</title>");
      }
      // An absolute request target naming the host service is not a preview address.
      const absolute = await get(a, `http://127.0.0.1:${hostPort}/preview/${sid}/8080/`);
      expect(absolute.status).toBe(400);
      expect(absolute.body).toBe(BAD_ADDRESS);
      // The other sandbox's port: refused for A, and A's own preview of that port is A's.
      const theirs = await get(a, `/preview/${b.session.sessionId}/${hostPort}/`);
      expect(theirs.status).toBe(403);
      expect(theirs.body).toBe(NOT_OWNER);
      expect(hostConnections).toBe(0);
    } finally {
      hostService.close();
    }
  });

  it("refuses ports outside 1-65535 and session segments that are not session ids, and logs them", async () => {
    const sid = a.session.sessionId;
    const before = refusals(logs).length;
    for (const port of ["0", "65536", "99999", "-1", "08080", "8080.0", "0x1f90", "%38080", "8080%00"]) {
      const res = await get(a, `/preview/${sid}/${port}/`);
      expect({ port, status: res.status, body: res.body }).toEqual({ port, status: 400, body: BAD_PORT });
    }
    const other = b.session.sessionId;
    for (const [target, body] of [
      [`/preview/../api/sessions/current`, BAD_ADDRESS],
      [`/preview/%2e%2e/8080/`, BAD_ADDRESS],
      [`/preview/..%2f..%2fapi/8080/`, BAD_ADDRESS],
      [`/preview/${sid}%2f..%2f${other}/8080/`, BAD_ADDRESS],
      [`/preview/${sid}/../${other}/8080/`, BAD_PORT],
      [`/preview/${sid.toUpperCase()}/8080/`, BAD_ADDRESS],
      [`/preview//${sid}/8080/`, BAD_ADDRESS],
      [`/preview/${sid}%00/8080/`, BAD_ADDRESS],
      [`/api/../preview/${sid}/8080/`, BAD_ADDRESS],
      [`/preview`, BAD_ADDRESS],
    ] as const) {
      const res = await get(a, target);
      expect({ target, status: res.status, body: res.body }).toEqual({ target, status: 400, body });
    }
    const ws = openSocket(`${app.url.replace(/^http/, "ws")}/preview/${sid}/70000/ws`, { cookie: a.session.cookie, origin: app.url });
    await expect(ws).rejects.toMatchObject({ status: 400, body: BAD_PORT });
    const logged = refusals(logs).slice(before);
    expect(logged).toHaveLength(9 + 10 + 1);
    expect(logged[0]).toMatchObject({ sessionId: sid, reason: "port is not a number from 1 to 65535", status: 400 });
    expect(logged[9]).toMatchObject({ sessionId: "..", reason: "session segment is not a session id", status: 400 });
  });

  it("pushes the port list when the learner runs and stops containers", async () => {
    const ws = new WebSocket(`${app.url.replace(/^http/, "ws")}/ws/ports`, { headers: { cookie: a.session.cookie, origin: app.url } });
    const messages: Array<{ state: string; ports: Array<{ port: number; container: string }> }> = [];
    ws.on("message", (d: Buffer) => messages.push(JSON.parse(d.toString())));
    const ports = () => messages.at(-1)?.ports.map((p) => `${p.port}:${p.container}`);
    await until("the first list", async () => (messages.length > 0 ? true : undefined), 10_000);
    expect(ports()).toEqual(["8000:app", "8080:web"]);

    a.term.type("docker run -d --name extra -p 7070:80 nginx\r");
    const shown = Date.now();
    await until("7070 in the pushed list", async () => (ports()?.includes("7070:extra") ? true : undefined), 20_000);
    a.term.type("docker rm -f extra\r");
    await until("7070 gone from the pushed list", async () => (ports()?.includes("7070:extra") ? undefined : true), 20_000);
    expect(ports()).toEqual(["8000:app", "8080:web"]);
    expect(Date.now() - shown).toBeLessThan(20_000);
    ws.close();

    const foreign = openSocket(`${app.url.replace(/^http/, "ws")}/ws/ports`, { cookie: a.session.cookie, origin: "http://evil.example" });
    await expect(foreign).rejects.toMatchObject({ status: 403 });

    // A page without a sandbox yet hears "none" and a close it can retry after.
    const fresh = new WebSocket(`${app.url.replace(/^http/, "ws")}/ws/ports`, { headers: { origin: app.url } });
    const [said, closed] = await Promise.all([nextMessage(fresh), new Promise<number>((r) => fresh.once("close", (code) => r(code)))]);
    expect(JSON.parse(said.data.toString())).toEqual({ type: "ports", state: "none", ports: [], message: "You have no sandbox yet." });
    expect(closed).toBe(4004);
  });

  it("does not share previews on the site's own origin", async () => {
    const res = await fetch(`${app.url}/api/sessions/current/ports/8080/share`, {
      method: "POST",
      headers: { origin: app.url, cookie: a.session.cookie, "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { message: string }).message).toMatch(/^Sharing a preview needs previews on their own domain/);
  });

  it("tells a listening page when the sandbox is gone, and the preview says so too", async () => {
    const ws = new WebSocket(`${app.url.replace(/^http/, "ws")}/ws/ports`, { headers: { cookie: b.session.cookie, origin: app.url } });
    const messages: Array<Record<string, unknown>> = [];
    ws.on("message", (d: Buffer) => messages.push(JSON.parse(d.toString()) as Record<string, unknown>));
    const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
    await until("B's first list", async () => (messages.length > 0 ? true : undefined), 10_000);
    const ended = await fetch(`${app.url}/api/sessions/current`, { method: "DELETE", headers: { origin: app.url, cookie: b.session.cookie } });
    expect(ended.status).toBe(204);
    expect(await closed).toBe(4004);
    expect(messages.at(-1)).toMatchObject({ type: "ports", state: "none", ports: [] });
    const res = await get(b, `/preview/${b.session.sessionId}/80/`);
    expect(res.status).toBe(404);
    expect(res.body).toBe("This sandbox no longer exists. Start a new one from the lesson page.\n");
  });
});

describe("port preview on its own domain (p<port>-<session>.<domain>)", () => {
  const DOMAIN = "preview.test";
  let app: App;
  let a: Learner;
  let b: Learner;
  const logs: LogLine[] = [];
  const learners: Learner[] = [];

  beforeAll(async () => {
    app = await startApp(
      loadConfig(testEnv({ SHIPSHAPE_PREVIEW_DOMAIN: DOMAIN, SHIPSHAPE_PREVIEW_SCHEME: "http" })),
      createLogger("debug", {}, (line) => logs.push(JSON.parse(line) as LogLine)),
    );
    [a, b] = await Promise.all([newLearner(app), newLearner(app)]);
    learners.push(a, b);
    await startApps(app, a, { python: true });
  }, 300_000);

  afterAll(() => cleanup(app, learners));

  const host = (sessionId: string, port: number) => `p${port}-${sessionId}.${DOMAIN}`;

  /** Follows the site's link to the preview host: the open token, exchanged for that host's cookie. */
  async function open(l: Learner, port: number, rest = ""): Promise<string> {
    const link = await request(app.url, `/preview/${l.session.sessionId}/${port}/${rest}`, { headers: { cookie: l.session.cookie } });
    expect(link.status).toBe(303);
    const to = new URL(link.headers.location!);
    expect(to.host).toBe(host(l.session.sessionId, port));
    expect(to.pathname).toBe("/__shipshape/auth");
    const exchanged = await request(app.url, to.pathname + to.search, { headers: { host: to.host } });
    expect(exchanged.status).toBe(303);
    expect(exchanged.headers.location).toBe(rest ? `/${rest}` : "/");
    const cookie = exchanged.headers["set-cookie"]?.[0] ?? "";
    expect(cookie).toMatch(/^shipshape_preview=[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
    return cookie.split(";")[0]!;
  }

  it("opens the owner's app on its own host through a one-time token", async () => {
    const cookie = await open(a, 8000, "headers?x=1");
    const res = await request(app.url, "/headers?x=1", { headers: { host: host(a.session.sessionId, 8000), cookie: `${cookie}; app=2` } });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body) as { headers: Record<string, string[]> };
    expect(seen.headers.cookie).toEqual(["app=2"]);
    expect(seen.headers["x-forwarded-host"]).toEqual([host(a.session.sessionId, 8000)]);

    const list = await request(app.url, "/api/sessions/current/ports", { headers: { cookie: a.session.cookie } });
    expect(JSON.parse(list.body).ports).toEqual([
      { port: 8000, containerPort: 8000, container: "app", image: "python:3.11-slim", reachable: true, url: `/preview/${a.session.sessionId}/8000/`, previewUrl: `http://${host(a.session.sessionId, 8000)}/` },
    ]);
  });

  it("refuses an open token twice, on another host, or tampered", async () => {
    const link = await request(app.url, `/preview/${a.session.sessionId}/8000/`, { headers: { cookie: a.session.cookie } });
    const to = new URL(link.headers.location!);
    const first = await request(app.url, to.pathname + to.search, { headers: { host: to.host } });
    expect(first.status).toBe(303);
    const again = await request(app.url, to.pathname + to.search, { headers: { host: to.host } });
    expect(again.status).toBe(403);
    expect(again.body).toBe(BAD_TOKEN);

    const fresh = new URL((await request(app.url, `/preview/${a.session.sessionId}/8000/`, { headers: { cookie: a.session.cookie } })).headers.location!);
    for (const otherHost of [host(a.session.sessionId, 9000), host(b.session.sessionId, 8000)]) {
      const res = await request(app.url, fresh.pathname + fresh.search, { headers: { host: otherHost } });
      expect(res.status).toBe(403);
      expect(res.body).toBe(BAD_TOKEN);
    }
    const tampered = fresh.search.replace(/token=([^&]+)/, (_m, t: string) => `token=${t.replace("8000", "9000")}`);
    const forged = await request(app.url, fresh.pathname + tampered, { headers: { host: host(a.session.sessionId, 9000) } });
    expect(forged.status).toBe(403);
    expect(forged.body).toBe(BAD_TOKEN);
  });

  it("is private: no cookie, another learner's cookie, or another port's cookie gets 403", async () => {
    const target = host(a.session.sessionId, 8000);
    const none = await request(app.url, "/headers", { headers: { host: target } });
    expect(none.status).toBe(403);
    expect(none.body).toBe(PRIVATE);
    const withPlatformCookie = await request(app.url, "/headers", { headers: { host: target, cookie: a.session.cookie } });
    expect(withPlatformCookie.status).toBe(403);
    const bCookie = await open(b, 8000);
    const crossed = await request(app.url, "/headers", { headers: { host: target, cookie: bCookie } });
    expect(crossed.status).toBe(403);
    expect(crossed.body).toBe(PRIVATE);
    const otherPort = await open(a, 9000);
    const wrongPort = await request(app.url, "/headers", { headers: { host: target, cookie: otherPort } });
    expect(wrongPort.status).toBe(403);
    // B cannot even get a link to A's preview.
    const link = await request(app.url, `/preview/${a.session.sessionId}/8000/`, { headers: { cookie: b.session.cookie } });
    expect(link.status).toBe(403);
    expect(link.body).toBe(NOT_OWNER);
    expect(refusals(logs)).toEqual(
      expect.arrayContaining([expect.objectContaining({ sessionId: a.session.sessionId, reason: "no valid preview cookie for this host", status: 403 })]),
    );
  });

  it("refuses malformed preview hosts and never lets them reach the site", async () => {
    const sid = a.session.sessionId;
    for (const [hostHeader, status, body] of [
      [`p0-${sid}.${DOMAIN}`, 400, BAD_PORT],
      [`p70000-${sid}.${DOMAIN}`, 400, BAD_PORT],
      [`p08000-${sid}.${DOMAIN}`, 400, BAD_PORT],
      [`x.p8000-${sid}.${DOMAIN}`, 400, BAD_ADDRESS],
      [`p8000-${sid.slice(0, 5)}.${DOMAIN}`, 400, BAD_ADDRESS],
      [`p8000-${sid}.${DOMAIN}:99999`, 400, BAD_ADDRESS],
      [DOMAIN, 404, BAD_ADDRESS],
    ] as const) {
      const res = await request(app.url, "/api/sessions/current", { headers: { host: hostHeader, cookie: a.session.cookie } });
      expect({ hostHeader, status: res.status, body: res.body }).toEqual({ hostHeader, status, body });
    }
  });

  it("carries a WebSocket on the preview host", async () => {
    const cookie = await open(a, 8000);
    const ws = await openSocket(`${app.url.replace(/^http/, "ws")}/ws`, { host: host(a.session.sessionId, 8000), cookie });
    ws.send("over the preview host");
    expect((await nextMessage(ws)).data.toString()).toBe("echo: over the preview host");
    ws.close();
    const refused = openSocket(`${app.url.replace(/^http/, "ws")}/ws`, { host: host(a.session.sessionId, 8000) });
    await expect(refused).rejects.toMatchObject({ status: 403, body: PRIVATE });
  });

  it("lets the owner share a link that anyone can open until it expires", async () => {
    const res = await fetch(`${app.url}/api/sessions/current/ports/8000/share`, {
      method: "POST",
      headers: { origin: app.url, cookie: a.session.cookie, "content-type": "application/json" },
      body: JSON.stringify({ minutes: 5 }),
    });
    expect(res.status).toBe(200);
    const { url, expiresAt } = (await res.json()) as { url: string; expiresAt: string };
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(4 * 60_000);
    expect(Date.parse(expiresAt) - Date.now()).toBeLessThanOrEqual(5 * 60_000);
    const link = new URL(url);
    expect(link.host).toBe(host(a.session.sessionId, 8000));
    // Used by two people: a share link is not single-use.
    for (let i = 0; i < 2; i++) {
      const exchanged = await request(app.url, link.pathname + link.search, { headers: { host: link.host } });
      expect(exchanged.status).toBe(303);
      const cookie = exchanged.headers["set-cookie"]![0]!.split(";")[0]!;
      const page = await request(app.url, "/headers", { headers: { host: link.host, cookie } });
      expect(page.status).toBe(200);
    }
    // Not for another port of the same sandbox.
    const elsewhere = await request(app.url, link.pathname + link.search, { headers: { host: host(a.session.sessionId, 8080) } });
    expect(elsewhere.status).toBe(403);
    // Only from the site's own pages.
    const foreign = await fetch(`${app.url}/api/sessions/current/ports/8000/share`, {
      method: "POST",
      headers: { origin: "http://evil.example", cookie: a.session.cookie },
    });
    expect(foreign.status).toBe(403);
  });
});
