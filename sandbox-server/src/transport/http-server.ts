import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { z } from "zod";
import { openSessionSchema, sandboxFileSchema, type SessionAnswer, type SessionLimits } from "../../../contracts/session-api.ts";
import { json, originAllowed, readCookie, readJsonBody, requestUrl, type HttpMount } from "../common/http.ts";
import { ShipshapeError, toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { EngineHealth } from "../sessions/engine-health.ts";
import type { SandboxFiles } from "../sessions/sandbox-files.ts";
import type { NetworkStatus } from "../sessions/network-watch.ts";
import type { SessionManager, SessionView } from "../sessions/session-manager.ts";
import { newId, type Signer } from "../common/signing.ts";
import { cookieHeader, type CookieNames, type PublicOrigin } from "../common/public-origin.ts";
import { addressKey, ConcurrencyLimit, RateLimiter } from "./rate-limiter.ts";
import { serveStatic } from "./static-files.ts";
import type { TerminalSockets } from "./terminal-socket.ts";

const MAX_BODY_BYTES = 128 * 1024;

export interface HttpDeps {
  sessions: SessionManager;
  /** Whether the sandbox engine answers (for /healthz, and to refuse a new sandbox at once). */
  health: EngineHealth;
  /** Places lesson files in the learner's sandbox. */
  files: SandboxFiles;
  /** The last check of the host firewall that isolates sandboxes (undefined: not checked yet). */
  network?: { status(): NetworkStatus | undefined };
  signer: Signer;
  sockets: TerminalSockets;
  metrics: Metrics;
  log: Logger;
  siteDir: string;
  /** The public URL: which Host names are served, which Origins may change things, cookie names. */
  origin: PublicOrigin;
  /** Bearer tokens that may read /metrics (SHIPSHAPE_METRICS_TOKEN, the admin secret). */
  metricsTokens: string[];
  mounts?: HttpMount[];
  routes?: Routes;
  /**
   * Asked before a session is opened for a browser: options such as the workshop the session
   * belongs to. May throw (a learner still queued for a workshop seat is told where they are).
   */
  sessionOptions?: (ownerId: string) => Promise<{ workshopId?: string; expiresAt?: number }>;
  limits: SessionLimits;
  /**
   * The security tier the sandboxes run in ("isolated": unprivileged LXD system containers;
   * "classroom": Docker-in-Docker), shown on /readyz and in the instructor view.
   */
  tier?: "isolated" | "classroom";
  /** Abuse rules (docs/security.md, "Abuse limits"). */
  abuse?: { sessionsPerAddressPerMinute: number; sandboxesPerAddress?: number; trustedProxies: string[] };
}

/**
 * Answered whatever the Host: health probes and metrics scrapers address the server by whatever
 * name reaches it (a container name, 127.0.0.1), and none of these rides on a cookie.
 */
const HOST_CHECK_EXEMPT = new Set(["/livez", "/readyz", "/healthz", "/metrics"]);

/** New sandboxes per browser (owner cookie): a burst, then a steady rate. */
const SESSIONS_PER_BROWSER = { capacity: 10, refillPerMinute: 20 } as const;

export type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  ownerId: string | undefined,
  params: Record<string, string>,
) => Promise<void> | void;

/** Extra API routes, keyed like "POST /api/exercises/:id/check"; `:name` matches one path segment. */
export type Routes = Record<string, Handler>;

