/**
 * Watching a sandbox's inner engine without polling it: one long-running `docker events` exec per
 * watched sandbox, shared by everything that watches it (the port list and the sandbox panel),
 * and, on top of it, reads that run only after something changed, within a budget.
 *
 * The events' content is learner-controlled (root in the sandbox can print anything as `docker`),
 * so it is never parsed: any output means "read again". What a read returns is the reader's to
 * distrust.
 */
import { toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ExecStream, SandboxRuntime } from "../runtime/types.ts";
import type { SessionManager } from "./session-manager.ts";

/** Errors that mean the session or its sandbox is gone: the watch ends and its pages are told. */
const GONE = new Set(["not_found", "session_expired", "sandbox_gone", "unauthorized", "sandbox_failed"]);
export const sandboxIsGone = (code: string): boolean => GONE.has(code);

/**
 * Nudges a re-read when anything the port list or the panel shows changes; ends when its input
 * ends (see execStream). Exec, attach and health events are left out: they change nothing drawn.
 */
export const ENGINE_EVENTS_COMMAND = [
  "sh",
  "-c",
  [
    "docker events --format '{{.Type}}'",
    ...["container", "image", "volume", "network"].map((t) => `--filter type=${t}`),
    ...["create", "start", "die", "destroy", "rename", "pause", "unpause", "oom", "kill", "tag", "untag", "delete", "pull", "load", "import", "connect", "disconnect", "prune", "remove"].map(
      (e) => `--filter event=${e}`,
    ),
    '& pid=$!; cat >/dev/null; kill "$pid" 2>/dev/null',
  ].join(" "),
];

/** Before following again after the events exec ended (the inner engine restarted). */
const RESTART_DELAY_MS = 2_000;

interface FeedListener {
  /** Something changed in the engine. */
  changed(): void;
  /** Following started or stopped: read now (what happened meanwhile is unknown) and poll while not following. */
  following(on: boolean): void;
  /** The session or its sandbox is gone. */
  gone(reason: string): void;
}

interface Feed {
  sessionId: string;
  ownerId: string;
  listeners: Set<FeedListener>;
  stream: ExecStream | undefined;
  closed: boolean;
}

/** One `docker events` per watched sandbox, however many watches listen to it. */
export class EngineEventFeeds {
  private readonly feeds = new Map<string, Feed>();
  private readonly runtime: SandboxRuntime;
  private readonly sessions: SessionManager;

  constructor(options: { runtime: SandboxRuntime; sessions: SessionManager }) {
    this.runtime = options.runtime;
    this.sessions = options.sessions;
  }

  /** Sandboxes followed now (each is one long-running exec). */
  get size(): number {
    return this.feeds.size;
  }

  listen(sessionId: string, ownerId: string, listener: FeedListener): () => void {
    let feed = this.feeds.get(sessionId);
    if (!feed) {
      feed = { sessionId, ownerId, listeners: new Set(), stream: undefined, closed: false };
      this.feeds.set(sessionId, feed);
      void this.follow(feed);
    }
    feed.listeners.add(listener);
    listener.following(feed.stream !== undefined);
    const f = feed;
    return () => {
      f.listeners.delete(listener);
      if (f.listeners.size === 0) this.stop(f);
    };
  }

  close(): void {
    for (const f of [...this.feeds.values()]) this.stop(f);
  }

  private async follow(f: Feed): Promise<void> {
    if (f.closed || !this.runtime.execStream) return;
    let stream: ExecStream;
    try {
      const sandboxId = await this.sessions.sandboxOf(f.sessionId, f.ownerId);
      stream = await this.runtime.execStream(sandboxId, ENGINE_EVENTS_COMMAND);
    } catch (e) {
      const err = toShipshapeError(e);
      if (sandboxIsGone(err.code)) return this.end(f, err.userMessage);
      setTimeout(() => void this.follow(f), RESTART_DELAY_MS * 5).unref();
      return;
    }
    if (f.closed) return stream.close();
    f.stream = stream;
    for (const l of [...f.listeners]) l.following(true);
    stream.stdout.on("data", () => {
      for (const l of [...f.listeners]) l.changed();
    });
    stream.stdout.once("end", () => {
      if (f.stream === stream) f.stream = undefined;
      if (f.closed) return;
      // The inner engine restarted, or the sandbox is going: the reads notice the latter.
      for (const l of [...f.listeners]) l.following(false);
      setTimeout(() => void this.follow(f), RESTART_DELAY_MS).unref();
    });
  }

