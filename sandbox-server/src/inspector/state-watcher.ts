import { StateLimits, type PublishedPortView, type SandboxState } from "../../../contracts/sandbox-state.ts";
import { ShipshapeError, toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ExecStream, SandboxRuntime } from "../runtime/types.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import { cleanText, ENGINE_EVENTS_COMMAND, engineStateCommand, MAX_STATE_OUTPUT_BYTES, parseEngineState, toSandboxState, type EngineState } from "./engine-state.ts";
import { describeChanges } from "./state-changes.ts";

export interface StateSnapshot {
  sessionId: string;
  state: SandboxState;
  /** What changed since the previous snapshot this watch sent ("container web started"); empty on the first. */
  changes: string[];
}

/** The fewest milliseconds between two reads of one sandbox, however many events arrive. */
const MIN_REFRESH_INTERVAL_MS = 1_000;
/**
 * A budget of reads per sandbox: bursts of up to READ_BURST, then one per READ_REFILL_MS, so a
 * sandbox whose events never stop (a restart loop, a fake `docker events`) costs one read every
 * 5 s. A read runs several docker commands in the sandbox, so it is dearer than the port list's.
 */
const READ_BURST = 20;
const READ_REFILL_MS = 5_000;
/** Events come in bursts (`docker compose up`, a build); one read after the burst is enough. */
const EVENT_DEBOUNCE_MS = 250;
const RESTART_DELAY_MS = 2_000;
/** Without a streaming exec (or while it is down), read at this rate. */
const POLL_INTERVAL_MS = 5_000;
/** After a burst of events, one more read this much later (the engine can report before it lists). */
const CONFIRM_READ_MS = 1_500;
const READ_TIMEOUT_MS = 15_000;
/** Errors that mean the session or its sandbox is gone: the watch ends, the page is told. */
const GONE = ["not_found", "session_expired", "sandbox_gone", "unauthorized", "sandbox_failed"];

interface Watch {
  sessionId: string;
  ownerId: string;
  listeners: Set<(s: StateSnapshot) => void>;
  enders: Set<(reason: string) => void>;
  last: { json: string; snapshot: StateSnapshot; at: number } | undefined;
  stream: ExecStream | undefined;
  timer: NodeJS.Timeout | undefined;
  confirm: NodeJS.Timeout | undefined;
  poller: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  dirty: boolean;
  closed: boolean;
  budget: number;
  budgetAt: number;
  /** Layer histories of the images the last read listed, so the next read skips their `docker history`. */
  histories: EngineState["histories"];
}

export interface StateWatcherCounters {
  /** Watches open now (one per watched sandbox). */
  watches: number;
  /** Reads run since start (each is one exec in a sandbox). */
  reads: number;
}

/**
 * The sandbox panel's source: one watch per watched sandbox however many pages look, driven by
 * the inner engine's events (one long-running `docker events` exec), not by polling. A watch reads
 * the engine's state (one exec, ENGINE_STATE_COMMAND) after each burst of events, tells its
 * listeners only real changes, and stops, ending its `docker events`, when the last one leaves.
 */
export class SandboxStateWatchers {
  private readonly watches = new Map<string, Watch>();
  private readonly runtime: SandboxRuntime;
  private readonly sessions: SessionManager;
  private readonly log: Logger;
  private readonly previewUrl: (sessionId: string, port: number) => string;
  private reads = 0;

  constructor(options: {
    runtime: SandboxRuntime;
    sessions: SessionManager;
    log: Logger;
    /** The server's own link to a port's preview; never taken from the sandbox's output. */
    previewUrl: (sessionId: string, port: number) => string;
  }) {
    this.runtime = options.runtime;
    this.sessions = options.sessions;
    this.log = options.log;
    this.previewUrl = options.previewUrl;
  }

  get counters(): StateWatcherCounters {
    return { watches: this.watches.size, reads: this.reads };
  }

