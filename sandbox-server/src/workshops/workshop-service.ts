import { z } from "zod";
import { ShipshapeError, toShipshapeError } from "../errors.ts";
import type { Exercise } from "../grading/exercise-schema.ts";
import type { Logger } from "../log.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { TerminalHub } from "../sessions/terminal-hub.ts";
import { newId } from "../sessions/tokens.ts";
import type { MemberRecord, MemberStatus, WorkshopMessage, WorkshopRecord, WorkshopStore } from "../store/workshop-store.ts";
import { toCsv } from "./csv.ts";
import { newJoinCode, normalizeJoinCode } from "./join-code.ts";
import type { CatalogLesson } from "./lesson-catalog.ts";
import { cellFor, DEFAULT_RULES, gradebook, isIdle, type Cell, type ExerciseColumn, type ProgressRules, type Verdict } from "./progress.ts";

/** A seat whose learner has had no sandbox for this long is given to the next in the queue. */
const SEAT_GRACE_MS = 60_000;
/** Workshop sessions outlive the workshop's planned end by this much (ending it removes them anyway). */
const SESSION_GRACE_MS = 30 * 60_000;
/** How often seats, the queue, the clock and the dashboards are looked at. */
const TICK_MS = 500;
/** Idle flags depend on the clock alone: dashboards are recomputed at least this often. */
const REFRESH_MS = 5_000;
const MAX_DURATION_MINUTES = 12 * 60;
/** While the server has no sandbox to spare, the queue tries again this often. */
const SERVER_FULL_RETRY_MS = 5_000;

/** Learners type their own names: keep printable text only, in one line, of a sensible length. */
export function cleanText(input: string, what: string, max: number): string {
  const text = input.normalize("NFKC").replace(/\p{C}/gu, "").replace(/\s+/g, " ").trim();
  if (!text) throw new ShipshapeError("bad_request", `Enter ${what}.`);
  if ([...text].length > max) throw new ShipshapeError("bad_request", `${capitalise(what)} is limited to ${max} characters.`);
  if (!/[\p{L}\p{N}]/u.test(text)) throw new ShipshapeError("bad_request", `${capitalise(what)} needs at least one letter or digit.`);
  return text;
}

const capitalise = (s: string) => s.replace(/^(a |an |your )/, "").replace(/^./, (c) => c.toUpperCase());

export const createWorkshopSchema = z
  .object({
    title: z.string().max(400),
    lessons: z.array(z.string().max(200)).min(1, "choose at least one lesson").max(50),
    capacity: z.number().int().min(1).max(10_000),
    durationMinutes: z.number().int().min(5, "a workshop lasts at least 5 minutes").max(MAX_DURATION_MINUTES, "a workshop lasts at most 12 hours"),
    warm: z.number().int().min(0).max(10_000).optional(),
  })
  .strict();
export type CreateWorkshop = z.infer<typeof createWorkshopSchema>;

export interface WorkshopSummary {
  id: string;
  code: string;
  joinPath: string;
  title: string;
  lessons: Array<{ slug: string; title: string }>;
  capacity: number;
  durationMinutes: number;
  createdAt: number;
  startedAt: number | null;
  endsAt: number | null;
  endedAt: number | null;
  endedReason: string | null;
  warm: { target: number; ready: number; starting: number };
  counts: Record<MemberStatus, number>;
}

export interface LearnerRow {
  memberId: string;
  name: string;
  status: MemberStatus;
  /** 1-based place in the queue, when queued. */
  position: number | null;
  joinedAt: number;
  /** Last keystroke or check in their sandbox; null when they have none. */
  lastActiveAt: number | null;
  idle: boolean;
  stuck: boolean;
  /** Shells open in their sandbox, which the instructor may watch. */
  terminals: string[];
  cells: Record<string, Cell>;
}

export interface DashboardSnapshot {
  workshop: WorkshopSummary;
  exercises: ExerciseColumn[];
  learners: LearnerRow[];
  messages: WorkshopMessage[];
  rules: { idleAfterMinutes: number; stuckAfterFailedChecks: number };
  at: number;
}

