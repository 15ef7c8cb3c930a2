/**
 * Previews on their own origin by default (issue 13): with nothing configured, a learner's app is
 * served on `http://p<port>-<session>.localhost:<server port>/`, never on the course's origin; the
 * owner gets there through the one-time token exchange; preview WebSockets are capped per owner and
 * closed when idle; and the path form (now only the warned fallback) refuses WebSockets opened from
 * another site.
 *
 * Node does not resolve `*.localhost` the way browsers do, so requests go to 127.0.0.1 with the
 * preview's Host header, which is exactly what a browser sends after resolving it to loopback.
 */
import { readFileSync } from "node:fs";
import http, { type IncomingHttpHeaders } from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startApp, type App } from "../../sandbox-server/src/app.ts";
import { loadConfig } from "../../sandbox-server/src/config.ts";
import { createLogger } from "../../sandbox-server/src/log.ts";
import { repoRoot, testEnv } from "../support/server.ts";
import { TestTerminal, type Session } from "../support/terminal.ts";

const APP_SCRIPT = readFileSync(path.join(repoRoot, "tests/support/preview-app.py"), "utf8");
const PRIVATE = "This preview is private. Open it from the port list on your lesson page, or ask its owner for a share link.\n";
const NOT_OWNER = "This preview belongs to another learner's sandbox.\n";
const FOREIGN_ORIGIN = "This preview's WebSocket was opened from another site and was refused.\n";
const SOCKETS_PER_OWNER = 3;
const IDLE_MS = 3_000;

type LogLine = Record<string, unknown>;