/** The one HTTP server: site, API and WebSocket upgrades on one origin. */
export function createHttpServer(deps: HttpDeps): Server {
  const log = deps.log.child({ component: "http" });
  const cookies = deps.origin.cookies;
  const sessionCreations = new RateLimiter(SESSIONS_PER_BROWSER);
  const perAddress = deps.abuse?.sessionsPerAddressPerMinute ?? 100;
  const heldPerAddress = deps.abuse?.sandboxesPerAddress ?? 10;
  const trustedProxies = deps.abuse?.trustedProxies ?? ["127.0.0.1", "::1"];
  // A browser can drop its cookie to become a new owner; its address stays the same.
  const addressCreations = new RateLimiter({ capacity: perAddress, refillPerMinute: perAddress });
  // Owners (browsers) holding a live sandbox, per address: the rate alone lets one address pile up
  // a sandbox a minute until the server is full.
  const addressHolders = new ConcurrencyLimit((owner) => deps.sessions.holdsLive(owner));
  const metricsDigests = deps.metricsTokens.map(digest);
  const checkHealth = () => deps.health.check();
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
        ...(deps.tier ? { tier: deps.tier } : {}),
        ...(ready ? {} : { failing, reason: [engine?.userMessage, network].filter(Boolean).join(" ") }),
        checks,
        ...deps.sessions.counts,
      });
    },
    "GET /metrics": async (req, res) => {
      // WARNING: the figures say how many learners are on and when the engine is down; not for everyone.
      const given = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1];
      if (!given || !metricsDigests.some((d) => timingSafeEqual(d, digest(given)))) {
        res.writeHead(401, { "content-type": "text/plain; charset=utf-8", "www-authenticate": 'Bearer realm="shipshape metrics"' });
        res.end("Metrics need Authorization: Bearer <SHIPSHAPE_METRICS_TOKEN> (or the instructor admin secret).\n");
        return;
      }
      const text = await deps.metrics.render();
      res.writeHead(200, { "content-type": deps.metrics.contentType });
      res.end(text);
    },
    "POST /api/sessions": async (req, res, ownerId) => {
      const body = openSessionSchema.parse(await readJson(req));
      // A browser without a cookie is a new owner, but it gets its identity only once every limit
      // has let it through: a refused client leaves with nothing to come back as.
      const owner = ownerId ?? newId(16);
      const extra = (ownerId && (await deps.sessionOptions?.(ownerId))) || {};
      const current = ownerId ? await deps.sessions.current(ownerId) : undefined;
      // A session that belongs to another workshop (or to none) than this browser's is replaced.
      const fresh = body.fresh === true || (current !== undefined && current.workshopId !== (extra.workshopId ?? null));
      const createsSandbox = fresh || !current;
      const address = addressKey(clientAddress(req, trustedProxies));
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
        // This browser's own sandbox is replaced, so it does not count against its address.
        if (!extra.workshopId && addressHolders.count(address, owner) >= heldPerAddress) {
          log.warn("abuse rule hit", { rule: "sandboxes_per_address", address });
          throw new ShipshapeError(
            "rate_limited",
            `Your network address already has ${heldPerAddress} sandboxes running, the most one address may hold at once. ` +
              `Close the pages of sandboxes you no longer use: each is removed after ` +
              `${Math.round(deps.limits.idleTimeoutMs / 60_000)} minutes without use. ` +
              `A class behind one address joins as a workshop, or asks the operator to raise SHIPSHAPE_SANDBOXES_PER_ADDRESS.`,
            `rule sandboxes_per_address`,
            { fields: { rule: "sandboxes_per_address", retryAfterSeconds: 60 } },
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
      const view = await deps.sessions.open(owner, { ...extra, fresh });
      if (createsSandbox && !extra.workshopId) addressHolders.add(address, owner);
      if (!ownerId) setOwnerCookie(res, cookies, deps.signer.sign(owner));
      json(res, 200, sessionJson(view, deps));
    },
    "GET /api/sessions/current": async (_req, res, ownerId) => {
      const view = ownerId ? ((await deps.sessions.current(ownerId)) ?? (await deps.sessions.recentFailure(ownerId))) : undefined;
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
      json(res, 200, sessionJson(view, deps));
    },
    "DELETE /api/sessions/current": async (_req, res, ownerId) => {
      const view = ownerId ? await deps.sessions.current(ownerId) : undefined;
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
      await deps.sessions.end(view.sessionId, "ended by the learner");
      res.writeHead(204).end();
    },
    "POST /api/sessions/current/files": async (req, res, ownerId) => {
      const body = sandboxFileSchema.parse(await readJson(req));
      json(res, 200, await deps.files.write(ownerId, body));
    },
  };

  const router = new Router({ ...routes, ...deps.routes });

  /** The answer to a request for a host this server is not (DNS rebinding), in words; undefined when it is. */
  const wrongHost = (req: IncomingMessage, url: URL): string | undefined => {
    if (HOST_CHECK_EXEMPT.has(url.pathname) || deps.origin.hostAllowed(req.headers.host)) return undefined;
    log.warn("request for another host refused", { host: (req.headers.host ?? "").slice(0, 100) });
    return (
      `This server is ${deps.origin.origin}, and does not answer for the host "${(req.headers.host ?? "").slice(0, 100)}". ` +
      `Open ${deps.origin.origin}/ instead. (Operators: SHIPSHAPE_PUBLIC_URL is the address learners use.)`
    );
  };

  const server = createServer(async (req, res) => {
    const url = requestUrl(req);
    if (!url) return json(res, 400, { error: "bad_request", message: "The request's address is not a valid path." });
    const hostRefusal = wrongHost(req, url);
    if (hostRefusal) {
      if (url.pathname.startsWith("/api/")) return json(res, 421, { error: "wrong_host", message: hostRefusal });
      res.writeHead(421, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      return void res.end(hostRefusal + "\n");
    }
    const key = `${req.method} ${url.pathname.replace(/\/+$/, "") || "/"}`;
    const { handler: route, params } = router.find(key);
    try {
      const mount = deps.mounts?.find((m) => m.matches(req, url));
      if (mount) return await mount.handle(req, res, deps.signer.verify(readCookie(req, cookies.owner)));
      if (!route) {
        if (url.pathname.startsWith("/api/")) throw new ShipshapeError("not_found", "No such API endpoint.");
        if (req.method !== "GET" && req.method !== "HEAD") {
          res.writeHead(405, { allow: "GET, HEAD" }).end();
          return;
        }
        await serveStatic(req, res, deps.siteDir, url.pathname);
        return;
      }
      if (req.method !== "GET" && !originAllowed(req, deps.origin)) {
        throw new ShipshapeError(
          "forbidden",
          `This request came from another site (${originText(req)}) and was refused: only pages of ${deps.origin.origin} may do this.`,
        );
      }
      const ownerId = deps.signer.verify(readCookie(req, cookies.owner));
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
    const hostRefusal = wrongHost(req, url);
    if (hostRefusal) {
      return void socket.end(`HTTP/1.1 421 Misdirected Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${hostRefusal}\n`);
    }
    const mount = deps.mounts?.find((m) => m.matches(req, url));
    if (mount?.upgrade) return mount.upgrade(req, socket, head, deps.signer.verify(readCookie(req, cookies.owner)));
    if (url.pathname !== "/ws/terminal") return refuse(404, "Not Found");
    if (!originAllowed(req, deps.origin)) {
      log.warn("websocket refused: foreign origin", { origin: req.headers.origin ?? null });
      return refuse(403, "Forbidden origin");
    }
    const ownerId = deps.signer.verify(readCookie(req, cookies.owner));
    if (!ownerId) return refuse(403, "No session: open the page first");
    deps.sockets.upgrade(req, socket, head, ownerId);
  });

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

function sessionJson(view: SessionView, deps: HttpDeps): SessionAnswer {
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

function originText(req: IncomingMessage): string {
  return req.headers.origin ? `Origin ${req.headers.origin.slice(0, 100)}` : "no Origin header";
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** The owner cookie: which browser this is. Named and flagged by the public URL, never by the request. */
export function setOwnerCookie(res: ServerResponse, cookies: CookieNames, value: string): void {
  res.setHeader("set-cookie", cookieHeader(cookies.owner, value, { secure: cookies.secure, sameSite: "Lax", maxAgeSeconds: 31536000 }));
}

/** An API request's JSON body, at most MAX_BODY_BYTES. */
export function readJson(req: IncomingMessage): Promise<unknown> {
  return readJsonBody(req, MAX_BODY_BYTES);
}

