import type { Cell, DashboardSnapshot, LearnerRow } from "../../../contracts/workshop-api.ts";
import type { Logger } from "../log.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { WorkshopStore } from "../store/workshop-store.ts";
import type { EventBus } from "../store/bus.ts";
import { queueOf } from "./admission.ts";
import { cellFor, isIdle, type ProgressRules, type RecordedVerdict } from "./grid-cells.ts";
import type { WorkshopViews } from "./workshop-views.ts";

/** Idle flags depend on the clock alone: dashboards are recomputed at least this often. */
const REFRESH_MS = 5_000;

type Listener = (snapshot: DashboardSnapshot) => void;

/**
 * The instructor's live grid: the snapshot of a workshop (learners × exercises, messages, rules),
 * and its subscribers, who are sent a new one whenever something they would see has changed.
 */
export class DashboardFeed {
  private readonly store: WorkshopStore;
  private readonly sessions: Pick<SessionManager, "viewAnywhere" | "terminalNames">;
  private readonly views: WorkshopViews;
  private readonly rules: ProgressRules;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly listeners = new Map<string, Set<Listener>>();
  /** Per workshop: what the dashboards last saw (results version, roster version, time bucket) and sent. */
  private readonly pushed = new Map<string, { key: string; body: string }>();
  private readonly rosterVersion = new Map<string, number>();
  private readonly pushScheduled = new Set<string>();
  private readonly pushing = new Set<string>();
  private readonly bus: EventBus;
  private readonly unsubscribeBus: () => void;
  private readonly pushAgain = new Set<string>();

  constructor(deps: {
    store: WorkshopStore;
    bus: EventBus;
    sessions: Pick<SessionManager, "viewAnywhere" | "terminalNames">;
    views: WorkshopViews;
    rules: ProgressRules;
    log: Logger;
    now: () => number;
  }) {
    this.store = deps.store;
    this.sessions = deps.sessions;
    this.views = deps.views;
    this.rules = deps.rules;
    this.log = deps.log;
    this.now = deps.now;
    this.bus = deps.bus;
    // A change on any server (a verdict, a learner let in, a message) reaches every dashboard.
    this.unsubscribeBus = this.bus.subscribe((e) => {
      if (e.type === "workshop") this.bump(e.workshopId);
      else if (e.type === "resync") for (const id of [...this.listeners.keys()]) this.bump(id);
    });
  }

  async snapshot(id: string): Promise<DashboardSnapshot> {
    const w = await this.views.require(id);
    const exercises = this.views.columns(w);
    const results = await this.store.results(id);
    const byOwner = new Map<string, RecordedVerdict[]>();
    for (const r of results) {
      const list = byOwner.get(r.ownerId) ?? [];
      list.push(r);
      byOwner.set(r.ownerId, list);
    }
    const members = await this.store.members.ofWorkshop(id);
    const queue = queueOf(members);
    const now = this.now();
    const currents = await Promise.all(
      members.map((m) => (w.endedAt === null && m.status === "admitted" ? this.sessions.viewAnywhere(m.ownerId) : undefined)),
    );
    const learners = members.map((m, i): LearnerRow => {
      const view = currents[i];
      const live = view?.workshopId === id ? view : undefined;
      const cells: Record<string, Cell> = {};
      for (const e of exercises) cells[e.id] = cellFor(e, byOwner.get(m.ownerId) ?? [], this.rules);
      const lastActiveAt = live?.lastActiveAt ?? null;
      return {
        memberId: m.id,
        name: m.displayName,
        status: m.status,
        position: m.status === "queued" ? queue.indexOf(m) + 1 : null,
        joinedAt: m.joinedAt,
        lastActiveAt,
        idle: live !== undefined && isIdle(lastActiveAt, now, this.rules),
        stuck: Object.values(cells).some((c) => c.stuck),
        terminals: live ? this.sessions.terminalNames(live.sessionId).sort() : [],
        cells,
      };
    });
    learners.sort((a, b) => a.name.localeCompare(b.name));
    return {
      workshop: await this.views.summary(w),
      exercises,
      learners,
      messages: await this.store.messages.recent(id),
      rules: { idleAfterMinutes: this.rules.idleAfterMs / 60_000, stuckAfterFailedChecks: this.rules.stuckAfterFailedChecks },
      at: now,
    };
  }

  /** Calls back with the dashboard now and whenever it changes (checked on every refresh). */
  async subscribe(id: string, listener: Listener): Promise<() => void> {
    const first = await this.snapshot(id);
    const set = this.listeners.get(id) ?? new Set();
    set.add(listener);
    this.listeners.set(id, set);
    listener(first);
    return () => {
      set.delete(listener);
      if (set.size === 0) {
        this.listeners.delete(id);
        this.pushed.delete(id);
      }
    };
  }

  /** The roster, seats or messages changed: every server's subscribers hear of it, through the bus. */
  changed(id: string): void {
    this.bus.publish({ type: "workshop", workshopId: id });
  }

  private bump(id: string): void {
    this.rosterVersion.set(id, (this.rosterVersion.get(id) ?? 0) + 1);
    if (!this.listeners.has(id) || this.pushScheduled.has(id)) return;
    this.pushScheduled.add(id);
    setImmediate(() => {
      this.pushScheduled.delete(id);
      void this.push(id, false);
    });
  }

  /** Looks at every watched workshop: new verdicts, or the clock moving idle flags. */
  refresh(): void {
    for (const id of this.listeners.keys()) void this.push(id, false);
  }

  close(): void {
    this.unsubscribeBus();
    this.listeners.clear();
  }

  /** Sends the dashboard to its subscribers when something they would see has changed. */
  private async push(id: string, force: boolean): Promise<void> {
    // One build at a time per workshop; a change meanwhile builds once more afterwards.
    if (this.pushing.has(id)) {
      this.pushAgain.add(id);
      return;
    }
    this.pushing.add(id);
    try {
      await this.pushNow(id, force);
    } finally {
      this.pushing.delete(id);
      if (this.pushAgain.delete(id)) void this.push(id, false);
    }
  }

  private async pushNow(id: string, force: boolean): Promise<void> {
    const set = this.listeners.get(id);
    if (!set?.size) return;
    let snapshot: DashboardSnapshot;
    let key: string;
    try {
      key = `${await this.store.resultsVersion(id)}|${this.rosterVersion.get(id) ?? 0}|${Math.floor(this.now() / REFRESH_MS)}`;
      const last = this.pushed.get(id);
      if (!force && last?.key === key) return;
      snapshot = await this.snapshot(id);
    } catch (e) {
      this.log.warn("could not build a dashboard", { workshopId: id, error: String(e) });
      return;
    }
    const body = JSON.stringify({ ...snapshot, at: 0 });
    const last = this.pushed.get(id);
    this.pushed.set(id, { key, body });
    if (!force && last?.body === body) return;
    for (const l of set) l(snapshot);
  }
}
