import { toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ExecStream, SandboxRuntime } from "../runtime/types.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import { DOCKER_EVENTS_COMMAND, DOCKER_PS_COMMAND, parseDockerPs, summarisePorts, type PortSummary } from "./ports.ts";

/** One published port as the API and the ports socket describe it. */
export interface PreviewPort extends PortSummary {
  /** Opens the preview; a path on the site's origin (it redirects to the preview host when there is one). null when unreachable. */
  url: string | null;
  /** Where the app then lives: the preview host's URL, or the same path as `url`. */
  previewUrl: string | null;
}

export interface PortsSnapshot {
  sessionId: string;
  state: "ready" | "starting";
  ports: PreviewPort[];
}

/** The fewest milliseconds between two `docker ps` in one sandbox, however many events arrive. */
const MIN_REFRESH_INTERVAL_MS = 500;
/**
 * A budget of reads per sandbox: bursts of up to READ_BURST reads, then one per READ_REFILL_MS, so
 * a sandbox whose events never stop (a restart loop, a learner's fake `docker` printing endlessly)
 * costs one `docker ps` every 5 s, not two a second.
 */
const READ_BURST = 40;
const READ_REFILL_MS = 5_000;
/** Events come in bursts (`docker compose up`); one read after the burst is enough. */
const EVENT_DEBOUNCE_MS = 150;
/** Without a streaming exec (or while it is down), poll at the rate the page would. */
const POLL_INTERVAL_MS = 2_000;
const RESTART_DELAY_MS = 2_000;
/** After a burst of events, one more read this much later. */
const CONFIRM_READ_MS = 1_500;

interface Watch {
  sessionId: string;
  ownerId: string;
  listeners: Set<(s: PortsSnapshot) => void>;
  enders: Set<(reason: string) => void>;
  last: { json: string; snapshot: PortsSnapshot; at: number } | undefined;
  stream: ExecStream | undefined;
  timer: NodeJS.Timeout | undefined;
  confirm: NodeJS.Timeout | undefined;
  poller: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  dirty: boolean;
  closed: boolean;
  /** Reads left in the budget (see READ_BURST), as of `budgetAt`. */
  budget: number;
  budgetAt: number;
}

/**
 * Live port lists, one watch per session however many pages listen. Instead of polling, a watch
 * follows the inner engine's container start/die events (one long-running `docker events` in the
 * sandbox) and runs `docker ps` only when something changed; listeners hear only real changes.
 */
export class PortWatchers {
  private readonly watches = new Map<string, Watch>();
  private readonly runtime: SandboxRuntime;
  private readonly sessions: SessionManager;
  private readonly log: Logger;
  private readonly describe: (sessionId: string, summary: PortSummary) => PreviewPort;

  constructor(options: {
    runtime: SandboxRuntime;
    sessions: SessionManager;
    log: Logger;
    describe: (sessionId: string, summary: PortSummary) => PreviewPort;
  }) {
    this.runtime = options.runtime;
    this.sessions = options.sessions;
    this.log = options.log;
    this.describe = options.describe;
  }

  /** The sandbox's ports now (a watched session answers from its last read). */
  async read(sessionId: string, ownerId: string): Promise<PortsSnapshot> {
    const watch = this.watches.get(sessionId);
    if (watch?.last && (watch.stream || Date.now() - watch.last.at < 1_000)) return watch.last.snapshot;
    return this.list(sessionId, ownerId);
  }

  /**
   * Calls `listener` with the current list and again whenever it changes; `onEnd` when the
   * session or its sandbox is gone. Returns the unsubscribe function.
   */
  subscribe(sessionId: string, ownerId: string, listener: (s: PortsSnapshot) => void, onEnd: (reason: string) => void): () => void {
    let watch = this.watches.get(sessionId);
    if (!watch) {
      watch = {
        sessionId,
        ownerId,
        listeners: new Set(),
        enders: new Set(),
        last: undefined,
        stream: undefined,
        timer: undefined,
        confirm: undefined,
        poller: undefined,
        running: undefined,
        dirty: false,
        closed: false,
        budget: READ_BURST,
        budgetAt: Date.now(),
      };
      this.watches.set(sessionId, watch);
      void this.follow(watch);
    }
    watch.listeners.add(listener);
    watch.enders.add(onEnd);
    if (watch.last) listener(watch.last.snapshot);
    else this.schedule(watch, 0);
    const w = watch;
    return () => {
      w.listeners.delete(listener);
      w.enders.delete(onEnd);
      if (w.listeners.size === 0) this.stop(w);
    };
  }

  close(): void {
    for (const w of [...this.watches.values()]) this.stop(w);
  }

  private async list(sessionId: string, ownerId: string): Promise<PortsSnapshot> {
    const sandboxId = await this.sessions.sandboxOf(sessionId, ownerId);
    const [info, result] = await Promise.all([
      this.runtime.inspect(sandboxId),
      this.runtime.exec(sandboxId, DOCKER_PS_COMMAND, { timeoutMs: 5_000, maxOutputBytes: 256 * 1024 }),
    ]);
    if (result.exitCode !== 0) {
      // The learner may have stopped the inner engine; nothing is published then.
      this.log.debug("docker ps failed in the sandbox", { sessionId, sandboxId, stderr: result.stderr.slice(0, 200) });
      return { sessionId, state: "ready", ports: [] };
    }
    const parsed = parseDockerPs(result.stdout);
    if (parsed.rejectedLines > 0) {
      this.log.warn("ignored docker ps lines that were not what docker prints", { sessionId, sandboxId, lines: parsed.rejectedLines });
    }
    const ports = summarisePorts(parsed.containers, info?.address).map((p) => this.describe(sessionId, p));
    return { sessionId, state: "ready", ports };
  }

