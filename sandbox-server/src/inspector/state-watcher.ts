import { StateLimits, type PublishedPortView, type SandboxState } from "../../../contracts/sandbox-state.ts";
import { ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import { EngineWatches, type EngineEventFeeds, type ReadPacing } from "../sessions/engine-watch.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import { cleanText, engineStateCommand, MAX_STATE_OUTPUT_BYTES, parseEngineState, toSandboxState, type EngineState } from "./engine-state.ts";
import { describeChanges } from "./state-changes.ts";

export interface StateSnapshot {
  sessionId: string;
  state: SandboxState;
  /** What changed since the previous snapshot this watch sent ("container web started"); empty on the first. */
  changes: string[];
}

/** A read runs several docker commands in the sandbox: dearer than the port list's, so paced slower. */
const STATE_READS: ReadPacing = {
  minIntervalMs: 1_000,
  burst: 20,
  refillMs: 5_000,
  debounceMs: 250,
  confirmMs: 1_500,
  pollIntervalMs: 5_000,
};
const READ_TIMEOUT_MS = 15_000;

/** Layer histories of the images the last read listed, so the next read skips their `docker history`. */
type Histories = { histories: EngineState["histories"] };

export interface StateWatcherCounters {
  /** Watches open now (one per watched sandbox). */
  watches: number;
  /** Reads run since start (each is one exec in a sandbox). */
  reads: number;
}

/**
 * The sandbox panel's source: one watch per watched sandbox however many pages look, driven by
 * the inner engine's events (shared with the port list, see EngineEventFeeds), not by polling. A
 * watch reads the engine's state (one exec) after each burst of events, tells its listeners only
 * real changes, and stops when the last one leaves.
 */
export class SandboxStateWatchers {
  private readonly watches: EngineWatches<SandboxState, Histories>;
  private readonly runtime: SandboxRuntime;
  private readonly sessions: SessionManager;
  private readonly log: Logger;
  private readonly previewUrl: (sessionId: string, port: number) => string;

  constructor(options: {
    runtime: SandboxRuntime;
    sessions: SessionManager;
    feeds: EngineEventFeeds;
    log: Logger;
    /** The server's own link to a port's preview; never taken from the sandbox's output. */
    previewUrl: (sessionId: string, port: number) => string;
  }) {
    this.runtime = options.runtime;
    this.sessions = options.sessions;
    this.log = options.log;
    this.previewUrl = options.previewUrl;
    this.watches = new EngineWatches({
      feeds: options.feeds,
      read: (sessionId, ownerId, memo) => this.read(sessionId, ownerId, memo),
      memo: () => ({ histories: new Map() }),
      pacing: STATE_READS,
      log: this.log,
      what: "engine state",
    });
  }

  get counters(): StateWatcherCounters {
    return this.watches.counters;
  }

  /**
   * Calls `listener` with the current state and again whenever it changes; `onEnd` when the
   * session or its sandbox is gone. Returns the unsubscribe function.
   */
  subscribe(sessionId: string, ownerId: string, listener: (s: StateSnapshot) => void, onEnd: (reason: string) => void): () => void {
    return this.watches.subscribe(sessionId, ownerId, (state, previous) => listener({ sessionId, state, changes: describeChanges(previous, state) }), onEnd);
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
    this.watches.close();
  }

  private async read(sessionId: string, ownerId: string, memo: Histories): Promise<SandboxState> {
    const sandboxId = await this.sessions.sandboxOf(sessionId, ownerId);
    const result = await this.runtime.exec(sandboxId, engineStateCommand(memo.histories.keys()), { timeoutMs: READ_TIMEOUT_MS, maxOutputBytes: MAX_STATE_OUTPUT_BYTES });
    if (result.timedOut) this.log.debug("the sandbox state read timed out", { sessionId });
    const engine: EngineState = parseEngineState(result.stdout, memo.histories);
    memo.histories = engine.histories;
    if (engine.rejected > 0) this.log.warn("ignored sandbox state records that were not what docker prints", { sessionId, records: engine.rejected });
    return toSandboxState({ ...engine, truncated: engine.truncated || result.truncated }, this.portsOf(sessionId, engine));
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
}
