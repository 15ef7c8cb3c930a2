import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { pipeline } from "node:stream";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { z } from "zod";
import type { Config } from "../config.ts";
import { ShipshapeError, toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ServerMetrics } from "../metrics.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { Signer } from "../common/signing.ts";
import { originAllowed, type HttpMount } from "../common/http.ts";
import type { OriginPolicy } from "../common/public-origin.ts";
import { authorizePreview, defaultPreviewRules, type PreviewAccessRule } from "./preview-access.ts";
import {
  cookieValues,
  downstreamResponseHeaders,
  PREVIEW_COOKIE,
  PREVIEW_COOKIE_SECURE,
  upstreamRequestHeaders,
} from "./preview-headers.ts";
import {
  AUTH_PATH,
  choosePreviewForm,
  hostnameOf,
  isPreviewHost,
  parsePort,
  parsePreviewHost,
  parsePreviewPath,
  previewAuthUrl,
  previewOrigin,
  previewPath,
  RESERVED_HOST_PATH,
  safeNext,
  type PreviewDomain,
  type PreviewForm,
} from "./preview-routes.ts";
import { PreviewTokens, type Grant } from "./preview-tokens.ts";
import { PortWatchers, type PreviewPort } from "./port-watcher.ts";

export const PORTS_API = "/api/sessions/current/ports";
export const PORTS_SOCKET = "/ws/ports";

/** An open link is exchanged right after the redirect; a minute covers slow networks. */
const OPEN_TOKEN_TTL_MS = 60_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** A response or socket silent this long is dropped (long polls up to this work). */
const IDLE_TIMEOUT_MS = 120_000;
/** How long a sandbox's address is reused before asking the runtime again. */
const ADDRESS_CACHE_MS = 2_000;
const SOCKET_PING_MS = 30_000;

const shareBodySchema = z.object({ minutes: z.number().int().min(1).max(24 * 60).optional() }).strict();

export interface PreviewOptions {
  config: Pick<
    Config,
    | "SHIPSHAPE_PREVIEW_DOMAIN"
    | "SHIPSHAPE_PREVIEW_SCHEME"
    | "SHIPSHAPE_PREVIEW_SHARE_TTL"
    | "SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER"
    | "SHIPSHAPE_PREVIEW_SOCKET_IDLE"
    | "SHIPSHAPE_ALLOWED_ORIGINS"
  >;
  sessions: SessionManager;
  runtime: SandboxRuntime;
  signer: Signer;
  log: Logger;
  /** Counts previews that could not reach the learner's app, by reason. */
  metrics?: Pick<ServerMetrics, "previewErrors">;
  /** Which pages may change things (share links, the ports socket): the public URL's origin. */
  origins: OriginPolicy;
  /** Who may open a preview; extend for instructors (see preview-access.ts). */
  rules?: readonly PreviewAccessRule[];
}

/** Where one proxied request goes, decided by the server alone. */
interface Route {
  mode: "path" | "host";
  sessionId: string;
  /** The sandbox's owner: preview WebSockets are counted per owner, share links included. */
  ownerId: string;
  port: number;
  address: string;
  /** Raw path and query the app receives. */
  path: string;
  prefix: string | undefined;
  /** The public base of a port of this sandbox (Location rewriting). */
  baseFor: (port: number) => string;
  publicHost: string | undefined;
  publicProto: "http" | "https";
  /** Host form: the preview's own origin, which the app is shown as its own (preview-headers.ts). */
  previewOrigin: string | undefined;
}

/** A learner-facing refusal or failure: status, stable code, message, and (when it is a refusal) why, for the log. */
class PreviewFailure extends Error {
  readonly status: number;
  readonly code: string;
  /** Why it was refused, for the log; set only for refusals (not for "your app is not answering"). */
  readonly reason: string | undefined;

  constructor(status: number, code: string, message: string, reason?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.reason = reason;
  }
}

const messages = {
  badAddress: "This is not a preview address. Open previews from the port list on your lesson page.",
  badPort: "That is not a port number: ports go from 1 to 65535.",
  gone: "This sandbox no longer exists. Start a new one from the lesson page.",
  notOwner: "This preview belongs to another learner's sandbox.",
  private: "This preview is private. Open it from the port list on your lesson page, or ask its owner for a share link.",
  badToken: "This preview link is not valid or has expired. Open the preview again from the port list on your lesson page.",
  notRunning: "Your sandbox is not running. Start a new one from the lesson page.",
  serviceWorker:
    "Service workers cannot be registered through a /preview/ link, because it shares the course's origin. The operator can give previews their own domain (SHIPSHAPE_PREVIEW_DOMAIN).",
  wsOnly: "This address only speaks WebSocket.",
  foreignOrigin: "This preview's WebSocket was opened from another site and was refused.",
  starting: "The server is starting. Reload in a moment.",
  tooManySockets: (max: number) =>
    `Your previews already have ${max} WebSockets open, the most one learner may have. Close some tabs of your app, then reload.`,
};

