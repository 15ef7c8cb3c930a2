import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { pipeline } from "node:stream";
import type { Duplex } from "node:stream";
import { toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ServerMetrics } from "../metrics.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import { messages, PreviewFailure, type PreviewAnswers } from "./preview-failure.ts";
import { downstreamResponseHeaders, upstreamRequestHeaders } from "./preview-headers.ts";

const CONNECT_TIMEOUT_MS = 5_000;
/** A response or socket silent this long is dropped (long polls up to this work). */
const IDLE_TIMEOUT_MS = 120_000;
/** How long a sandbox's address is reused before asking the runtime again. */
const ADDRESS_CACHE_MS = 2_000;

/** Where one proxied request goes, decided by the server alone. */
export interface Route {
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

/**
 * Preview forwarding: carries an authorised request (HTTP or WebSocket) to the learner's app and
 * its answer back, streamed both ways, with the headers rewritten (preview-headers.ts).
 *
 * WARNING: the only way to the network is `addressOf`, the sandbox of a session the caller has
 * already authorised, as the runtime reports it. Nothing the client sends names an address.
 */
export class PreviewForwarder {
  private readonly sessions: SessionManager;
  private readonly runtime: SandboxRuntime;
  private readonly log: Logger;
  private readonly metrics: Pick<ServerMetrics, "previewErrors"> | undefined;
  private readonly answers: PreviewAnswers;
  private readonly socketsPerOwner: number;
  private readonly socketIdleMs: number;
  /** Upgraded (or upgrading) preview WebSockets per sandbox owner. */
  private readonly openSockets = new Map<string, number>();
  private readonly addresses = new Map<string, { address: string | undefined; at: number }>();
  // No keep-alive: a pooled connection must never outlive the sandbox it was opened to.
  private readonly agent = new http.Agent({ keepAlive: false, maxSockets: 256, maxTotalSockets: 4096 });

  constructor(options: {
    sessions: SessionManager;
    runtime: SandboxRuntime;
    log: Logger;
    metrics: Pick<ServerMetrics, "previewErrors"> | undefined;
    answers: PreviewAnswers;
    socketsPerOwner: number;
    socketIdleMs: number;
  }) {
    this.sessions = options.sessions;
    this.runtime = options.runtime;
    this.log = options.log;
    this.metrics = options.metrics;
    this.answers = options.answers;
    this.socketsPerOwner = options.socketsPerOwner;
    this.socketIdleMs = options.socketIdleMs;
  }

  close(): void {
    this.agent.destroy();
  }

  /** The sandbox's address on the sandbox network: the only place previews connect to. */
  async addressOf(sessionId: string, ownerId: string): Promise<string> {
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

  forward(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void> {
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
      const connectTimer = connectTimeout(upstream);
      upstream.on("timeout", () => upstream.destroy(Object.assign(new Error("upstream idle"), { code: "ETIMEDOUT" })));
      upstream.on("response", (up) => {
        clearTimeout(connectTimer);
        const pairs = downstreamResponseHeaders(up.rawHeaders, { ...route, sandboxAddress: route.address });
        try {
          res.writeHead(up.statusCode ?? 502, pairs.flat());
        } catch (e) {
          // Node refuses headers it would not send; the app's answer cannot be passed on.
          up.destroy();
          this.answers.fail(req, res, new PreviewFailure(502, "bad_upstream", `The app on port ${route.port} sent a response that cannot be passed on.`, String(e)));
          return resolve();
        }
        // Streamed both ways with back-pressure: nothing is buffered whole, whatever the size.
        pipeline(up, res, () => resolve());
      });
      upstream.on("error", (e) => {
        clearTimeout(connectTimer);
        if (!res.headersSent) this.answers.fail(req, res, this.upstreamFailure(e, route));
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

  forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, route: Route): void {
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
    const connectTimer = connectTimeout(upstream);
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
      this.answers.failSocket(req, socket, this.upstreamFailure(e, route));
    });
    upstream.end();
  }

  private upstreamFailure(e: unknown, route: Route): PreviewFailure {
    const failure = describeUpstreamFailure(e, route);
    this.metrics?.previewErrors.inc({ reason: failure.code });
    return failure;
  }
}

function connectTimeout(upstream: http.ClientRequest): NodeJS.Timeout {
  const timer = setTimeout(() => upstream.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })), CONNECT_TIMEOUT_MS);
  upstream.once("socket", (s: Socket) => {
    if (!s.connecting) clearTimeout(timer);
    else s.once("connect", () => clearTimeout(timer));
  });
  return timer;
}

/** Why the learner's app could not be reached, in words that say what to do. */
function describeUpstreamFailure(e: unknown, route: Route): PreviewFailure {
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
