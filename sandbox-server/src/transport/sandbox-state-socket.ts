import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { json, originAllowed, type HttpMount } from "../common/http.ts";
import type { OriginPolicy } from "../common/public-origin.ts";
import { toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SandboxStateWatchers } from "../inspector/state-watcher.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import { CloseCode } from "../../../contracts/close-codes.ts";
import { SANDBOX_STATE_SOCKET, type SandboxStateMessage } from "../../../contracts/sandbox-state.ts";

const HEARTBEAT_MS = 30_000;
/** A page that asks for logs faster than this is ignored until the gap has passed. */
const LOGS_MIN_GAP_MS = 500;

/**
 * `/ws/sandbox-state`: the sandbox panel's live picture of the learner's own engine
 * (docs/protocol.md). Same-origin pages with the owner cookie only; the socket watches the
 * owner's current session. The page may ask for one container's last log lines at a time.
 */
export class SandboxStateSockets implements HttpMount {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024, perMessageDeflate: false });
  private readonly alive = new WeakSet<WebSocket>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly deps: { watchers: SandboxStateWatchers; sessions: SessionManager; origins: OriginPolicy; log: Logger };

  constructor(deps: { watchers: SandboxStateWatchers; sessions: SessionManager; origins: OriginPolicy; log: Logger }) {
    this.deps = deps;
    this.heartbeat = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (!this.alive.has(ws)) {
          ws.terminate();
          continue;
        }
        this.alive.delete(ws);
        ws.ping();
      }
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  matches(_req: IncomingMessage, url: URL): boolean {
    return url.pathname === SANDBOX_STATE_SOCKET;
  }

  async handle(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    json(res, 426, { error: "upgrade_required", message: "This address only speaks WebSocket." });
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string | undefined): void {
    if (!originAllowed(req, this.deps.origins)) {
      this.deps.log.warn("sandbox state socket refused: foreign origin", { origin: req.headers.origin ?? null });
      socket.end("HTTP/1.1 403 Forbidden origin\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nForbidden origin\n");
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.serve(ws, ownerId).catch(() => ws.close(1011, "internal error"));
    });
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const ws of this.wss.clients) ws.close(1001, "server shutting down");
    this.wss.close();
  }

  private async serve(ws: WebSocket, ownerId: string | undefined): Promise<void> {
    const { sessions, watchers } = this.deps;
    this.alive.add(ws);
    ws.on("pong", () => this.alive.add(ws));
    let unsubscribe: (() => void) | undefined;
    ws.on("close", () => unsubscribe?.());
    const send = (message: SandboxStateMessage) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
    };
    // No owner cookie yet, or no session: not a refusal, just no sandbox; the page looks again
    // once its terminal is ready.
    const none = (message: string) => {
      send({ type: "none", message });
      ws.close(CloseCode.unknownSession, "no sandbox");
    };
    const view = ownerId ? await sessions.current(ownerId) : undefined;
    if (!ownerId || !view) return none("You have no sandbox yet.");
    if (view.status.state === "starting") send({ type: "starting", sessionId: view.sessionId });
    let lastLogs = 0;
    ws.on("message", (data, isBinary) => {
      if (isBinary || Date.now() - lastLogs < LOGS_MIN_GAP_MS) return;
      let request: unknown;
      try {
        request = JSON.parse(String(data));
      } catch {
        return;
      }
      const r = request as { type?: unknown; container?: unknown };
      if (r?.type !== "logs" || typeof r.container !== "string") return;
      lastLogs = Date.now();
      const container = r.container;
      watchers.logs(view.sessionId, ownerId, container).then(
        (lines) => send({ type: "logs", container: container.slice(0, 64), lines }),
        (e: unknown) => send({ type: "logs", container: container.slice(0, 64), lines: [], error: toShipshapeError(e).userMessage }),
      );
    });
    sessions.sandboxOf(view.sessionId, ownerId).then(
      () => {
        if (ws.readyState !== ws.OPEN) return;
        unsubscribe = watchers.subscribe(view.sessionId, ownerId, (s) => send({ type: "state", sessionId: s.sessionId, state: s.state, changes: s.changes }), none);
      },
      (e: unknown) => none(toShipshapeError(e).userMessage),
    );
  }
}