interface Learner {
  session: Session;
  /** The Set-Cookie the course answered with when this browser got its owner cookie. */
  ownerSetCookie: string;
  term: TestTerminal;
  sandboxId: string;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A request to the server at `base`, with the Host header the caller names (a preview host). */
function request(base: string, target: string, headers: Record<string, string> = {}): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
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
  const res = await fetch(`${app.url}/api/sessions`, { method: "POST", headers: { origin: app.url, "content-type": "application/json" }, body: "{}" });
  if (!res.ok) throw new Error(`POST /api/sessions: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { sessionId: string; token: string };
  const ownerSetCookie = res.headers.get("set-cookie") ?? "";
  const session: Session = { base: app.url, cookie: ownerSetCookie.split(";")[0]!, sessionId: body.sessionId, token: body.token };
  const term = new TestTerminal(session);
  await term.ready(90_000);
  const sandbox = (await app.runtime.list()).find((s) => s.sessionId === session.sessionId);
  if (!sandbox) throw new Error("no sandbox for the session");
  return { session, ownerSetCookie, term, sandboxId: sandbox.id };
}

/** The preview app of tests/support/preview-app.py on port 8000 of the learner's sandbox. */
async function startPythonApp(app: App, l: Learner): Promise<void> {
  const res = await fetch(`${app.url}/api/sessions/current/files`, {
    method: "POST",
    headers: { origin: app.url, cookie: l.session.cookie, "content-type": "application/json" },
    body: JSON.stringify({ path: "/root/app/app.py", content: APP_SCRIPT }),
  });
  expect(res.status).toBe(200);
  const run = await app.runtime.exec(l.sandboxId, ["sh", "-c", "docker run -d --name app -p 8000:8000 -v /root/app:/app python:3.11-slim python3 /app/app.py"], {
    timeoutMs: 180_000,
  });
  if (run.exitCode !== 0) throw new Error(`docker run exited ${run.exitCode}: ${run.stderr}`);
  await until("the app in the sandbox", async () => {
    const r = await app.runtime.exec(l.sandboxId, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://localhost:8000/headers"]);
    return r.stdout === "200" ? true : undefined;
  });
}

type SocketOutcome = { ws: WebSocket } | { status: number; body: string; code: string | undefined };

function openSocket(url: string, headers: Record<string, string>): Promise<SocketOutcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => resolve({ ws }));
    ws.once("unexpected-response", (_req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), code: res.headers["x-shipshape-preview"] as string | undefined }),
      );
    });
    ws.once("error", reject);
  });
}

async function mustOpen(url: string, headers: Record<string, string>): Promise<WebSocket> {
  const outcome = await openSocket(url, headers);
  if (!("ws" in outcome)) throw new Error(`WebSocket refused: ${outcome.status} ${outcome.body}`);
  return outcome.ws;
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = new Promise<string>((resolve, reject) => {
    ws.once("message", (data: Buffer) => resolve(data.toString()));
    ws.once("close", (code) => reject(new Error(`closed ${code}`)));
  });
  ws.send(text);
  return reply;
}

/** Closes sockets and waits until the server has seen them go (their slots are free again). */
async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map((ws) => new Promise<void>((r) => (ws.readyState === WebSocket.CLOSED ? r() : (ws.once("close", () => r()), ws.close())))),
  );
  await new Promise((r) => setTimeout(r, 100));
}

async function cleanup(app: App | undefined, learners: Learner[]): Promise<void> {
  for (const l of learners) l.term.close();
  for (const s of (await app?.runtime.list()) ?? []) await app!.runtime.destroy(s.id);
  await app?.close();
}

describe("previews on their own origin, with nothing configured", () => {
  let app: App;
  let a: Learner;
  let b: Learner;
  const logs: LogLine[] = [];
  const learners: Learner[] = [];
  /** The preview's Host, as a browser that resolved p<port>-<session>.localhost sends it. */
  const host = (l: Learner, port: number) => `p${port}-${l.session.sessionId}.localhost:${app.port}`;

  beforeAll(async () => {
    // Only the socket limits are set (small, to test them); the preview form is the default.
    const env = testEnv({ SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER: String(SOCKETS_PER_OWNER), SHIPSHAPE_PREVIEW_SOCKET_IDLE: `${IDLE_MS}ms` });
    app = await startApp(loadConfig(env), createLogger("debug", {}, (line) => logs.push(JSON.parse(line) as LogLine)));
    [a, b] = await Promise.all([newLearner(app), newLearner(app)]);
    learners.push(a, b);
    await startPythonApp(app, a);
  }, 300_000);

  afterAll(() => cleanup(app, learners));

  /** Follows the course's link as a browser does: the course checks the owner cookie, the preview host trades the token for its own cookie. */
  async function open(l: Learner, port: number, rest = ""): Promise<string> {
    const link = await request(app.url, `/preview/${l.session.sessionId}/${port}/${rest}`, { cookie: l.session.cookie });
    expect(link.status).toBe(303);
    const to = new URL(link.headers.location!);
    expect(to.origin).toBe(`http://${host(l, port)}`);
    expect(to.pathname).toBe("/__shipshape/auth");
    const exchanged = await request(app.url, to.pathname + to.search, { host: to.host });
    expect(exchanged.status).toBe(303);
    expect(exchanged.headers.location).toBe(`/${rest}`);
    const cookie = exchanged.headers["set-cookie"]?.[0] ?? "";
    // Host-only (no Domain): it stays on this one preview host.
    expect(cookie).toMatch(/^shipshape_preview=[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
    return cookie.split(";")[0]!;
  }

  it("says at start where previews run", () => {
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: "port previews on their own origins", previewForm: "host", domain: "localhost", example: `http://p8080-<session>.localhost:${app.port}/` }),
    );
    expect(logs.filter((l) => l.previewForm === "path")).toEqual([]);
  });

  it("links each port to p<port>-<session>.localhost, and the app works there at its own root", async () => {
    const list = await request(app.url, "/api/sessions/current/ports", { cookie: a.session.cookie });
    expect(JSON.parse(list.body).ports).toEqual([
      {
        port: 8000,
        containerPort: 8000,
        container: "app",
        image: "python:3.11-slim",
        reachable: true,
        url: `/preview/${a.session.sessionId}/8000/`,
        previewUrl: `http://${host(a, 8000)}/`,
      },
    ]);
    const cookie = await open(a, 8000, "headers?x=1");
    const page = await request(app.url, "/headers?x=1", { host: host(a, 8000), cookie: `${cookie}; app=2` });
    expect(page.status).toBe(200);
    const seen = JSON.parse(page.body) as { path: string; headers: Record<string, string[]> };
    // The app's own root, no prefix to be told about: apps that build absolute URLs (Jupyter) just work.
    expect(seen.path).toBe("/headers?x=1");
    expect(seen.headers["x-forwarded-prefix"]).toBeUndefined();
    expect(seen.headers["x-forwarded-host"]).toEqual([host(a, 8000)]);
    expect(seen.headers.cookie).toEqual(["app=2"]);
    // The app's own page is same-origin to the app (Origin as its Host), so apps that compare
    // the two (Jupyter's WebSockets, Django's CSRF check) accept it; another site stays foreign.
    const origins = await Promise.all(
      [`http://${host(a, 8000)}`, "http://evil.example"].map(async (origin) => {
        const r = await request(app.url, "/headers", { host: host(a, 8000), cookie, origin });
        return (JSON.parse(r.body) as { headers: Record<string, string[]> }).headers.origin;
      }),
    );
    expect(origins).toEqual([["http://localhost:8000"], ["http://evil.example"]]);
    // Nothing of the course is proxied on the course's own origin any more.
    const onCourse = await request(app.url, `/preview/${a.session.sessionId}/8000/headers`, { cookie: a.session.cookie });
    expect(onCourse.status).toBe(303);
  });

  it("is another origin than the course's, and the course's cookie opens nothing there", async () => {
    const course = new URL(app.url);
    expect(`p8000-${a.session.sessionId}.localhost`).not.toBe(course.hostname);
    // The owner cookie is host-only, so a browser never sends it to a p<port>-<session>.localhost host...
    expect(a.ownerSetCookie).toMatch(/^__Host-shipshape_owner=/); // __Host-: host-only by rule, no Domain allowed
    expect(a.ownerSetCookie).not.toMatch(/;\s*domain=/i);
    // ...and even when a client sends it there, it is no grant and never reaches the app.
    const withCourseCookie = await request(app.url, "/headers", { host: host(a, 8000), cookie: a.session.cookie });
    expect(withCourseCookie.status).toBe(403);
    expect(withCourseCookie.body).toBe(PRIVATE);
    const cookie = await open(a, 8000);
    const both = await request(app.url, "/headers", { host: host(a, 8000), cookie: `${cookie}; ${a.session.cookie}` });
    expect(both.status).toBe(200);
    expect((JSON.parse(both.body) as { headers: Record<string, string[]> }).headers.cookie).toBeUndefined();
    // The bare localhost is still the course.
    const site = await request(app.url, "/api/sessions/current/ports", { host: `localhost:${app.port}`, cookie: a.session.cookie });
    expect(site.status).toBe(200);
  });

  it("refuses a stranger: no token, another learner's, or another learner's link", async () => {
    const none = await request(app.url, "/headers", { host: host(a, 8000) });
    expect(none.status).toBe(403);
    expect(none.body).toBe(PRIVATE);
    const bLink = await request(app.url, `/preview/${a.session.sessionId}/8000/`, { cookie: b.session.cookie });
    expect(bLink.status).toBe(403);
    expect(bLink.body).toBe(NOT_OWNER);
    const bCookie = await open(b, 8000);
    const crossed = await request(app.url, "/headers", { host: host(a, 8000), cookie: bCookie });
    expect(crossed.status).toBe(403);
    expect(crossed.body).toBe(PRIVATE);
    const ws = await openSocket(`ws://127.0.0.1:${app.port}/ws`, { host: host(a, 8000), cookie: bCookie });
    expect(ws).toMatchObject({ status: 403, body: PRIVATE });
  });

  it("carries the app's WebSocket on its own host", async () => {
    const cookie = await open(a, 8000);
    const ws = await mustOpen(`ws://127.0.0.1:${app.port}/ws`, { host: host(a, 8000), cookie, origin: `http://${host(a, 8000)}` });
    expect(await echo(ws, "over its own origin")).toBe("echo: over its own origin");
    await closeAll([ws]);
  });

  it(`holds at most ${SOCKETS_PER_OWNER} WebSockets per owner, and frees a slot when one closes`, async () => {
    const cookie = await open(a, 8000);
    const url = `ws://127.0.0.1:${app.port}/ws`;
    const headers = { host: host(a, 8000), cookie };
    const held = await Promise.all(Array.from({ length: SOCKETS_PER_OWNER }, () => mustOpen(url, headers)));
    for (const ws of held) expect(await echo(ws, "up")).toBe("echo: up");
    const over = await openSocket(url, headers);
    expect(over).toEqual({
      status: 429,
      code: "too_many_sockets",
      body: `Your previews already have ${SOCKETS_PER_OWNER} WebSockets open, the most one learner may have. Close some tabs of your app, then reload.\n`,
    });
    expect(logs).toContainEqual(expect.objectContaining({ msg: "preview refused", reason: `owner has ${SOCKETS_PER_OWNER} preview WebSockets open`, status: 429 }));
    // Another port's grant is the same owner: the cap is per learner, not per preview.
    const other = await openSocket(url, { host: host(a, 8001), cookie: await open(a, 8001) });
    expect(other).toMatchObject({ status: 429 });
    // Closing one gives its slot back.
    const closed = new Promise<void>((r) => held[0]!.once("close", () => r()));
    held[0]!.close();
    await closed;
    const again = await until("a free slot", async () => {
      const o = await openSocket(url, headers);
      return "ws" in o ? o.ws : undefined;
    }, 10_000);
    expect(await echo(again, "back")).toBe("echo: back");
    await closeAll([...held.slice(1), again]);
  });

  it(`closes a WebSocket silent for ${IDLE_MS / 1000} s, and keeps one that talks`, async () => {
    const cookie = await open(a, 8000);
    const headers = { host: host(a, 8000), cookie };
    const url = `ws://127.0.0.1:${app.port}/ws`;
    const [silent, talking] = await Promise.all([mustOpen(url, headers), mustOpen(url, headers)]);
    const opened = Date.now();
    const silentClosed = new Promise<number>((r) => silent.once("close", () => r(Date.now() - opened)));
    let talkingClosed = false;
    talking.once("close", () => (talkingClosed = true));
    const chatter = setInterval(() => talking.readyState === WebSocket.OPEN && talking.send("still here"), 1_000);
    try {
      const after = await silentClosed;
      expect(after).toBeGreaterThanOrEqual(IDLE_MS - 200);
      expect(after).toBeLessThan(IDLE_MS + 5_000);
      await new Promise((r) => setTimeout(r, IDLE_MS));
      expect(talkingClosed).toBe(false);
      expect(await echo(talking, "after idle time")).toMatch(/^echo: (still here|after idle time)$/);
    } finally {
      clearInterval(chatter);
      await closeAll([talking]);
    }
    expect(logs).toContainEqual(expect.objectContaining({ msg: "preview websocket idle, closed", sessionId: a.session.sessionId, port: 8000 }));
  });
});

