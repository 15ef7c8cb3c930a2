/**
 * The browser side of the terminal protocol (docs/protocol.md), free of xterm and of the DOM so
 * it can be tested with a fake WebSocket. The terminal it draws into is an `ITerminalSink`.
 *
 * One `TerminalConnection` = one named shell = one WebSocket at a time. It survives the socket:
 * when a socket drops for a reason that is not final, it reconnects with back-off (0.25 s doubling
 * to 5 s) and the server replays the screen.
 */
import { CloseCode } from "../../../contracts/close-codes.ts";
import type { SandboxStatus } from "../sandbox/sandbox-status.ts";

/** What the connection needs from a terminal emulator: four members, no xterm types. */
export interface ITerminalSink {
  /** Render output; `done` is called once the bytes are parsed (xterm's write callback). */
  write(data: Uint8Array, done: () => void): void;
  /** Forget the screen and scrollback, before the server replays them. */
  reset(): void;
  readonly cols: number;
  readonly rows: number;
}

export interface SessionCredentials {
  sessionId: string;
  token: string;
}

/** Where credentials come from: the page's one sandbox session (see ../sandbox/sandbox-session.ts). */
export interface ISessionSource {
  credentials(): Promise<SessionCredentials>;
  /** Is the session still alive? Asked when sockets keep failing before they open. */
  checkAlive?(): Promise<"live" | "gone" | "unknown">;
}

export interface ServerMessageInfo {
  code: string;
  message: string;
}

/** The subset of the DOM WebSocket the connection uses, so tests can inject a fake. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | ArrayBufferLike | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface TerminalConnectionOptions {
  /** Shell name, `[a-z0-9-]{1,32}`; sockets with the same name share one shell. */
  name: string;
  sink: ITerminalSink;
  session: ISessionSource;
  /** ws(s)://host/ws/terminal; defaults to the page's origin. */
  url?: string;
  createSocket?: WebSocketFactory;
  clock?: Clock;
  onStatus?(status: SandboxStatus): void;
  onNotice?(notice: ServerMessageInfo): void;
  /** The server rejected one of our messages; a client bug, worth a console line, not a learner's attention. */
  onServerError?(error: ServerMessageInfo): void;
}

const OPEN = 1;
export const ACK_BATCH_BYTES = 16 * 1024;
export const BACKOFF_INITIAL_MS = 250;
export const BACKOFF_MAX_MS = 5_000;
export const PING_INTERVAL_MS = 20_000;
export const PONG_TIMEOUT_MS = 10_000;
/**
 * Queued input (Run buttons pressed before the shell was ready) waits for a new shell's first
 * output to go quiet, so it is typed after the prompt instead of echoed above it.
 */
export const QUEUE_SETTLE_MS = 150;
export const QUEUE_MAX_WAIT_MS = 1_500;
/** Consecutive sockets that never opened before we ask the server whether the session still exists. */
const FAILED_OPENS_BEFORE_ASKING = 3;

interface CloseCodeRule {
  final: boolean;
  message?: (reason: string) => string;
}

/** The server's close reason when it sent one (its messages are written for learners), else ours. */
const reasonOr = (fallback: string) => (reason: string) => reason.trim() || fallback;

/** docs/protocol.md, "Close codes". Unknown codes (1006: the network dropped) reconnect. */
export const CLOSE_CODES: Readonly<Record<number, CloseCodeRule>> = {
  // The session was ended (by this learner, perhaps in another tab); the reason is log detail.
  [CloseCode.normal]: { final: true, message: () => "This sandbox was ended. Start a new one to continue." },
  [CloseCode.goingAway]: { final: false, message: () => "The server is restarting; reconnecting…" },
  [CloseCode.policy]: {
    final: true,
    message: () => "The sandbox server does not accept connections from this address (Origin check).",
  },
  [CloseCode.tooBig]: { final: false, message: () => "Message too large; reconnecting…" },
  [CloseCode.serverError]: { final: false, message: () => "Something went wrong on the server; reconnecting…" },
  [CloseCode.protocolViolation]: { final: false },
  [CloseCode.unauthorized]: { final: true, message: reasonOr("This terminal belongs to another browser session.") },
  [CloseCode.unknownSession]: { final: true, message: reasonOr("This sandbox no longer exists. Start a new one.") },
  [CloseCode.expired]: { final: true, message: reasonOr("Your sandbox expired. Start a new one.") },
  [CloseCode.sandboxGone]: { final: true, message: reasonOr("Your sandbox stopped. Start a new one.") },
  [CloseCode.sandboxReset]: { final: false, message: () => "Your sandbox is being replaced by a fresh one; reconnecting…" },
  [CloseCode.rateLimited]: { final: false, message: reasonOr("Too many terminals open; close one and retry.") },
  [CloseCode.engineUnavailable]: {
    final: false,
    message: (reason) => `The sandbox service is unavailable${reason ? `: ${reason}` : ""}. Retrying…`,
  },
};

