import { z } from "zod";

/**
 * The classroom workshop API (docs/workshops.md): what the instructor's pages and the learner's join
 * page send, and what the sandbox server answers. The server validates requests with these schemas;
 * the browser imports only the types (`import type`), so zod stays out of the page's bundle.
 */

const MAX_DURATION_MINUTES = 12 * 60;

// ---- requests ---------------------------------------------------------------------------------

/** `POST /api/instructor/session` */
export const signInSchema = z.object({ secret: z.string().max(200) }).strict();

/** `POST /api/instructor/invites` (admins only) */
export const createInviteSchema = z
  .object({ name: z.string().max(200), role: z.enum(["admin", "instructor"]) })
  .strict();
/** `POST /api/instructor/invites/preview` and `/redeem`: the token from the link's #invite= fragment. */
export const inviteTokenSchema = z.object({ token: z.string().max(200) }).strict();

/** `POST /api/workshops` */
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

/** `PATCH /api/workshops/:id` */
export const capacitySchema = z.object({ capacity: z.number().int().min(1).max(10_000) }).strict();
/** `POST /api/workshops/:id/prewarm` */
export const prewarmSchema = z.object({ count: z.number().int().min(0).max(10_000) }).strict();
/** `POST /api/workshops/:id/messages` */
export const messageSchema = z.object({ message: z.string().max(2_000) }).strict();
/** `POST /api/workshops/join` */
export const joinSchema = z.object({ code: z.string().max(40), name: z.string().max(400) }).strict();

// ---- answers ----------------------------------------------------------------------------------

export type InstructorRole = "admin" | "instructor";

/** A named instructor account. Admins see every workshop and manage accounts; instructors their own. */
export interface InstructorAccount {
  id: string;
  name: string;
  role: InstructorRole;
  createdAt: number;
  disabledAt: number | null;
}

/** `GET /api/instructor/session` */
export interface InstructorSessionView {
  signedIn: boolean;
  instructor?: { id: string; name: string; role: InstructorRole };
}

/** `POST /api/instructor/invites`: the one-time link, shown once (only its hash is stored). */
export interface CreatedInvite {
  link: string;
  name: string;
  role: InstructorRole;
  expiresAt: number;
}

/** `POST /api/instructor/invites/preview`: who the link signs in as, before it is used. */
export interface InvitePreview {
  name: string;
  role: InstructorRole;
  expiresAt: number;
}

/**
 * A learner's place in a workshop. `admitted` holds a seat (and a sandbox); `queued` waits for
 * one; `away` lost their sandbox (idle, expired) and gets back in line when they return; `left`
 * is gone for good (their results stay in the gradebook).
 */
export type MemberStatus = "queued" | "admitted" | "away" | "left";

/** An instructor's announcement, shown on learners' terminals and join pages. */
export interface WorkshopMessage {
  id: number;
  message: string;
  at: number;
}

/** A lesson an instructor can pick for a workshop (`GET /api/instructor/lessons`). */
export interface CatalogEntry {
  slug: string;
  title: string;
  order: number;
  exercises: Array<{ id: string; title: string }>;
}

export interface WorkshopSummary {
  id: string;
  /** The instructor account that created it (workshops from before accounts: "admin"). */
  ownerInstructorId: string;
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

/** A column of the instructor's grid: one exercise of the workshop's lessons. */
export interface ExerciseColumn {
  id: string;
  lesson: string;
  title: string;
  tasks: Array<{ id: string; title: string }>;
}

export type CellState = "not_started" | "in_progress" | "passed";

/** One learner × one exercise on the grid (sandbox-server/src/workshops/progress.ts computes it). */
export interface Cell {
  state: CellState;
  /** Tasks passed at least once. */
  passedTasks: number;
  tasks: number;
  /** Check runs (one press of Check), and how many of them did not pass the whole exercise. */
  checks: number;
  failedChecks: number;
  /** Failed checks in a row since the learner last made progress here. */
  failedSinceProgress: number;
  stuck: boolean;
  lastCheckAt: number | null;
  passedAt: number | null;
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

/** `GET /api/workshops/:id`, and each `dashboard` event of `GET /api/workshops/:id/events`. */
export interface DashboardSnapshot {
  workshop: WorkshopSummary;
  exercises: ExerciseColumn[];
  learners: LearnerRow[];
  messages: WorkshopMessage[];
  rules: { idleAfterMinutes: number; stuckAfterFailedChecks: number };
  at: number;
}

/** What a learner's join page shows (`POST /api/workshops/join`, `GET /api/workshops/mine`). */
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