describe("the path form, the warned fallback", () => {
  let app: App;
  let c: Learner;
  const logs: LogLine[] = [];
  const learners: Learner[] = [];

  beforeAll(async () => {
    app = await startApp(loadConfig(testEnv({ SHIPSHAPE_PREVIEW_DOMAIN: "off" })), createLogger("debug", {}, (line) => logs.push(JSON.parse(line) as LogLine)));
    c = await newLearner(app);
    learners.push(c);
    await startPythonApp(app, c);
  }, 300_000);

  afterAll(() => cleanup(app, learners));

  it("warns at start that apps run on the course's origin", () => {
    const warning = logs.find((l) => l.previewForm === "path");
    expect(warning).toMatchObject({ level: "warn" });
    expect(String(warning?.msg)).toContain("its JavaScript can call the course's API as whoever opens the preview");
  });

  it("refuses a preview WebSocket opened from another site, and takes the course's own", async () => {
    const url = `${app.url.replace(/^http/, "ws")}/preview/${c.session.sessionId}/8000/ws`;
    for (const origin of ["http://evil.example", "null", `http://p8000-${c.session.sessionId}.localhost:${app.port}`]) {
      const refused = await openSocket(url, { cookie: c.session.cookie, origin });
      expect({ origin, refused }).toEqual({ origin, refused: { status: 403, code: "forbidden_origin", body: FOREIGN_ORIGIN } });
    }
    const noOrigin = await openSocket(url, { cookie: c.session.cookie });
    expect(noOrigin).toMatchObject({ status: 403, code: "forbidden_origin" });
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: "preview refused", sessionId: c.session.sessionId, reason: "preview WebSocket from a foreign origin (http://evil.example)", status: 403 }),
    );
    const own = await mustOpen(url, { cookie: c.session.cookie, origin: app.url });
    expect(await echo(own, "same origin")).toBe("echo: same origin");
    own.close();
  });
});