/**
 * The port preview: opens what a learner published inside their sandbox, over HTTP and WebSocket,
 * in the path form on the site's origin or the host form on a preview domain (docs/preview.md).
 * Also serves the port list (`GET /api/sessions/current/ports`, the `/ws/ports` push socket) and
 * share links (`POST /api/sessions/current/ports/<port>/share`).
 *
 * WARNING: the only way to the network is `addressOf`, the sandbox of a session the viewer was
 * authorised for, as the runtime reports it. Nothing the client sends (path, Host, X-Forwarded-*,
 * tokens) can name an address; tokens name a session and a port, both checked again here.
 */
export class PreviewProxy implements HttpMount {
  private readonly sessions: SessionManager;
  private readonly runtime: SandboxRuntime;
  private readonly log: Logger;
  private readonly metrics: Pick<ServerMetrics, "previewErrors"> | undefined;
  private readonly configuredDomain: string | undefined;
  private readonly configuredScheme: "https" | "http";
  /** Decided by start(), once the server's public URL (and so its port) is known. */
  private form: PreviewForm | undefined;
  private readonly shareTtlMs: number;
  private readonly socketsPerOwner: number;
  private readonly socketIdleMs: number;
  /** Upgraded (or upgrading) preview WebSockets per sandbox owner. */
  private readonly openSockets = new Map<string, number>();
  private readonly origins: OriginPolicy;
  private readonly rules: readonly PreviewAccessRule[];
  private readonly tokens: PreviewTokens;
  private readonly watchers: PortWatchers;
  private readonly sockets = new WebSocketServer({ noServer: true, maxPayload: 1024 });
  private readonly pinger: NodeJS.Timeout;
  private readonly addresses = new Map<string, { address: string | undefined; at: number }>();
  // No keep-alive: a pooled connection must never outlive the sandbox it was opened to.
  private readonly agent = new http.Agent({ keepAlive: false, maxSockets: 256, maxTotalSockets: 4096 });

  constructor(options: PreviewOptions) {
    const { config } = options;
    this.sessions = options.sessions;
    this.runtime = options.runtime;
    this.log = options.log.child({ component: "preview" });
    this.metrics = options.metrics;
    this.configuredDomain = config.SHIPSHAPE_PREVIEW_DOMAIN;
    this.configuredScheme = config.SHIPSHAPE_PREVIEW_SCHEME;
    this.shareTtlMs = config.SHIPSHAPE_PREVIEW_SHARE_TTL;
    this.socketsPerOwner = config.SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER;
    this.socketIdleMs = config.SHIPSHAPE_PREVIEW_SOCKET_IDLE;
    this.origins = options.origins;
    this.rules = options.rules ?? defaultPreviewRules;
    this.tokens = new PreviewTokens(options.signer);
    this.watchers = new PortWatchers({
      runtime: this.runtime,
      sessions: this.sessions,
      log: this.log,
      describe: (sessionId, p): PreviewPort => ({
        ...p,
        url: p.reachable ? previewPath(sessionId, p.port) : null,
        previewUrl: !p.reachable ? null : this.domain ? `${previewOrigin(this.domain, sessionId, p.port)}/` : previewPath(sessionId, p.port),
      }),
    });
    this.pinger = setInterval(() => {
      for (const ws of this.sockets.clients) {
        if ((ws as WebSocket & { alive?: boolean }).alive === false) ws.terminate();
        else {
          (ws as WebSocket & { alive?: boolean }).alive = false;
          ws.ping();
        }
      }
    }, SOCKET_PING_MS);
    this.pinger.unref();
  }

  /**
   * Decides the preview form from the course's public URL (known once the server listens) and
   * says at start which it is; the path form comes with a warning that names its risk.
   */
  start(publicUrl: string): PreviewForm {
    this.form = choosePreviewForm(this.configuredDomain, this.configuredScheme, publicUrl);
    if (this.form.form === "path") this.log.warn(this.form.warning, { previewForm: "path", example: previewPath("<session>", 8080) });
    else {
      this.log.info("port previews on their own origins", {
        previewForm: "host",
        domain: this.form.origin,
        example: `${previewOrigin(this.form.domain, "<session>", 8080)}/`,
      });
    }
    return this.form;
  }