/** What a learner's join page shows. */
export interface LearnerView {
  workshop: {
    title: string;
    lessons: Array<{ slug: string; title: string; href: string }>;
    endsAt: number | null;
    ended: boolean;
  };
  you: {
    name: string;
    status: MemberStatus;
    position: number | null;
    queueLength: number;
    /** Seconds until a seat is likely free; null when there is nothing to base a guess on. */
    estimateSeconds: number | null;
    /** Why the queue is not moving although seats are free. */
    waitReason: "server_full" | null;
  };
  messages: WorkshopMessage[];
}

export interface WorkshopServiceDeps {
  store: WorkshopStore;
  sessions: SessionManager;
  exercises: ReadonlyMap<string, Exercise>;
  lessons: readonly CatalogLesson[];
  log: Logger;
  /** The server's sandbox limit: no workshop can hold more seats than that. */
  maxSandboxes: number;
  rules?: ProgressRules;
  now?: () => number;
}

type Listener = (snapshot: DashboardSnapshot) => void;

/**
 * Classroom workshops: join codes, the roster and its queue, seats backed by sandboxes from the
 * workshop's own reserve, the live dashboard, announcements, ending and the gradebook.
 * Everything lasting is in SQLite; what is in memory (the queue's pace, dashboard subscribers)
 * can be lost in a restart without harm.
 */
export class WorkshopService {
  private readonly store: WorkshopStore;
  private readonly sessions: SessionManager;
  private readonly exercises: ReadonlyMap<string, Exercise>;
  private readonly lessons: readonly CatalogLesson[];
  private readonly log: Logger;
  private readonly maxSandboxes: number;
  private readonly rules: ProgressRules;
  private readonly now: () => number;
  private readonly listeners = new Map<string, Set<Listener>>();
  /** Per workshop: what the dashboards last saw (results version, roster version, time bucket) and sent. */
  private readonly pushed = new Map<string, { key: string; body: string }>();
  private readonly rosterVersion = new Map<string, number>();
  /** When each admitted member was first seen without a sandbox. */
  private readonly noSessionSince = new Map<string, number>();
  /** When seats were given back, per workshop: the queue's pace, for estimates. */
  private readonly releases = new Map<string, number[]>();
  /** Workshops whose queue waits on the server's sandbox limit, not on seats: when they last tried. */
  private readonly serverFull = new Map<string, number>();
  private readonly ending = new Map<string, Promise<void>>();
  private ticker: NodeJS.Timeout | undefined;
  private pushScheduled = new Set<string>();

  constructor(deps: WorkshopServiceDeps) {
    this.store = deps.store;
    this.sessions = deps.sessions;
    this.exercises = deps.exercises;
    this.lessons = deps.lessons;
    this.log = deps.log.child({ component: "workshops" });
    this.maxSandboxes = deps.maxSandboxes;
    this.rules = deps.rules ?? DEFAULT_RULES;
    this.now = deps.now ?? Date.now;
    // Registered before the session manager starts, so it adopts reserved sandboxes that outlived a restart.
    for (const w of this.store.workshops.live()) this.keepReserve(w.id);
  }

  /** Starts watching seats, the queue and the clock. Call after the session manager has started. */
  start(): void {
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
    for (const w of this.store.workshops.live()) this.admitWaiting(w.id);
  }

  close(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.listeners.clear();
  }

  // ---- instructors ---------------------------------------------------------------------------

  lessonCatalog(): Array<CatalogLesson & { exercises: Array<{ id: string; title: string }> }> {
    return this.lessons.map((l) => ({
      ...l,
      exercises: [...this.exercises.values()].filter((e) => e.lesson === l.slug).map((e) => ({ id: e.id, title: e.title })),
    }));
  }

  list(): WorkshopSummary[] {
    return this.store.workshops.all().map((w) => this.summary(w));
  }

