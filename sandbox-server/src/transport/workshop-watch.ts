import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { AttachedBrowser } from "../sessions/terminal-hub.ts";
import { InstructorAuth } from "../workshops/instructor-auth.ts";
import type { WorkshopService } from "../workshops/workshop-service.ts";
import { json, originAllowed, readCookie, type HttpMount } from "../common/http.ts";
import { CloseCode } from "../../../contracts/close-codes.ts";
import { MAX_FRAME_BYTES, type WatchMessage } from "../../../contracts/terminal-protocol.ts";
import type { CookieNames, OriginPolicy } from "../common/public-origin.ts";

export const WATCH_PATH = "/ws/watch";

interface WatchDeps {
  workshops: WorkshopService;
  auth: InstructorAuth;
  /** Which pages may open a viewer: the public URL's (scheme included). */
  origins: OriginPolicy;
  cookies: CookieNames;
  log: Logger;
}
const HEARTBEAT_MS = 15_000;
const SIZE_CHECK_MS = 1_000;
/** A viewer that falls this far behind is dropped (it reconnects and gets a fresh replay). */
const MAX_SOCKET_BUFFER = 2 * 1024 * 1024;
const idPattern = /^[A-Za-z0-9_-]{1,64}$/;
const terminalPattern = /^[a-z0-9-]{1,32}$/;

/**
 * `GET /ws/watch?workshop=W&learner=M&terminal=main`: an instructor's read-only view of a
 * learner's shell. The upgrade is refused unless the Origin is the site's, the instructor
 * cookie is valid and its account owns the workshop (or is an admin); the learner must be a member of that workshop with the shell open.
 *
 * WARNING: nothing received on this socket reaches the learner's shell. Binary frames are dropped
 * here, and the client is marked read-only so the hub would drop them too.
 *
 * The viewer never slows the learner: its output is acknowledged here as it is sent (the hub's
 * flow control follows the learner's own browser); a viewer whose socket backs up is cut off.
 *
 * Server → viewer: binary output (first the replayed screen); JSON `{"type":"size",cols,rows}`
 * before the replay and whenever the learner's terminal changes size; `{"type":"ready",learner,
 * terminal}`; the learner's notices. Viewer → server: only `{"type":"ping","t":N}` is answered.
 * Close 4004 (with the reason) when the learner or the shell is not there, 4011 when it goes.
 */
export class WorkshopWatchSockets implements HttpMount {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  private readonly alive = new WeakSet<WebSocket>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly deps: WatchDeps;
  private readonly log: Logger;

  constructor(deps: WatchDeps) {
    this.deps = deps;
    this.log = deps.log.child({ component: "workshop-watch" });
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
    return url.pathname === WATCH_PATH;
  }

  async handle(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    json(res, 426, { error: "upgrade_required", message: "This address only speaks WebSocket." });
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${text}\n`);
    };
    this.upgradeChecked(req, socket, head, refuse).catch((e: unknown) => {
      this.log.error("watch upgrade failed", { error: String(e) });
      refuse(500, "Internal error");
    });
  }

  private async upgradeChecked(req: IncomingMessage, socket: Duplex, head: Buffer, refuse: (status: number, text: string) => void): Promise<void> {
    if (!originAllowed(req, this.deps.origins)) {
      this.log.warn("watch refused: foreign origin", { origin: req.headers.origin ?? null });
      return refuse(403, "Forbidden origin");
    }
    const cookie = readCookie(req, this.deps.cookies.instructor);
    const instructor = await this.deps.auth.whoIs(cookie);
    if (!instructor) return refuse(403, "Instructors only: sign in first");
    const url = new URL(req.url ?? "/", "http://placeholder");
    const workshopId = url.searchParams.get("workshop") ?? "";
    const memberId = url.searchParams.get("learner") ?? "";
    const terminal = url.searchParams.get("terminal") ?? "main";
    if (!idPattern.test(workshopId) || !idPattern.test(memberId) || !terminalPattern.test(terminal)) {
      return refuse(400, "Bad request: workshop, learner and terminal are required");
    }
    // Only the workshop's owner or an admin watches its learners (an unknown workshop closes 4004 below).
    const owner = await this.deps.workshops.ownerOf(workshopId);
    if (owner !== undefined && !InstructorAuth.mayManage(instructor, owner)) {
      this.log.warn("watch refused: another instructor's workshop", { workshopId, instructorId: instructor.id });
      return refuse(403, "Forbidden: this workshop belongs to another instructor");
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.onConnection(ws, workshopId, memberId, terminal, cookie).catch((e: unknown) => {
        this.log.error("watch failed", { error: String(e) });
        ws.close(1011, "internal error");
      });
    });
  }

  private async onConnection(ws: WebSocket, workshopId: string, memberId: string, terminal: string, cookie: string | undefined): Promise<void> {
    const log = this.log.child({ workshopId, memberId, terminal });
    this.alive.add(ws);
    ws.on("pong", () => this.alive.add(ws));
    const sendJson = (m: WatchMessage) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
    };
    const close = (code: number, reason: string) => {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason.slice(0, 120));
    };

    // The view lives no longer than the sign-in that opened it (signed out, or expired).
    let closed = false;
    ws.on("close", () => (closed = true));
    const unwatch = await this.deps.auth.watch(cookie, () => close(CloseCode.unauthorized, "Your instructor sign-in ended. Sign in again."));
    if (closed) return unwatch();
    ws.on("close", unwatch);

    let target;
    try {
      target = await this.deps.workshops.watchTarget(workshopId, memberId, terminal);
    } catch (e) {
      const err = toShipshapeError(e);
      return close(err.code === "sandbox_gone" ? CloseCode.sandboxGone : CloseCode.unknownSession, err.userMessage);
    }
    const { hub, learner } = target;
    const client: AttachedBrowser = {
      readOnly: true,
      sendOutput: (data) => {
        if (ws.readyState !== ws.OPEN) return;
        if (ws.bufferedAmount > MAX_SOCKET_BUFFER) return ws.terminate();
        ws.send(data, { binary: true });
        hub.ack(client, data.length);
      },
      // The shell's notices; "ready" belongs to the learner's own socket (the hub never broadcasts it).
      sendMessage: (m) => (m.type === "ready" ? undefined : sendJson(m)),
      close,
    };
    let size = hub.size;
    sendJson({ type: "size", ...size });
    const sizeTimer = setInterval(() => {
      const now = hub.size;
      if (now.cols === size.cols && now.rows === size.rows) return;
      size = now;
      sendJson({ type: "size", ...size });
    }, SIZE_CHECK_MS);
    void hub.attach(client).then(() => sendJson({ type: "ready", learner, terminal }));
    log.info("instructor watching a terminal", { sessionId: target.sessionId });

    ws.on("message", (data, isBinary) => {
      if (isBinary) return; // read-only: keystrokes from the viewer go nowhere
      try {
        const m = JSON.parse(data.toString()) as { type?: unknown; t?: unknown };
        if (m.type === "ping" && typeof m.t === "number") sendJson({ type: "pong", t: m.t });
      } catch {
        // Not JSON: ignored, like everything else a viewer sends.
      }
    });
    ws.on("close", () => {
      clearInterval(sizeTimer);
      hub.detach(client);
    });
    ws.on("error", (e) => log.debug("watch socket error", { error: e.message }));
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const ws of this.wss.clients) ws.close(CloseCode.goingAway, "The server is restarting.");
    this.wss.close();
  }
}
