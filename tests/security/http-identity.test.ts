/**
 * HTTP and identity (docs/security.md, "HTTP and identity"): request-level probes against a real
 * server on the real engine. Each probe is an attack or a leak that worked before issue 13:
 * DNS rebinding (any Host, Origin compared with that Host), free identities, limiters keyed on
 * the proxy's address, secrets on stdout, in logs and on /metrics, cookies flagged by a client's
 * header, sign-out that only cleared the browser's copy, and unlimited quiz guessing.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startApp, type App } from "../../sandbox-server/src/app.ts";
import { loadConfig } from "../../sandbox-server/src/config.ts";
import { createLogger } from "../../sandbox-server/src/log.ts";
import { QUIZ_ATTEMPTS_PER_QUIZ } from "../../sandbox-server/src/grading/grading-service.ts";
import { repoRoot } from "../support/server.ts";
import { leftovers, pollUntil, securityEnv } from "./support.ts";

const ADMIN_SECRET = "probe-admin-secret-7c1d2e";
const METRICS_TOKEN = "probe-metrics-token-91b3f0";

interface Running {
  app: App;
  env: Record<string, string>;
  /** Every structured log line the server wrote. */
  logs: string[];
}

const running: Running[] = [];

afterEach(async () => {
  for (const { app, env } of running.splice(0)) {
    for (const s of await app.runtime.list().catch(() => [])) await app.runtime.destroy(s.id).catch(() => {});
    await app.close();
    // Sandboxes still starting when the server stopped remove themselves when they are up.
    await pollUntil(() => leftovers(env.SHIPSHAPE_NAMESPACE!).containers, (n) => n === 0, 30_000);
  }
});

async function server(overrides: Record<string, string> = {}): Promise<Running> {
  const env = securityEnv({ SHIPSHAPE_ADMIN_SECRET: ADMIN_SECRET, ...overrides });
  const logs: string[] = [];
  const app = await startApp(loadConfig(env), createLogger("debug", {}, (line) => logs.push(line)));
  const r = { app, env, logs };
  running.push(r);
  return r;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Record<string, unknown>;
}

/** One request to the server, with any Host header (fetch cannot set one). */
function call(
  app: App,
  method: string,
  pathname: string,
  options: { host?: string; origin?: string; cookie?: string; forwardedFor?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<Answer> {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = {
    host: options.host ?? `127.0.0.1:${app.port}`,
    ...(options.origin ? { origin: options.origin } : {}),
    ...(options.cookie ? { cookie: options.cookie } : {}),
    ...(options.forwardedFor ? { "x-forwarded-for": options.forwardedFor } : {}),
    ...(body ? { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) } : {}),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: app.port, method, path: pathname, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not JSON: the text is the answer
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${pathname} timed out`)));
    req.end(body);
  });
}

/** The `name=value` part of the Set-Cookie header, and the whole header. */
function setCookie(answer: Answer): { pair: string; header: string } | undefined {
  const raw = answer.headers["set-cookie"];
  const header = Array.isArray(raw) ? raw[0] : raw;
  return header ? { pair: header.split(";")[0]!, header } : undefined;
}

/** Lessons and a quiz of our own, so an author editing content/ cannot break these probes. */
function fixtureContent(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "shipshape-identity-content-"));
  for (const sub of ["exercises", "lessons", "quizzes"]) mkdirSync(path.join(dir, sub));
  writeFileSync(path.join(dir, "lessons", "probe.mdx"), "---\ntitle: Probe lesson\norder: 1\n---\n\nText.\n");
  writeFileSync(
    path.join(dir, "quizzes", "probe-quiz.yaml"),
    'id: probe-quiz\nlesson: probe\nquestion: "Which one?"\noptions:\n  - "a"\n  - "b"\n  - "c"\ncorrect: 2\nexplanation: "Because c."\n',
  );
  return dir;
}

describe("DNS rebinding: the public URL is the only host, and Origin is compared with it", () => {
  it("refuses a request for another Host (421, in words), over HTTP and WebSocket, and serves the public one", async () => {
    const { app } = await server();
    const rebound = `rebind.attacker.example:${app.port}`;
    const page = await call(app, "GET", "/", { host: rebound });
    expect(page.status).toBe(421);
    expect(page.text).toContain(`does not answer for the host "${rebound}"`);
    expect(page.text).toContain(`Open http://localhost:${app.port}/ instead`);
    // A rebound page's request carries its own origin, which equals its Host: that used to pass.
    const api = await call(app, "POST", "/api/sessions", { host: rebound, origin: `http://${rebound}`, body: {} });
    expect(api.status).toBe(421);
    expect(api.json).toMatchObject({ error: "wrong_host" });
    const ws = await call(app, "GET", "/ws/terminal", {
      host: rebound,
      origin: `http://${rebound}`,
      headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" },
    });
    expect(ws.status).toBe(421);
    expect(app.sessions.counts.live).toBe(0);
    // The real names of the embedded default still work: localhost and the loopback addresses.
    for (const host of [`localhost:${app.port}`, `127.0.0.1:${app.port}`]) expect((await call(app, "GET", "/", { host })).status).not.toBe(421);
  });

  it("compares Origin with the public URL, scheme included", async () => {
    const { app } = await server({ SHIPSHAPE_PUBLIC_URL: "https://course.test" });
    const host = "course.test";
    // DELETE with no sandbox: 404 once past the Origin check, 403 when refused by it.
    const sameHostOtherScheme = await call(app, "DELETE", "/api/sessions/current", { host, origin: "http://course.test" });
    expect(sameHostOtherScheme.status).toBe(403);
    expect(sameHostOtherScheme.json.message).toBe(
      "This request came from another site (Origin http://course.test) and was refused: only pages of https://course.test may do this.",
    );
    expect((await call(app, "DELETE", "/api/sessions/current", { host, origin: "https://course.test:8443" })).status).toBe(403);
    expect((await call(app, "DELETE", "/api/sessions/current", { host, origin: "https://course.test" })).status).toBe(404);
    // With a public URL on a real name, loopback is not an alias (no rebinding through 127.0.0.1 either).
    expect((await call(app, "GET", "/", { host: `127.0.0.1:${app.port}` })).status).toBe(421);
  });

  it("passes the preview domain's hosts on to the preview proxy", async () => {
    const { app } = await server({ SHIPSHAPE_PREVIEW_DOMAIN: "preview.localhost", SHIPSHAPE_PREVIEW_SCHEME: "http" });
    const answer = await call(app, "GET", "/", { host: "p8080-abcdefgh.preview.localhost" });
    expect(answer.status).not.toBe(421);
    expect(answer.headers["x-shipshape-preview"]).toBeDefined();
  });
});