  create(input: CreateWorkshop): WorkshopSummary {
    const title = cleanText(input.title, "a title", 100);
    const known = new Set(this.lessons.map((l) => l.slug));
    const lessons = [...new Set(input.lessons)];
    const unknown = lessons.filter((l) => !known.has(l));
    if (unknown.length) throw new ShipshapeError("bad_request", `There is no lesson called ${unknown.map((l) => `"${l}"`).join(", ")}.`);
    if (input.capacity > this.maxSandboxes) {
      throw new ShipshapeError("bad_request", `This server runs at most ${this.maxSandboxes} sandboxes, so a workshop has at most ${this.maxSandboxes} seats. ` +
          `The operator can raise SHIPSHAPE_MAX_SANDBOXES (its default follows the machine's memory and disk).`);
    }
    let code = newJoinCode();
    for (let i = 0; this.store.workshops.codeTaken(code); i++) {
      if (i > 20) throw new ShipshapeError("internal", "Could not find a free join code; try again.");
      code = newJoinCode();
    }
    const record: WorkshopRecord = {
      id: newId(9),
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
    this.store.workshops.insert(record);
    this.keepReserve(record.id);
    this.log.info("workshop created", { workshopId: record.id, capacity: record.capacity, lessons: lessons.length });
    return this.summary(record);
  }

  get(id: string): WorkshopSummary {
    return this.summary(this.require(id));
  }

  /** More seats let the queue in at once; fewer take no seat away from anyone who has one. */
  setCapacity(id: string, capacity: number): WorkshopSummary {
    const w = this.requireLive(id);
    if (capacity > this.maxSandboxes) throw new ShipshapeError("bad_request", `This server runs at most ${this.maxSandboxes} sandboxes; the operator can raise SHIPSHAPE_MAX_SANDBOXES.`);
    this.store.workshops.update(id, { capacity, warmTarget: Math.min(w.warmTarget, capacity) });
    this.admitWaiting(id);
    this.keepReserve(id);
    this.changed(id);
    return this.get(id);
  }

  /**
   * Starts sandboxes for the class ahead of time: `count` seats' worth, less the learners already
   * in. They carry the workshop's label and only its learners take them.
   */
  prewarm(id: string, count: number): WorkshopSummary {
    const w = this.requireLive(id);
    this.store.workshops.update(id, { warmTarget: Math.min(count, w.capacity) });
    this.keepReserve(id);
    this.changed(id);
    return this.get(id);
  }

  /** A message on every terminal of the workshop's learners, and on their join page. */
  broadcast(id: string, text: string): { delivered: number } {
    this.requireLive(id);
    const message = cleanText(text, "a message", 500);
    this.store.messages.insert(id, message, this.now());
    let delivered = 0;
    for (const m of this.store.members.ofWorkshop(id)) {
      const view = m.status === "admitted" ? this.sessions.current(m.ownerId) : undefined;
      if (view?.workshopId !== id) continue;
      this.sessions.broadcast(view.sessionId, { type: "notice", code: "workshop_message", message: `Message from your instructor: ${message}` });
      delivered++;
    }
    this.log.info("workshop message sent", { workshopId: id, delivered });
    this.changed(id);
    return { delivered };
  }

  /**
   * Ends a workshop: its grades freeze at this instant (the database refuses later verdicts for
   * it), then every sandbox it has is destroyed. Idempotent.
   */
  async end(id: string, reason = "ended by the instructor"): Promise<WorkshopSummary> {
    const w = this.require(id);
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
    this.store.workshops.end(w.id, this.now(), reason);
    for (const m of this.store.members.ofWorkshop(w.id)) {
      const view = this.sessions.current(m.ownerId);
      if (view?.workshopId !== w.id) continue;
      this.sessions.broadcast(view.sessionId, {
        type: "notice",
        code: "workshop_ended",
        message: `The workshop “${w.title}” has ended: your sandbox is being removed. Your results are saved.`,
      });
    }
    const ended = await this.sessions.endWorkshop(w.id, "the workshop ended");
    this.log.info("workshop ended", { workshopId: w.id, reason, sessions: ended });
    this.changed(w.id);
  }

  dashboard(id: string): DashboardSnapshot {
    const w = this.require(id);
    const exercises = this.columns(w);
    const results = this.store.results(id);
    const byOwner = new Map<string, Verdict[]>();
    for (const r of results) {
      const list = byOwner.get(r.ownerId) ?? [];
      list.push(r);
      byOwner.set(r.ownerId, list);
    }
    const members = this.store.members.ofWorkshop(id);
    const queue = queueOf(members);
    const now = this.now();
    const learners = members.map((m): LearnerRow => {
      const view = w.endedAt === null && m.status === "admitted" ? this.sessions.current(m.ownerId) : undefined;
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
      workshop: this.summary(w),
      exercises,
      learners,
      messages: this.store.messages.recent(id),
      rules: { idleAfterMinutes: this.rules.idleAfterMs / 60_000, stuckAfterFailedChecks: this.rules.stuckAfterFailedChecks },
      at: now,
    };
  }

  /** Calls back with the dashboard now and whenever it changes (checked every half second). */
  subscribe(id: string, listener: Listener): () => void {
    this.require(id);
    const set = this.listeners.get(id) ?? new Set();
    set.add(listener);
    this.listeners.set(id, set);
    listener(this.dashboard(id));
    return () => {
      set.delete(listener);
      if (set.size === 0) {
        this.listeners.delete(id);
        this.pushed.delete(id);
      }
    };
  }

  /** The gradebook: one row per learner and task, every learner who ever joined. */
  gradesCsv(id: string): { filename: string; csv: string } {
    const w = this.require(id);
    const results = this.store.results(id);
    const learners = this.store.members
      .ofWorkshop(id)
      .map((m) => ({ name: m.displayName, verdicts: results.filter((r) => r.ownerId === m.ownerId) }))
      .sort((a, b) => a.name.localeCompare(b.name));
    const rows = gradebook(learners, this.columns(w)).map((r) => [r.learner, r.exercise, r.task, r.verdict, r.time]);
    const slug = w.title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "workshop";
    return { filename: `${slug}-${w.code.toLowerCase()}-grades.csv`, csv: toCsv(["learner", "exercise", "task", "verdict", "time"], rows) };
  }

  /** A learner's open shell, for the instructor's read-only view. */
  watchTarget(id: string, memberId: string, terminal: string): { hub: TerminalHub; sessionId: string; learner: string } {
    const w = this.require(id);
    if (w.endedAt !== null) throw new ShipshapeError("sandbox_gone", "This workshop has ended; its sandboxes are gone.");
    const m = this.store.members.get(memberId);
    if (!m || m.workshopId !== id) throw new ShipshapeError("not_found", "There is no such learner in this workshop.");
    const view = m.status === "admitted" ? this.sessions.current(m.ownerId) : undefined;
    if (!view || view.workshopId !== id) throw new ShipshapeError("not_found", `${m.displayName} has no sandbox right now.`);
    const hub = this.sessions.openTerminal(view.sessionId, terminal);
    if (!hub) throw new ShipshapeError("not_found", `${m.displayName} has no terminal called "${terminal}" open.`);
    return { hub, sessionId: view.sessionId, learner: m.displayName };
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
    const w = this.store.workshops.byCode(code);
    if (!w) throw new ShipshapeError("not_found", `No workshop has the code ${code}. Check it with your instructor.`);
    if (w.endedAt !== null) throw new ShipshapeError("not_found", `The workshop “${w.title}” has ended.`);
    const existing = this.store.members.of(w.id, ownerId);
    if (existing && existing.status !== "left") return this.learnerView(existing);
    if (!existing) {
      const name = cleanText(nameInput, "your name", 40);
      if (this.store.members.nameTaken(w.id, name)) {
        throw new ShipshapeError("bad_request", `Someone in this workshop is already called “${name}”. Add an initial or a surname.`);
      }
    }
    // One workshop at a time: joining another leaves the previous one (and its sandbox).
    const current = this.store.members.currentOf(ownerId);
    if (current && current.workshopId !== w.id) await this.leaveMembership(current);
    if (existing) {
      this.store.members.setStatus(existing.id, "queued", this.now());
    } else {
      const name = cleanText(nameInput, "your name", 40);
      const now = this.now();
      try {
        this.store.members.insert({
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
        const mine = this.store.members.of(w.id, ownerId);
        if (mine) return this.learnerView(mine);
        throw new ShipshapeError("bad_request", `Someone in this workshop is already called “${name}”. Add an initial or a surname.`, String(e));
      }
    }
    this.admitWaiting(w.id);
    this.changed(w.id);
    const member = this.store.members.of(w.id, ownerId)!;
    this.log.info("learner joined", { workshopId: w.id, memberId: member.id, status: member.status });
    return this.learnerView(member);
  }

  /** The learner's workshop, their place in it and the instructor's messages; undefined when they are in none. */
  mine(ownerId: string): LearnerView | undefined {
    const m = this.store.members.latestOf(ownerId);
    return m ? this.learnerView(m) : undefined;
  }

  /** Leaves for good: the seat goes to the next in the queue and the sandbox is removed. */
  async leave(ownerId: string): Promise<boolean> {
    const m = this.store.members.currentOf(ownerId);
    if (!m) return false;
    await this.leaveMembership(m);
    return true;
  }

  private async leaveMembership(m: MemberRecord): Promise<void> {
    const wasSeated = m.status === "admitted";
    this.store.members.setStatus(m.id, "left", this.now());
    this.noSessionSince.delete(m.id);
    const view = this.sessions.current(m.ownerId);
    if (wasSeated) this.seatReleased(m.workshopId);
    this.admitWaiting(m.workshopId);
    this.keepReserve(m.workshopId);
    this.changed(m.workshopId);
    this.log.info("learner left", { workshopId: m.workshopId, memberId: m.id });
    if (view?.workshopId === m.workshopId) await this.sessions.end(view.sessionId, "left the workshop");
  }

  /**
   * Asked by `POST /api/sessions` before it opens a sandbox: a workshop member's session belongs to
   * the workshop; a member still in the queue waits (the answer says where they are in it).
   */
  sessionOptionsFor(ownerId: string): { workshopId?: string; expiresAt?: number } {
    let m = this.store.members.currentOf(ownerId);
    if (!m) return {};
    if (m.status === "away") {
      // Back after their sandbox was removed (idle, expired): in line again, let in if a seat is free.
      this.store.members.setStatus(m.id, "queued", this.now());
      this.admitWaiting(m.workshopId);
      this.changed(m.workshopId);
      m = this.store.members.get(m.id)!;
    }
    const w = this.require(m.workshopId);
    if (m.status === "admitted") return { workshopId: w.id, expiresAt: this.sessionExpiry(w) };
    const view = this.learnerView(m);
    throw new ShipshapeError(
      "limit_reached",
      `You are number ${view.you.position ?? "?"} in the queue for “${w.title}”. Your terminal starts as soon as a seat is free.`,
    );
  }

  // ---- seats and the queue -------------------------------------------------------------------

  /** Lets queued learners in, oldest first, while there are seats and the server has sandboxes. */
  private admitWaiting(id: string): void {
    const w = this.store.workshops.get(id);
    if (!w || w.endedAt !== null) return;
    const members = this.store.members.ofWorkshop(id);
    let seated = members.filter((m) => m.status === "admitted").length;
    let admittedAny = false;
    this.serverFull.delete(id);
    for (const m of queueOf(members)) {
      if (seated >= w.capacity) break;
      if (!this.admit(w, m)) {
        this.serverFull.set(id, this.now());
        break;
      }
      seated++;
      admittedAny = true;
    }
    if (admittedAny) this.changed(id);
  }

  private admit(w: WorkshopRecord, m: MemberRecord): boolean {
    const now = this.now();
    // Seated before the sandbox is claimed, so the reserve's target already counts this learner.
    this.store.members.setStatus(m.id, "admitted", now);
    if (w.startedAt === null) {
      this.store.workshops.start(w.id, now);
      w = this.store.workshops.get(w.id)!;
    }
    try {
      const current = this.sessions.current(m.ownerId);
      this.sessions.open(m.ownerId, {
        workshopId: w.id,
        expiresAt: this.sessionExpiry(w),
        fresh: current !== undefined && current.workshopId !== w.id,
      });
      this.noSessionSince.delete(m.id);
      this.log.info("learner admitted", { workshopId: w.id, memberId: m.id });
      return true;
    } catch (e) {
      const err = toShipshapeError(e);
      this.store.members.setStatus(m.id, "queued", m.queuedAt); // keeps their place
      this.log.warn("could not admit a learner; they stay in the queue", { workshopId: w.id, memberId: m.id, code: err.code, detail: err.detail });
      return false;
    }
  }

  private sessionExpiry(w: WorkshopRecord): number {
    return (w.startedAt ?? this.now()) + w.durationMs + SESSION_GRACE_MS;
  }

  private seatReleased(id: string): void {
    const list = this.releases.get(id) ?? [];
    list.push(this.now());
    if (list.length > 10) list.shift();
    this.releases.set(id, list);
  }

  /** The reserve keeps (pre-warmed seats − learners already seated) sandboxes ready. */
  private keepReserve(id: string): void {
    this.sessions.reserve(id, () => {
      const w = this.store.workshops.get(id);
      if (!w || w.endedAt !== null) return 0;
      const seated = this.store.members.ofWorkshop(id).filter((m) => m.status === "admitted").length;
      return Math.max(0, Math.min(w.warmTarget, w.capacity) - seated);
    });
  }

  private tick(): void {
    const now = this.now();
    for (const w of this.store.workshops.live()) {
      if (w.endsAt !== null && now >= w.endsAt) {
        void this.end(w.id, "its time was up").catch((e: unknown) => this.log.error("could not end a workshop", { workshopId: w.id, error: String(e) }));
        continue;
      }
      let freed = false;
      for (const m of this.store.members.ofWorkshop(w.id)) {
        if (m.status !== "admitted") continue;
        const view = this.sessions.current(m.ownerId);
        if (view?.workshopId === w.id) {
          this.noSessionSince.delete(m.id);
          continue;
        }
        const since = this.noSessionSince.get(m.id) ?? now;
        this.noSessionSince.set(m.id, since);
        if (now - since < SEAT_GRACE_MS) continue;
        // Their sandbox is gone (idle, expired, ended): the seat goes to the next learner.
        this.store.members.setStatus(m.id, "away", now);
        this.noSessionSince.delete(m.id);
        this.seatReleased(w.id);
        this.log.info("seat released: the learner has no sandbox", { workshopId: w.id, memberId: m.id });
        freed = true;
      }
      const fullSince = this.serverFull.get(w.id);
      if (freed || (fullSince !== undefined && now - fullSince >= SERVER_FULL_RETRY_MS)) {
        this.admitWaiting(w.id);
        this.keepReserve(w.id);
        this.changed(w.id);
      }
    }
    for (const id of this.listeners.keys()) this.push(id, false);
  }

  // ---- dashboards ----------------------------------------------------------------------------

  private changed(id: string): void {
    this.rosterVersion.set(id, (this.rosterVersion.get(id) ?? 0) + 1);
    if (!this.listeners.has(id) || this.pushScheduled.has(id)) return;
    this.pushScheduled.add(id);
    setImmediate(() => {
      this.pushScheduled.delete(id);
      this.push(id, false);
    });
  }

  /** Sends the dashboard to its subscribers when something they would see has changed. */
  private push(id: string, force: boolean): void {
    const set = this.listeners.get(id);
    if (!set?.size) return;
    const key = `${this.store.resultsVersion(id)}|${this.rosterVersion.get(id) ?? 0}|${Math.floor(this.now() / REFRESH_MS)}`;
    const last = this.pushed.get(id);
    if (!force && last?.key === key) return;
    let snapshot: DashboardSnapshot;
    try {
      snapshot = this.dashboard(id);
    } catch (e) {
      this.log.warn("could not build a dashboard", { workshopId: id, error: String(e) });
      return;
    }
    const body = JSON.stringify({ ...snapshot, at: 0 });
    this.pushed.set(id, { key, body });
    if (!force && last?.body === body) return;
    for (const l of set) l(snapshot);
  }

  // ---- views ---------------------------------------------------------------------------------

  private learnerView(m: MemberRecord): LearnerView {
    const w = this.require(m.workshopId);
    const members = this.store.members.ofWorkshop(w.id);
    const queue = queueOf(members);
    const position = m.status === "queued" ? queue.findIndex((q) => q.id === m.id) + 1 : null;
    const serverFull = this.serverFull.has(w.id);
    return {
      workshop: {
        title: w.title,
        lessons: w.lessons.map((slug) => ({ slug, title: this.lessonTitle(slug), href: `/lessons/${slug}/` })),
        endsAt: w.endsAt,
        ended: w.endedAt !== null,
      },
      you: {
        name: m.displayName,
        status: m.status,
        position,
        queueLength: queue.length,
        estimateSeconds: position === null ? null : this.estimate(w.id, position),
        waitReason: position !== null && serverFull ? "server_full" : null,
      },
      messages: this.store.messages.recent(w.id, 5),
    };
  }

  /** The queue's recent pace times the learner's place; nothing to say before two seats were given back. */
  private estimate(id: string, position: number): number | null {
    const list = this.releases.get(id) ?? [];
    if (list.length < 2) return null;
    const interval = (list.at(-1)! - list[0]!) / (list.length - 1);
    const sinceLast = this.now() - list.at(-1)!;
    return Math.max(5, Math.round((position * interval - Math.min(sinceLast, interval)) / 1000));
  }

  private summary(w: WorkshopRecord): WorkshopSummary {
    const counts: Record<MemberStatus, number> = { queued: 0, admitted: 0, away: 0, left: 0 };
    for (const m of this.store.members.ofWorkshop(w.id)) counts[m.status]++;
    const reserve = this.sessions.reserveCounts(w.id);
    return {
      id: w.id,
      code: w.code,
      joinPath: `/join/${w.code}`,
      title: w.title,
      lessons: w.lessons.map((slug) => ({ slug, title: this.lessonTitle(slug) })),
      capacity: w.capacity,
      durationMinutes: Math.round(w.durationMs / 60_000),
      createdAt: w.createdAt,
      startedAt: w.startedAt,
      endsAt: w.endsAt,
      endedAt: w.endedAt,
      endedReason: w.endedReason,
      warm: { target: w.endedAt === null ? w.warmTarget : 0, ...reserve },
      counts,
    };
  }

  private columns(w: WorkshopRecord): ExerciseColumn[] {
    const all = [...this.exercises.values()];
    return w.lessons.flatMap((slug) =>
      all
        .filter((e) => e.lesson === slug)
        .map((e) => ({ id: e.id, lesson: slug, title: e.title, tasks: e.tasks.map((t) => ({ id: t.id, title: t.title })) })),
    );
  }

  private lessonTitle(slug: string): string {
    return this.lessons.find((l) => l.slug === slug)?.title ?? slug;
  }

  private require(id: string): WorkshopRecord {
    const w = this.store.workshops.get(id);
    if (!w) throw new ShipshapeError("not_found", "There is no such workshop.");
    return w;
  }

  private requireLive(id: string): WorkshopRecord {
    const w = this.require(id);
    if (w.endedAt !== null) throw new ShipshapeError("bad_request", "This workshop has ended; it can no longer be changed.");
    return w;
  }
}

/** Queued learners in the order they are served: who queued first (ties: who joined first). */
function queueOf(members: readonly MemberRecord[]): MemberRecord[] {
  return members.filter((m) => m.status === "queued").sort((a, b) => a.queuedAt - b.queuedAt || a.joinedAt - b.joinedAt);
}