  /** The preview domain, when previews are served on their own hosts. */
  private get domain(): PreviewDomain | undefined {
    return this.form?.form === "host" ? this.form.domain : undefined;
  }

  /** Whether a Host header names one of this proxy's preview hosts (the public-origin check lets them through). */
  servesHost(host: string | undefined): boolean {
    return this.domain !== undefined && isPreviewHost(host, this.domain);
  }

  matches(req: IncomingMessage, url: URL): boolean {
    if (this.domain && isPreviewHost(req.headers.host, this.domain)) return true;
    const raw = req.url ?? "";
    const p = url.pathname;
    return (
      raw === "/preview" ||
      raw.startsWith("/preview/") ||
      raw.startsWith("/preview?") ||
      p === "/preview" ||
      p.startsWith("/preview/") ||
      p === PORTS_API ||
      p.startsWith(`${PORTS_API}/`) ||
      p === PORTS_SOCKET
    );
  }

  async handle(req: IncomingMessage, res: ServerResponse, ownerId: string | undefined): Promise<void> {
    try {
      // Before start() nothing may be proxied: the form (and so the origin an app runs on) is not decided.
      if (!this.form) throw new PreviewFailure(503, "starting", messages.starting);
      if (this.domain && isPreviewHost(req.headers.host, this.domain)) return await this.handleHost(req, res);
      const pathname = new URL(req.url ?? "/", "http://placeholder").pathname;
      if (pathname === PORTS_API || pathname.startsWith(`${PORTS_API}/`)) return await this.handleApi(req, res, pathname, ownerId);
      if (pathname === PORTS_SOCKET) throw new PreviewFailure(426, "websocket_only", messages.wsOnly);
      return await this.handlePath(req, res, ownerId);
    } catch (e) {
      if (e instanceof PreviewFailure) return this.fail(req, res, e);
      throw e; // ShipshapeError and the unexpected: the server's JSON error answer
    }
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string | undefined): void {
    void this.upgradeAsync(req, socket, head, ownerId).catch((e: unknown) => {
      const failure = e instanceof PreviewFailure ? e : this.failureOf(e);
      this.failSocket(req, socket, failure);
    });
  }

  private async upgradeAsync(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string | undefined): Promise<void> {
    if (!this.form) throw new PreviewFailure(503, "starting", messages.starting);
    if (this.domain && isPreviewHost(req.headers.host, this.domain)) {
      const route = await this.hostRoute(req);
      return this.forwardUpgrade(req, socket, head, route);
    }
    const pathname = new URL(req.url ?? "/", "http://placeholder").pathname;
    if (pathname === PORTS_SOCKET) return this.portsSocket(req, socket, head, ownerId);
    // WARNING: a path-form socket carries the course's cookies, so only the course's own pages may
    // open one: another site must not drive a learner's app as that learner.
    if (!originAllowed(req, this.origins)) {
      throw new PreviewFailure(403, "forbidden_origin", messages.foreignOrigin, `preview WebSocket from a foreign origin (${(req.headers.origin ?? "none").slice(0, 100)})`);
    }
    const route = await this.pathRoute(req, ownerId);
    if (!route) throw new PreviewFailure(404, "use_preview_host", "WebSockets of this preview are on its own host.");
    return this.forwardUpgrade(req, socket, head, route);
  }

  close(): void {
    clearInterval(this.pinger);
    this.watchers.close();
    for (const ws of this.sockets.clients) ws.close(1001, "server shutting down");
    this.sockets.close();
    this.agent.destroy();
  }

  // ── Path form: /preview/<sessionId>/<port>/… on the site's origin ──────────────────────────────

  private async handlePath(req: IncomingMessage, res: ServerResponse, ownerId: string | undefined): Promise<void> {
    const parsed = parsePreviewPath(req.url ?? "");
    if (parsed.ok && parsed.target.rest === "" && !this.domain) {
      // Authorise first: a refusal looks the same with or without the slash.
      await this.authorisePath(parsed.target.sessionId, parsed.target.port, ownerId, req.headers.cookie);
      const q = (req.url ?? "").indexOf("?");
      res.writeHead(308, { location: `${parsed.target.prefix}/${q < 0 ? "" : (req.url ?? "").slice(q)}`, "cache-control": "no-store" }).end();
      return;
    }
    const route = await this.pathRoute(req, ownerId, res);
    if (route) await this.forward(req, res, route);
  }

