import WebSocket from "ws";
import { now } from "./stats.ts";

/** The shell prompt of a sandbox (`sandbox:~# `) once colour codes are stripped. */
export const PROMPT = /sandbox:\S*[#$] /;

const ANSI = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>78]/g;
export const stripAnsi = (text: string) => text.replace(ANSI, "");

export interface Session {
  base: string;
  cookie: string;
  sessionId: string;
  token: string;
  state: string;
}

/** `POST /api/sessions` as a new browser would (no cookie yet): a new owner and a new sandbox. */
export async function openSession(base: string): Promise<Session> {
  const res = await fetch(`${base}/api/sessions`, {
    method: "POST",
    headers: { origin: base, "content-type": "application/json" },
    body: "{}",
    signal: AbortSignal.timeout(30_000),
  });
  if (!res.ok) throw new Error(`POST /api/sessions: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { sessionId: string; token: string; state: string };
  const cookie = res.headers.get("set-cookie")?.split(";")[0];
  if (!cookie) throw new Error("no owner cookie was set");
  return { base, cookie, sessionId: body.sessionId, token: body.token, state: body.state };
}

/** Ends a session (its sandbox is destroyed by the server). */
export async function endSession(session: Session): Promise<void> {
  await fetch(`${session.base}/api/sessions/current`, {
    method: "DELETE",
    headers: { origin: session.base, cookie: session.cookie },
    signal: AbortSignal.timeout(30_000),
  }).catch(() => undefined);
}

/** Waits (bounded) until the session's sandbox is ready, without opening a terminal. */
export async function waitReady(session: Session, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${session.base}/api/sessions/current`, { headers: { cookie: session.cookie }, signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { state?: string; message?: string };
    if (body.state === "ready") return;
    if (body.state === "failed" || body.state === "expired" || res.status === 404) throw new Error(`session ${body.state ?? res.status}: ${body.message ?? ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the sandbox was not ready within ${timeoutMs / 1000} s`);
}

/** Batches of at least this many bytes are acknowledged at once, as the browser client does. */
const ACK_BATCH = 16 * 1024;
const TAIL = 8 * 1024;

/**
 * One terminal socket, speaking docs/protocol.md like the browser client: hello first, output
 * acknowledged in batches (at least 16 KiB, or when nothing more is queued).
 */
export class BenchTerminal {
  readonly ws: WebSocket;
  /** The last few KiB of output (colour codes kept). */
  tail = "";
  received = 0;
  readonly marks: { open?: number; ready?: number } = {};
  closed: { code: number; reason: string } | undefined;
  private unacked = 0;
  private ackScheduled = false;
  private listeners = new Set<(chunk: Buffer) => void>();
  private waiters = new Set<() => void>();

  constructor(session: Session, options: { terminal?: string; cols?: number; rows?: number } = {}) {
    const url = session.base.replace(/^http/, "ws") + "/ws/terminal";
    this.ws = new WebSocket(url, { headers: { origin: session.base, cookie: session.cookie }, perMessageDeflate: false });
    this.ws.on("open", () => {
      this.marks.open = now();
      this.ws.send(
        JSON.stringify({ type: "hello", token: session.token, terminal: options.terminal ?? "main", cols: options.cols ?? 120, rows: options.rows ?? 30 }),
      );
    });
    this.ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        this.received += data.length;
        this.tail = (this.tail + data.toString("latin1")).slice(-TAIL);
        for (const l of this.listeners) l(data);
        this.ack(data.length);
      } else {
        const m = JSON.parse(data.toString("utf8")) as { type: string };
        if (m.type === "ready") this.marks.ready = now();
      }
      this.wake();
    });
    this.ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString("utf8") };
      this.wake();
    });
    this.ws.on("error", () => this.wake());
  }

  /** Calls `listener` with every chunk of output; returns a function that removes it. */
  onOutput(listener: (chunk: Buffer) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  type(data: string | Buffer): void {
    this.ws.send(typeof data === "string" ? Buffer.from(data, "utf8") : data, { binary: true });
  }

  /** Resolves when the prompt is on screen. */
  prompt(timeoutMs = 30_000): Promise<void> {
    return this.until(() => PROMPT.test(stripAnsi(this.tail)), timeoutMs, "the prompt");
  }

  /** Resolves when `test` holds, bounded by `timeoutMs`; rejects early if the socket closes. */
  until(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; output ends ${JSON.stringify(stripAnsi(this.tail).slice(-200))}`));
      }, timeoutMs);
      const check = () => {
        if (test()) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve();
        } else if (this.closed) {
          clearTimeout(timer);
          this.waiters.delete(check);
          reject(new Error(`the socket closed (${this.closed.code} ${this.closed.reason}) waiting for ${what}`));
        }
      };
      this.waiters.add(check);
    });
  }

  close(): void {
    this.ws.close();
  }

  private ack(bytes: number): void {
    this.unacked += bytes;
    if (this.unacked >= ACK_BATCH) return this.sendAck();
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => this.sendAck());
  }

  private sendAck(): void {
    this.ackScheduled = false;
    if (this.unacked === 0 || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "ack", bytes: this.unacked }));
    this.unacked = 0;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
