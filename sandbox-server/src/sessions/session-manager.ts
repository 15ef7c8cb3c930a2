import { ShipshapeError, toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { secondsSince, type ServerMetrics } from "../metrics.ts";
import type { SandboxLimits, SandboxRuntime, StartProgress } from "../runtime/types.ts";
import type { SessionRecord, Store } from "../store/store.ts";
import { CloseCode } from "../../../contracts/close-codes.ts";
import type { SandboxState } from "../../../contracts/session-api.ts";
import type { ServerMessage } from "../../../contracts/terminal-protocol.ts";
import type { TerminalHub } from "./terminal-hub.ts";
import type { LiveSession } from "./live-session.ts";
import { LimitWatchdog } from "./limit-watchdog.ts";
import { SessionReaper, type SharedState } from "./reaper.ts";
import { expiredMessage } from "./session-messages.ts";
import { startedShell } from "./terminal-registry.ts";
import { newId } from "../common/signing.ts";
import { WarmPool } from "./warm-pool.ts";

export interface SessionPolicy {
  ttlMs: number;
  idleTimeoutMs: number;
  reapIntervalMs: number;
  /** How often sandboxes with a learner attached are checked against their limits. */
  limitCheckIntervalMs?: number;
  maxSandboxes: number;
  /** Sandboxes kept started and unclaimed, ready for the next learner. */
  warmPoolSize?: number;
  limits: SandboxLimits;
}

/** Where a session's sandbox is; the browser reads it in the session answer (contracts/session-api.ts). */
export type SessionState = SandboxState;

export interface SessionView {
  sessionId: string;
  ownerId: string;
  workshopId: string | null;
  expiresAt: number;
  /** Last keystroke, check or terminal attach (the instructor's dashboard shows who is idle). */
  lastActiveAt: number;
  status: SessionState;
}

// Moved with the shell registry; re-exported so callers keep their import.
export { MAX_SHELLS_PER_SANDBOX } from "./terminal-registry.ts";
export { expiredMessage, sandboxGoneMessage } from "./session-messages.ts";

/** Touches are written to the database at most this often per session. */
const TOUCH_WRITE_INTERVAL_MS = 15_000;
/** How long a server waits for another to bind the sandbox of a session it is starting. */
const START_FOLLOW_MS = 180_000;

/**
 * Sessions: learner ↔ sandbox ↔ terminals. Owns the lifecycle rules (lifetime, idle timeout,
 * reattach after a restart, the warm pool and workshop reserves) and nothing about wires or
 * engines. The reaper (reaper.ts), the limit watchdog (limit-watchdog.ts) and the named shells
 * (terminal-registry.ts) work on the live sessions it hands them.
 */
export class SessionManager {
  private readonly live = new Map<string, LiveSession>();
  /** Why recent sessions failed to start, so a terminal that connects late hears the real reason. */
  private readonly failures = new Map<string, ShipshapeError>();
  /** The last failed start per browser, so GET /api/sessions/current can say "failed" and why. */
  private readonly failedViews = new Map<string, SessionView>();
  private readonly runtime: SandboxRuntime;
  private readonly store: Store;
  private readonly policy: SessionPolicy;
  private readonly log: Logger;
  private readonly metrics: ServerMetrics;
  private reaper: NodeJS.Timeout | undefined;
  private limitChecker: NodeJS.Timeout | undefined;
  private unsubscribeEvents: (() => void) | undefined;
  private unsubscribeBus: (() => void) | undefined;
  private starting = 0;
  private readonly pool: WarmPool;
  /** Per-workshop reserves: sandboxes started for one workshop's learners, claimed by them first. */
  private readonly reserves = new Map<string, WarmPool>();
  private started = false;
  /** Sessions being taken over from another server (adoptFromStore). */
  private readonly adopting = new Map<string, Promise<LiveSession | undefined>>();
  /** Each browser's open() in progress (see open). */
  private readonly opening = new Map<string, Promise<SessionView>>();
  private readonly reaperRounds: SessionReaper;
  private readonly watchdog: LimitWatchdog;

  constructor(options: { runtime: SandboxRuntime; store: Store; policy: SessionPolicy; log: Logger; metrics: ServerMetrics }) {
    this.runtime = options.runtime;
    this.store = options.store;
    this.policy = options.policy;
    this.log = options.log.child({ component: "sessions" });
    this.metrics = options.metrics;
    this.pool = new WarmPool({
      runtime: this.runtime,
      size: this.policy.warmPoolSize ?? 0,
      limits: this.policy.limits,
      log: this.log,
      capacityLeft: () => this.capacityLeft(),
      members: this.store.pool,
    });
    const sessions = () => this.live.values();
    const end = (sessionId: string, reason: string) => this.end(sessionId, reason);
    this.reaperRounds = new SessionReaper({
      runtime: this.runtime,
      policy: this.policy,
      log: this.log,
      metrics: this.metrics,
      sessions,
      end,
      // Pool membership is the pools' (and through them the store's) to say, never a label's.
      ownsPooled: (s) => this.pool.owns(s) || Boolean(s.workshopId && this.reserves.get(s.workshopId)?.owns(s)),
      shared: this.store.kind === "sqlite" ? undefined : this.sharedState(),
    });
    this.watchdog = new LimitWatchdog({ runtime: this.runtime, policy: this.policy, log: this.log, sessions, end });
  }

  /** The reaper's view of the other servers, from the shared store (reaper.ts). */
  private sharedState(): SharedState {
    return {
      leads: () => this.store.tryLead(),
      known: async () => {
        const sandboxIds = new Set<string>();
        const sessionIds = new Set<string>();
        for (const s of await this.store.sessions.live()) {
          sessionIds.add(s.id);
          if (s.sandboxId) sandboxIds.add(s.sandboxId);
        }
        for (const m of await this.store.pool.members()) sandboxIds.add(m.sandboxId);
        return { sandboxIds, sessionIds };
      },
      lastActiveAt: async (sessionId) => (await this.store.sessions.get(sessionId))?.lastActiveAt,
    };
  }

  /**
   * A live session that another server started (or that outlived it): taken over here when its
   * sandbox is running, exactly as a restarted server reattaches its own. Its shells wait in dtach
   * inside the sandbox, so the learner gets the same shell. Nothing without a shared store.
   */
  private async adoptFromStore(record: SessionRecord): Promise<LiveSession | undefined> {
    if (this.store.kind === "sqlite" || record.state === "ended" || record.expiresAt <= Date.now()) return undefined;
    const local = this.live.get(record.id);
    if (local) return local;
    if (!record.sandboxId) return this.followStarting(record);
    let adopting = this.adopting.get(record.id);
    if (!adopting) {
      const sandboxId = record.sandboxId;
      adopting = (async () => {
        const info = await this.runtime.inspect(sandboxId).catch(() => null);
        if (!info?.running) return undefined;
        const already = this.live.get(record.id);
        if (already) return already;
        const live: LiveSession = { ...this.liveFrom(record, Promise.resolve(sandboxId), { state: "ready" }), reattached: true };
        this.live.set(record.id, live);
        this.log.info("took over a session from another server", { sessionId: record.id, sandboxId });
        return live;
      })().finally(() => this.adopting.delete(record.id));
      this.adopting.set(record.id, adopting);
    }
    return adopting;
  }

  /**
   * A session whose sandbox another server is starting right now (the learner's terminal reached
   * this one first): waits, through the store, for that server to bind the sandbox.
   */
  private followStarting(record: SessionRecord): LiveSession {
    const ready = (async () => {
      const deadline = Date.now() + START_FOLLOW_MS;
      while (Date.now() < deadline) {
        const now = await this.store.sessions.get(record.id).catch(() => undefined);
        if (now?.state === "ended") throw new ShipshapeError("sandbox_failed", "Your sandbox could not be started. Try again.", `ended: ${now.endedReason}`);
        if (now?.sandboxId) return now.sandboxId;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new ShipshapeError("sandbox_failed", "Your sandbox could not be started in time. Try again.", "another server did not bind it");
    })();
    const live = this.liveFrom({ ...record }, ready, { state: "starting", step: "Starting", progress: 0 });
    this.live.set(record.id, live);
    ready.then(
      (sandboxId) => {
        live.record.sandboxId = sandboxId;
        live.record.state = "ready";
        live.status = { state: "ready" };
      },
      (e: unknown) => {
        if (this.live.get(record.id) === live) this.live.delete(record.id);
        live.status = { state: "failed", message: toShipshapeError(e).userMessage };
      },
    );
    return live;
  }

  /** Sandboxes that may still start: live and pooled ones (every reserve too) count. */
  private capacityLeft(): number {
    let pooled = this.pool.count;
    for (const r of this.reserves.values()) pooled += r.count;
    return this.policy.maxSandboxes - this.live.size - pooled;
  }

  get counts(): { live: number; starting: number; terminals: number; warm: number } {
    let terminals = 0;
    for (const s of this.live.values()) for (const h of s.hubs.values()) terminals += h.clientCount;
    return { live: this.live.size, starting: this.starting, terminals, warm: this.pool.readyCount };
  }

  /**
   * Keeps `size()` started sandboxes for one workshop, labelled with it; its learners take from
   * it (and only from it) in `open`. Idempotent; `size` is asked again whenever the reserve fills.
   */
  reserve(workshopId: string, size: () => number): void {
    let reserve = this.reserves.get(workshopId);
    if (!reserve) {
      reserve = new WarmPool({
        runtime: this.runtime,
        size,
        workshopId,
        limits: this.policy.limits,
        log: this.log,
        capacityLeft: () => this.capacityLeft(),
        members: this.store.pool,
      });
      this.reserves.set(workshopId, reserve);
    }
    if (this.started) reserve.fill();
  }

  reserveCounts(workshopId: string): { ready: number; starting: number } {
    const r = this.reserves.get(workshopId);
    return { ready: r?.readyCount ?? 0, starting: r ? r.count - r.readyCount : 0 };
  }

  /** Removes a workshop's unclaimed sandboxes. */
  async releaseReserve(workshopId: string): Promise<void> {
    const r = this.reserves.get(workshopId);
    this.reserves.delete(workshopId);
    await r?.drain();
  }

  /**
   * Ends every session of a workshop and destroys every sandbox labelled with it (its reserve,
   * and any the reaper has not met yet). Returns how many sessions were ended.
   */
  async endWorkshop(workshopId: string, reason: string): Promise<number> {
    await this.releaseReserve(workshopId);
    const ending = [...this.live.values()].filter((l) => l.record.workshopId === workshopId);
    await Promise.all(ending.map((l) => this.end(l.record.id, reason)));
    const left = (await this.runtime.list().catch(() => [])).filter((s) => s.workshopId === workshopId);
    await Promise.all(left.map((s) => this.runtime.destroy(s.id).catch(() => {})));
    return ending.length;
  }

  /**
   * Reattaches sessions whose sandboxes survived a restart, adopts the pool members the store
   * lists, reaps the rest, and starts the reaper. Labels decide nothing here: a claimed pool
   * sandbox still carries its "pool" labels, and adopting it by them handed a learner's sandbox
   * to the next stranger (issue 13).
   */
  async start(): Promise<void> {
    this.unsubscribeEvents = this.runtime.onSandboxEvent((sandboxId, event) => this.watchdog.onSandboxEvent(sandboxId, event));
    // Announcements reach the terminals attached here, whichever server sent them.
    this.unsubscribeBus = this.store.bus.subscribe((e) => {
      if (e.type !== "notice") return;
      for (const id of e.sessionIds) this.broadcast(id, { type: "notice", code: e.code, message: e.message });
    });
    const reattachedTo = new Map<string, string>();
    for (const record of (await this.store.sessions.live()).sort((a, b) => a.createdAt - b.createdAt)) {
      const holder = record.sandboxId ? reattachedTo.get(record.sandboxId) : undefined;
      if (holder) {
        // Only a database written before the fix can hold such a pair: the older session keeps
        // the sandbox, the later one (the stranger it was handed to) is ended, never destroying it.
        this.log.error("two sessions are bound to one sandbox; ending the later one", {
          sessionId: record.id,
          keptSessionId: holder,
          sandboxId: record.sandboxId,
        });
        await this.store.sessions.end(record.id, "sandbox bound to another session");
        continue;
      }
      const info = record.sandboxId ? await this.runtime.inspect(record.sandboxId).catch(() => null) : null;
      if (info?.running && record.expiresAt > Date.now()) {
        this.live.set(record.id, { ...this.liveFrom(record, Promise.resolve(info.id), { state: "ready" }), reattached: true });
        reattachedTo.set(info.id, record.id);
        this.log.info("reattached session", { sessionId: record.id, sandboxId: info.id });
      } else {
        await this.store.sessions.end(record.id, info ? "expired" : "sandbox gone during restart");
        if (info) await this.runtime.destroy(info.id).catch(() => {});
      }
    }
    // With a shared store, the other servers' pool members are theirs: only the leader adopts.
    if (await this.store.tryLead().catch(() => false)) await this.adoptPoolMembers();
    await this.reap();
    this.started = true;
    this.pool.fill();
    for (const r of this.reserves.values()) r.fill();
    this.reaper = setInterval(() => void this.reap(), this.policy.reapIntervalMs);
    this.reaper.unref();
    this.limitChecker = setInterval(() => void this.checkLimits(), this.policy.limitCheckIntervalMs ?? 10_000);
    this.limitChecker.unref();
  }

  /**
   * Adopts the sandboxes the store lists as unclaimed pool members (and no session, live or
   * ended, ever held); drops every other record. What is not adopted is reaped as an orphan.
   */
  private async adoptPoolMembers(): Promise<void> {
    const listed = new Map((await this.runtime.list().catch(() => [])).map((s) => [s.id, s]));
    for (const member of await this.store.pool.members()) {
      const holders = await this.store.sessions.boundTo(member.sandboxId);
      const info = listed.get(member.sandboxId);
      const reserve = member.workshopId ? this.reserves.get(member.workshopId) : this.pool;
      if (holders.length > 0) {
        this.log.error("the store lists a sandbox as pooled that a session holds; not adopting it", {
          sandboxId: member.sandboxId,
          sessionIds: holders.map((h) => h.id),
        });
      } else if (info && reserve?.adopt(info)) {
        this.log.info("adopted warm sandbox", { sandboxId: info.id, workshopId: info.workshopId });
        continue;
      }
      await this.store.pool.remove(member.sandboxId);
    }
  }

  /**
   * Takes a ready sandbox from `pool` for a new session and records both in one transaction. A
   * sandbox the store says is not a free member of that pool (bound to a session, live or ended)
   * is never handed out: that would give one learner's sandbox to another.
   */
  private async claimFromPool(pool: WarmPool, record: SessionRecord): Promise<string | undefined> {
    for (let sandboxId = pool.take(); sandboxId; sandboxId = pool.take()) {
      const holder = [...this.live.values()].find((l) => l.record.sandboxId === sandboxId);
      const refusal = holder ? "bound to another session" : await this.store.sessions.insertClaimingPooled({ ...record, sandboxId });
      if (!refusal) return sandboxId;
      // Should be impossible; if it happens, it is the bug that hands a learner's sandbox over.
      this.log.error("refused to hand out a pooled sandbox: it is not free", {
        sandboxId,
        reason: refusal,
        sessionId: record.id,
        holderSessionId: holder?.record.id,
      });
      this.metrics.sandboxHandOversRefused.inc();
      // Whatever the pool's record said, it is no free member: never list it again. Unbound, the
      // reaper removes it; bound to a live session, it stays that session's.
      await this.store.pool.remove(sandboxId);
    }
    return undefined;
  }

  /**
   * This browser's live session, or a new one whose sandbox starts in the background. A workshop
   * session takes a sandbox from its workshop's reserve, never from the general pool, so every
   * sandbox of a workshop carries its label.
   */
  open(ownerId: string, options: { fresh?: boolean; workshopId?: string; expiresAt?: number } = {}): Promise<SessionView> {
    // One open at a time per browser: between reading its live session and writing a new one the
    // store is asked asynchronously, and two tabs must not both start a sandbox.
    const previous = this.opening.get(ownerId) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(() => this.openNow(ownerId, options));
    this.opening.set(ownerId, next);
    const forget = () => {
      if (this.opening.get(ownerId) === next) this.opening.delete(ownerId);
    };
    next.then(forget, forget);
    return next;
  }

  private async openNow(ownerId: string, options: { fresh?: boolean; workshopId?: string; expiresAt?: number }): Promise<SessionView> {
    const existing = await this.store.sessions.liveForOwner(ownerId);
    if (existing) {
      const live = this.live.get(existing.id) ?? (await this.adoptFromStore(existing));
      if (options.fresh || !live || existing.expiresAt <= Date.now()) {
        this.end(existing.id, options.fresh ? "replaced by a new sandbox" : "expired").catch((e: unknown) => this.endFailed(e));
      } else {
        this.touch(existing.id);
        return this.view(live);
      }
    }
    const pool = options.workshopId ? this.reserves.get(options.workshopId) : this.pool;
    // A warm sandbox is already counted; a new one must fit next to the live and the warm ones.
    if ((pool?.readyCount ?? 0) === 0 && this.capacityLeft() <= 0) {
      throw new ShipshapeError(
        "limit_reached",
        "This server is full: every sandbox is in use. Try again in a few minutes.",
        `max sandboxes ${this.policy.maxSandboxes} reached`,
      );
    }
    const now = Date.now();
    const record: SessionRecord = {
      id: newId(),
      ownerId,
      sandboxId: null,
      workshopId: options.workshopId ?? null,
      createdAt: now,
      expiresAt: options.expiresAt ?? now + this.policy.ttlMs,
      lastActiveAt: now,
      state: "starting",
      endedReason: null,
    };
    const pooled = pool ? await this.claimFromPool(pool, { ...record, state: "ready" }) : undefined;
    if (pooled) {
      // Claimed synchronously, so the answer already says "ready" and the shell can start now.
      record.sandboxId = pooled;
      record.state = "ready";
    } else {
      await this.store.sessions.insert(record);
    }
    const live = this.liveFrom(record, Promise.resolve(""), pooled ? { state: "ready" } : { state: "starting", step: "Queued", progress: 0 });
    live.ready = pooled ? this.claim(live, pooled) : this.startSandbox(live);
    live.ready.catch(() => {}); // observed through status; avoid unhandled rejections
    this.live.set(record.id, live);
    return this.view(live);
  }

  /** A warm sandbox could have died while it waited: check, and fall back to a fresh one. */
  private async claim(live: LiveSession, sandboxId: string): Promise<string> {
    const asked = performance.now();
    const info = await this.runtime.inspect(sandboxId).catch(() => null);
    if (info?.running) {
      this.metrics.sandboxesCreated.inc();
      this.metrics.sandboxStart.observe({ kind: "warm" }, secondsSince(asked));
      this.log.info("warm sandbox claimed", { sessionId: live.record.id, sandboxId });
      return sandboxId;
    }
    live.record.sandboxId = null;
    live.status = { state: "starting", step: "Queued", progress: 0 };
    return this.startSandbox(live);
  }

  private async startSandbox(live: LiveSession): Promise<string> {
    const log = this.log.child({ sessionId: live.record.id });
    const started = Date.now();
    const asked = performance.now();
    this.starting++;
    try {
      const info = await this.runtime.create(
        {
          sessionId: live.record.id,
          ownerId: live.record.ownerId,
          workshopId: live.record.workshopId ?? undefined,
          expiresAt: live.record.expiresAt,
          limits: this.policy.limits,
          // The learner waits for this start: hand the sandbox out once a shell can run in it; its
          // `docker` waits for the engine, and everything of ours that uses the engine waits in sandboxOf.
          engineLater: true,
        },
        (p) => {
          live.status = { state: "starting", ...p };
          for (const l of live.progressListeners) l(p);
        },
      );
      if (!this.live.has(live.record.id)) {
        // Ended while it was starting.
        await this.runtime.destroy(info.id).catch(() => {});
        throw new ShipshapeError("session_expired", "This sandbox was ended.");
      }
      const refusal = await this.store.sessions.setSandbox(live.record.id, info.id, "ready");
      if (refusal) {
        // A new container's id cannot be anyone's yet; if the store says otherwise, hand nothing out.
        this.log.error("refused to bind a new sandbox: the store says it is not free", { sandboxId: info.id, reason: refusal });
        this.metrics.sandboxHandOversRefused.inc();
        throw new ShipshapeError("internal", "Your sandbox could not be started. Try again.", `sandbox ${info.id} ${refusal}`);
      }
      live.record.sandboxId = info.id;
      live.record.state = "ready";
      live.status = { state: "ready" };
      this.metrics.sandboxesCreated.inc();
      this.metrics.sandboxStart.observe({ kind: "cold" }, secondsSince(asked));
      log.info("sandbox ready", { sandboxId: info.id, ms: Date.now() - started });
      this.runtime.engineReady?.(info.id).then(
        () => log.debug("inner engine ready", { sandboxId: info.id, ms: Date.now() - started }),
        (e: unknown) => {
          // The learner has a prompt but will never have a Docker: end the session, saying why.
          const err = toShipshapeError(e);
          log.error("inner engine never answered", { sandboxId: info.id, code: err.code, detail: err.detail });
          if (this.live.get(live.record.id) === live) this.end(live.record.id, `sandbox stopped: ${err.userMessage}`).catch((e: unknown) => this.endFailed(e));
        },
      );
      return info.id;
    } catch (e) {
      const err = toShipshapeError(e);
      this.metrics.sandboxesFailed.inc();
      live.status = { state: "failed", message: err.userMessage };
      log.error("sandbox failed to start", { code: err.code, detail: err.detail });
      this.live.delete(live.record.id);
      this.failures.set(live.record.id, err);
      const ownerId = live.record.ownerId;
      const failedView = this.view(live);
      this.failedViews.set(ownerId, failedView);
      setTimeout(() => {
        if (this.failedViews.get(ownerId) === failedView) this.failedViews.delete(ownerId);
      }, 60_000).unref();
      setTimeout(() => this.failures.delete(live.record.id), 60_000).unref();
      await this.store.sessions.end(live.record.id, `failed: ${err.code}`);
      throw err;
    } finally {
      this.starting--;
    }
  }

  /** The session a token names, checked against its owner and its lifetime. */
  async authorize(sessionId: string, ownerId: string): Promise<LiveSession> {
    let live = this.live.get(sessionId);
    if (!live && !this.failures.has(sessionId)) {
      const stored = await this.store.sessions.get(sessionId);
      if (stored && stored.ownerId === ownerId) live = await this.adoptFromStore(stored);
    }
    if (!live) {
      const failure = this.failures.get(sessionId);
      if (failure) throw failure;
      const record = await this.store.sessions.get(sessionId);
      if (record?.state === "ended" && /expired|idle/.test(record.endedReason ?? "")) {
        throw new ShipshapeError("session_expired", expiredMessage(record.endedReason ?? "expired", this.policy));
      }
      // Ended by the server while nobody watched (a limit, the engine): say why, not just "gone".
      if (record?.state === "ended" && record.endedReason?.startsWith("sandbox stopped: ")) {
        throw new ShipshapeError("sandbox_gone", record.endedReason.slice("sandbox stopped: ".length));
      }
      throw new ShipshapeError("not_found", "This sandbox no longer exists. Start a new one.");
    }
    if (live.record.ownerId !== ownerId) {
      throw new ShipshapeError("unauthorized", "This terminal belongs to another browser session.");
    }
    if (live.record.expiresAt <= Date.now()) {
      this.end(sessionId, "expired").catch((e: unknown) => this.endFailed(e));
      throw new ShipshapeError("session_expired", expiredMessage("expired", this.policy));
    }
    return live;
  }

  /** A live session by id, for features that decide access themselves (the port preview). */
  async describe(sessionId: string): Promise<SessionView | undefined> {
    let live = this.live.get(sessionId);
    // A preview may be asked of any server: take over a session another one started.
    if (!live && this.store.kind !== "sqlite") {
      const record = await this.store.sessions.get(sessionId);
      if (record) live = await this.adoptFromStore(record);
    }
    return live && live.record.expiresAt > Date.now() ? this.view(live) : undefined;
  }

  /** Names of the shells a session has open (an instructor may watch them). */
  terminalNames(sessionId: string): string[] {
    return [...(this.live.get(sessionId)?.hubs.keys() ?? [])];
  }

  /** An open shell of a session, for a read-only watcher; undefined when it has none by that name. */
  openTerminal(sessionId: string, name: string): TerminalHub | undefined {
    return this.live.get(sessionId)?.hubs.get(name);
  }

  /** A message on every terminal socket of a session (an instructor's announcement). */
  broadcast(sessionId: string, message: ServerMessage): void {
    for (const hub of this.live.get(sessionId)?.hubs.values() ?? []) hub.broadcast(message);
  }

  /** A start of this browser's that failed in the last minute (and no live session since). */
  async recentFailure(ownerId: string): Promise<SessionView | undefined> {
    return (await this.current(ownerId)) ? undefined : this.failedViews.get(ownerId);
  }

  /** Whether this browser has a live session on this server (synchronous, for the per-address count). */
  holdsLive(ownerId: string): boolean {
    for (const live of this.live.values()) if (live.record.ownerId === ownerId && live.record.expiresAt > Date.now()) return true;
    return false;
  }

  /**
   * This browser's live session wherever it is attached, for observers (the dashboard, seats,
   * announcements): never takes it over. With one server it is `current`.
   */
  async viewAnywhere(ownerId: string): Promise<SessionView | undefined> {
    const record = await this.store.sessions.liveForOwner(ownerId);
    if (!record) return undefined;
    const live = this.live.get(record.id);
    if (live) return this.view(live);
    if (this.store.kind === "sqlite" || record.expiresAt <= Date.now()) return undefined;
    return {
      sessionId: record.id,
      ownerId: record.ownerId,
      workshopId: record.workshopId,
      expiresAt: record.expiresAt,
      lastActiveAt: record.lastActiveAt,
      status: record.sandboxId ? { state: "ready" } : { state: "starting", step: "Queued", progress: 0 },
    };
  }

  /** A notice on these sessions' terminals on every server (an instructor's announcement), through the bus. */
  notify(sessionIds: string[], code: string, message: string): void {
    if (sessionIds.length > 0) this.store.bus.publish({ type: "notice", sessionIds, code, message });
  }

  async current(ownerId: string): Promise<SessionView | undefined> {
    const record = await this.store.sessions.liveForOwner(ownerId);
    const live = record && (this.live.get(record.id) ?? (await this.adoptFromStore(record)));
    return live ? this.view(live) : undefined;
  }

  /** Waits for the sandbox, reporting progress, then returns the named terminal's hub. */
  async terminal(
    sessionId: string,
    ownerId: string,
    name: string,
    size: { cols: number; rows: number },
    onProgress: (p: StartProgress) => void,
  ): Promise<TerminalHub> {
    const live = await this.authorize(sessionId, ownerId);
    if (live.status.state === "starting") onProgress(live.status);
    live.progressListeners.add(onProgress);
    let sandboxId: string;
    try {
      sandboxId = await live.ready;
    } finally {
      live.progressListeners.delete(onProgress);
    }
    const hub = await startedShell(live, sandboxId, name, size, {
      runtime: this.runtime,
      log: this.log,
      metrics: this.metrics,
      policy: this.policy,
    });
    this.touch(sessionId);
    // The learner is here: have their grading probe ready before their first Check, once their
    // engine answers and no learner's sandbox is starting: measured, a class's probes warming
    // while the class still arrived slowed its prompts (30.8 s for all 50 without, 46.9 s with).
    if (this.runtime.warmProbe) {
      void Promise.resolve(this.runtime.engineReady?.(sandboxId)).then(
        () => this.warmProbeWhenQuiet(sandboxId, 0),
        () => {},
      );
    }
    return hub;
  }

  /** Warms a sandbox's probe once no sandbox is starting (checked every 5 s, for 2 minutes at most). */
  private warmProbeWhenQuiet(sandboxId: string, attempt: number): void {
    if (this.starting > 0 && attempt < 24) {
      setTimeout(() => this.warmProbeWhenQuiet(sandboxId, attempt + 1), 5_000).unref();
      return;
    }
    this.runtime.warmProbe?.(sandboxId);
  }

  /**
   * The session's sandbox for what uses its engine (grading, setups, the panel, previews, file
   * writes): resolves once the inner engine answers, which a terminal does not wait for.
   */
  async sandboxOf(sessionId: string, ownerId: string): Promise<string> {
    const live = await this.authorize(sessionId, ownerId);
    this.touch(sessionId);
    const sandboxId = await live.ready;
    await this.runtime.engineReady?.(sandboxId);
    return sandboxId;
  }

  touch(sessionId: string): void {
    const live = this.live.get(sessionId);
    if (!live) return;
    const now = Date.now();
    if (now - live.record.lastActiveAt > TOUCH_WRITE_INTERVAL_MS) {
      live.record.lastActiveAt = now;
      // Not awaited: a lost touch costs at most one interval of idleness, never the caller's answer.
      this.store.sessions.touch(sessionId, now).catch((e: unknown) => this.log.warn("could not record activity", { sessionId, error: String(e) }));
    }
    live.lastActiveAt = now;
  }

  /** Ends a session: closes its terminals with the code that says why, destroys its sandbox. */
  async end(sessionId: string, reason: string): Promise<void> {
    const live = this.live.get(sessionId);
    this.live.delete(sessionId);
    await this.store.sessions.end(sessionId, reason);
    if (!live) return;
    const expired = /expired|idle/.test(reason);
    const code = expired ? CloseCode.expired : reason.startsWith("sandbox") ? CloseCode.sandboxGone : CloseCode.normal;
    const message = expired ? expiredMessage(reason, this.policy) : reason.replace(/^sandbox stopped: /, "");
    for (const hub of live.hubs.values()) hub.dispose(code, message);
    live.hubs.clear();
    const sandboxId = live.record.sandboxId ?? (await live.ready.catch(() => ""));
    if (sandboxId) {
      await this.runtime.destroy(sandboxId).catch((e: unknown) =>
        this.log.warn("destroy failed; the reaper will retry", { sessionId, sandboxId, error: String(e) }),
      );
    }
    this.log.info("session ended", { sessionId, sandboxId, reason });
  }

  /**
   * "Reset my sandbox": the same session (its id, owner, lifetime, results and preview links) gets
   * a fresh sandbox, and the old one is destroyed. Open shells close with 4012, so the pages
   * reconnect by themselves and wait for the new sandbox, hearing its start progress. A reset
   * asked while the sandbox is still starting returns that start instead of beginning another.
   * Exercise setups run again because they are recorded per sandbox (sandbox_setups), not per session.
   */
  async resetSandbox(sessionId: string, ownerId: string): Promise<SessionView> {
    const live = await this.authorize(sessionId, ownerId);
    if (live.status.state !== "ready") return this.view(live);
    const oldSandboxId = live.record.sandboxId;
    const log = this.log.child({ sessionId });
    for (const hub of live.hubs.values()) hub.dispose(CloseCode.sandboxReset, "Your sandbox is being replaced by a fresh one; reconnecting…");
    live.hubs.clear();
    live.noticesSent.clear();
    live.reattached = false;
    // No sandbox id while starting: the reaper then keeps the new container (labelled with this
    // session) and does not mistake the old, destroyed one for a sandbox that stopped by itself.
    live.record.sandboxId = null;
    live.record.state = "starting";
    live.status = { state: "starting", step: "Removing your old sandbox", progress: 0 };
    // The old one goes first: the new container takes the session's name, and the learner's old
    // state must be gone when we answer.
    const destroyed = oldSandboxId
      ? this.runtime.destroy(oldSandboxId).catch((e: unknown) =>
          log.warn("destroy of the replaced sandbox failed; the reaper will retry", { sandboxId: oldSandboxId, error: String(e) }),
        )
      : Promise.resolve();
    live.ready = destroyed.then(() => this.startSandbox(live));
    live.ready.catch(() => {}); // a failed start ends the session and is reported through its status
    this.touch(sessionId);
    await destroyed;
    log.info("sandbox reset by its learner", { oldSandboxId });
    return this.view(live);
  }

  /** Expired and idle sessions, sandboxes nobody owns, storage nobody uses (reaper.ts). */
  reap(): Promise<void> {
    return this.reaperRounds.reap();
  }

  /**
   * Tells learners with a terminal open when their sandbox nears a limit, in plain words; ends a
   * sandbox far over its disk limit, attached or not (limit-watchdog.ts).
   */
  checkLimits(): Promise<void> {
    return this.watchdog.check();
  }

  async stop(): Promise<void> {
    await Promise.all([this.pool.drain(), ...[...this.reserves.values()].map((r) => r.drain())]);
    if (this.reaper) clearInterval(this.reaper);
    if (this.limitChecker) clearInterval(this.limitChecker);
    this.unsubscribeEvents?.();
    this.unsubscribeBus?.();
    // Sandboxes outlive the server on purpose: a restarted server reattaches them.
    for (const live of this.live.values()) {
      for (const hub of live.hubs.values()) hub.dispose(CloseCode.goingAway, "The server is restarting; reconnecting…");
    }
    this.live.clear();
  }

  /** An end nobody awaits (an event, a timer) must not reject unobserved: after close, the store is gone. */
  private endFailed(e: unknown): void {
    this.log.warn("could not end a session", { error: String(e) });
  }

  private liveFrom(record: SessionRecord, ready: Promise<string>, status: SessionState): LiveSession {
    return { record, ready, status, progressListeners: new Set(), hubs: new Map(), lastActiveAt: record.lastActiveAt, noticesSent: new Map(), reattached: false };
  }

  private view(live: LiveSession): SessionView {
    return {
      sessionId: live.record.id,
      ownerId: live.record.ownerId,
      workshopId: live.record.workshopId,
      expiresAt: live.record.expiresAt,
      lastActiveAt: live.lastActiveAt,
      status: live.status,
    };
  }
}
