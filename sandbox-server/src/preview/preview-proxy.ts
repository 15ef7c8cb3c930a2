import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { ServerMetrics } from "../metrics.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import type { EngineEventFeeds } from "../sessions/engine-watch.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { Signer } from "../common/signing.ts";
import { originAllowed, type HttpMount } from "../common/http.ts";
import type { OriginPolicy } from "../common/public-origin.ts";
import { PORTS_API, PORTS_SOCKET } from "../../../contracts/preview-api.ts";
import { authorizePreview, defaultPreviewRules, type PreviewAccessRule } from "./preview-access.ts";
import { PreviewApi, previewCookieName } from "./preview-api.ts";
import { messages, PreviewAnswers, PreviewFailure } from "./preview-failure.ts";
import { PreviewForwarder, type Route } from "./preview-forwarding.ts";
import { cookieValues } from "./preview-headers.ts";
import {
  AUTH_PATH,
  choosePreviewForm,
  hostnameOf,
  isPreviewHost,
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
import type { Grant } from "./preview-tokens.ts";

// Where they have always been imported from; the contract owns them now.
export { PORTS_API, PORTS_SOCKET } from "../../../contracts/preview-api.ts";

/** An open link is exchanged right after the redirect; a minute covers slow networks. */
const OPEN_TOKEN_TTL_MS = 60_000;

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
  /** The inner engines' event feeds, shared with the sandbox panel. */
  feeds: EngineEventFeeds;
  signer: Signer;
  log: Logger;
  /** Counts previews that could not reach the learner's app, by reason. */
  metrics?: Pick<ServerMetrics, "previewErrors">;
  /** Which pages may change things (share links, the ports socket): the public URL's origin. */
  origins: OriginPolicy;
  /** Who may open a preview; extend for instructors (see preview-access.ts). */
  rules?: readonly PreviewAccessRule[];
}

/**
 * The port preview: opens what a learner published inside their sandbox, over HTTP and WebSocket,
 * in the path form on the site's origin or the host form on a preview domain (docs/preview.md).
 * This facade routes and authorises; the port list, share links and the token exchange are the
 * preview API (preview-api.ts), carrying the request to the app is preview forwarding
 * (preview-forwarding.ts), and refusals are answered by preview-failure.ts.
 *
 * WARNING: the only way to the network is `addressOf`, the sandbox of a session the viewer was
 * authorised for, as the runtime reports it. Nothing the client sends (path, Host, X-Forwarded-*,
 * tokens) can name an address; tokens name a session and a port, both checked again here.
 */
export class PreviewProxy implements HttpMount {
  private readonly sessions: SessionManager;
  private readonly log: Logger;
  private readonly configuredDomain: string | undefined;
  private readonly configuredScheme: "https" | "http";
  /** Decided by start(), once the server's public URL (and so its port) is known. */
  private form: PreviewForm | undefined;
  private readonly origins: OriginPolicy;
  private readonly rules: readonly PreviewAccessRule[];
  private readonly api: PreviewApi;
  private readonly forwarder: PreviewForwarder;
  private readonly answers: PreviewAnswers;

  constructor(options: PreviewOptions) {
    const { config } = options;
    this.sessions = options.sessions;
    this.log = options.log.child({ component: "preview" });
    this.configuredDomain = config.SHIPSHAPE_PREVIEW_DOMAIN;
    this.configuredScheme = config.SHIPSHAPE_PREVIEW_SCHEME;
    this.origins = options.origins;
    this.rules = options.rules ?? defaultPreviewRules;
    const domain = () => this.domain;
    this.answers = new PreviewAnswers(this.log, domain);
    this.api = new PreviewApi({
      sessions: this.sessions,
      runtime: options.runtime,
      feeds: options.feeds,
      signer: options.signer,
      log: this.log,
      origins: this.origins,
      domain,
      shareTtlMs: config.SHIPSHAPE_PREVIEW_SHARE_TTL,
    });
    this.forwarder = new PreviewForwarder({
      sessions: this.sessions,
      runtime: options.runtime,
      log: this.log,
      metrics: options.metrics,
      answers: this.answers,
      socketsPerOwner: config.SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER,
      socketIdleMs: config.SHIPSHAPE_PREVIEW_SOCKET_IDLE,
    });
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
      if (pathname === PORTS_API || pathname.startsWith(`${PORTS_API}/`)) return await this.api.handle(req, res, pathname, ownerId);
      if (pathname === PORTS_SOCKET) throw new PreviewFailure(426, "websocket_only", messages.wsOnly);
      return await this.handlePath(req, res, ownerId);
    } catch (e) {
      if (e instanceof PreviewFailure) return this.answers.fail(req, res, e);
      throw e; // ShipshapeError and the unexpected: the server's JSON error answer
    }
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string | undefined): void {
    void this.upgradeAsync(req, socket, head, ownerId).catch((e: unknown) => {
      const failure = e instanceof PreviewFailure ? e : this.answers.failureOf(e);
      this.answers.failSocket(req, socket, failure);
    });
  }

  private async upgradeAsync(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string | undefined): Promise<void> {
    if (!this.form) throw new PreviewFailure(503, "starting", messages.starting);
    if (this.domain && isPreviewHost(req.headers.host, this.domain)) {
      const route = await this.hostRoute(req);
      return this.forwarder.forwardUpgrade(req, socket, head, route);
    }
    const pathname = new URL(req.url ?? "/", "http://placeholder").pathname;
    if (pathname === PORTS_SOCKET) return this.api.portsSocket(req, socket, head, ownerId);
    // WARNING: a path-form socket carries the course's cookies, so only the course's own pages may
    // open one: another site must not drive a learner's app as that learner.
    if (!originAllowed(req, this.origins)) {
      throw new PreviewFailure(403, "forbidden_origin", messages.foreignOrigin, `preview WebSocket from a foreign origin (${(req.headers.origin ?? "none").slice(0, 100)})`);
    }
    const route = await this.pathRoute(req, ownerId);
    if (!route) throw new PreviewFailure(404, "use_preview_host", "WebSockets of this preview are on its own host.");
    return this.forwarder.forwardUpgrade(req, socket, head, route);
  }

  close(): void {
    this.api.close();
    this.forwarder.close();
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
    if (route) await this.forwarder.forward(req, res, route);
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
        const token = this.api.tokens.issue({
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
    const address = await this.forwarder.addressOf(sessionId, session.ownerId);
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
    const session = await this.sessions.describe(sessionId);
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
    if (raw === AUTH_PATH || raw.startsWith(`${AUTH_PATH}?`)) return this.api.exchange(req, res, this.hostTarget(req));
    const route = await this.hostRoute(req);
    await this.forwarder.forward(req, res, route);
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
    const session = await this.sessions.describe(sessionId);
    if (!session) throw new PreviewFailure(404, "gone", messages.gone, "unknown or ended session");
    if (session.ownerId !== grant.ownerId) throw new PreviewFailure(403, "private", messages.private, "grant from another owner");
    const address = await this.forwarder.addressOf(sessionId, session.ownerId);
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
    for (const value of cookieValues(req.headers.cookie, previewCookieName(this.domain))) {
      const grant = this.api.tokens.read(value, ["access"]);
      if (grant && grant.sessionId === sessionId && grant.port === port) return grant;
    }
    return undefined;
  }
}
