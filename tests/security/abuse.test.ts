/**
 * Abuse limits (docs/security.md, "Abuse limits"): a client that drops its cookie, a browser that
 * keeps starting sandboxes, too many terminals. Each rule answers with which rule was hit and what
 * to do: JSON with `rule` and Retry-After over HTTP, a close code and reason on the terminal socket.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { MAX_SHELLS_PER_SANDBOX } from "../../sandbox-server/src/sessions/session-manager.ts";
import { startTestApp } from "../support/server.ts";
import { TestTerminal, type Session } from "../support/terminal.ts";
import { leftovers, pollUntil, securityEnv } from "./support.ts";

const apps: Array<App & { env: Record<string, string> }> = [];

afterEach(async () => {
  for (const app of apps.splice(0)) {
    for (const s of await app.runtime.list().catch(() => [])) await app.runtime.destroy(s.id).catch(() => {});
    await app.close();
    // Sandboxes still starting when the server stopped remove themselves when they are up.
    await pollUntil(() => leftovers(app.env.SHIPSHAPE_NAMESPACE!).containers, (n) => n === 0, 30_000);
  }
});

async function server(env: Record<string, string> = {}) {
  const app = await startTestApp(securityEnv(env));
  apps.push(app);
  return app;
}

/** POST /api/sessions as a browser behind this machine's proxy would: the client address in X-Forwarded-For. */
async function post(app: App, options: { cookie?: string; forwardedFor?: string; body?: object } = {}) {
  const res = await fetch(`${app.url}/api/sessions`, {
    method: "POST",
    headers: {
      origin: app.url,
      "content-type": "application/json",
      ...(options.cookie ? { cookie: options.cookie } : {}),
      ...(options.forwardedFor ? { "x-forwarded-for": options.forwardedFor } : {}),
    },
    body: JSON.stringify(options.body ?? {}),
  });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, json, retryAfter: res.headers.get("retry-after"), cookie: res.headers.get("set-cookie")?.split(";")[0] };
}

describe("abuse limits", () => {
  it("limits new sandboxes per client address, so dropping the cookie does not help, and says which rule", async () => {
    const app = await server({ SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: "3" });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await post(app, { forwardedFor: "198.51.100.7" })); // no cookie each time
    expect(answers.slice(0, 3).map((a) => a.status)).toEqual([200, 200, 200]);
    const refused = answers[3]!;
    expect(refused.status).toBe(429);
    expect(refused.json).toMatchObject({ error: "rate_limited", rule: "sessions_per_address" });
    expect(refused.json.message).toMatch(/network address \(at most 3 a minute\).*Wait a minute.*SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE/);
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(refused.json.retryAfterSeconds).toBe(Number(refused.retryAfter));
    // Another learner behind the same proxy is another client.
    expect((await post(app, { forwardedFor: "198.51.100.8" })).status).toBe(200);
    // A forged X-Forwarded-For entry left of the proxy's own does not make a new client.
    const forged = await post(app, { forwardedFor: "203.0.113.99, 198.51.100.7" });
    expect(forged.status).toBe(429);
    // Only the sandboxes that were allowed exist.
    expect(app.sessions.counts.live).toBe(4);
  });

  it("limits new sandboxes per browser and keeps the refused browser's sandbox", async () => {
    const app = await server({ SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: "1000" });
    const first = await post(app, { forwardedFor: "198.51.100.20" });
    const cookie = first.cookie!;
    const statuses = [first.status];
    let last = first;
    // "Start a new sandbox" again and again, from ever new addresses: the browser's own limit holds.
    for (let i = 1; i <= 10; i++) {
      last = await post(app, { cookie, forwardedFor: `198.51.100.${20 + i}`, body: { fresh: true } });
      statuses.push(last.status);
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200));
    expect(last.status).toBe(429);
    expect(last.json).toMatchObject({ error: "rate_limited", rule: "sessions_per_browser" });
    expect(last.json.message).toMatch(/10 new sandboxes in a short time.*Wait a minute/);
    expect(Number(last.retryAfter)).toBeGreaterThanOrEqual(1);
    // Refused, not cut off: the browser's current sandbox is still there.
    const current = await fetch(`${app.url}/api/sessions/current`, { headers: { cookie } });
    expect(current.status).toBe(200);
    // Replaced sandboxes (most ended while starting) leave nothing behind.
    await pollUntil(() => leftovers(app.env.SHIPSHAPE_NAMESPACE!).containers, (n) => n <= 1, 90_000, 500);
    expect(leftovers(app.env.SHIPSHAPE_NAMESPACE!).containers).toBeLessThanOrEqual(1);
  });

  it("limits open terminal sockets per browser, closing the extra one with 4029 and the rule", async () => {
    const app = await server({ SHIPSHAPE_TERMINALS_PER_BROWSER: "3" });
    const opened = await post(app);
    const session: Session = { base: app.url, cookie: opened.cookie!, sessionId: String(opened.json.sessionId), token: String(opened.json.token) };
    const terms = [0, 1, 2].map(() => new TestTerminal(session));
    await Promise.all(terms.map((t) => t.ready(60_000)));
    const extra = new TestTerminal(session);
    const closed = await extra.waitForClose();
    expect(closed.code).toBe(4029);
    expect(closed.reason).toBe("Too many terminals open (3 per browser); close one and retry.");
    // Closing one makes room again.
    terms[0]!.close();
    await terms[0]!.waitForClose();
    const again = new TestTerminal(session);
    await again.ready(30_000);
    for (const t of [...terms, again]) t.close();
  });

  it(`limits a sandbox to ${MAX_SHELLS_PER_SANDBOX} named shells, saying so`, async () => {
    const app = await server({ SHIPSHAPE_TERMINALS_PER_BROWSER: "100" });
    const opened = await post(app);
    const session: Session = { base: app.url, cookie: opened.cookie!, sessionId: String(opened.json.sessionId), token: String(opened.json.token) };
    const first = new TestTerminal(session, { terminal: "t0" });
    await first.ready(60_000);
    const rest = Array.from({ length: MAX_SHELLS_PER_SANDBOX - 1 }, (_, i) => new TestTerminal(session, { terminal: `t${i + 1}` }));
    await Promise.all(rest.map((t) => t.ready(30_000)));
    const extra = new TestTerminal(session, { terminal: "one-too-many" });
    const closed = await extra.waitForClose();
    expect(closed.code).toBe(4029);
    expect(closed.reason).toMatch(/already has 16 shells/);
    // An existing name still attaches.
    const reuse = new TestTerminal(session, { terminal: "t3" });
    await reuse.ready(30_000);
    for (const t of [first, ...rest, reuse]) t.close();
  });

  it("refuses new sandboxes when the server is full, saying so", async () => {
    const app = await server({ SHIPSHAPE_MAX_SANDBOXES: "1" });
    expect((await post(app)).status).toBe(200);
    const full = await post(app);
    expect(full.status).toBe(429);
    expect(full.json).toMatchObject({ error: "limit_reached" });
    expect(full.json.message).toMatch(/server is full/);
  });
});
