import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { z } from "zod";
import { ShipshapeError, toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { NetworkCheck, SandboxRuntime } from "../runtime/types.ts";
import type { SessionManager, SessionView } from "../sessions/session-manager.ts";
import { newId, type Signer } from "../sessions/tokens.ts";
import { RateLimiter } from "./rate-limiter.ts";
import { serveStatic } from "./static-files.ts";
import type { TerminalSockets } from "./terminal-socket.ts";

const OWNER_COOKIE = "shipshape_owner";
const MAX_BODY_BYTES = 128 * 1024;
const MAX_FILE_BYTES = 64 * 1024;

export interface HttpDeps {
  sessions: SessionManager;
  runtime: SandboxRuntime;
  /** The last check of the host firewall that isolates sandboxes (undefined: not checked yet). */
  network?: { status(): NetworkCheck | undefined };
  signer: Signer;
  sockets: TerminalSockets;
  metrics: Metrics;
  log: Logger;
  siteDir: string;
  allowedOrigins: string[];
  mounts?: HttpMount[];
  routes?: Routes;
  /**
   * Asked before a session is opened for a browser: options such as the workshop the session
   * belongs to. May throw (a learner still queued for a workshop seat is told where they are).
   */
  sessionOptions?: (ownerId: string) => { workshopId?: string; expiresAt?: number };
  limits: { memoryBytes: number; cpus: number; pids: number; diskBytes: number; ttlMs: number; idleTimeoutMs: number };
  /** Abuse rules (docs/security.md, "Abuse limits"). */
  abuse?: { sessionsPerAddressPerMinute: number; trustedProxies: string[] };
}

/** New sandboxes per browser (owner cookie): a burst, then a steady rate. */
const SESSIONS_PER_BROWSER = { capacity: 10, refillPerMinute: 20 } as const;

const openBodySchema = z.object({ fresh: z.boolean().optional() }).strict();
const fileBodySchema = z
  .object({
    path: z
      .string()
      .min(2)
      .max(1024)
      .regex(/^\/[^\0]*$/, "must be an absolute path such as /root/app/Dockerfile"),
    content: z.string().max(MAX_FILE_BYTES, `files are limited to ${MAX_FILE_BYTES / 1024} KiB`),
  })
  .strict();

export type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  ownerId: string | undefined,
  params: Record<string, string>,
) => Promise<void> | void;

/** Extra API routes, keyed like "POST /api/exercises/:id/check"; `:name` matches one path segment. */
export type Routes = Record<string, Handler>;

/**
 * A feature that serves part of the origin (or other Host names) on its own terms, such as the
 * port preview. Mounts see the request before the site and the API; they do their own checks.
 */
export interface HttpMount {
  matches(req: IncomingMessage, url: URL): boolean;
  handle(req: IncomingMessage, res: ServerResponse, ownerId: string | undefined): Promise<void>;
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string | undefined): void;
}