  /**
   * Authorises a path-form request and returns where it goes. With a preview domain there is no
   * proxying on the site's origin: the owner is sent on to the preview host with an open token
   * (when `res` is given), and undefined is returned.
   */
  private async pathRoute(req: IncomingMessage, ownerId: string | undefined, res?: ServerResponse): Promise<Route | undefined> {
    const parsed = parsePreviewPath(req.url ?? "");
    if (!parsed.ok) {
      throw new PreviewFailure(400, parsed.port !== undefined ? "bad_port" : "bad_address", parsed.port !== undefined ? messages.badPort : messages.badAddress, parsed.reason);
    }
    const { sessionId, port, prefix, rest } = parsed.target;
    const session = await this.authorisePath(sessionId, port, ownerId, req.headers.cookie);
    if (this.domain) {
      if (res) {
        const token = this.tokens.issue({
          purpose: "open",
          sessionId,
          port,
          role: session.role,
          ownerId: session.ownerId,
          expiresAt: Date.now() + OPEN_TOKEN_TTL_MS,
        });
        res.writeHead(303, {
          location: previewAuthUrl(this.domain, { sessionId, port }, token, safeNext(rest || "/")),
          "cache-control": "no-store",
          "referrer-policy": "no-referrer",
        });
        res.end();
      }
      return undefined;
    }
    if (req.headers["service-worker"] === "script") {
      throw new PreviewFailure(403, "service_worker", messages.serviceWorker, "service worker registration through the path form");
    }
    const address = await this.addressOf(sessionId, session.ownerId);
    return {
      mode: "path",
      sessionId,
      ownerId: session.ownerId,
      port,
      address,
      path: rest,
      prefix,
      baseFor: (p) => previewPath(sessionId, p).slice(0, -1),
      publicHost: hostnameOf(req.headers.host) ? req.headers.host : undefined,
      // Only what the app is told about the browser's scheme (as for the owner cookie's Secure flag);
      // it never chooses where the request goes.
      publicProto: (req.socket as { encrypted?: boolean }).encrypted || req.headers["x-forwarded-proto"] === "https" ? "https" : "http",
      previewOrigin: undefined,
    };
  }

  private async authorisePath(sessionId: string, port: number, ownerId: string | undefined, cookies: string | undefined) {
    const session = this.sessions.describe(sessionId);
    if (!session) throw new PreviewFailure(404, "gone", messages.gone, "unknown or ended session");
    const decision = authorizePreview(
      { sessionId, ownerId: session.ownerId, workshopId: session.workshopId ?? undefined, port },
      { ownerId, cookies },
      this.rules,
    );
    if (!decision.allow) throw new PreviewFailure(403, "forbidden", ownerId ? messages.notOwner : messages.private, decision.reason);
    return { ownerId: session.ownerId, role: decision.role };
  }

  // ── Host form: p<port>-<sessionId>.<preview domain> ────────────────────────────────────────────

  private async handleHost(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.url ?? "";
    if (raw === AUTH_PATH || raw.startsWith(`${AUTH_PATH}?`)) return this.exchange(req, res);
    const route = await this.hostRoute(req);
    await this.forward(req, res, route);
  }

  private hostTarget(req: IncomingMessage) {
    const domain = this.domain!;
    const parsed = parsePreviewHost(req.headers.host, domain.hostname);
    if (!parsed.ok) {
      if (hostnameOf(req.headers.host) === domain.hostname) throw new PreviewFailure(404, "no_preview", messages.badAddress);
      throw new PreviewFailure(400, parsed.port !== undefined ? "bad_port" : "bad_address", parsed.port !== undefined ? messages.badPort : messages.badAddress, parsed.reason);
    }
    // Only origin-form targets ("/path"): an absolute URL or "*" names nothing we serve.
    if (!(req.url ?? "").startsWith("/")) throw new PreviewFailure(400, "bad_address", messages.badAddress, "request target is not a path");
    return parsed.target;
  }