  /**
   * Calls `listener` with the current state and again whenever it changes; `onEnd` when the
   * session or its sandbox is gone. Returns the unsubscribe function.
   */
  subscribe(sessionId: string, ownerId: string, listener: (s: StateSnapshot) => void, onEnd: (reason: string) => void): () => void {
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
        histories: new Map(),
      };
      this.watches.set(sessionId, watch);
      void this.follow(watch);
    }
    watch.listeners.add(listener);
    watch.enders.add(onEnd);
    if (watch.last) listener({ ...watch.last.snapshot, changes: [] });
    else this.schedule(watch, 0);
    const w = watch;
    return () => {
      w.listeners.delete(listener);
      w.enders.delete(onEnd);
      if (w.listeners.size === 0) this.stop(w);
    };
  }

  /** The last lines a container printed, fetched when the learner opens it; bounded in count and length. */
  async logs(sessionId: string, ownerId: string, containerId: string): Promise<string[]> {
    if (!/^[0-9a-f]{64}$/.test(containerId)) throw new ShipshapeError("bad_request", "A container is named by its full 64-character id.");
    const sandboxId = await this.sessions.sandboxOf(sessionId, ownerId);
    const result = await this.runtime.exec(sandboxId, ["sh", "-c", `docker logs --tail ${StateLimits.logLines} "$1" 2>&1`, "logs", containerId], {
      timeoutMs: 5_000,
      maxOutputBytes: StateLimits.logLines * StateLimits.logLineLength * 2,
    });
    return result.stdout
      .split("\n")
      .slice(-StateLimits.logLines - 1)
      .map((l) => cleanText(l.replace(/\r$/, ""), StateLimits.logLineLength) ?? "")
      .filter((l, i, all) => l !== "" || i < all.length - 1)
      .slice(-StateLimits.logLines);
  }

  close(): void {
    for (const w of [...this.watches.values()]) this.stop(w);
  }

  private async read(w: Watch): Promise<SandboxState> {
    this.reads++;
    const sandboxId = await this.sessions.sandboxOf(w.sessionId, w.ownerId);
    const result = await this.runtime.exec(sandboxId, engineStateCommand(w.histories.keys()), { timeoutMs: READ_TIMEOUT_MS, maxOutputBytes: MAX_STATE_OUTPUT_BYTES });
    if (result.timedOut) this.log.debug("the sandbox state read timed out", { sessionId: w.sessionId });
    const engine: EngineState = parseEngineState(result.stdout, w.histories);
    w.histories = engine.histories;
    if (engine.rejected > 0) this.log.warn("ignored sandbox state records that were not what docker prints", { sessionId: w.sessionId, records: engine.rejected });
    return toSandboxState({ ...engine, truncated: engine.truncated || result.truncated }, this.portsOf(w.sessionId, engine));
  }

  /** One entry per published TCP port, its link made here from the session and the port number alone. */
  private portsOf(sessionId: string, engine: EngineState): PublishedPortView[] {
    const byPort = new Map<number, PublishedPortView>();
    for (const c of engine.containers) {
      if (c.status !== "running") continue;
      for (const p of c.ports) {
        if (p.protocol !== "tcp") continue;
        const known = byPort.get(p.hostPort);
        if (known) {
          known.reachable ||= p.reachable;
          known.url ??= p.reachable ? this.previewUrl(sessionId, p.hostPort) : null;
          continue;
        }
        byPort.set(p.hostPort, { port: p.hostPort, containerPort: p.containerPort, container: c.name, reachable: p.reachable, url: p.reachable ? this.previewUrl(sessionId, p.hostPort) : null });
      }
    }
    return [...byPort.values()].sort((a, b) => a.port - b.port);
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
    let state: SandboxState;
    try {
      state = await this.read(w);
    } catch (e) {
      const err = toShipshapeError(e);
      if (GONE.includes(err.code)) this.end(w, err.userMessage);
      else this.log.warn("could not read a sandbox's engine state", { sessionId: w.sessionId, code: err.code, detail: err.detail });
      return;
    }
    if (w.closed) return;
    const json = JSON.stringify(state);
    if (w.last?.json === json) {
      w.last.at = Date.now();
      return;
    }
    const snapshot: StateSnapshot = { sessionId: w.sessionId, state, changes: describeChanges(w.last?.snapshot.state, state) };
    w.last = { json, snapshot, at: Date.now() };
    for (const l of [...w.listeners]) l(snapshot);
  }

  /** Follows the inner engine's events; falls back to slow polling while that is not possible. */
  private async follow(w: Watch): Promise<void> {
    if (w.closed) return;
    if (!this.runtime.execStream) {
      w.poller ??= setInterval(() => this.schedule(w, 0), POLL_INTERVAL_MS);
      return;
    }
    let stream: ExecStream;
    try {
      const sandboxId = await this.sessions.sandboxOf(w.sessionId, w.ownerId);
      stream = await this.runtime.execStream(sandboxId, ENGINE_EVENTS_COMMAND);
    } catch (e) {
      const err = toShipshapeError(e);
      if (GONE.includes(err.code)) return this.end(w, err.userMessage);
      w.poller ??= setInterval(() => this.schedule(w, 0), POLL_INTERVAL_MS);
      setTimeout(() => void this.follow(w), RESTART_DELAY_MS * 5).unref();
      return;
    }
    if (w.closed) return stream.close();
    w.stream = stream;
    if (w.poller) clearInterval(w.poller);
    w.poller = undefined;
    this.schedule(w, 0);
    // The content is learner-controlled and not needed: any output means "read again", and once
    // more a moment later.
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