  private end(f: Feed, reason: string): void {
    const listeners = [...f.listeners];
    this.stop(f);
    for (const l of listeners) l.gone(reason);
  }

  private stop(f: Feed): void {
    if (f.closed) return;
    f.closed = true;
    if (this.feeds.get(f.sessionId) === f) this.feeds.delete(f.sessionId);
    f.stream?.close();
    f.stream = undefined;
    f.listeners.clear();
  }
}

/** How often a watch may read one sandbox. */
export interface ReadPacing {
  /** The fewest milliseconds between two reads, however many events arrive. */
  minIntervalMs: number;
  /**
   * A budget of reads: bursts of up to `burst`, then one per `refillMs`, so a sandbox whose events
   * never stop (a restart loop, a fake `docker events`) costs one read every `refillMs`.
   */
  burst: number;
  refillMs: number;
  /** Events come in bursts (`docker compose up`, a build); one read after the burst is enough. */
  debounceMs: number;
  /** After a burst of events, one more read this much later (the engine can report before it lists). */
  confirmMs: number;
  /** Without events (no streaming exec, or while it is down), read at this rate. */
  pollIntervalMs: number;
}

interface Watch<T, M> {
  sessionId: string;
  ownerId: string;
  memo: M;
  listeners: Set<(value: T, previous: T | undefined) => void>;
  enders: Set<(reason: string) => void>;
  last: { json: string; value: T; at: number } | undefined;
  following: boolean;
  unlisten: () => void;
  timer: NodeJS.Timeout | undefined;
  confirm: NodeJS.Timeout | undefined;
  poller: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  dirty: boolean;
  closed: boolean;
  budget: number;
  budgetAt: number;
}

/**
 * A value read from each watched sandbox (its port list, its engine state), one watch per sandbox
 * however many pages look: read when the engine's events say something changed, paced, and told
 * to listeners only when it really changed. The watch stops when its last listener leaves.
 * `M` is what a reader keeps between reads of one sandbox (a cache), made fresh per watch.
 */
export class EngineWatches<T, M = undefined> {
  private readonly watches = new Map<string, Watch<T, M>>();
  private readonly feeds: EngineEventFeeds;
  private readonly readValue: (sessionId: string, ownerId: string, memo: M) => Promise<T>;
  private readonly newMemo: () => M;
  private readonly pacing: ReadPacing;
  private readonly log: Logger;
  private readonly what: string;
  private readCount = 0;

  constructor(options: {
    feeds: EngineEventFeeds;
    read: (sessionId: string, ownerId: string, memo: M) => Promise<T>;
    memo: () => M;
    pacing: ReadPacing;
    log: Logger;
    /** For the log: "ports", "engine state". */
    what: string;
  }) {
    this.feeds = options.feeds;
    this.readValue = options.read;
    this.newMemo = options.memo;
    this.pacing = options.pacing;
    this.log = options.log;
    this.what = options.what;
  }

  /** Watches open now, and reads run since start (each is one exec in a sandbox). */
  get counters(): { watches: number; reads: number } {
    return { watches: this.watches.size, reads: this.readCount };
  }

  /** The last value read of a watched sandbox, while events keep it current or it is under `maxAgeMs` old. */
  current(sessionId: string, maxAgeMs: number): T | undefined {
    const w = this.watches.get(sessionId);
    if (w?.last && (w.following || Date.now() - w.last.at < maxAgeMs)) return w.last.value;
    return undefined;
  }

