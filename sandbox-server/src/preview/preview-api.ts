import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { z } from "zod";
import { ShipshapeError, toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import type { EngineEventFeeds } from "../sessions/engine-watch.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { Signer } from "../common/signing.ts";
import { json, originAllowed, readJsonBody } from "../common/http.ts";
import type { OriginPolicy } from "../common/public-origin.ts";
import { CloseCode } from "../../../contracts/close-codes.ts";
import {
  PORTS_API,
  type PortsMessage,
  type PortsSnapshot,
  type PublishedPort,
  type ShareLinkAnswer,
} from "../../../contracts/preview-api.ts";
import { messages, PreviewFailure } from "./preview-failure.ts";
import { PREVIEW_COOKIE, PREVIEW_COOKIE_SECURE } from "./preview-headers.ts";
import { parsePort, previewAuthUrl, previewOrigin, previewPath, safeNext, type PreviewDomain } from "./preview-routes.ts";
import { PreviewTokens } from "./preview-tokens.ts";
import { PortWatchers, type PortsSnapshot as WatchedSnapshot } from "./port-watcher.ts";

const SOCKET_PING_MS = 30_000;
/** A share request is `{ "minutes": n }` at most. */
const SHARE_BODY_MAX_BYTES = 4096;

const shareBodySchema = z.object({ minutes: z.number().int().min(1).max(24 * 60).optional() }).strict();

// The watcher builds what the API sends: its shape must stay the contract's, both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const snapshotIsTheContract: Same<WatchedSnapshot, PortsSnapshot> = true;
void snapshotIsTheContract;

/** The preview host's cookie: `__Host-`-less on plain HTTP, where the prefix would be refused. */
export function previewCookieName(domain: PreviewDomain | undefined): string {
  return domain?.scheme === "https" ? PREVIEW_COOKIE_SECURE : PREVIEW_COOKIE;
}

/**
 * The preview API: the port list (`GET /api/sessions/current/ports` and the `/ws/ports` push
 * socket), share links (`POST /api/sessions/current/ports/<port>/share`), and the preview host's
 * token exchange (an open or share token traded for the host's own cookie). Shapes are in
 * contracts/preview-api.ts.
 */
export class PreviewApi {
  private readonly sessions: SessionManager;
  private readonly log: Logger;
  private readonly origins: OriginPolicy;
  private readonly domain: () => PreviewDomain | undefined;
  private readonly shareTtlMs: number;
  readonly tokens: PreviewTokens;
  private readonly watchers: PortWatchers;
  private readonly sockets = new WebSocketServer({ noServer: true, maxPayload: 1024 });
  private readonly pinger: NodeJS.Timeout;

  constructor(options: {
    sessions: SessionManager;
    runtime: SandboxRuntime;
    feeds: EngineEventFeeds;
    signer: Signer;
    log: Logger;
    origins: OriginPolicy;
    /** The preview domain once start() decided the form; undefined for the path form. */
    domain: () => PreviewDomain | undefined;
    shareTtlMs: number;
  }) {
    this.sessions = options.sessions;
    this.log = options.log;
    this.origins = options.origins;
    this.domain = options.domain;
    this.shareTtlMs = options.shareTtlMs;
    this.tokens = new PreviewTokens(options.signer);
    this.watchers = new PortWatchers({
      runtime: options.runtime,
      sessions: this.sessions,
      feeds: options.feeds,
      log: this.log,
      describe: (sessionId, p): PublishedPort => {
        const domain = this.domain();
        return {
          ...p,
          url: p.reachable ? previewPath(sessionId, p.port) : null,
          previewUrl: !p.reachable ? null : domain ? `${previewOrigin(domain, sessionId, p.port)}/` : previewPath(sessionId, p.port),
        };
      },
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

  close(): void {
    clearInterval(this.pinger);
    this.watchers.close();
    for (const ws of this.sockets.clients) ws.close(CloseCode.goingAway, "server shutting down");
    this.sockets.close();
  }

  /** `GET /api/sessions/current/ports` and `POST …/<port>/share`. */
  async handle(req: IncomingMessage, res: ServerResponse, pathname: string, ownerId: string | undefined): Promise<void> {
    const view = ownerId ? await this.sessions.current(ownerId) : undefined;
    if (pathname === PORTS_API && req.method === "GET") {
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
      const snapshot: PortsSnapshot =
        view.status.state === "starting" ? { sessionId: view.sessionId, state: "starting", ports: [] } : await this.watchers.read(view.sessionId, view.ownerId);
      return json(res, 200, snapshot);
    }
    const share = new RegExp(`^${PORTS_API}/([^/]+)/share$`).exec(pathname);
    if (share && req.method === "POST") {
      if (!originAllowed(req, this.origins)) throw new ShipshapeError("forbidden", "This request came from another site and was refused.");
      const body = shareBodySchema.parse(await readJsonBody(req, SHARE_BODY_MAX_BYTES));
      if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
      const port = parsePort(share[1] ?? "");
      if (port === undefined) throw new ShipshapeError("bad_request", messages.badPort);
      const domain = this.domain();
      if (!domain) {
        throw new ShipshapeError(
          "forbidden",
          "Sharing a preview needs previews on their own domain (SHIPSHAPE_PREVIEW_DOMAIN): on the course's own origin, a shared app could act as whoever opens it.",
        );
      }
      const ttl = Math.min(this.shareTtlMs, (body.minutes ?? Infinity) * 60_000);
      const expiresAt = Math.min(Date.now() + ttl, view.expiresAt);
      const token = this.tokens.issue({ purpose: "share", sessionId: view.sessionId, port, role: "share", ownerId: view.ownerId, expiresAt });
      this.log.info("preview shared", { sessionId: view.sessionId, port, expiresAt: new Date(expiresAt).toISOString() });
      const answer: ShareLinkAnswer = { url: previewAuthUrl(domain, { sessionId: view.sessionId, port }, token), expiresAt: new Date(expiresAt).toISOString() };
      return json(res, 200, answer);
    }
    throw new ShipshapeError("not_found", "No such API endpoint.");
  }

  /** `/ws/ports`: the port list, pushed whenever it changes. Documented in docs/preview.md. */
  portsSocket(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string | undefined): void {
    if (!originAllowed(req, this.origins)) throw new PreviewFailure(403, "forbidden", "Forbidden origin", "ports socket from a foreign origin");
    // No owner cookie yet (the page's first visit, before POST /api/sessions): not a refusal,
    // just no sandbox; the socket says so and the page looks again once its terminal is ready.
    this.sockets.handleUpgrade(req, socket, head, (ws) => {
      (ws as WebSocket & { alive?: boolean }).alive = true;
      ws.on("pong", () => ((ws as WebSocket & { alive?: boolean }).alive = true));
      ws.on("message", () => {}); // nothing to say; maxPayload bounds it
      let unsubscribe: (() => void) | undefined;
      ws.on("close", () => unsubscribe?.());
      const send = (message: PortsMessage) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(message));
      const none = (reason: string) => {
        send({ type: "ports", state: "none", ports: [], message: reason });
        ws.close(CloseCode.unknownSession, "no sandbox");
      };
      void (async () => {
        const view = ownerId ? await this.sessions.current(ownerId) : undefined;
        if (!ownerId || !view) return none("You have no sandbox yet.");
        if (view.status.state === "starting") send({ type: "ports", sessionId: view.sessionId, state: "starting", ports: [] });
        await this.sessions.sandboxOf(view.sessionId, ownerId);
        if (ws.readyState !== ws.OPEN) return;
        unsubscribe = this.watchers.subscribe(view.sessionId, ownerId, (snapshot) => send({ type: "ports", ...snapshot }), none);
      })().catch((e: unknown) => none(toShipshapeError(e).userMessage));
    });
  }

  /**
   * On the preview host: trades an open or share token for the host's own cookie, then drops the
   * token from the URL. `target` is the host's session and port, already parsed.
   */
  async exchange(req: IncomingMessage, res: ServerResponse, target: { sessionId: string; port: number }): Promise<void> {
    const { sessionId, port } = target;
    const domain = this.domain();
    if (req.method !== "GET" && req.method !== "HEAD") throw new PreviewFailure(405, "method", messages.badToken, "token exchange with " + req.method);
    const url = new URL(req.url ?? "/", "http://placeholder");
    const grant = this.tokens.read(url.searchParams.get("token"), ["open", "share"]);
    if (!grant) throw new PreviewFailure(403, "bad_token", messages.badToken, "invalid or expired token");
    if (grant.sessionId !== sessionId || grant.port !== port) {
      throw new PreviewFailure(403, "bad_token", messages.badToken, `token for ${grant.sessionId}:${grant.port} presented on another host`);
    }
    if (grant.purpose === "open" && !this.tokens.spend(grant)) throw new PreviewFailure(403, "bad_token", messages.badToken, "open token used twice");
    const session = await this.sessions.describe(sessionId);
    if (!session || session.ownerId !== grant.ownerId) throw new PreviewFailure(404, "gone", messages.gone, "unknown or ended session");
    const expiresAt = Math.min(session.expiresAt, grant.purpose === "share" ? grant.expiresAt : session.expiresAt);
    const cookie = this.tokens.issue({ purpose: "access", sessionId, port, role: grant.role, ownerId: grant.ownerId, expiresAt });
    const secure = domain?.scheme === "https" ? "; Secure" : "";
    const maxAge = Math.max(1, Math.floor((expiresAt - Date.now()) / 1000));
    res.writeHead(303, {
      location: safeNext(url.searchParams.get("next")),
      // Host-only (no Domain), so sibling previews never receive it; Lax, so the first
      // navigation from the course page (a cross-site redirect chain) carries it.
      "set-cookie": `${previewCookieName(domain)}=${encodeURIComponent(cookie)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure}`,
      "cache-control": "no-store",
      "referrer-policy": "no-referrer",
    });
    res.end();
    this.log.info("preview opened", { sessionId, port, role: grant.role, via: grant.purpose });
  }
}