describe("identities are not free", () => {
  it("lets one address hold at most N sandboxes at once (IPv6: one /64), says so in words, and gives the refused client no cookie", async () => {
    const { app } = await server({ SHIPSHAPE_SANDBOXES_PER_ADDRESS: "2" });
    const open = (forwardedFor: string, cookie?: string) =>
      call(app, "POST", "/api/sessions", { origin: app.url, forwardedFor, cookie, body: {} });
    const first = await open("198.51.100.30");
    const second = await open("198.51.100.30");
    expect([first.status, second.status]).toEqual([200, 200]);
    const refused = await open("198.51.100.30");
    expect(refused.status).toBe(429);
    expect(refused.json).toMatchObject({ error: "rate_limited", rule: "sandboxes_per_address" });
    expect(refused.json.message).toMatch(
      /^Your network address already has 2 sandboxes running, the most one address may hold at once\. Close the pages of sandboxes you no longer use: each is removed after 30 minutes without use\. .* SHIPSHAPE_SANDBOXES_PER_ADDRESS\.$/,
    );
    expect(setCookie(refused)).toBeUndefined();
    // The browser that holds one may still replace it ("start a new sandbox").
    expect((await open("198.51.100.30", setCookie(first)!.pair)).status).toBe(200);
    // One IPv6 subscriber's /64 is one address; the next /64 is another.
    expect((await open("2001:db8:5:6::1")).status).toBe(200);
    expect((await open("2001:db8:5:6:ffff::2")).status).toBe(200);
    expect((await open("2001:db8:5:6::3")).json).toMatchObject({ rule: "sandboxes_per_address" });
    // Ending one frees its place.
    const ended = await call(app, "DELETE", "/api/sessions/current", { origin: app.url, cookie: setCookie(second)!.pair });
    expect(ended.status).toBe(204);
    expect((await open("198.51.100.30")).status).toBe(200);
  });

  it("mints the owner cookie only after the limits let the client through", async () => {
    const { app } = await server({ SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: "1" });
    expect((await call(app, "POST", "/api/sessions", { origin: app.url, forwardedFor: "198.51.100.60", body: {} })).status).toBe(200);
    const refused = await call(app, "POST", "/api/sessions", { origin: app.url, forwardedFor: "198.51.100.60", body: {} });
    expect(refused.json).toMatchObject({ rule: "sessions_per_address" });
    expect(setCookie(refused)).toBeUndefined();
  });
});

