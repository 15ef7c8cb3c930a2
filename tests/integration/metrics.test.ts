import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";

/** What a host owner's Prometheus scrapes after a learner started a sandbox, typed and pressed Check. */
describe("metrics", () => {
  let app: App;
  let term: TestTerminal | undefined;

  const scrape = async () => {
    const res = await fetch(`${app.url}/metrics`, { headers: metricsAuth(app) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };
  /** The value of one sample line, e.g. `shipshape_check_duration_seconds_count{outcome="failed"}`. */
  const sample = (text: string, name: string) => {
    const line = text.split("\n").find((l) => l.startsWith(name + " "));
    return line ? Number(line.slice(name.length + 1)) : undefined;
  };

  beforeAll(async () => {
    app = await startTestApp(testEnv({ SHIPSHAPE_WARM_POOL: "1" }));
  });

  afterAll(async () => {
    term?.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("times sandbox starts, terminal attaches and checks in histograms, and reports the process", async () => {
    // Wait for the pool's sandbox, so this learner's start is a warm claim.
    for (let i = 0; i < 120 && app.sessions.counts.warm < 1; i++) await new Promise((r) => setTimeout(r, 500));
    const session = await openSession(app.url);
    term = new TestTerminal(session);
    await term.ready(60_000);
    const res = await fetch(`${app.url}/api/exercises/greet-entrypoint/check`, { method: "POST", headers: { origin: app.url, cookie: session.cookie } });
    expect(res.status).toBe(200);

    const text = await scrape();
    expect(sample(text, 'shipshape_sandbox_start_seconds_count{kind="warm"}')).toBe(1);
    expect(sample(text, "shipshape_terminal_attach_seconds_count")).toBe(1);
    expect(sample(text, 'shipshape_check_duration_seconds_count{outcome="failed"}')).toBe(1);
    expect(sample(text, 'shipshape_check_duration_seconds_bucket{le="+Inf",outcome="failed"}')).toBe(1);
    expect(sample(text, 'shipshape_sandboxes_live{tier="classroom"}')).toBe(1);
    // Process metrics come with it (prom-client's defaults).
    expect(sample(text, "shipshape_process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 ** 2);
    expect(text).toContain("# TYPE shipshape_nodejs_eventloop_lag_seconds gauge");
  });
});

/** /metrics answers to the admin secret (or SHIPSHAPE_METRICS_TOKEN) as a bearer token. */
function metricsAuth(app: App): Record<string, string> {
  return { authorization: `Bearer ${app.instructorSignIn.secret}` };
}