/** The one HTTP server: site, API and WebSocket upgrades on one origin. */
export function createHttpServer(deps: HttpDeps): Server {
  const log = deps.log.child({ component: "http" });
  const sessionCreations = new RateLimiter(SESSIONS_PER_BROWSER);
  const perAddress = deps.abuse?.sessionsPerAddressPerMinute ?? 100;
  const trustedProxies = deps.abuse?.trustedProxies ?? ["127.0.0.1", "::1"];
  // A browser can drop its cookie to become a new owner; its address stays the same.
  const addressCreations = new RateLimiter({ capacity: perAddress, refillPerMinute: perAddress });
  let health: { at: number; error: ShipshapeError | undefined } = { at: 0, error: undefined };
  let engineUp = true;

  const checkHealth = async () => {
    if (Date.now() - health.at < 2_000) return health.error;
    try {
      await deps.runtime.ping();
      health = { at: Date.now(), error: undefined };
    } catch (e) {
      health = { at: Date.now(), error: toShipshapeError(e) };
    }
    // Report changes once, in the log and in /metrics, rather than on every request.
    if (health.error && engineUp) {
      engineUp = false;
      log.error("sandbox engine unavailable", { code: health.error.code, reason: health.error.userMessage, detail: health.error.detail });
    } else if (!health.error && !engineUp) {
      engineUp = true;
      log.warn("sandbox engine available again");
      // Sandboxes that stopped while it was away: end their sessions now, saying why.
      void deps.sessions.reap();
    }
    return health.error;
  };
  // Watched in the background too, so an outage is noticed (and logged) with nobody asking.
  const healthWatch = setInterval(() => void checkHealth(), 5_000);
  healthWatch.unref();
  /** Why the sandbox network is not known to be safe, in an operator's words; undefined when it is. */
  const networkProblem = (): string | undefined => {
    if (!deps.network) return undefined;
    const status = deps.network.status();
    if (!status) return "The sandbox network has not been checked yet.";
    if (status.ok) return undefined;
    return `The sandbox network is not verified, so new sandboxes are refused: ${status.problems.join("; ")}.`;
  };
  const checkedAt = () => {
    const at = deps.network?.status()?.at;
    return at ? new Date(at).toISOString() : null;
  };
  deps.metrics.gauge("shipshape_network_verified", "1 when the sandbox network's firewall (egress policy, port pins) is verified", () =>
    networkProblem() === undefined ? 1 : 0,
  );
  deps.metrics.gauge("shipshape_engine_up", "1 when the sandbox engine answers, 0 when it does not", () => (engineUp ? 1 : 0));

  const routes: Routes = {
    // Kept for existing monitors: the engine only. Never the engine's own error text (it names
    // sockets, paths and versions to anyone who asks); the log has it.
    "GET /healthz": async (_req, res) => {
      const error = await checkHealth();
      if (error) return json(res, 503, { ok: false, reason: error.userMessage });
      json(res, 200, { ok: true, ...deps.sessions.counts });
    },
    // The process answers: for a supervisor deciding whether to restart it, nothing more.
    "GET /livez": (_req, res) => json(res, 200, { ok: true }),
    // Whether this server should get learners: the engine answers and the sandbox network is
    // verified. Each check says in words what is wrong; the details are in the log.
    "GET /readyz": async (_req, res) => {
      const engine = await checkHealth();
      const network = networkProblem();
      const checks = {
        engine: engine ? { ok: false, reason: engine.userMessage } : { ok: true },
        network: network
          ? { ok: false, reason: network, checkedAt: checkedAt() }
          : { ok: true, checkedAt: checkedAt(), repaired: deps.network?.status()?.repaired ?? [] },
      };
      const failing = Object.entries(checks).filter(([, c]) => !c.ok).map(([name]) => name);
      const ready = failing.length === 0;
      json(res, ready ? 200 : 503, {
        ready,
        ...(ready ? {} : { failing, reason: [engine?.userMessage, network].filter(Boolean).join(" ") }),
        checks,
        ...deps.sessions.counts,
      });
    },
    "GET /metrics": (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(deps.metrics.render());
    },
    "POST /api/sessions": async (req, res, ownerId) => {
      const body = openBodySchema.parse(await readJson(req));
      let owner = ownerId;
      if (!owner) {
        owner = newId(16);
        setOwnerCookie(req, res, deps.signer.sign(owner));
      }
      const extra = deps.sessionOptions?.(owner) ?? {};
      const current = deps.sessions.current(owner);
      // A session that belongs to another workshop (or to none) than this browser's is replaced.
      const fresh = body.fresh === true || (current !== undefined && current.workshopId !== (extra.workshopId ?? null));
      const createsSandbox = fresh || !current;
      if (createsSandbox) {
        // Fail fast and say why, rather than hand out a session whose sandbox cannot start.
        const down = await checkHealth();
        if (down) throw down;
        const unsafe = networkProblem();
        if (unsafe) {
          throw new ShipshapeError(
            "engine_unavailable",
            "New sandboxes are paused: the server cannot confirm that sandboxes are kept apart from each other and from this machine. The operator has been told; try again in a few minutes.",
            unsafe,
          );
        }
        const address = clientAddress(req, trustedProxies);
        // A workshop seat is bounded by the workshop's own size: its class may share one NAT address.
        const addressWait = extra.workshopId ? 0 : addressCreations.waitMs(address);
        if (addressWait > 0) {
          log.warn("abuse rule hit", { rule: "sessions_per_address", address });
          throw rateLimited(
            "sessions_per_address",
            addressWait,
            `Too many new sandboxes from your network address (at most ${perAddress} a minute). Wait a minute and try again. ` +
              `If your whole class shares one address, ask the operator to raise SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE.`,
          );
        }
        const ownerWait = sessionCreations.waitMs(owner);
        if (ownerWait > 0) {
          log.warn("abuse rule hit", { rule: "sessions_per_browser", address });
          throw rateLimited(
            "sessions_per_browser",
            ownerWait,
            `You started ${SESSIONS_PER_BROWSER.capacity} new sandboxes in a short time, the most one browser may ` +
              `(then ${SESSIONS_PER_BROWSER.refillPerMinute} a minute). Wait a minute and try again.`,
          );
        }
        if (!extra.workshopId) addressCreations.take(address);
        sessionCreations.take(owner);
      }
      const view = deps.sessions.open(owner, { ...extra, fresh });
      json(res, 200, sessionJson(view, deps));
    },
    "GET /api/sessions/current": (_req, res, ownerId) => {
      const view = ownerId ? (deps.sessions.current(ownerId) ?? deps.sessions.recentFailure(ownerId)) : undefined;
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
      json(res, 200, sessionJson(view, deps));
    },
    "DELETE /api/sessions/current": async (_req, res, ownerId) => {
      const view = ownerId ? deps.sessions.current(ownerId) : undefined;
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
      await deps.sessions.end(view.sessionId, "ended by the learner");
      res.writeHead(204).end();
    },
    "POST /api/sessions/current/files": async (req, res, ownerId) => {
      const body = fileBodySchema.parse(await readJson(req));
      const view = ownerId ? deps.sessions.current(ownerId) : undefined;
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
      const sandboxId = await deps.sessions.sandboxOf(view.sessionId, view.ownerId);
      const b64 = Buffer.from(body.content, "utf8").toString("base64");
      const r = await deps.runtime.exec(
        sandboxId,
        ["sh", "-c", 'mkdir -p -- "$(dirname -- "$1")" && printf %s "$2" | base64 -d > "$1"', "sh", body.path, b64],
        { timeoutMs: 10_000 },
      );
      if (r.exitCode !== 0) {
        throw new ShipshapeError("bad_request", `Could not write ${body.path}: ${r.stderr.trim() || "the sandbox refused"}.`);
      }
      json(res, 200, { ok: true, path: body.path, bytes: Buffer.byteLength(body.content) });
    },
  };

  const router = new Router({ ...routes, ...deps.routes });

  const server = createServer(async (req, res) => {
    const url = requestUrl(req);
    if (!url) return json(res, 400, { error: "bad_request", message: "The request's address is not a valid path." });
    const key = `${req.method} ${url.pathname.replace(/\/+$/, "") || "/"}`;
    const { handler: route, params } = router.find(key);
    try {
      const mount = deps.mounts?.find((m) => m.matches(req, url));
      if (mount) return await mount.handle(req, res, deps.signer.verify(readCookie(req, OWNER_COOKIE)));
      if (!route) {
        if (url.pathname.startsWith("/api/")) throw new ShipshapeError("not_found", "No such API endpoint.");
        if (req.method !== "GET" && req.method !== "HEAD") {
          res.writeHead(405, { allow: "GET, HEAD" }).end();
          return;
        }
        await serveStatic(req, res, deps.siteDir, url.pathname);
        return;
      }
      if (req.method !== "GET" && !originAllowed(req, deps.allowedOrigins)) {
        throw new ShipshapeError("forbidden", "This request came from another site and was refused.");
      }
      const ownerId = deps.signer.verify(readCookie(req, OWNER_COOKIE));
      await route(req, res, ownerId, params);
    } catch (e) {
      const err =
        e instanceof z.ZodError
          ? new ShipshapeError("bad_request", e.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "))
          : toShipshapeError(e);
      if (err.status >= 500) log.error("request failed", { route: key, code: err.code, detail: err.detail });
      if (!res.headersSent) {
        if (err.fields?.retryAfterSeconds !== undefined) res.setHeader("retry-after", String(err.fields.retryAfterSeconds));
        json(res, err.status, { error: err.code, message: err.userMessage, ...err.fields });
      } else res.end();
    }
  });

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${text}\n`);
    };
    socket.on("error", () => {});
    const url = requestUrl(req);
    if (!url) return refuse(400, "Bad Request");
    const mount = deps.mounts?.find((m) => m.matches(req, url));
    if (mount?.upgrade) return mount.upgrade(req, socket, head, deps.signer.verify(readCookie(req, OWNER_COOKIE)));
    if (url.pathname !== "/ws/terminal") return refuse(404, "Not Found");
    if (!originAllowed(req, deps.allowedOrigins)) {
      log.warn("websocket refused: foreign origin", { origin: req.headers.origin ?? null });
      return refuse(403, "Forbidden origin");
    }
    const ownerId = deps.signer.verify(readCookie(req, OWNER_COOKIE));
    if (!ownerId) return refuse(403, "No session: open the page first");
    deps.sockets.upgrade(req, socket, head, ownerId);
  });

  server.on("close", () => clearInterval(healthWatch));
  return server;
}

/** Exact routes first, then patterns with :params (one path segment each, [A-Za-z0-9_-]). */
class Router {
  private readonly exact = new Map<string, Handler>();
  private readonly patterns: Array<{ re: RegExp; names: string[]; handler: Handler }> = [];

  constructor(routes: Routes) {
    for (const [key, handler] of Object.entries(routes)) {
      if (!key.includes("/:")) {
        this.exact.set(key, handler);
        continue;
      }
      const names: string[] = [];
      const re = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:([a-zA-Z]+)/g, (_m, name: string) => {
        names.push(name);
        return "([A-Za-z0-9_-]{1,64})";
      });
      this.patterns.push({ re: new RegExp(`^${re}$`), names, handler });
    }
  }

  find(key: string): { handler: Handler | undefined; params: Record<string, string> } {
    const exact = this.exact.get(key);
    if (exact) return { handler: exact, params: {} };
    for (const p of this.patterns) {
      const m = p.re.exec(key);
      if (m) return { handler: p.handler, params: Object.fromEntries(p.names.map((n, i) => [n, m[i + 1]!])) };
    }
    return { handler: undefined, params: {} };
  }
}

function sessionJson(view: SessionView, deps: HttpDeps) {
  return {
    sessionId: view.sessionId,
    token: deps.signer.sessionToken(view.sessionId, view.ownerId),
    expiresAt: new Date(view.expiresAt).toISOString(),
    ...view.status,
    limits: deps.limits,
  };
}

function rateLimited(rule: string, waitMs: number, message: string): ShipshapeError {
  return new ShipshapeError("rate_limited", message, `rule ${rule}`, {
    fields: { rule, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) },
  });
}

/**
 * The client's address: the connection's peer, or, when the peer is a trusted reverse proxy, the
 * right-most X-Forwarded-For entry that is not one (entries left of it could be forged).
 */
export function clientAddress(req: IncomingMessage, trustedProxies: readonly string[]): string {
  const plain = (a: string) => a.trim().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
  const peer = plain(req.socket.remoteAddress ?? "unknown");
  const trusted = new Set(trustedProxies.map(plain));
  if (!trusted.has(peer)) return peer;
  const header = req.headers["x-forwarded-for"];
  const hops = (Array.isArray(header) ? header.join(",") : (header ?? ""))
    .split(",")
    .map(plain)
    .filter((h) => h.length > 0 && h.length <= 64);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.has(hops[i]!)) return hops[i]!;
  return hops[0] ?? peer;
}

/** Same-origin by default: the Origin's host must be the Host the browser asked for. */
export function originAllowed(req: IncomingMessage, allowed: string[]): boolean {
  const origin = req.headers.origin;
  if (!origin) return false;
  if (allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined; // not percent-encoded properly: as good as no cookie
      }
    }
  }
  return undefined;
}

/**
 * The request target as a URL, or undefined when it is not one. Never throws: a target such as
 * `//x%ZZ` would otherwise parse as a host name and fail outside any handler.
 */
export function requestUrl(req: IncomingMessage): URL | undefined {
  const raw = req.url ?? "/";
  try {
    return raw.startsWith("/") ? new URL(`http://placeholder${raw}`) : new URL(raw, "http://placeholder");
  } catch {
    return undefined;
  }
}

export function setOwnerCookie(req: IncomingMessage, res: ServerResponse, value: string): void {
  const secure = (req.socket as { encrypted?: boolean }).encrypted || req.headers["x-forwarded-proto"] === "https";
  res.setHeader(
    "set-cookie",
    `${OWNER_COOKIE}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000${secure ? "; Secure" : ""}`,
  );
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new ShipshapeError("bad_request", "The request body is not valid JSON.");
  }
}

function tooLarge(): ShipshapeError {
  return new ShipshapeError("payload_too_large", `The request is too large; the limit is ${MAX_BODY_BYTES / 1024} KiB.`);
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}