  private async hostRoute(req: IncomingMessage): Promise<Route> {
    const domain = this.domain!;
    const { sessionId, port } = this.hostTarget(req);
    const raw = req.url ?? "/";
    if (raw.startsWith(RESERVED_HOST_PATH)) throw new PreviewFailure(404, "reserved", messages.badAddress, "reserved path");
    const grant = this.grantFromCookies(req, sessionId, port);
    if (!grant) throw new PreviewFailure(403, "private", messages.private, "no valid preview cookie for this host");
    const session = this.sessions.describe(sessionId);
    if (!session) throw new PreviewFailure(404, "gone", messages.gone, "unknown or ended session");
    if (session.ownerId !== grant.ownerId) throw new PreviewFailure(403, "private", messages.private, "grant from another owner");
    const address = await this.addressOf(sessionId, session.ownerId);
    const origin = previewOrigin(domain, sessionId, port);
    return {
      mode: "host",
      sessionId,
      ownerId: session.ownerId,
      port,
      address,
      path: raw,
      prefix: undefined,
      baseFor: (p) => previewOrigin(domain, sessionId, p),
      publicHost: new URL(origin).host,
      publicProto: domain.scheme,
      previewOrigin: origin,
    };
  }

  private grantFromCookies(req: IncomingMessage, sessionId: string, port: number): Grant | undefined {
    // Every value is tried: a cookie of the same name tossed in by another site must not hide ours.
    for (const value of cookieValues(req.headers.cookie, this.cookieName)) {
      const grant = this.tokens.read(value, ["access"]);
      if (grant && grant.sessionId === sessionId && grant.port === port) return grant;
    }
    return undefined;
  }

  private get cookieName(): string {
    return this.domain?.scheme === "https" ? PREVIEW_COOKIE_SECURE : PREVIEW_COOKIE;
  }

  /** The preview host trades an open or share token for its own cookie, then drops the token from the URL. */
  private exchange(req: IncomingMessage, res: ServerResponse): void {
    const { sessionId, port } = this.hostTarget(req);
    if (req.method !== "GET" && req.method !== "HEAD") throw new PreviewFailure(405, "method", messages.badToken, "token exchange with " + req.method);
    const url = new URL(req.url ?? "/", "http://placeholder");
    const grant = this.tokens.read(url.searchParams.get("token"), ["open", "share"]);
    if (!grant) throw new PreviewFailure(403, "bad_token", messages.badToken, "invalid or expired token");
    if (grant.sessionId !== sessionId || grant.port !== port) {
      throw new PreviewFailure(403, "bad_token", messages.badToken, `token for ${grant.sessionId}:${grant.port} presented on another host`);
    }
    if (grant.purpose === "open" && !this.tokens.spend(grant)) throw new PreviewFailure(403, "bad_token", messages.badToken, "open token used twice");
    const session = this.sessions.describe(sessionId);
    if (!session || session.ownerId !== grant.ownerId) throw new PreviewFailure(404, "gone", messages.gone, "unknown or ended session");
    const expiresAt = Math.min(session.expiresAt, grant.purpose === "share" ? grant.expiresAt : session.expiresAt);
    const cookie = this.tokens.issue({ purpose: "access", sessionId, port, role: grant.role, ownerId: grant.ownerId, expiresAt });
    const secure = this.domain?.scheme === "https" ? "; Secure" : "";
    const maxAge = Math.max(1, Math.floor((expiresAt - Date.now()) / 1000));
    res.writeHead(303, {
      location: safeNext(url.searchParams.get("next")),
      // Host-only (no Domain), so sibling previews never receive it; Lax, so the first
      // navigation from the course page (a cross-site redirect chain) carries it.
      "set-cookie": `${this.cookieName}=${encodeURIComponent(cookie)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure}`,
      "cache-control": "no-store",
      "referrer-policy": "no-referrer",
    });
    res.end();
    this.log.info("preview opened", { sessionId, port, role: grant.role, via: grant.purpose });
  }

  // ── The API: port list, push socket, share links ───────────────────────────────────────────────

