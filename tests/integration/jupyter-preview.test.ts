/**
 * Jupyter through the port preview (issue 17): the `jupyter/scipy-notebook` stand-in, run in a
 * learner's sandbox as the Jupyter lesson runs it, opened on its own preview origin as a browser
 * does: log in with the token, get Jupyter's XSRF cookie, start a kernel with it, and execute
 * `1+1` over the kernel's WebSocket. Each of those is a thing that breaks behind a proxy (cookies
 * dropped, Origin seen as foreign, WebSocket upgrade not passed, absolute URLs off the base).
 *
 * Node does not resolve `*.localhost` as browsers do, so requests go to 127.0.0.1 with the preview's
 * Host header, exactly what a browser sends after resolving it to loopback.
 */
import { randomUUID } from "node:crypto";
import http, { type IncomingHttpHeaders } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

const TOKEN = "preview-test-token";

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function request(base: string, target: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: target, method: options.method ?? "GET", headers: options.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** A browser's cookie jar for one host: what Set-Cookie stored, sent back as one Cookie header. */
class CookieJar {
  private readonly cookies = new Map<string, string>();
  take(answer: Answer): void {
    for (const line of answer.headers["set-cookie"] ?? []) {
      const [pair] = line.split(";");
      const eq = pair!.indexOf("=");
      this.cookies.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
    }
  }
  get(name: string): string | undefined {
    return this.cookies.get(name);
  }
  names(): string[] {
    return [...this.cookies.keys()];
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
}

describe("Jupyter through the port preview", () => {
  let app: App;
  let session: Session;
  let term: TestTerminal;
  let sandboxId: string;
  const host = () => `p8888-${session.sessionId}.localhost:${app.port}`;
  const origin = () => `http://${host()}`;

  beforeAll(async () => {
    app = await startTestApp();
    session = await openSession(app.url);
    term = new TestTerminal(session);
    await term.ready(120_000);
    sandboxId = (await app.runtime.list()).find((s) => s.sessionId === session.sessionId)!.id;
    // As the lesson runs it (the image comes from the registry mirror: minutes on a cold sandbox).
    const run = await app.runtime.exec(
      sandboxId,
      ["sh", "-c", `docker run -d --name nb-preview -p 8888:8888 -e JUPYTER_TOKEN=${TOKEN} jupyter/scipy-notebook`],
      { timeoutMs: 480_000 },
    );
    if (run.exitCode !== 0) throw new Error(`docker run exited ${run.exitCode}: ${run.stderr}`);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const r = await app.runtime.exec(sandboxId, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", `http://localhost:8888/api/status?token=${TOKEN}`]);
      if (r.stdout === "200") break;
      if (Date.now() > deadline) throw new Error(`Jupyter did not answer in the sandbox: ${r.stdout} ${r.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }, 660_000);

  afterAll(async () => {
    term?.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("logs in with the token, starts a kernel with the XSRF cookie, and runs 1+1 over the kernel's WebSocket", async () => {
    const logs = await app.runtime.exec(sandboxId, ["docker", "logs", "nb-preview"]);
    // A token the learner chose is not printed; Jupyter shows where it listens.
    expect(logs.stdout + logs.stderr).toMatch(/http:\/\/127\.0\.0\.1:8888\/\?token=\.\.\./);

    // The owner follows the course's link; the preview host trades the one-time token for its cookie.
    const link = await request(app.url, `/preview/${session.sessionId}/8888/`, { headers: { cookie: session.cookie } });
    expect(link.status).toBe(303);
    const to = new URL(link.headers.location!);
    expect(to.host).toBe(host());
    const jar = new CookieJar();
    const exchanged = await request(app.url, to.pathname + to.search, { headers: { host: to.host } });
    expect(exchanged.status).toBe(303);
    jar.take(exchanged);

    const browse = async (target: string, extra: Record<string, string> = {}, method = "GET", body?: string) => {
      const answer = await request(app.url, target, { method, body, headers: { host: host(), cookie: jar.header(), ...extra } });
      jar.take(answer);
      return answer;
    };
    // Without the token: Jupyter's own login page, at the preview's root (no base URL to set).
    const anonymous = await browse("/tree");
    expect(anonymous.status).toBe(302);
    expect(anonymous.headers.location).toMatch(/^\/login\?next=%2Ftree/);
    // The material's address (/lab?token=…) leads in, and Jupyter's login cookie is set on this host.
    const lab = await browse(`/lab?token=${TOKEN}`);
    expect(lab.status).toBe(301);
    expect(lab.headers.location).toBe(`/tree?token=${TOKEN}`);
    const tree = await browse(lab.headers.location!);
    expect(tree.status).toBe(200);
    expect(tree.body).toMatch(/<title>Home Page - Select or create a notebook<\/title>/);
    const xsrf = jar.get("_xsrf");
    expect(xsrf, `cookies: ${jar.names().join(", ")}`).toBeTruthy();
    expect(jar.names().some((n) => n.startsWith("username-"))).toBe(true);

    // Jupyter's XSRF check is on: the same POST without the header is refused.
    const api = { origin: origin(), "content-type": "application/json" };
    expect((await browse("/api/kernels", api, "POST", "{}")).status).toBe(403);
    const started = await browse("/api/kernels", { ...api, "x-xsrftoken": xsrf! }, "POST", JSON.stringify({ name: "python3" }));
    expect(started.status, started.body).toBe(201);
    const kernelId = (JSON.parse(started.body) as { id: string }).id;

    const ws = new WebSocket(`ws://127.0.0.1:${app.port}/api/kernels/${kernelId}/channels?session_id=${randomUUID()}`, {
      headers: { host: host(), origin: origin(), cookie: jar.header() },
    });
    const result = new Promise<string>((resolve, reject) => {
      ws.on("message", (data: Buffer) => {
        const message = JSON.parse(data.toString("utf8")) as { msg_type: string; content: { data?: Record<string, string> } };
        if (message.msg_type === "execute_result") resolve(message.content.data?.["text/plain"] ?? "");
      });
      ws.once("unexpected-response", (_req, res) => reject(new Error(`kernel WebSocket refused: ${res.statusCode}`)));
      ws.once("close", (code) => reject(new Error(`kernel WebSocket closed: ${code}`)));
      ws.once("error", reject);
    });
    await new Promise<void>((resolve, reject) => (ws.once("open", () => resolve()), ws.once("error", reject)));
    const msgId = randomUUID();
    ws.send(
      JSON.stringify({
        header: { msg_id: msgId, username: "learner", session: randomUUID(), msg_type: "execute_request", version: "5.3", date: new Date().toISOString() },
        parent_header: {},
        metadata: {},
        content: { code: "1+1", silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true },
        channel: "shell",
        buffers: [],
      }),
    );
    try {
      // The kernel starts on the first request: under load that takes a while.
      expect(await Promise.race([result, new Promise((_, reject) => setTimeout(() => reject(new Error("no execute_result in 90 s")), 90_000))])).toBe("2");
    } finally {
      ws.close();
    }
  }, 180_000);
});
