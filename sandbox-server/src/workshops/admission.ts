import { toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { MemberRecord, WorkshopRecord, WorkshopStore } from "../store/workshop-store.ts";

/** A seat whose learner has had no sandbox for this long is given to the next in the queue. */
const SEAT_GRACE_MS = 60_000;
/** Workshop sessions outlive the workshop's planned end by this much (ending it removes them anyway). */
const SESSION_GRACE_MS = 30 * 60_000;
/** While the server has no sandbox to spare, the queue tries again this often. */
const SERVER_FULL_RETRY_MS = 5_000;

/** Queued learners in the order they are served: who queued first (ties: who joined first). */
export function queueOf(members: readonly MemberRecord[]): MemberRecord[] {
  return members.filter((m) => m.status === "queued").sort((a, b) => a.queuedAt - b.queuedAt || a.joinedAt - b.joinedAt);
}

export interface AdmissionDeps {
  store: WorkshopStore;
  sessions: Pick<SessionManager, "viewAnywhere" | "open" | "reserve">;
  log: Logger;
  now: () => number;
  /** Something a dashboard shows has changed (a learner was let in, a seat was freed). */
  changed: (workshopId: string) => void;
}

/**
 * Seats and the queue: queued learners are let in, oldest first, while the workshop has seats and
 * the server has sandboxes; a seated learner who has had no sandbox for a minute gives the seat to
 * the next; each workshop keeps its reserve of pre-warmed sandboxes. What is kept here in memory
 * (the queue's pace, who has been without a sandbox since when) may be lost in a restart.
 */
export class Admission {
  private readonly deps: AdmissionDeps;
  /** When each admitted member was first seen without a sandbox. */
  private readonly noSessionSince = new Map<string, number>();
  /** When seats were given back, per workshop: the queue's pace, for estimates. */
  private readonly releases = new Map<string, number[]>();
  /** Workshops whose queue waits on the server's sandbox limit, not on seats: when they last tried. */
  private readonly serverFull = new Map<string, number>();
  /** Each workshop's admitWaiting in progress: one at a time, or two could fill the same last seat. */
  private readonly admitting = new Map<string, Promise<void>>();
  /**
   * How many sandboxes each workshop's reserve should hold, as last read from the store. The pool
   * asks synchronously while it fills; the store answers asynchronously, so the answer is kept here
   * and read again whenever seats change (admitWaiting, keepReserve, review).
   */
  private readonly reserveTargets = new Map<string, number>();

  constructor(deps: AdmissionDeps) {
    this.deps = deps;
  }

  /** Lets queued learners in, oldest first, while there are seats and the server has sandboxes. */
  admitWaiting(id: string): Promise<void> {
    const previous = this.admitting.get(id) ?? Promise.resolve();
    // In this process one at a time; across servers under the store's lock for this workshop.
    const next = previous.catch(() => {}).then(() => this.deps.store.exclusively(`seats:${id}`, () => this.admitWaitingNow(id)));
    this.admitting.set(id, next);
    const forget = () => {
      if (this.admitting.get(id) === next) this.admitting.delete(id);
    };
    next.then(forget, forget);
    return next;
  }

  private async admitWaitingNow(id: string): Promise<void> {
    const { store } = this.deps;
    const w = await store.workshops.get(id);
    if (!w || w.endedAt !== null) return;
    const members = await store.members.ofWorkshop(id);
    let seated = members.filter((m) => m.status === "admitted").length;
    let admittedAny = false;
    this.serverFull.delete(id);
    for (const m of queueOf(members)) {
      if (seated >= w.capacity) break;
      if (!(await this.admit(w, m))) {
        this.serverFull.set(id, this.deps.now());
        break;
      }
      seated++;
      admittedAny = true;
    }
    if (admittedAny) {
      await this.refreshReserveTarget(id);
      this.deps.changed(id);
    }
  }

  private async admit(w: WorkshopRecord, m: MemberRecord): Promise<boolean> {
    const { store, sessions, log } = this.deps;
    const now = this.deps.now();
    // Seated before the sandbox is claimed, so the reserve's target already counts this learner.
    await store.members.setStatus(m.id, "admitted", now);
    // The reserve reads its target from this cache when the claim below refills it: count the seat now.
    await this.refreshReserveTarget(w.id);
    if (w.startedAt === null) {
      await store.workshops.start(w.id, now);
      w = (await store.workshops.get(w.id))!;
    }
    try {
      const current = await sessions.viewAnywhere(m.ownerId);
      await sessions.open(m.ownerId, {
        workshopId: w.id,
        expiresAt: this.sessionExpiry(w),
        fresh: current !== undefined && current.workshopId !== w.id,
      });
      this.noSessionSince.delete(m.id);
      log.info("learner admitted", { workshopId: w.id, memberId: m.id });
      return true;
    } catch (e) {
      const err = toShipshapeError(e);
      await store.members.setStatus(m.id, "queued", m.queuedAt); // keeps their place
      log.warn("could not admit a learner; they stay in the queue", { workshopId: w.id, memberId: m.id, code: err.code, detail: err.detail });
      return false;
    }
  }

  sessionExpiry(w: WorkshopRecord): number {
    return (w.startedAt ?? this.deps.now()) + w.durationMs + SESSION_GRACE_MS;
  }

  /** A seated learner gave their seat back (left, or lost their sandbox): the queue's pace. */
  seatReleased(id: string): void {
    const list = this.releases.get(id) ?? [];
    list.push(this.deps.now());
    if (list.length > 10) list.shift();
    this.releases.set(id, list);
  }

  /** The member is gone: nothing more to watch for them. */
  forget(memberId: string): void {
    this.noSessionSince.delete(memberId);
  }

  /** The reserve keeps (pre-warmed seats − learners already seated) sandboxes ready. */
  async keepReserve(id: string): Promise<void> {
    await this.refreshReserveTarget(id);
    this.deps.sessions.reserve(id, () => this.reserveTargets.get(id) ?? 0);
  }

  private async refreshReserveTarget(id: string): Promise<void> {
    const { store } = this.deps;
    const w = await store.workshops.get(id);
    if (!w || w.endedAt !== null) {
      this.reserveTargets.set(id, 0);
      return;
    }
    const seated = (await store.members.ofWorkshop(id)).filter((m) => m.status === "admitted").length;
    this.reserveTargets.set(id, Math.max(0, Math.min(w.warmTarget, w.capacity) - seated));
  }

  /**
   * Run on every tick for a live workshop: frees the seats of learners whose sandbox has been gone
   * for the grace period, and lets the queue in again when a seat was freed or the server may have
   * a sandbox to spare by now.
   */
  async review(w: WorkshopRecord, now: number): Promise<void> {
    const { store, sessions, log } = this.deps;
    let freed = false;
    for (const m of await store.members.ofWorkshop(w.id)) {
      if (m.status !== "admitted") continue;
      const view = await sessions.viewAnywhere(m.ownerId);
      if (view?.workshopId === w.id) {
        this.noSessionSince.delete(m.id);
        continue;
      }
      const since = this.noSessionSince.get(m.id) ?? now;
      this.noSessionSince.set(m.id, since);
      if (now - since < SEAT_GRACE_MS) continue;
      // Their sandbox is gone (idle, expired, ended): the seat goes to the next learner.
      await store.members.setStatus(m.id, "away", now);
      this.noSessionSince.delete(m.id);
      this.seatReleased(w.id);
      log.info("seat released: the learner has no sandbox", { workshopId: w.id, memberId: m.id });
      freed = true;
    }
    const fullSince = this.serverFull.get(w.id);
    if (freed || (fullSince !== undefined && now - fullSince >= SERVER_FULL_RETRY_MS)) {
      await this.admitWaiting(w.id);
      await this.keepReserve(w.id);
      this.deps.changed(w.id);
    }
  }

  /** The queue is held up by the server's sandbox limit, not by the workshop's seats. */
  waitingOnServer(id: string): boolean {
    return this.serverFull.has(id);
  }

  /** The queue's recent pace times the learner's place; nothing to say before two seats were given back. */
  estimate(id: string, position: number): number | null {
    const list = this.releases.get(id) ?? [];
    if (list.length < 2) return null;
    const interval = (list.at(-1)! - list[0]!) / (list.length - 1);
    const sinceLast = this.deps.now() - list.at(-1)!;
    return Math.max(5, Math.round((position * interval - Math.min(sinceLast, interval)) / 1000));
  }
}