  private async handleApi(req: IncomingMessage, res: ServerResponse, pathname: string, ownerId: string | undefined): Promise<void> {
    const view = ownerId ? this.sessions.current(ownerId) : undefined;
    if (pathname === PORTS_API && req.method === "GET") {
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
      if (view.status.state === "starting") return json(res, 200, { sessionId: view.sessionId, state: "starting", ports: [] });
      return json(res, 200, await this.watchers.read(view.sessionId, view.ownerId));
    }
    const share = new RegExp(`^${PORTS_API}/([^/]+)/share$`).exec(pathname);
    if (share && req.method === "POST") {
      if (!originAllowed(req, this.origins)) throw new ShipshapeError("forbidden", "This request came from another site and was refused.");
      const body = shareBodySchema.parse(await readSmallJson(req));
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
      const port = parsePort(share[1] ?? "");
      if (port === undefined) throw new ShipshapeError("bad_request", messages.badPort);
      if (!this.domain) {
        throw new ShipshapeError(
          "forbidden",
          "Sharing a preview needs previews on their own domain (SHIPSHAPE_PREVIEW_DOMAIN): on the course's own origin, a shared app could act as whoever opens it.",
        );
      }
      const ttl = Math.min(this.shareTtlMs, (body.minutes ?? Infinity) * 60_000);
      const expiresAt = Math.min(Date.now() + ttl, view.expiresAt);
      const token = this.tokens.issue({ purpose: "share", sessionId: view.sessionId, port, role: "share", ownerId: view.ownerId, expiresAt });
      this.log.info("preview shared", { sessionId: view.sessionId, port, expiresAt: new Date(expiresAt).toISOString() });
      return json(res, 200, { url: previewAuthUrl(this.domain, { sessionId: view.sessionId, port }, token), expiresAt: new Date(expiresAt).toISOString() });
    }
    throw new ShipshapeError("not_found", "No such API endpoint.");
  }