describe("every limiter keys on the address the trusted proxy reports", () => {
  const wrongSignIn = (app: App, forwardedFor: string) =>
    call(app, "POST", "/api/instructor/session", { origin: app.url, forwardedFor, body: { secret: "not the secret at all" } });

  it("behind a trusted proxy: one guesser is limited, the next client is not", async () => {
    const { app } = await server();
    for (let i = 0; i < 10; i++) expect((await wrongSignIn(app, "198.51.100.40")).status).toBe(401);
    expect((await wrongSignIn(app, "198.51.100.40")).status).toBe(429);
    // Before, every client behind the proxy was one address: this learner would be locked out too.
    expect((await wrongSignIn(app, "198.51.100.41")).status).toBe(401);
    // Wrong join codes: the same.
    const wrongCode = (forwardedFor: string) =>
      call(app, "POST", "/api/workshops/join", { origin: app.url, forwardedFor, body: { code: "ZZZZZZ", name: "Guesser" } });
    for (let i = 0; i < 30; i++) expect((await wrongCode("198.51.100.42")).status).toBe(404);
    expect((await wrongCode("198.51.100.42")).status).toBe(429);
    expect((await wrongCode("198.51.100.43")).status).toBe(404);
  });

  it("from a peer that is not a trusted proxy: a forged X-Forwarded-For does not make a new client", async () => {
    const { app } = await server({ SHIPSHAPE_TRUSTED_PROXIES: "192.0.2.1" });
    for (let i = 0; i < 10; i++) expect((await wrongSignIn(app, `203.0.113.${i}`)).status).toBe(401);
    expect((await wrongSignIn(app, "203.0.113.99")).status).toBe(429);
  });
});

