/**
 * The port preview's rows of docs/security.md (`preview-origin`, `preview-websocket-limits`),
 * probed from a learner's sandbox on the attack suite's server, which runs with the default preview
 * configuration. The learner's app is tests/support/preview-app.py, started in the sandbox's own
 * shell with the interpreter Compose keeps there (no image pull).
 *
 * Node does not resolve `*.localhost` as browsers do: requests go to 127.0.0.1 with the preview's
 * Host header, which is what a browser sends after resolving the name to loopback itself.
 */
import { readFileSync } from "node:fs";
import http, { type IncomingHttpHeaders } from "node:http";
import path from "node:path";
import WebSocket from "ws";
import type { App } from "../../sandbox-server/src/app.ts";
import { repoRoot } from "../support/server.ts";
import type { Session } from "../support/terminal.ts";
import type { Verdict } from "./support.ts";

/** An unusual port, so no other probe's server is mistaken for the app. */
const APP_PORT = 18765;
/** The suite's server sets SHIPSHAPE_PREVIEW_SOCKET_IDLE to this, so the idle close is observable. */
export const PREVIEW_SOCKET_IDLE_FOR_PROBES = "3s";
/** Past this many sockets without a refusal, there is no cap worth the name. */
const SOCKETS_TRIED = 200;

interface Probe {
  verdict: Verdict;
  evidence: string;
}

interface Context {
  app: () => App;
  learner: () => Promise<{ session: Session; id: string }>;
  inSandbox: (id: string, script: string, timeoutMs?: number) => Promise<string>;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function request(port: number, target: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end();
  });
}

function openSocket(url: string, headers: Record<string, string>): Promise<WebSocket | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once("error", () => resolve(0));
  });
}

export function previewProbes(ctx: Context): Record<string, () => Promise<Probe>> {
  let started: Promise<void> | undefined;
  /** The app in the shared learner's sandbox, answering on APP_PORT. */
  const appRunning = async () => {
    const { id } = await ctx.learner();
    started ??= (async () => {
      const script = readFileSync(path.join(repoRoot, "tests/support/preview-app.py"), "utf8").replace('("0.0.0.0", 8000)', `("0.0.0.0", ${APP_PORT})`);
      const out = await ctx.inSandbox(
        id,
        `echo ${Buffer.from(script).toString("base64")} | base64 -d > /root/.ss-preview-app.py
nohup /usr/libexec/compose-python3 /root/.ss-preview-app.py >/dev/null 2>&1 &
for i in $(seq 50); do curl -s -o /dev/null -m 1 http://127.0.0.1:${APP_PORT}/headers && { echo up; exit 0; }; sleep 0.2; done; echo down`,
      );
      if (!out.includes("up")) throw new Error(`the preview app did not start in the sandbox: ${out}`);
    })();
    await started;
  };

  /** Follows the owner's link from the course; returns where it went and, on a preview host, that host's cookie. */
  const follow = async (session: Session, rest: string) => {
    const app = ctx.app();
    const link = await request(app.port, `/preview/${session.sessionId}/${APP_PORT}/${rest}`, { host: new URL(app.url).host, cookie: session.cookie });
    if (link.status !== 303) return { link, to: undefined, cookie: undefined };
    const to = new URL(link.headers.location!);
    const exchanged = await request(app.port, to.pathname + to.search, { host: to.host });
    return { link, to, cookie: exchanged.headers["set-cookie"]?.[0]?.split(";")[0] };
  };

  return {
    /**
     * The learner's app must not run on the course's origin, where its JavaScript acts as whoever
     * opens it: open when the owner's link serves the app on the course's own origin.
     */
    async "preview-origin"() {
      const { session } = await ctx.learner();
      await appRunning();
      const app = ctx.app();
      const course = new URL(app.url);
      const { link, to, cookie } = await follow(session, "headers");
      if (!to) {
        return {
          verdict: "open",
          evidence: `the owner's link /preview/${session.sessionId}/${APP_PORT}/headers answered ${link.status} on the course's own origin ${course.origin}${link.status === 200 ? ": the app runs there" : ""}`,
        };
      }
      const page = await request(app.port, "/headers", { host: to.host, cookie: `${cookie ?? ""}; ${session.cookie}` });
      const seen = page.status === 200 ? (JSON.parse(page.body) as { headers: Record<string, string[]> }) : undefined;
      const courseCookieOnly = await request(app.port, "/headers", { host: to.host, cookie: session.cookie });
      const stranger = await request(app.port, "/headers", { host: to.host });
      const ownOrigin = to.origin !== course.origin && to.hostname !== course.hostname;
      const appSawCourseCookie = (seen?.headers.cookie ?? []).some((c) => c.includes("shipshape_owner"));
      const held = ownOrigin && page.status === 200 && !appSawCourseCookie && courseCookieOnly.status === 403 && stranger.status === 403;
      return {
        verdict: held ? "contained" : "open",
        evidence:
          `course ${course.origin}; the owner's link went to ${to.origin} (another origin: ${ownOrigin}); the app answered ${page.status} there, ` +
          `saw the course's cookie: ${appSawCourseCookie}; the course's cookie alone on the preview host: ${courseCookieOnly.status}; no cookie: ${stranger.status}`,
      };
    },

    /** Unbounded preview WebSockets: open when one owner can hold SOCKETS_TRIED at once, or an idle one is never closed. */
    async "preview-websocket-limits"() {
      const { session } = await ctx.learner();
      await appRunning();
      const app = ctx.app();
      const { to, cookie } = await follow(session, "");
      // The path form (old servers) takes the course's cookie and Origin; the host form its own cookie.
      const url = to ? `ws://127.0.0.1:${app.port}/ws` : `ws://127.0.0.1:${app.port}/preview/${session.sessionId}/${APP_PORT}/ws`;
      const headers: Record<string, string> = to ? { host: to.host, cookie: cookie ?? "" } : { host: new URL(app.url).host, cookie: session.cookie, origin: app.url };
      const held: WebSocket[] = [];
      let refusedWith: number | undefined;
      try {
        while (held.length < SOCKETS_TRIED) {
          const outcome = await openSocket(url, headers);
          if (typeof outcome === "number") {
            refusedWith = outcome;
            break;
          }
          held.push(outcome);
        }
      } finally {
        await Promise.all(held.map((ws) => new Promise<void>((r) => (ws.once("close", () => r()), ws.close()))));
      }
      await new Promise((r) => setTimeout(r, 200));
      const idle = await openSocket(url, headers);
      let idleClosedAfterMs: number | undefined;
      if (typeof idle !== "number") {
        const opened = Date.now();
        idleClosedAfterMs = await new Promise<number | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), 10_000);
          idle.once("close", () => {
            clearTimeout(timer);
            resolve(Date.now() - opened);
          });
        });
        if (idleClosedAfterMs === undefined) idle.terminate();
      }
      const capped = refusedWith === 429;
      const idleClosed = idleClosedAfterMs !== undefined;
      return {
        verdict: capped && idleClosed ? "contained" : "open",
        evidence:
          `one owner opened ${held.length} preview WebSockets${refusedWith !== undefined ? `, the next was refused with ${refusedWith}` : " without a refusal"}; ` +
          `a silent one was ${idleClosed ? `closed after ${idleClosedAfterMs} ms` : "still open after 10 s"} (SHIPSHAPE_PREVIEW_SOCKET_IDLE=${PREVIEW_SOCKET_IDLE_FOR_PROBES})`,
      };
    },
  };
}