  /** `/ws/ports`: the port list, pushed whenever it changes. Documented in docs/preview.md. */
  private portsSocket(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string | undefined): void {
    if (!originAllowed(req, this.origins)) throw new PreviewFailure(403, "forbidden", "Forbidden origin", "ports socket from a foreign origin");
    // No owner cookie yet (the page's first visit, before POST /api/sessions): not a refusal,
    // just no sandbox; the socket says so and the page looks again once its terminal is ready.
    this.sockets.handleUpgrade(req, socket, head, (ws) => {
      (ws as WebSocket & { alive?: boolean }).alive = true;
      ws.on("pong", () => ((ws as WebSocket & { alive?: boolean }).alive = true));
      ws.on("message", () => {}); // nothing to say; maxPayload bounds it
      let unsubscribe: (() => void) | undefined;
      ws.on("close", () => unsubscribe?.());
      const send = (message: object) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: "ports", ...message }));
      const none = (reason: string) => {
        send({ state: "none", ports: [], message: reason });
        ws.close(4004, "no sandbox");
      };
      const view = ownerId ? this.sessions.current(ownerId) : undefined;
      if (!ownerId || !view) return none("You have no sandbox yet.");
      if (view.status.state === "starting") send({ sessionId: view.sessionId, state: "starting", ports: [] });
      this.sessions.sandboxOf(view.sessionId, ownerId).then(
        () => {
          if (ws.readyState !== ws.OPEN) return;
          unsubscribe = this.watchers.subscribe(view.sessionId, ownerId, (snapshot) => send(snapshot), none);
        },
        (e: unknown) => none(toShipshapeError(e).userMessage),
      );
    });
  }

  // ── Forwarding ─────────────────────────────────────────────────────────────────────────────────

  /** The sandbox's address on the sandbox network: the only place previews connect to. */
  private async addressOf(sessionId: string, ownerId: string): Promise<string> {
    let sandboxId: string;
    try {
      sandboxId = await this.sessions.sandboxOf(sessionId, ownerId);
    } catch (e) {
      const err = toShipshapeError(e);
      throw new PreviewFailure(err.status === 500 ? 502 : err.status, err.code, err.code === "not_found" ? messages.gone : err.userMessage, `session: ${err.code}`);
    }
    // WARNING: cached only briefly, so an address that went back to the pool after the sandbox
    // died is not reused for long; sandboxOf above has just confirmed the session is live.
    const cached = this.addresses.get(sandboxId);
    let address = cached && Date.now() - cached.at < ADDRESS_CACHE_MS ? cached.address : undefined;
    if (!address) {
      const info = await this.runtime.inspect(sandboxId);
      address = info?.running ? info.address : undefined;
      this.addresses.set(sandboxId, { address, at: Date.now() });
      if (this.addresses.size > 10_000) this.addresses.clear();
    }
    if (!address) throw new PreviewFailure(503, "not_running", messages.notRunning, "sandbox has no address");
    return address;
  }

  private forward(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void> {
    const headers = upstreamRequestHeaders(req.headers, { ...route, upgrade: false });
    headers.connection = "close";
    return new Promise<void>((resolve) => {
      const upstream = http.request({
        host: route.address,
        port: route.port,
        method: req.method,
        path: route.path,
        headers,
        agent: this.agent,
        setHost: false,
        timeout: IDLE_TIMEOUT_MS,
      });
      const connectTimer = this.connectTimeout(upstream);
      upstream.on("timeout", () => upstream.destroy(Object.assign(new Error("upstream idle"), { code: "ETIMEDOUT" })));
      upstream.on("response", (up) => {
        clearTimeout(connectTimer);
        const pairs = downstreamResponseHeaders(up.rawHeaders, { ...route, sandboxAddress: route.address });
        try {
          res.writeHead(up.statusCode ?? 502, pairs.flat());
        } catch (e) {
          // Node refuses headers it would not send; the app's answer cannot be passed on.
          up.destroy();
          this.fail(req, res, new PreviewFailure(502, "bad_upstream", `The app on port ${route.port} sent a response that cannot be passed on.`, String(e)));
          return resolve();
        }
        // Streamed both ways with back-pressure: nothing is buffered whole, whatever the size.
        pipeline(up, res, () => resolve());
      });
      upstream.on("error", (e) => {
        clearTimeout(connectTimer);
        if (!res.headersSent) this.fail(req, res, this.upstreamFailure(e, route));
        else res.destroy();
        resolve();
      });
      res.on("close", () => {
        if (!res.writableFinished) upstream.destroy();
      });
      pipeline(req, upstream, () => {});
    });
  }

  /**
   * Counts a WebSocket against its sandbox's owner until the browser's side closes (which every
   * path below ends in), or refuses it past the cap: one learner's app (or a share link passed
   * around) cannot hold an unbounded number of the server's sockets.
   */
  private holdSocket(socket: Duplex, ownerId: string): void {
    // Gone while it was being authorised: its "close" has passed, so it must not be counted.
    if (socket.destroyed) throw new PreviewFailure(400, "client_gone", messages.badAddress);
    const open = this.openSockets.get(ownerId) ?? 0;
    if (open >= this.socketsPerOwner) {
      throw new PreviewFailure(429, "too_many_sockets", messages.tooManySockets(this.socketsPerOwner), `owner has ${open} preview WebSockets open`);
    }
    this.openSockets.set(ownerId, open + 1);
    socket.once("close", () => {
      const left = (this.openSockets.get(ownerId) ?? 1) - 1;
      if (left > 0) this.openSockets.set(ownerId, left);
      else this.openSockets.delete(ownerId);
    });
  }

  private forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, route: Route): void {
    this.holdSocket(socket, route.ownerId);
    const headers = upstreamRequestHeaders(req.headers, { ...route, upgrade: true });
    const upstream = http.request({
      host: route.address,
      port: route.port,
      method: req.method,
      path: route.path,
      headers,
      agent: this.agent,
      setHost: false,
    });
    const connectTimer = this.connectTimeout(upstream);
    socket.on("error", () => upstream.destroy());
    upstream.on("upgrade", (up, upSocket: Socket, upHead: Buffer) => {
      clearTimeout(connectTimer);
      const pairs = downstreamResponseHeaders(up.rawHeaders, { ...route, sandboxAddress: route.address }, true);
      socket.write(
        `HTTP/1.1 ${up.statusCode ?? 101} ${up.statusMessage || "Switching Protocols"}\r\n` + pairs.map(([n, v]) => `${n}: ${v}\r\n`).join("") + "\r\n",
      );
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      upSocket.setTimeout(0);
      upSocket.setNoDelay(true);
      upSocket.setKeepAlive(true);
      const end = () => {
        upSocket.destroy();
        socket.destroy();
      };
      // Every byte either way passes the browser's socket, so its inactivity timer is the
      // socket's idle time: a forgotten tab or a stalled app gives its slot back.
      (socket as Socket).setTimeout(this.socketIdleMs, () => {
        this.log.info("preview websocket idle, closed", { sessionId: route.sessionId, port: route.port, idleMs: this.socketIdleMs });
        end();
      });
      upSocket.on("error", end);
      socket.on("error", end);
      upSocket.pipe(socket).pipe(upSocket);
      upSocket.on("close", end);
      socket.on("close", end);
    });
    upstream.on("response", (up) => {
      // The app declined the upgrade: pass its answer on, then close.
      clearTimeout(connectTimer);
      const pairs = downstreamResponseHeaders(up.rawHeaders, { ...route, sandboxAddress: route.address });
      socket.write(
        `HTTP/1.1 ${up.statusCode ?? 502} ${up.statusMessage ?? ""}\r\n` +
          pairs.filter(([n]) => n.toLowerCase() !== "content-length").map(([n, v]) => `${n}: ${v}\r\n`).join("") +
          "connection: close\r\n\r\n",
      );
      pipeline(up, socket, () => socket.destroy());
    });
    upstream.on("error", (e) => {
      clearTimeout(connectTimer);
      this.failSocket(req, socket, this.upstreamFailure(e, route));
    });
    upstream.end();
  }

  private connectTimeout(upstream: http.ClientRequest): NodeJS.Timeout {
    const timer = setTimeout(() => upstream.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })), CONNECT_TIMEOUT_MS);
    upstream.once("socket", (s: Socket) => {
      if (!s.connecting) clearTimeout(timer);
      else s.once("connect", () => clearTimeout(timer));
    });
    return timer;
  }

  private upstreamFailure(e: unknown, route: Route): PreviewFailure {
    const failure = this.describeUpstreamFailure(e, route);
    this.metrics?.previewErrors.inc({ reason: failure.code });
    return failure;
  }

  private describeUpstreamFailure(e: unknown, route: Route): PreviewFailure {
    const code = (e as { code?: string }).code;
    const port = route.port;
    switch (code) {
      case "ECONNREFUSED":
        return new PreviewFailure(502, "nothing_listening", `Nothing is listening on port ${port} in your sandbox yet. Start your app, then reload.`);
      case "ETIMEDOUT":
        return new PreviewFailure(504, "timeout", `Port ${port} in your sandbox did not answer in time. Check that your app is running, then reload.`);
      case "EHOSTUNREACH":
      case "ENETUNREACH":
        return new PreviewFailure(503, "not_running", messages.notRunning);
      default:
        return new PreviewFailure(
          502,
          "upstream_closed",
          `The app on port ${port} closed the connection without answering. Its logs may say why (docker logs <container>); then reload.`,
        );
    }
  }

  private failureOf(e: unknown): PreviewFailure {
    const err = toShipshapeError(e);
    if (err.status >= 500) this.log.error("preview failed", { code: err.code, detail: err.detail });
    return new PreviewFailure(err.status, err.code, err.userMessage);
  }

  // ── Answers ────────────────────────────────────────────────────────────────────────────────────

  private logRefusal(req: IncomingMessage, failure: PreviewFailure): void {
    if (!failure.reason) return;
    this.log.warn("preview refused", {
      sessionId: refusedSessionId(req, this.domain),
      reason: failure.reason,
      status: failure.status,
      method: req.method,
      host: (req.headers.host ?? "").slice(0, 100),
      url: (req.url ?? "").slice(0, 200),
    });
  }

  private fail(req: IncomingMessage, res: ServerResponse, failure: PreviewFailure): void {
    this.logRefusal(req, failure);
    if (res.headersSent) return void res.destroy();
    const html = /\btext\/html\b/.test(req.headers.accept ?? "");
    res.writeHead(failure.status, {
      "content-type": html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "x-shipshape-preview": failure.code,
    });
    res.end(req.method === "HEAD" ? undefined : html ? errorPage(failure) : `${failure.message}\n`);
  }

  private failSocket(req: IncomingMessage, socket: Duplex, failure: PreviewFailure): void {
    this.logRefusal(req, failure);
    if (socket.destroyed) return;
    const body = `${failure.message}\n`;
    socket.end(
      `HTTP/1.1 ${failure.status} ${http.STATUS_CODES[failure.status] ?? "Error"}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nX-Shipshape-Preview: ${failure.code}\r\n\r\n${body}`,
    );
  }
}

/** For the log: the session a refused request named, as far as it can be told (raw, bounded). */
function refusedSessionId(req: IncomingMessage, domain: PreviewDomain | undefined): string | null {
  if (domain && isPreviewHost(req.headers.host, domain)) {
    const m = /^p[^-.]*-([^.]{0,64})/.exec((req.headers.host ?? "").toLowerCase());
    return m?.[1] ?? null;
  }
  const m = /^\/preview\/([^/?]{0,64})/.exec(req.url ?? "");
  return m?.[1] ?? null;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function errorPage(failure: PreviewFailure): string {
  const title = failure.status === 403 ? "Not your preview" : failure.status < 500 ? "No preview here" : "Your app is not answering";
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title>
<style>
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  main { max-width: 36rem; margin: 15vh auto; padding: 0 1.5rem; line-height: 1.5; }
  h1 { font-size: 1.4rem; }
</style></head>
<body><main><h1>${escapeHtml(title)}</h1><p>${escapeHtml(failure.message)}</p></main></body>
</html>
`;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

async function readSmallJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 4096) throw new ShipshapeError("payload_too_large", "The request is too large.");
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new ShipshapeError("bad_request", "The request body is not valid JSON.");
  }
}
