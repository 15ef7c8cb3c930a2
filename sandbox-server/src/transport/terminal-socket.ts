import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket, type RawData } from "ws";
import { toShipshapeError, type ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { secondsSince, type ServerMetrics } from "../metrics.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { AttachedBrowser, TerminalHub } from "../sessions/terminal-hub.ts";
import type { Signer } from "../common/signing.ts";
import { CloseCode } from "../../../contracts/close-codes.ts";
import { HELLO_TIMEOUT_MS, MAX_FRAME_BYTES, parseClientMessage, type ServerMessage } from "../../../contracts/terminal-protocol.ts";

const HEARTBEAT_MS = 15_000;
/** A browser that stops reading entirely is cut off before its socket buffer grows without bound. */
const MAX_SOCKET_BUFFER = 4 * 1024 * 1024;

export interface TerminalSocketDeps {
  sessions: SessionManager;
  signer: Signer;
  /** Open terminal sockets one browser (owner cookie) may hold; more are closed with 4029. */
  maxSocketsPerOwner?: number;
  log: Logger;
  metrics: ServerMetrics;
}

/** Closing codes for errors that end a terminal. */
function closeCodeFor(e: ShipshapeError): number {
  switch (e.code) {
    case "unauthorized":
      return CloseCode.unauthorized;
    case "not_found":
      return CloseCode.unknownSession;
    case "session_expired":
      return CloseCode.expired;
    case "sandbox_gone":
    case "sandbox_failed":
      return CloseCode.sandboxGone;
    case "engine_unavailable":
      return CloseCode.engineUnavailable;
    case "rate_limited":
    case "limit_reached":
      return CloseCode.rateLimited;
    default:
      return CloseCode.serverError;
  }
}

/** Close reasons are limited to 123 bytes by the protocol. */
function reasonText(text: string): string {
  const buf = Buffer.from(text, "utf8");
  return buf.length <= 123 ? text : buf.subarray(0, 120).toString("utf8") + "…";
}

/**
 * The `/ws/terminal` endpoint. The upgrade is authorised (Origin, owner cookie) before the
 * socket exists; the first message must be a hello with this browser's session token.
 */
export class TerminalSockets {
  private readonly wss: WebSocketServer;
  private readonly deps: TerminalSocketDeps;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly alive = new WeakSet<WebSocket>();
  private readonly perOwner = new Map<string, number>();

  constructor(deps: TerminalSocketDeps) {
    this.deps = deps;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
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

  get openSockets(): number {
    return this.wss.clients.size;
  }

  /** Called by the HTTP server after it has checked Origin and the owner cookie. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, ownerId));
  }

  private onConnection(ws: WebSocket, ownerId: string): void {
    const { sessions, signer, metrics } = this.deps;
    let log = this.deps.log.child({ component: "terminal-socket" });
    // Completed, then closed with a reason: a refused upgrade would reach the page as a bare 1006.
    const max = this.deps.maxSocketsPerOwner ?? 16;
    const open = this.perOwner.get(ownerId) ?? 0;
    if (open >= max) {
      log.warn("abuse rule hit", { rule: "terminals_per_browser", open });
      ws.close(CloseCode.rateLimited, reasonText(`Too many terminals open (${max} per browser); close one and retry.`));
      return;
    }
    this.perOwner.set(ownerId, open + 1);
    ws.once("close", () => {
      const left = (this.perOwner.get(ownerId) ?? 1) - 1;
      if (left > 0) this.perOwner.set(ownerId, left);
      else this.perOwner.delete(ownerId);
    });
    this.alive.add(ws);
    ws.on("pong", () => this.alive.add(ws));

    const send = (m: ServerMessage) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
    };
    const close = (code: number, reason: string) => {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reasonText(reason));
    };
    const client: AttachedBrowser = {
      readOnly: false,
      sendOutput: (data) => {
        if (ws.readyState !== ws.OPEN) return;
        if (ws.bufferedAmount > MAX_SOCKET_BUFFER) return ws.terminate();
        ws.send(data, { binary: true });
      },
      sendMessage: send,
      close,
    };

    let hub: TerminalHub | undefined;
    let helloSeen = false;
    let sessionId: string | undefined;
    const helloTimer = setTimeout(() => close(CloseCode.protocolViolation, "No hello message received in time."), HELLO_TIMEOUT_MS);

    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        if (hub) hub.input(client, toBuffer(data));
        if (sessionId) sessions.touch(sessionId);
        return;
      }
      const parsed = parseClientMessage(toBuffer(data).toString("utf8"));
      if (!parsed.ok) {
        metrics.rejectedMessages.inc();
        return send({ type: "error", code: parsed.code, message: parsed.message });
      }
      const m = parsed.message;
      switch (m.type) {
        case "hello": {
          if (helloSeen) return close(CloseCode.protocolViolation, "hello may be sent only once.");
          helloSeen = true;
          clearTimeout(helloTimer);
          sessionId = signer.verifySessionToken(m.token, ownerId);
          if (!sessionId) return close(CloseCode.unauthorized, "This terminal belongs to another browser session.");
          log = log.child({ sessionId, terminal: m.terminal });
          const size = { cols: m.cols, rows: m.rows };
          const helloAt = performance.now();
          sessions
            .terminal(sessionId, ownerId, m.terminal, size, (p) => send({ type: "status", state: "starting", ...p }))
            .then(async (h) => {
              if (ws.readyState !== ws.OPEN) return;
              hub = h;
              await h.resize(size.cols, size.rows);
              const replayed = await h.attach(client);
              send({ type: "ready", sessionId: sessionId!, terminal: m.terminal, replayed });
              metrics.terminalAttach.observe(secondsSince(helloAt));
            })
            .catch((e: unknown) => {
              const err = toShipshapeError(e);
              log.warn("terminal refused", { code: err.code, detail: err.detail });
              close(closeCodeFor(err), err.userMessage);
            });
          return;
        }
        case "resize":
          if (hub) void hub.resize(m.cols, m.rows);
          return;
        case "ack":
          hub?.ack(client, m.bytes);
          return;
        case "ping":
          return send({ type: "pong", t: m.t });
      }
    });

    ws.on("close", () => {
      clearTimeout(helloTimer);
      hub?.detach(client);
    });
    ws.on("error", (e) => log.debug("socket error", { error: e.message }));
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const ws of this.wss.clients) ws.close(CloseCode.goingAway, "The server is restarting; reconnecting…");
    this.wss.close();
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
