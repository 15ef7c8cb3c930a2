/**
 * The learner's one sandbox session, shared by every terminal and file block on the page.
 *
 * HTTP side of docs/protocol.md: `POST /api/sessions` (once per page; the `shipshape_owner`
 * cookie makes it return the same live session on every page), `{fresh: true}` to start over,
 * `GET /api/sessions/current` to ask whether it still exists, and
 * `POST /api/sessions/current/files` to place a file in the sandbox.
 */
import { emit } from "../common/bus.ts";
import { combineStatuses, type SandboxStatus } from "./sandbox-status.ts";
import type { OpenSession, SandboxFile, SessionAnswer } from "../../../contracts/session-api.ts";
import type { ISessionSource } from "../terminal/terminal-connection.ts";

/** The server's answer to `POST /api/sessions`; its sessionId and token open the terminals. */
export type SessionInfo = SessionAnswer;

/** An HTTP call to the sandbox server failed; `message` is fit for the learner. */
export class SandboxRequestError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = "SandboxRequestError";
    this.status = status;
  }
}

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export class SandboxSession implements ISessionSource {
  private current: Promise<SessionInfo> | undefined;
  private readonly statuses = new Map<string, SandboxStatus>();
  private readonly renewListeners = new Set<(info: SessionInfo) => void>();
  private readonly renewStartListeners = new Set<(outcome: Promise<SessionInfo>) => void>();
  private sessionStatus: SandboxStatus = { state: "idle" };
  private readonly fetch: FetchLike;

  constructor(fetchImpl: FetchLike = (input, init) => globalThis.fetch(input, init)) {
    this.fetch = fetchImpl;
  }

  /** The live session, created on first use. A failure is not cached: the next call retries. */
  credentials(): Promise<SessionInfo> {
    this.current ??= this.create({}).catch((error: unknown) => {
      this.current = undefined;
      throw error;
    });
    return this.current;
  }

  /** Destroys the current sandbox and starts a new one; every terminal reconnects to it. */
  async renew(): Promise<SessionInfo> {
    const next = this.create({ fresh: true });
    for (const listener of this.renewStartListeners) listener(next);
    this.current = next;
    try {
      const info = await next;
      for (const listener of this.renewListeners) listener(info);
      return info;
    } catch (error) {
      if (this.current === next) this.current = undefined;
      throw error;
    }
  }

  /**
   * "Reset my sandbox": the server gives this same session a fresh sandbox (progress and results
   * stay, they belong to the session) and destroys the old one. The terminals hear close code 4012
   * and reconnect by themselves; lesson files and exercise setups are placed again (bus event).
   */
  async reset(): Promise<SessionInfo> {
    let response: Response;
    try {
      response = await this.request("/api/sessions/current/reset", {});
    } catch {
      throw new SandboxRequestError("Cannot reach the sandbox server to reset your sandbox. Check your connection and try again.", 0);
    }
    if (!response.ok) throw new SandboxRequestError(await errorMessage(response, "Could not reset your sandbox"), response.status);
    const info = (await response.json()) as SessionInfo;
    if (typeof document !== "undefined") {
      try {
        for (const key of Object.keys(localStorage)) if (key.startsWith(`shipshape:files:${info.sessionId}:`)) localStorage.removeItem(key);
      } catch {
        // Storage blocked: the files are simply not placed again.
      }
      emit("shipshape:sandbox-reset", { sessionId: info.sessionId });
    }
    return info;
  }

  /** A new sandbox was asked for; `outcome` settles when it is there or the request failed. */
  onRenewStart(listener: (outcome: Promise<SessionInfo>) => void): () => void {
    this.renewStartListeners.add(listener);
    return () => this.renewStartListeners.delete(listener);
  }

  onRenew(listener: (info: SessionInfo) => void): () => void {
    this.renewListeners.add(listener);
    return () => this.renewListeners.delete(listener);
  }

  async checkAlive(): Promise<"live" | "gone" | "unknown"> {
    try {
      const response = await this.fetch("/api/sessions/current", { credentials: "same-origin" });
      if (response.status === 404) return "gone";
      if (!response.ok) return "unknown";
      const body = (await response.json()) as { state?: string };
      return body.state === "expired" || body.state === "failed" ? "gone" : "live";
    } catch {
      return "unknown";
    }
  }

  /** Writes a file into the sandbox (creating parent folders). Throws SandboxRequestError. */
  async writeFile(path: string, content: string): Promise<void> {
    await this.credentials();
    const file: SandboxFile = { path, content };
    const response = await this.request("/api/sessions/current/files", file);
    if (!response.ok) throw new SandboxRequestError(await errorMessage(response, `Could not write ${path}`), response.status);
  }

  /** A terminal's connection changed state; the page shows the combination. */
  report(terminal: string, status: SandboxStatus): void {
    this.statuses.set(terminal, status);
    this.publish();
  }

  forget(terminal: string): void {
    this.statuses.delete(terminal);
    this.publish();
  }

  get status(): SandboxStatus {
    return combineStatuses([this.sessionStatus, ...this.statuses.values()]);
  }

  private publish(): void {
    if (typeof document !== "undefined") emit("shipshape:sandbox", this.status);
  }

  private async create(body: OpenSession): Promise<SessionInfo> {
    this.sessionStatus = { state: "connecting" };
    this.publish();
    let response: Response;
    try {
      response = await this.request("/api/sessions", body);
    } catch {
      this.sessionStatus = { state: "failed", message: "Cannot reach the sandbox server. Check your connection; retrying…" };
      this.publish();
      throw new SandboxRequestError("Cannot reach the sandbox server.", 0);
    }
    if (!response.ok) {
      const message = await errorMessage(response, "Could not start a sandbox");
      this.sessionStatus = { state: "failed", message };
      this.publish();
      throw new SandboxRequestError(message, response.status);
    }
    const info = (await response.json()) as SessionInfo;
    if (typeof info.token !== "string" || typeof info.sessionId !== "string") {
      throw new SandboxRequestError("The sandbox server sent an unexpected answer.", response.status);
    }
    // From here on the terminals' sockets tell the story (starting → ready).
    this.sessionStatus = { state: "idle" };
    if (body.fresh) this.statuses.clear();
    this.publish();
    return info;
  }

  private request(url: string, body: unknown): Promise<Response> {
    return this.fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  }
}

/** The learner-facing text of a failed response: the server's message when it sent one. */
async function errorMessage(response: Response, fallback: string): Promise<string> {
  try {
    const body = (await response.json()) as { message?: unknown; error?: unknown };
    if (typeof body.message === "string" && body.message) return body.message;
    if (typeof body.error === "string" && body.error) return body.error;
    if (body.error && typeof body.error === "object" && "message" in body.error) {
      const message = (body.error as { message?: unknown }).message;
      if (typeof message === "string" && message) return message;
    }
  } catch {
    // Not JSON: fall through.
  }
  if (response.status === 429) return `${fallback}: too many sandboxes or requests; try again in a minute.`;
  if (response.status === 403) return `${fallback}: the server refused this browser (cookies blocked?).`;
  return `${fallback} (HTTP ${response.status}).`;
}

/** The page's session: module state is shared by every island script on the page. */
export const sandbox = new SandboxSession();

let renewing: Promise<unknown> | undefined;

/** "Start a new sandbox": one request however many buttons were pressed. */
export function startNewSandbox(): Promise<unknown> {
  renewing ??= sandbox
    .renew()
    .catch((error: unknown) => console.error("[shipshape] could not start a new sandbox", error))
    .finally(() => (renewing = undefined));
  return renewing;
}