  /** Runs a read soon; reads never overlap and never come closer than MIN_REFRESH_INTERVAL_MS. */
  private schedule(w: Watch, delayMs = EVENT_DEBOUNCE_MS): void {
    if (w.closed) return;
    if (w.running) {
      w.dirty = true;
      return;
    }
    if (w.timer) return;
    const now = Date.now();
    w.budget = Math.min(READ_BURST, w.budget + (now - w.budgetAt) / READ_REFILL_MS);
    w.budgetAt = now;
    const sinceLast = w.last ? now - w.last.at : Infinity;
    const wait = Math.max(delayMs, MIN_REFRESH_INTERVAL_MS - sinceLast, w.budget >= 1 ? 0 : (1 - w.budget) * READ_REFILL_MS);
    w.timer = setTimeout(() => {
      w.timer = undefined;
      w.budget = Math.min(READ_BURST, w.budget + (Date.now() - w.budgetAt) / READ_REFILL_MS) - 1;
      w.budgetAt = Date.now();
      w.running = this.refresh(w).finally(() => {
        w.running = undefined;
        if (w.dirty) {
          w.dirty = false;
          this.schedule(w);
        }
      });
    }, wait);
  }

  private async refresh(w: Watch): Promise<void> {
    let snapshot: PortsSnapshot;
    try {
      snapshot = await this.list(w.sessionId, w.ownerId);
    } catch (e) {
      const err = toShipshapeError(e);
      if (["not_found", "session_expired", "sandbox_gone", "unauthorized", "sandbox_failed"].includes(err.code)) {
        this.end(w, err.userMessage);
      } else {
        this.log.warn("could not list a sandbox's ports", { sessionId: w.sessionId, code: err.code, detail: err.detail });
      }
      return;
    }
    if (w.closed) return;
    const json = JSON.stringify(snapshot.ports);
    const changed = w.last?.json !== json;
    w.last = { json, snapshot, at: Date.now() };
    if (changed) for (const l of [...w.listeners]) l(snapshot);
  }

  /** Follows the inner engine's events; falls back to polling while that is not possible. */
  private async follow(w: Watch): Promise<void> {
    if (w.closed) return;
    if (!this.runtime.execStream) {
      w.poller ??= setInterval(() => this.schedule(w, 0), POLL_INTERVAL_MS);
      return;
    }
    let stream: ExecStream;
    try {
      const sandboxId = await this.sessions.sandboxOf(w.sessionId, w.ownerId);
      stream = await this.runtime.execStream(sandboxId, DOCKER_EVENTS_COMMAND);
    } catch (e) {
      const err = toShipshapeError(e);
      if (["not_found", "session_expired", "sandbox_gone", "unauthorized", "sandbox_failed"].includes(err.code)) return this.end(w, err.userMessage);
      w.poller ??= setInterval(() => this.schedule(w, 0), POLL_INTERVAL_MS);
      setTimeout(() => void this.follow(w), RESTART_DELAY_MS * 5).unref();
      return;
    }
    if (w.closed) return stream.close();
    w.stream = stream;
    if (w.poller) clearInterval(w.poller);
    w.poller = undefined;
    // Whatever happened while we were not following.
    this.schedule(w, 0);
    // The content is learner-controlled and not needed: any output means "read again", and once
    // more a moment later: the engine can report an event a little before `docker ps` shows it.
    stream.stdout.on("data", () => {
      this.schedule(w);
      if (w.confirm) clearTimeout(w.confirm);
      w.confirm = setTimeout(() => {
        w.confirm = undefined;
        this.schedule(w, 0);
      }, CONFIRM_READ_MS);
    });
    stream.stdout.once("end", () => {
      if (w.stream === stream) w.stream = undefined;
      if (w.closed) return;
      // The inner engine restarted, or the sandbox is going: read (which notices the latter), retry.
      this.schedule(w, 0);
      w.poller ??= setInterval(() => this.schedule(w, 0), POLL_INTERVAL_MS);
      setTimeout(() => void this.follow(w), RESTART_DELAY_MS).unref();
    });
  }

  private end(w: Watch, reason: string): void {
    const enders = [...w.enders];
    this.stop(w);
    for (const e of enders) e(reason);
  }

  private stop(w: Watch): void {
    if (w.closed) return;
    w.closed = true;
    if (this.watches.get(w.sessionId) === w) this.watches.delete(w.sessionId);
    if (w.timer) clearTimeout(w.timer);
    if (w.confirm) clearTimeout(w.confirm);
    if (w.poller) clearInterval(w.poller);
    w.stream?.close();
    w.stream = undefined;
    w.listeners.clear();
    w.enders.clear();
  }
}
