import WebSocket from "ws";

export interface Session {
  base: string;
  cookie: string;
  sessionId: string;
  token: string;
}

/** Opens (or resumes) this "browser's" session, like the page does. */
export async function openSession(base: string, cookie?: string, body: object = {}): Promise<Session> {
  const res = await fetch(`${base}/api/sessions`, {
    method: "POST",
    headers: { origin: base, "content-type": "application/json", ...(cookie ? { cookie } : {}) },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`POST /api/sessions: ${res.status} ${await res.text()}`);
  const json = (await res.json()) as { sessionId: string; token: string };
  const jar = cookie ?? res.headers.get("set-cookie")?.split(";")[0];
  if (!jar) throw new Error("no owner cookie was set");
  return { base, cookie: jar, sessionId: json.sessionId, token: json.token };
}

export interface TerminalOptions {
  terminal?: string;
  cols?: number;
  rows?: number;
  /** Acknowledge output as it arrives (a well-behaved browser); false simulates a stalled tab. */
  autoAck?: boolean;
  origin?: string;
}

/** A terminal socket as the browser client uses it, with helpers to wait for output. */
export class TestTerminal {
  readonly ws: WebSocket;
  output = "";
  received = 0;
  messages: Array<Record<string, unknown>> = [];
  closed: { code: number; reason: string } | undefined;
  autoAck: boolean;
  private waiters: Array<() => void> = [];

  constructor(session: Session, options: TerminalOptions = {}) {
    this.autoAck = options.autoAck ?? true;
    const url = session.base.replace(/^http/, "ws") + "/ws/terminal";
    this.ws = new WebSocket(url, { headers: { origin: options.origin ?? session.base, cookie: session.cookie } });
    this.ws.on("open", () =>
      this.ws.send(
        JSON.stringify({ type: "hello", token: session.token, terminal: options.terminal ?? "main", cols: options.cols ?? 120, rows: options.rows ?? 30 }),
      ),
    );
    this.ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        this.output += data.toString("utf8");
        this.received += data.length;
        if (this.autoAck) this.ack(data.length);
      } else {
        this.messages.push(JSON.parse(data.toString("utf8")) as Record<string, unknown>);
      }
      this.wake();
    });
    this.ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString("utf8") };
      this.wake();
    });
    this.ws.on("error", () => this.wake());
  }

  ack(bytes: number): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "ack", bytes }));
  }

  type(text: string): void {
    this.ws.send(Buffer.from(text, "utf8"));
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Types a command and waits for a marker printed after it, returning what the command printed. */
  async run(command: string, timeoutMs = 30_000): Promise<string> {
    const marker = `__done_${Math.random().toString(36).slice(2, 8)}__`;
    const from = this.output.length;
    this.type(`${command}; echo "${marker.slice(0, 4)}""${marker.slice(4)}$?"\r`);
    await this.waitFor(new RegExp(`${marker}(\\d+)`), timeoutMs, from);
    const text = this.output.slice(from);
    return text;
  }

  async ready(timeoutMs = 30_000): Promise<Record<string, unknown>> {
    await this.until(() => this.messages.some((m) => m.type === "ready") || this.closed !== undefined, timeoutMs, "ready");
    if (this.closed) throw new Error(`closed before ready: ${this.closed.code} ${this.closed.reason}`);
    return this.messages.find((m) => m.type === "ready")!;
  }

  waitFor(pattern: RegExp | string, timeoutMs = 15_000, from = 0): Promise<void> {
    const test = () => (typeof pattern === "string" ? this.output.indexOf(pattern, from) >= 0 : pattern.test(this.output.slice(from)));
    return this.until(test, timeoutMs, `output ${String(pattern)}`);
  }

  waitForClose(timeoutMs = 15_000): Promise<{ code: number; reason: string }> {
    return this.until(() => this.closed !== undefined, timeoutMs, "close").then(() => this.closed!);
  }

  waitForMessage(type: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    return this.until(() => this.messages.some((m) => m.type === type), timeoutMs, `message ${type}`).then(
      () => this.messages.find((m) => m.type === type)!,
    );
  }

  /** Resolves when `test` holds; bounded by `timeoutMs`. */
  until(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last output: ${JSON.stringify(this.output.slice(-300))}`));
      }, timeoutMs);
      const check = () => {
        if (!test()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  close(): void {
    this.ws.close();
  }
}