/** Close codes after which only a new sandbox helps: the page offers "Start a new sandbox". */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set(
  Object.entries(CLOSE_CODES)
    .filter(([, rule]) => rule.final)
    .map(([code]) => Number(code)),
);

export function backoffDelay(attempt: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.max(0, attempt));
}

export function defaultTerminalUrl(location: { protocol: string; host: string }): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/terminal`;
}

const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

const encoder = new TextEncoder();

export class TerminalConnection {
  readonly name: string;
  private readonly options: TerminalConnectionOptions;
  private readonly clock: Clock;
  private readonly createSocket: WebSocketFactory;

  private socket: WebSocketLike | undefined;
  /** Bumped for every socket; write callbacks from an older socket must not ack on a newer one. */
  private generation = 0;
  private opening = false;
  /** Bumped by restart(), so an open() still waiting for old credentials gives up. */
  private openEpoch = 0;
  private opened = false;
  private ready = false;
  /** Output that arrived before `ready`: held so a replay can start from a reset screen. */
  private beforeReady: Uint8Array[] = [];
  private disposed = false;
  private stopped = false;
  private attempt = 0;
  private failedOpens = 0;
  private retryTimer: unknown;
  private flushTimer: unknown;
  private flushDeadline: unknown;
  /** A fresh shell's prompt is still arriving: queued input waits for it (see QUEUE_SETTLE_MS). */
  private awaitingPrompt = false;
  private pingTimer: unknown;
  private pongTimer: unknown;

  private pendingWrites = 0;
  private unackedBytes = 0;
  private lastSentSize: { cols: number; rows: number } | undefined;
  /** Input that must not be lost (Run buttons): sent once the shell is ready. */
  private queuedInput: Uint8Array[] = [];

  status: SandboxStatus = { state: "idle" };
  /** Round-trip time of the last ping, for diagnostics. */
  lastRttMs: number | undefined;

  constructor(options: TerminalConnectionOptions) {
    this.options = options;
    this.name = options.name;
    this.clock = options.clock ?? systemClock;
    this.createSocket =
      options.createSocket ?? ((url) => new WebSocket(url) as unknown as WebSocketLike);
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Opens the socket (once; later calls are no-ops while it is connecting or connected). */
  connect(): void {
    if (this.disposed || this.opening || this.socket || this.retryTimer !== undefined) return;
    this.stopped = false;
    void this.open();
  }

  /** Skip the back-off wait (the browser came back online, the learner clicked "retry"). */
  retryNow(): void {
    if (this.disposed || this.stopped || this.retryTimer === undefined) return;
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    void this.open();
  }

  /**
   * Drops the current socket and screen and connects again with fresh credentials, after the
   * page started a new sandbox.
   */
  restart(): void {
    if (this.disposed) return;
    this.teardownSocket(CloseCode.normal, "restart");
    this.openEpoch++;
    this.opening = false;
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.attempt = 0;
    this.failedOpens = 0;
    this.stopped = false;
    this.options.sink.reset();
    void this.open();
  }

  /**
   * Keystrokes or pasted text. Dropped while disconnected (typing into a dead socket and having
   * it replayed later surprises people) unless `queue` is set, as Run buttons do.
   */
  sendInput(data: string | Uint8Array, { queue = false }: { queue?: boolean } = {}): void {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (bytes.byteLength === 0) return;
    if (this.awaitingPrompt && queue) {
      this.queuedInput.push(bytes); // Keep the order: behind what is already waiting.
    } else if (this.ready && this.socket?.readyState === OPEN) {
      this.socket.send(bytes);
    } else if (queue) {
      this.queuedInput.push(bytes);
    }
  }

  /** The terminal's size changed (fit addon); sent when connected and different from the last one. */
  resize(cols: number, rows: number): void {
    if (!this.opened || this.socket?.readyState !== OPEN) return;
    if (this.lastSentSize?.cols === cols && this.lastSentSize.rows === rows) return;
    this.lastSentSize = { cols, rows };
    this.sendJson({ type: "resize", cols, rows });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.teardownSocket(CloseCode.normal, "terminal closed");
  }

  private setStatus(status: SandboxStatus): void {
    this.status = status;
    this.options.onStatus?.(status);
  }

  private async open(): Promise<void> {
    if (this.disposed || this.stopped) return;
    if (this.opening || this.socket) return;
    if (this.attempt === 0) this.setStatus({ state: "connecting" });
    let credentials: SessionCredentials;
    const epoch = this.openEpoch;
    this.opening = true;
    try {
      credentials = await this.options.session.credentials();
    } catch (error) {
      if (epoch !== this.openEpoch) return;
      // No session (server down, limit reached): the session reports why; retry like a drop.
      this.opening = false;
      this.scheduleReconnect(error instanceof Error ? error.message : String(error));
      return;
    }
    if (epoch !== this.openEpoch) return;
    this.opening = false;
    if (this.disposed || this.stopped || this.socket) return;

    const generation = ++this.generation;
    const url = this.options.url ?? defaultTerminalUrl(globalThis.location);
    let socket: WebSocketLike;
    try {
      socket = this.createSocket(url);
    } catch (error) {
      this.scheduleReconnect(error instanceof Error ? error.message : String(error));
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.opened = false;
    this.ready = false;
    this.pendingWrites = 0;
    this.unackedBytes = 0;
    this.beforeReady = [];
    this.lastSentSize = undefined;

    socket.onopen = () => {
      if (generation !== this.generation) return;
      this.opened = true;
      this.failedOpens = 0;
      const { cols, rows } = this.options.sink;
      this.lastSentSize = { cols, rows };
      this.sendJson({ type: "hello", token: credentials.token, terminal: this.name, cols, rows });
    };
    socket.onmessage = (event) => {
      if (generation !== this.generation) return;
      if (typeof event.data === "string") this.onControl(event.data);
      else if (event.data instanceof ArrayBuffer) this.onOutput(new Uint8Array(event.data), generation);
      else if (ArrayBuffer.isView(event.data)) {
        const view = event.data;
        this.onOutput(new Uint8Array(view.buffer, view.byteOffset, view.byteLength), generation);
      }
    };
    socket.onerror = () => {
      // Always followed by a close event, which decides what to do.
    };
    socket.onclose = (event) => {
      if (generation !== this.generation) return;
      void this.onClose(event.code, event.reason ?? "");
    };
  }

  private onControl(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return; // The server only sends JSON text frames; ignore anything else rather than crash.
    }
    if (typeof message !== "object" || message === null || !("type" in message)) return;
    const m = message as Record<string, unknown>;
    switch (m.type) {
      case "status": {
        const progress = typeof m.progress === "number" ? Math.min(1, Math.max(0, m.progress)) : 0;
        const step = typeof m.step === "string" ? m.step : "starting";
        this.setStatus({ state: "starting", step, progress });
        break;
      }
      case "ready":
        this.onReady(m.replayed === true);
        break;
      case "pong":
        if (typeof m.t === "number") this.lastRttMs = this.clock.now() - m.t;
        this.clock.clearTimeout(this.pongTimer);
        this.pongTimer = undefined;
        break;
      case "notice":
        this.options.onNotice?.({ code: String(m.code ?? "notice"), message: String(m.message ?? "") });
        break;
      case "error":
        this.options.onServerError?.({ code: String(m.code ?? "error"), message: String(m.message ?? "") });
        break;
      default:
        break; // Newer servers may add message types; an old client ignores them.
    }
  }

  private onReady(replayed: boolean): void {
    // The screen comes back from the server's mirror: start from a clean terminal or the old
    // scrollback would appear twice.
    if (replayed) this.options.sink.reset();
    this.ready = true;
    const held = this.beforeReady;
    this.beforeReady = [];
    for (const bytes of held) this.options.sink.write(bytes, () => {});
    this.attempt = 0;
    this.setStatus({ state: "ready" });
    this.schedulePing();
    if (replayed || this.queuedInput.length === 0) {
      this.flushQueuedInput();
    } else {
      this.awaitingPrompt = true;
      const generation = this.generation;
      this.flushDeadline = this.clock.setTimeout(() => {
        if (generation === this.generation) this.flushQueuedInput();
      }, QUEUE_MAX_WAIT_MS);
    }
  }

  private flushQueuedInput(): void {
    this.awaitingPrompt = false;
    this.clock.clearTimeout(this.flushTimer);
    this.clock.clearTimeout(this.flushDeadline);
    this.flushTimer = this.flushDeadline = undefined;
    const queued = this.queuedInput;
    this.queuedInput = [];
    for (const bytes of queued) this.sendInput(bytes);
  }

  private onOutput(bytes: Uint8Array, generation: number): void {
    if (!this.ready) {
      // Acknowledged on arrival: the server must not stall a replay waiting for acks we would
      // only send after `ready`.
      this.beforeReady.push(bytes);
      this.unackedBytes += bytes.byteLength;
      this.flushAck();
      return;
    }
    if (this.awaitingPrompt) {
      const generation = this.generation;
      this.clock.clearTimeout(this.flushTimer);
      this.flushTimer = this.clock.setTimeout(() => {
        if (generation === this.generation) this.flushQueuedInput();
      }, QUEUE_SETTLE_MS);
    }
    this.pendingWrites++;
    this.options.sink.write(bytes, () => {
      if (generation !== this.generation) return; // That socket and its byte count are gone.
      this.pendingWrites--;
      this.unackedBytes += bytes.byteLength;
      if (this.unackedBytes >= ACK_BATCH_BYTES || this.pendingWrites === 0) this.flushAck();
    });
  }

  private flushAck(): void {
    if (this.unackedBytes === 0 || this.socket?.readyState !== OPEN) return;
    this.sendJson({ type: "ack", bytes: this.unackedBytes });
    this.unackedBytes = 0;
  }

  private schedulePing(): void {
    this.clock.clearTimeout(this.pingTimer);
    const generation = this.generation;
    this.pingTimer = this.clock.setTimeout(() => {
      if (generation !== this.generation || !this.ready) return;
      this.sendJson({ type: "ping", t: this.clock.now() });
      // Browsers do not expose WebSocket-level pings; without an answer we would not notice a
      // dead connection (laptop lid, Wi-Fi switch) until the learner types.
      this.pongTimer = this.clock.setTimeout(() => {
        if (generation !== this.generation) return;
        this.teardownSocket(CloseCode.protocolViolation, "pong timeout");
        this.scheduleReconnect("Connection lost; reconnecting…");
      }, PONG_TIMEOUT_MS);
      this.schedulePing();
    }, PING_INTERVAL_MS);
  }

  private async onClose(code: number, reason: string): Promise<void> {
    const wasOpened = this.opened;
    this.teardownSocket();
    if (this.disposed) return;
    const rule = CLOSE_CODES[code];
    if (rule?.final) {
      this.stopped = true;
      this.queuedInput = [];
      this.setStatus({ state: "expired", code, message: rule.message?.(reason) ?? "Your sandbox is gone." });
      return;
    }
    if (!wasOpened && ++this.failedOpens >= FAILED_OPENS_BEFORE_ASKING && this.options.session.checkAlive) {
      // A refused upgrade (HTTP 403/404) looks like 1006 to the browser; ask over HTTP instead.
      this.failedOpens = 0;
      const alive = await this.options.session.checkAlive().catch(() => "unknown" as const);
      if (this.disposed || this.stopped) return;
      if (alive === "gone") {
        this.stopped = true;
        this.setStatus({ state: "expired", code: CloseCode.unknownSession, message: CLOSE_CODES[CloseCode.unknownSession]?.message?.("") ?? "" });
        return;
      }
    }
    if (code === CloseCode.sandboxReset) {
      // The old shell and its screen are gone with the old sandbox; the new one starts blank, at once.
      this.options.sink.reset();
      this.attempt = 0;
    }
    this.scheduleReconnect(rule?.message?.(reason));
  }

  private scheduleReconnect(message?: string): void {
    if (this.disposed || this.stopped || this.retryTimer !== undefined) return;
    const delay = backoffDelay(this.attempt++);
    this.setStatus({ state: "reconnecting", ...(message ? { message } : {}) });
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      void this.open();
    }, delay);
  }

  private teardownSocket(code?: number, reason?: string): void {
    // Input still waiting for a prompt stays queued for the next shell.
    this.awaitingPrompt = false;
    this.clock.clearTimeout(this.flushTimer);
    this.clock.clearTimeout(this.flushDeadline);
    this.flushTimer = this.flushDeadline = undefined;
    this.clock.clearTimeout(this.pingTimer);
    this.clock.clearTimeout(this.pongTimer);
    this.pingTimer = undefined;
    this.pongTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    this.opened = false;
    this.ready = false;
    this.generation++;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
    if (code !== undefined) {
      try {
        socket.close(code, reason);
      } catch {
        // Already closing; nothing to do.
      }
    }
  }

  private sendJson(message: Record<string, unknown>): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }
}
