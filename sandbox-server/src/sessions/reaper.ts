import { toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ServerMetrics } from "../metrics.ts";
import type { SandboxInfo, SandboxRuntime } from "../runtime/types.ts";
import { isAttached, type EndSession, type LiveSession } from "./live-session.ts";
import type { SessionPolicy } from "./session-manager.ts";
import { sandboxGoneMessage } from "./session-messages.ts";

/**
 * The reaper: ends expired and idle sessions and sessions whose sandbox stopped unseen, destroys
 * sandboxes nobody owns, and frees storage nobody uses. It never decides pool membership: the
 * pools say which sandboxes are theirs (`ownsPooled`).
 */
/**
 * What the reaper must ask the store when servers share it: whether this server is the one that
 * reaps orphans now, which sandboxes and sessions any server holds, and when a learner last
 * typed anywhere.
 */
export interface SharedState {
  leads(): Promise<boolean>;
  known(): Promise<{ sandboxIds: Set<string>; sessionIds: Set<string> }>;
  lastActiveAt(sessionId: string): Promise<number | undefined>;
}

export class SessionReaper {
  private readonly runtime: SandboxRuntime;
  private readonly policy: SessionPolicy;
  private readonly log: Logger;
  private readonly metrics: ServerMetrics;
  private readonly sessions: () => Iterable<LiveSession>;
  private readonly ownsPooled: (sandbox: SandboxInfo) => boolean;
  private readonly end: EndSession;
  private readonly shared: SharedState | undefined;

  constructor(options: {
    runtime: SandboxRuntime;
    policy: SessionPolicy;
    log: Logger;
    metrics: ServerMetrics;
    sessions: () => Iterable<LiveSession>;
    ownsPooled: (sandbox: SandboxInfo) => boolean;
    end: EndSession;
    /** Set when several servers share the store (Postgres): see SharedState. */
    shared?: SharedState;
  }) {
    this.runtime = options.runtime;
    this.policy = options.policy;
    this.log = options.log;
    this.metrics = options.metrics;
    this.sessions = options.sessions;
    this.ownsPooled = options.ownsPooled;
    this.shared = options.shared;
    this.end = options.end;
  }

  async reap(): Promise<void> {
    const now = Date.now();
    for (const live of [...this.sessions()]) {
      if (live.record.expiresAt <= now) {
        this.metrics.sandboxesReaped.inc();
        await this.end(live.record.id, "expired");
      } else if (!isAttached(live) && live.status.state === "ready" && now - live.lastActiveAt > this.policy.idleTimeoutMs) {
        // Another server may be the one the learner types into: its touches are in the store.
        const elsewhere = this.shared ? await this.shared.lastActiveAt(live.record.id).catch(() => now) : undefined;
        if (elsewhere !== undefined && now - elsewhere <= this.policy.idleTimeoutMs) continue;
        this.metrics.sandboxesReaped.inc();
        await this.end(live.record.id, "idle");
      }
    }
    // Orphans are judged by one server at a time, from the store, never from one server's memory.
    if (this.shared && !(await this.shared.leads().catch(() => false))) return;
    try {
      const shared = this.shared ? await this.shared.known() : undefined;
      const sandboxes = await this.runtime.list();
      // Sandboxes that stopped or vanished behind our back (an engine restart, a `docker rm`)
      // while their engine events were missed: end those sessions now, saying why.
      const listed = new Map(sandboxes.map((s) => [s.id, s]));
      for (const live of [...this.sessions()]) {
        const id = live.record.sandboxId;
        if (!id || live.status.state !== "ready" || listed.get(id)?.running) continue;
        const info = await this.runtime.inspect(id).catch(() => undefined); // listed a moment ago? ask again
        if (info === undefined || info?.running) continue;
        this.log.warn("sandbox stopped while nobody was told; ending its session", { sessionId: live.record.id, sandboxId: id });
        await this.end(live.record.id, `sandbox stopped: ${sandboxGoneMessage(info?.exitReason ?? "removed", this.policy)}`);
      }
      const liveNow = [...this.sessions()];
      const known = new Set(liveNow.map((l) => l.record.sandboxId).filter(Boolean));
      for (const s of sandboxes) {
        if (this.ownsPooled(s)) known.add(s.id);
        // Another server's warm sandbox is recorded only once ready: one still starting has a future expiry.
        if (shared && s.ownerId === "" && s.sessionId.startsWith("pool-") && s.expiresAt > now) known.add(s.id);
      }
      for (const id of shared?.sandboxIds ?? []) known.add(id);
      const startingSessions = new Set(liveNow.filter((l) => !l.record.sandboxId).map((l) => l.record.id));
      for (const id of shared?.sessionIds ?? []) startingSessions.add(id);
      const keep = new Set<string>();
      for (const s of sandboxes) {
        if (known.has(s.id) || (startingSessions.has(s.sessionId) && s.expiresAt > now)) {
          keep.add(s.id);
          continue;
        }
        this.metrics.sandboxesReaped.inc();
        this.log.info("reaping orphaned sandbox", { sandboxId: s.id, sessionId: s.sessionId });
        await this.runtime.destroy(s.id).catch(() => {});
      }
      await this.runtime.removeOrphanedStorage(keep);
    } catch (e) {
      this.log.warn("reaper could not list sandboxes", { error: toShipshapeError(e).detail });
    }
  }
}