describe("secrets stay out of stdout, logs and public endpoints", () => {
  it("prints where the generated admin secret is kept, never the secret", async () => {
    const env = securityEnv();
    const child = spawn(process.execPath, [path.join(repoRoot, "sandbox-server/src/main.ts")], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    try {
      await pollUntil(() => output, (o) => /Instructors sign in at .*\n.*\n/.test(o) || child.exitCode !== null, 60_000);
      const file = path.join(env.SHIPSHAPE_DATA_DIR!, "admin-secret");
      const secret = readFileSync(file, "utf8").trim();
      expect(secret.length).toBeGreaterThanOrEqual(16);
      expect(output).not.toContain(secret);
      expect(output).not.toContain(encodeURIComponent(secret));
      expect(output).toContain(`with the secret just generated into ${file}`);
      expect(output).toContain(`cat ${file}`);
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });

  it("keeps a share token out of the request log", async () => {
    const { app, logs } = await server({ SHIPSHAPE_PREVIEW_DOMAIN: "preview.localhost", SHIPSHAPE_PREVIEW_SCHEME: "http" });
    const opened = await call(app, "POST", "/api/sessions", { origin: app.url, body: {} });
    const cookie = setCookie(opened)!.pair;
    const sessionId = String(opened.json.sessionId);
    const shared = await call(app, "POST", "/api/sessions/current/ports/8080/share", { origin: app.url, cookie, body: {} });
    expect(shared.status).toBe(200);
    const link = new URL(String(shared.json.url));
    const token = link.searchParams.get("token")!;
    expect(token.length).toBeGreaterThan(20);
    // Presented on another port's host: refused, and the refusal is logged with the request URL.
    const wrongHost = await call(app, "GET", `${link.pathname}${link.search}`, { host: `p8081-${sessionId}.preview.localhost` });
    expect(wrongHost.status).toBe(403);
    // On its own host it opens the preview (the Host check lets preview hosts through).
    const right = await call(app, "GET", `${link.pathname}${link.search}`, { host: link.host });
    expect(right.status).toBe(303);
    const refusal = logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "preview refused");
    expect(refusal?.url).toBe(`${link.pathname}?token=[redacted]`);
    expect(logs.join("\n")).not.toContain(token);
  });

  it("answers /metrics only to the metrics token or the admin secret", async () => {
    const { app } = await server({ SHIPSHAPE_METRICS_TOKEN: METRICS_TOKEN });
    const open = await call(app, "GET", "/metrics");
    expect(open.status).toBe(401);
    expect(open.text).toContain("Authorization: Bearer <SHIPSHAPE_METRICS_TOKEN>");
    expect(open.text).not.toContain("shipshape_");
    expect((await call(app, "GET", "/metrics", { headers: { authorization: "Bearer wrong-token-wrong-token" } })).status).toBe(401);
    for (const token of [METRICS_TOKEN, ADMIN_SECRET]) {
      const ok = await call(app, "GET", "/metrics", { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(ok.text).toMatch(/^shipshape_engine_up [01]$/m);
    }
  });
});

describe("cookies are named and flagged by the configured public URL", () => {
  const signIn = (app: App, host: string, origin: string, forwardedProto: string) =>
    call(app, "POST", "/api/instructor/session", { host, origin, headers: { "x-forwarded-proto": forwardedProto }, body: { secret: ADMIN_SECRET } });

  it("__Host- and Secure on the localhost default and on https, whatever X-Forwarded-Proto says", async () => {
    const local = (await server()).app;
    const answer = await signIn(local, `127.0.0.1:${local.port}`, local.url, "http");
    expect(answer.status).toBe(200);
    expect(setCookie(answer)!.header).toMatch(/^__Host-shipshape_instructor=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
    const opened = await call(local, "POST", "/api/sessions", { origin: local.url, body: {} });
    expect(setCookie(opened)!.header).toMatch(/^__Host-shipshape_owner=[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=31536000; Secure$/);
    // The old name is not read any more: a cookie planted under it by a sibling host is ignored.
    const planted = await call(local, "GET", "/api/instructor/session", { cookie: setCookie(answer)!.pair.replace("__Host-", "") });
    expect(planted.json).toEqual({ signedIn: false });

    const https = (await server({ SHIPSHAPE_PUBLIC_URL: "https://course.test" })).app;
    const secure = await signIn(https, "course.test", "https://course.test", "http");
    expect(setCookie(secure)!.header).toMatch(/^__Host-shipshape_instructor=.*; Secure$/);
  });

  it("plain names without Secure on http under another name, even when a client claims https", async () => {
    const { app } = await server({ SHIPSHAPE_PUBLIC_URL: "http://192.168.1.20:4321" });
    const answer = await signIn(app, "192.168.1.20:4321", "http://192.168.1.20:4321", "https");
    expect(answer.status).toBe(200);
    expect(setCookie(answer)!.header).toMatch(/^shipshape_instructor=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
  });
});

describe("instructor sign-out and quizzes", () => {
  it("sign-out revokes the sign-in on the server and ends its open dashboard stream", async () => {
    const { app } = await server({ SHIPSHAPE_CONTENT_DIR: fixtureContent() });
    const signedIn = await call(app, "POST", "/api/instructor/session", { origin: app.url, body: { secret: ADMIN_SECRET } });
    const cookie = setCookie(signedIn)!.pair;
    const created = await call(app, "POST", "/api/workshops", {
      origin: app.url,
      cookie,
      body: { title: "Probe", lessons: ["probe"], capacity: 1, durationMinutes: 30 },
    });
    expect(created.status).toBe(201);
    // The live dashboard stream, open on this cookie.
    let streamed = "";
    const streamEnded = new Promise<void>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: app.port, path: `/api/workshops/${String(created.json.id)}/events`, headers: { host: `127.0.0.1:${app.port}`, cookie } },
        (res) => {
          res.setEncoding("utf8");
          res.on("data", (d: string) => (streamed += d));
          res.on("end", () => resolve());
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
    await pollUntil(() => streamed, (s) => s.includes("event: dashboard"), 10_000);
    const signedOut = await call(app, "DELETE", "/api/instructor/session", { origin: app.url, cookie });
    expect(signedOut.status).toBe(204);
    expect(setCookie(signedOut)!.header).toMatch(/Max-Age=0/);
    await Promise.race([streamEnded, new Promise((_, reject) => setTimeout(() => reject(new Error("the stream stayed open after sign-out")), 5_000))]);
    expect(streamed).toContain("event: signed-out");
    // A copy of the cookie (another tab, a stolen copy) no longer works.
    expect((await call(app, "GET", "/api/workshops", { cookie })).status).toBe(401);
    expect((await call(app, "GET", "/api/instructor/session", { cookie })).json).toEqual({ signedIn: false });
  });

  it(`takes at most ${QUIZ_ATTEMPTS_PER_QUIZ} answers to one quiz from one learner, and says so`, async () => {
    const { app } = await server({ SHIPSHAPE_CONTENT_DIR: fixtureContent() });
    const answer = (cookie?: string) => call(app, "POST", "/api/quizzes/probe-quiz/answer", { origin: app.url, cookie, body: { choice: 0 } });
    const first = await answer();
    expect(first.status).toBe(200);
    const cookie = setCookie(first)!.pair;
    for (let i = 1; i < QUIZ_ATTEMPTS_PER_QUIZ; i++) expect((await answer(cookie)).status).toBe(200);
    const refused = await answer(cookie);
    expect(refused.status).toBe(429);
    expect(refused.json).toMatchObject({ error: "limit_reached", rule: "quiz_attempts" });
    expect(refused.json.message).toMatch(new RegExp(`^You have answered this question ${QUIZ_ATTEMPTS_PER_QUIZ} times, the most one learner may`));
  });
});