  /**
   * Calls `listener` with the current value (previous undefined) and again, with the one before,
   * whenever it changes; `onEnd` when the session or its sandbox is gone. Returns the unsubscribe.
   */
  subscribe(sessionId: string, ownerId: string, listener: (value: T, previous: T | undefined) => void, onEnd: (reason: string) => void): () => void {
    let watch = this.watches.get(sessionId);
    if (!watch) watch = this.open(sessionId, ownerId);
    watch.listeners.add(listener);
    watch.enders.add(onEnd);
    if (watch.last) listener(watch.last.value, undefined);
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

  private open(sessionId: string, ownerId: string): Watch<T, M> {
    const w: Watch<T, M> = {
      sessionId,
      ownerId,
      memo: this.newMemo(),
      listeners: new Set(),
      enders: new Set(),
      last: undefined,
      following: false,
      unlisten: () => {},
      timer: undefined,
      confirm: undefined,
      poller: undefined,
      running: undefined,
      dirty: false,
      closed: false,
      budget: this.pacing.burst,
      budgetAt: Date.now(),
    };
    this.watches.set(sessionId, w);
    w.unlisten = this.feeds.listen(sessionId, ownerId, {
      changed: () => {
        this.schedule(w);
        if (w.confirm) clearTimeout(w.confirm);
        w.confirm = setTimeout(() => {
          w.confirm = undefined;
          this.schedule(w, 0);
        }, this.pacing.confirmMs);
      },
      following: (on) => {
        w.following = on;
        if (on && w.poller) clearInterval(w.poller);
        if (on) w.poller = undefined;
        else w.poller ??= setInterval(() => this.schedule(w, 0), this.pacing.pollIntervalMs);
        // Whatever happened while nobody followed.
        this.schedule(w, 0);
      },
      gone: (reason) => this.end(w, reason),
    });
    return w;
  }

  /** Runs a read soon; reads never overlap and never come closer than the pacing allows. */
  private schedule(w: Watch<T, M>, delayMs = this.pacing.debounceMs): void {
    if (w.closed) return;
    if (w.running) {
      w.dirty = true;
      return;
    }
    if (w.timer) return;
    const { burst, refillMs, minIntervalMs } = this.pacing;
    const now = Date.now();
    w.budget = Math.min(burst, w.budget + (now - w.budgetAt) / refillMs);
    w.budgetAt = now;
    const sinceLast = w.last ? now - w.last.at : Infinity;
    const wait = Math.max(delayMs, minIntervalMs - sinceLast, w.budget >= 1 ? 0 : (1 - w.budget) * refillMs);
    w.timer = setTimeout(() => {
      w.timer = undefined;
      w.budget = Math.min(burst, w.budget + (Date.now() - w.budgetAt) / refillMs) - 1;
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

  private async refresh(w: Watch<T, M>): Promise<void> {
    let value: T;
    try {
      this.readCount++;
      value = await this.readValue(w.sessionId, w.ownerId, w.memo);
    } catch (e) {
      const err = toShipshapeError(e);
      if (sandboxIsGone(err.code)) this.end(w, err.userMessage);
      else this.log.warn(`could not read a sandbox's ${this.what}`, { sessionId: w.sessionId, code: err.code, detail: err.detail });
      return;
    }
    if (w.closed) return;
    const json = JSON.stringify(value);
    if (w.last?.json === json) {
      w.last.at = Date.now();
      return;
    }
    const previous = w.last?.value;
    w.last = { json, value, at: Date.now() };
    for (const l of [...w.listeners]) l(value, previous);
  }

  private end(w: Watch<T, M>, reason: string): void {
    const enders = [...w.enders];
    this.stop(w);
    for (const e of enders) e(reason);
  }

  private stop(w: Watch<T, M>): void {
    if (w.closed) return;
    w.closed = true;
    if (this.watches.get(w.sessionId) === w) this.watches.delete(w.sessionId);
    if (w.timer) clearTimeout(w.timer);
    if (w.confirm) clearTimeout(w.confirm);
    if (w.poller) clearInterval(w.poller);
    w.unlisten();
    w.listeners.clear();
    w.enders.clear();
  }
}
