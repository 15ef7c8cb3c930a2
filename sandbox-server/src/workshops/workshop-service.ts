import type { Exercise } from "../../../contracts/content/exercise-schema.ts";
import type { CatalogEntry, CreateWorkshop, DashboardSnapshot, LearnerView, WorkshopSummary } from "../../../contracts/workshop-api.ts";
import { newId } from "../common/signing.ts";
import type { CatalogLesson } from "../content/lesson-catalog.ts";
import { ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { MemberRecord, WorkshopRecord, WorkshopStore } from "../store/workshop-store.ts";
import type { EventBus } from "../store/bus.ts";
import { Admission, queueOf } from "./admission.ts";
import { DashboardFeed } from "./dashboard-feed.ts";
import { gradesCsv } from "./gradebook.ts";
import { DEFAULT_RULES, type ProgressRules } from "./grid-cells.ts";
import { newJoinCode, normalizeJoinCode } from "./join-code.ts";
import { watchTarget, type WatchTarget } from "./watch-targets.ts";
import { WorkshopViews } from "./workshop-views.ts";

/** How often seats, the queue, the clock and the dashboards are looked at. */
const TICK_MS = 500;

/** Learners type their own names: keep printable text only, in one line, of a sensible length. */
export function cleanText(input: string, what: string, max: number): string {
  const text = input.normalize("NFKC").replace(/\p{C}/gu, "").replace(/\s+/g, " ").trim();
  if (!text) throw new ShipshapeError("bad_request", `Enter ${what}.`);
  if ([...text].length > max) throw new ShipshapeError("bad_request", `${capitalise(what)} is limited to ${max} characters.`);
  if (!/[\p{L}\p{N}]/u.test(text)) throw new ShipshapeError("bad_request", `${capitalise(what)} needs at least one letter or digit.`);
  return text;
}

const capitalise = (s: string) => s.replace(/^(a |an |your )/, "").replace(/^./, (c) => c.toUpperCase());

export interface WorkshopServiceDeps {
  store: WorkshopStore;
  /** Where dashboard changes are announced to every server (store.bus). */
  bus: EventBus;
  sessions: SessionManager;
  exercises: ReadonlyMap<string, Exercise>;
  lessons: readonly CatalogLesson[];
  log: Logger;
  /** The server's sandbox limit: no workshop can hold more seats than that. */
  maxSandboxes: number;
  rules?: ProgressRules;
  now?: () => number;
}

/**
 * Classroom workshops: creating and ending them, join codes, the roster, announcements. The parts
 * with a life of their own sit beside it: seats and the queue (admission.ts), the live grid
 * (dashboard-feed.ts), the gradebook (gradebook.ts) and the instructor's read-only view of a
 * learner's shell (watch-targets.ts). Everything lasting is in SQLite; what is in memory (the
 * queue's pace, dashboard subscribers) can be lost in a restart without harm.
 */
export class WorkshopService {
  private readonly store: WorkshopStore;
  private readonly sessions: SessionManager;
  private readonly log: Logger;
  private readonly maxSandboxes: number;
  private readonly now: () => number;
  private readonly views: WorkshopViews;
  private readonly admission: Admission;
  private readonly feed: DashboardFeed;
  private readonly ending = new Map<string, Promise<void>>();
  private ticker: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(deps: WorkshopServiceDeps) {
    this.store = deps.store;
    this.sessions = deps.sessions;
    this.log = deps.log.child({ component: "workshops" });
    this.maxSandboxes = deps.maxSandboxes;
    this.now = deps.now ?? Date.now;
    this.views = new WorkshopViews({ store: deps.store, sessions: deps.sessions, exercises: deps.exercises, lessons: deps.lessons });
    this.feed = new DashboardFeed({
      store: deps.store,
      bus: deps.bus,
      sessions: deps.sessions,
      views: this.views,
      rules: deps.rules ?? DEFAULT_RULES,
      log: this.log,
      now: this.now,
    });
    this.admission = new Admission({ store: deps.store, sessions: deps.sessions, log: this.log, now: this.now, changed: (id) => this.feed.changed(id) });
  }

  /**
   * Registers the reserves of running workshops. Call before the session manager starts, so it
   * adopts reserved sandboxes that outlived a restart.
   */
  async restore(): Promise<void> {
    for (const w of await this.store.workshops.live()) await this.admission.keepReserve(w.id);
  }

  /** Starts watching seats, the queue and the clock. Call after the session manager has started. */
  async start(): Promise<void> {
    this.ticker = setInterval(() => {
      if (this.ticking) return; // a slow store: skip a beat rather than pile up rounds
      this.ticking = true;
      this.tick()
        .catch((e: unknown) => this.log.error("workshop tick failed", { error: String(e) }))
        .finally(() => (this.ticking = false));
    }, TICK_MS);
    this.ticker.unref();
    for (const w of await this.store.workshops.live()) await this.admission.admitWaiting(w.id);
  }

  close(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.feed.close();
  }

  // ---- instructors ---------------------------------------------------------------------------

  lessonCatalog(): CatalogEntry[] {
    return this.views.lessonCatalog();
  }

  /** Every workshop, or only those one instructor owns. */
  async list(ownerInstructorId?: string): Promise<WorkshopSummary[]> {
    const mine = (await this.store.workshops.all()).filter((w) => ownerInstructorId === undefined || w.ownerInstructorId === ownerInstructorId);
    return Promise.all(mine.map((w) => this.views.summary(w)));
  }

  /** Who owns a workshop; undefined when there is no such workshop. */
  async ownerOf(id: string): Promise<string | undefined> {
    return (await this.store.workshops.get(id))?.ownerInstructorId;
  }

  async create(input: CreateWorkshop, ownerInstructorId = "admin"): Promise<WorkshopSummary> {
    const title = cleanText(input.title, "a title", 100);
    const lessons = [...new Set(input.lessons)];
    const unknown = lessons.filter((l) => !this.views.knowsLesson(l));
    if (unknown.length) throw new ShipshapeError("bad_request", `There is no lesson called ${unknown.map((l) => `"${l}"`).join(", ")}.`);
    if (input.capacity > this.maxSandboxes) {
      throw new ShipshapeError("bad_request", `This server runs at most ${this.maxSandboxes} sandboxes, so a workshop has at most ${this.maxSandboxes} seats. ` +
          `The operator can raise SHIPSHAPE_MAX_SANDBOXES (its default follows the machine's memory and disk).`);
    }
    let code = newJoinCode();
    for (let i = 0; await this.store.workshops.codeTaken(code); i++) {
      if (i > 20) throw new ShipshapeError("internal", "Could not find a free join code; try again.");
      code = newJoinCode();
    }
    const record: WorkshopRecord = {
      id: newId(9),
      ownerInstructorId,
      code,
      title,
      lessons,
      capacity: input.capacity,
      durationMs: input.durationMinutes * 60_000,
      warmTarget: Math.min(input.warm ?? 0, input.capacity),
      createdAt: this.now(),
      startedAt: null,
      endsAt: null,
      endedAt: null,
      endedReason: null,
    };
    await this.store.workshops.insert(record);
    await this.admission.keepReserve(record.id);
    this.log.info("workshop created", { workshopId: record.id, capacity: record.capacity, lessons: lessons.length });
    return this.views.summary(record);
  }

  async get(id: string): Promise<WorkshopSummary> {
    return this.views.summary(await this.views.require(id));
  }

  /** More seats let the queue in at once; fewer take no seat away from anyone who has one. */
  async setCapacity(id: string, capacity: number): Promise<WorkshopSummary> {
    const w = await this.views.requireLive(id);
    if (capacity > this.maxSandboxes) throw new ShipshapeError("bad_request", `This server runs at most ${this.maxSandboxes} sandboxes; the operator can raise SHIPSHAPE_MAX_SANDBOXES.`);
    await this.store.workshops.update(id, { capacity, warmTarget: Math.min(w.warmTarget, capacity) });
    await this.admission.admitWaiting(id);
    await this.admission.keepReserve(id);
    this.feed.changed(id);
    return this.get(id);
  }

  /**
   * Starts sandboxes for the class ahead of time: `count` seats' worth, less the learners already
   * in. They carry the workshop's label and only its learners take them.
   */
  async prewarm(id: string, count: number): Promise<WorkshopSummary> {
    const w = await this.views.requireLive(id);
    await this.store.workshops.update(id, { warmTarget: Math.min(count, w.capacity) });
    await this.admission.keepReserve(id);
    this.feed.changed(id);
    return this.get(id);
  }

  /** A message on every terminal of the workshop's learners, and on their join page. */
  async broadcast(id: string, text: string): Promise<{ delivered: number }> {
    await this.views.requireLive(id);
    const message = cleanText(text, "a message", 500);
    await this.store.messages.insert(id, message, this.now());
    const to: string[] = [];
    for (const m of await this.store.members.ofWorkshop(id)) {
      const view = m.status === "admitted" ? await this.sessions.viewAnywhere(m.ownerId) : undefined;
      if (view?.workshopId !== id) continue;
      to.push(view.sessionId);
    }
    // Through the bus: each server shows it on the terminals attached to it.
    this.sessions.notify(to, "workshop_message", `Message from your instructor: ${message}`);
    const delivered = to.length;
    this.log.info("workshop message sent", { workshopId: id, delivered });
    this.feed.changed(id);
    return { delivered };
  }

  /**
   * Ends a workshop: its grades freeze at this instant (the database refuses later verdicts for
   * it), then every sandbox it has is destroyed. Idempotent.
   */
  async end(id: string, reason = "ended by the instructor"): Promise<WorkshopSummary> {
    const w = await this.views.require(id);
    if (w.endedAt === null) {
      const running = this.ending.get(id);
      if (running) await running;
      else {
        const work = this.finish(w, reason);
        this.ending.set(id, work);
        await work.finally(() => this.ending.delete(id));
      }
    }
    return this.get(id);
  }

  private async finish(w: WorkshopRecord, reason: string): Promise<void> {
    await this.store.workshops.end(w.id, this.now(), reason);
    const to: string[] = [];
    for (const m of await this.store.members.ofWorkshop(w.id)) {
      const view = await this.sessions.viewAnywhere(m.ownerId);
      if (view?.workshopId === w.id) to.push(view.sessionId);
    }
    this.sessions.notify(to, "workshop_ended", `The workshop “${w.title}” has ended: your sandbox is being removed. Your results are saved.`);
    const ended = await this.sessions.endWorkshop(w.id, "the workshop ended");
    this.log.info("workshop ended", { workshopId: w.id, reason, sessions: ended });
    this.feed.changed(w.id);
  }

  // ---- the instructor's grid, gradebook and read-only terminals -----------------------------

  dashboard(id: string): Promise<DashboardSnapshot> {
    return this.feed.snapshot(id);
  }

  /** Calls back with the dashboard now and whenever it changes (checked every half second). */
  subscribe(id: string, listener: (snapshot: DashboardSnapshot) => void): Promise<() => void> {
    return this.feed.subscribe(id, listener);
  }

  /** The gradebook: one row per learner and task, every learner who ever joined. */
  gradesCsv(id: string): Promise<{ filename: string; csv: string }> {
    return gradesCsv({ store: this.store, views: this.views }, id);
  }

  /** A learner's open shell, for the instructor's read-only view. */
  watchTarget(id: string, memberId: string, terminal: string): Promise<WatchTarget> {
    return watchTarget({ store: this.store, views: this.views, sessions: this.sessions }, id, memberId, terminal);
  }

  // ---- learners ------------------------------------------------------------------------------

  /**
   * Joins with a code and a display name; no account. The learner is let in at once when a seat
   * is free (their sandbox starts, from the reserve when there is one) or waits in the queue.
   * Joining again from the same browser returns the same membership.
   */
  async join(ownerId: string, codeInput: string, nameInput: string): Promise<LearnerView> {
    const code = normalizeJoinCode(codeInput);
    if (!code) throw new ShipshapeError("bad_request", "That is not a join code: codes have six letters and digits, such as K7QX2M.");
    const w = await this.store.workshops.byCode(code);
    if (!w) throw new ShipshapeError("not_found", `No workshop has the code ${code}. Check it with your instructor.`);
    if (w.endedAt !== null) throw new ShipshapeError("not_found", `The workshop “${w.title}” has ended.`);
    const existing = await this.store.members.of(w.id, ownerId);
    if (existing && existing.status !== "left") return this.learnerView(existing);
    if (!existing) {
      const name = cleanText(nameInput, "your name", 40);
      if (await this.store.members.nameTaken(w.id, name)) {
        throw new ShipshapeError("bad_request", `Someone in this workshop is already called “${name}”. Add an initial or a surname.`);
      }
    }
    // One workshop at a time: joining another leaves the previous one (and its sandbox).
    const current = await this.store.members.currentOf(ownerId);
    if (current && current.workshopId !== w.id) await this.leaveMembership(current);
    if (existing) {
      await this.store.members.setStatus(existing.id, "queued", this.now());
    } else {
      const name = cleanText(nameInput, "your name", 40);
      const now = this.now();
      try {
        await this.store.members.insert({
          id: newId(9),
          workshopId: w.id,
          ownerId,
          displayName: name,
          joinedAt: now,
          status: "queued",
          queuedAt: now,
          admittedAt: null,
          leftAt: null,
        });
      } catch (e) {
        // Two joins at once (a double click, or two learners picking the same name).
        const mine = await this.store.members.of(w.id, ownerId);
        if (mine) return this.learnerView(mine);
        throw new ShipshapeError("bad_request", `Someone in this workshop is already called “${name}”. Add an initial or a surname.`, String(e));
      }
    }
    await this.admission.admitWaiting(w.id);
    this.feed.changed(w.id);
    const member = (await this.store.members.of(w.id, ownerId))!;
    this.log.info("learner joined", { workshopId: w.id, memberId: member.id, status: member.status });
    return this.learnerView(member);
  }

  /** The learner's workshop, their place in it and the instructor's messages; undefined when they are in none. */
  async mine(ownerId: string): Promise<LearnerView | undefined> {
    const m = await this.store.members.latestOf(ownerId);
    return m ? this.learnerView(m) : undefined;
  }

  /** Leaves for good: the seat goes to the next in the queue and the sandbox is removed. */
  async leave(ownerId: string): Promise<boolean> {
    const m = await this.store.members.currentOf(ownerId);
    if (!m) return false;
    await this.leaveMembership(m);
    return true;
  }

  private async leaveMembership(m: MemberRecord): Promise<void> {
    const wasSeated = m.status === "admitted";
    await this.store.members.setStatus(m.id, "left", this.now());
    this.admission.forget(m.id);
    const view = await this.sessions.current(m.ownerId);
    if (wasSeated) this.admission.seatReleased(m.workshopId);
    await this.admission.admitWaiting(m.workshopId);
    await this.admission.keepReserve(m.workshopId);
    this.feed.changed(m.workshopId);
    this.log.info("learner left", { workshopId: m.workshopId, memberId: m.id });
    if (view?.workshopId === m.workshopId) await this.sessions.end(view.sessionId, "left the workshop");
  }

  /**
   * Asked by `POST /api/sessions` before it opens a sandbox: a workshop member's session belongs to
   * the workshop; a member still in the queue waits (the answer says where they are in it).
   */
  async sessionOptionsFor(ownerId: string): Promise<{ workshopId?: string; expiresAt?: number }> {
    let m = await this.store.members.currentOf(ownerId);
    if (!m) return {};
    if (m.status === "away") {
      // Back after their sandbox was removed (idle, expired): in line again, let in if a seat is free.
      await this.store.members.setStatus(m.id, "queued", this.now());
      await this.admission.admitWaiting(m.workshopId);
      this.feed.changed(m.workshopId);
      m = (await this.store.members.get(m.id))!;
    }
    const w = await this.views.require(m.workshopId);
    if (m.status === "admitted") return { workshopId: w.id, expiresAt: this.admission.sessionExpiry(w) };
    const view = await this.learnerView(m);
    throw new ShipshapeError(
      "limit_reached",
      `You are number ${view.you.position ?? "?"} in the queue for “${w.title}”. Your terminal starts as soon as a seat is free.`,
    );
  }

  private async tick(): Promise<void> {
    const now = this.now();
    for (const w of await this.store.workshops.live()) {
      if (w.endsAt !== null && now >= w.endsAt) {
        void this.end(w.id, "its time was up").catch((e: unknown) => this.log.error("could not end a workshop", { workshopId: w.id, error: String(e) }));
        continue;
      }
      await this.admission.review(w, now);
    }
    this.feed.refresh();
  }

  // ---- views ---------------------------------------------------------------------------------

  private async learnerView(m: MemberRecord): Promise<LearnerView> {
    const w = await this.views.require(m.workshopId);
    const members = await this.store.members.ofWorkshop(w.id);
    const queue = queueOf(members);
    const position = m.status === "queued" ? queue.findIndex((q) => q.id === m.id) + 1 : null;
    const serverFull = this.admission.waitingOnServer(w.id);
    return {
      workshop: {
        title: w.title,
        lessons: w.lessons.map((slug) => ({ slug, title: this.views.lessonTitle(slug), href: `/lessons/${slug}/` })),
        endsAt: w.endsAt,
        ended: w.endedAt !== null,
      },
      you: {
        name: m.displayName,
        status: m.status,
        position,
        queueLength: queue.length,
        estimateSeconds: position === null ? null : this.admission.estimate(w.id, position),
        waitReason: position !== null && serverFull ? "server_full" : null,
      },
      messages: await this.store.messages.recent(w.id, 5),
    };
  }
}
