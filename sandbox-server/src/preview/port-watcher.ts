import type { Logger } from "../log.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import { EngineWatches, type EngineEventFeeds, type ReadPacing } from "../sessions/engine-watch.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import { DOCKER_PS_COMMAND, parseDockerPs, summarisePorts, type PortSummary } from "./ports.ts";

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

/** `docker ps` is cheap: the list may follow the engine closely. */
const PORT_READS: ReadPacing = {
  minIntervalMs: 500,
  burst: 40,
  refillMs: 5_000,
  debounceMs: 150,
  confirmMs: 1_500,
  // Without events, poll at the rate the page would.
  pollIntervalMs: 2_000,
};

/**
 * Live port lists, one watch per session however many pages listen: `docker ps` runs only when the
 * inner engine's events (shared with the sandbox panel, see EngineEventFeeds) say something changed,
 * and listeners hear only real changes.
 */
export class PortWatchers {
  private readonly watches: EngineWatches<PortsSnapshot>;
  private readonly runtime: SandboxRuntime;
  private readonly sessions: SessionManager;
  private readonly log: Logger;
  private readonly describe: (sessionId: string, summary: PortSummary) => PreviewPort;

  constructor(options: {
    runtime: SandboxRuntime;
    sessions: SessionManager;
    feeds: EngineEventFeeds;
    log: Logger;
    describe: (sessionId: string, summary: PortSummary) => PreviewPort;
  }) {
    this.runtime = options.runtime;
    this.sessions = options.sessions;
    this.log = options.log;
    this.describe = options.describe;
    this.watches = new EngineWatches({
      feeds: options.feeds,
      read: (sessionId, ownerId) => this.list(sessionId, ownerId),
      memo: () => undefined,
      pacing: PORT_READS,
      log: this.log,
      what: "ports",
    });
  }

  /** The sandbox's ports now (a watched session answers from its last read). */
  async read(sessionId: string, ownerId: string): Promise<PortsSnapshot> {
    return this.watches.current(sessionId, 1_000) ?? this.list(sessionId, ownerId);
  }

  /**
   * Calls `listener` with the current list and again whenever it changes; `onEnd` when the
   * session or its sandbox is gone. Returns the unsubscribe function.
   */
  subscribe(sessionId: string, ownerId: string, listener: (s: PortsSnapshot) => void, onEnd: (reason: string) => void): () => void {
    return this.watches.subscribe(sessionId, ownerId, (snapshot) => listener(snapshot), onEnd);
  }

  close(): void {
    this.watches.close();
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
}
