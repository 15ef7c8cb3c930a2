import type { DatabaseSync } from "node:sqlite";
import type { MemberStatus, WorkshopMessage } from "../../../contracts/workshop-api.ts";

/** A classroom workshop: who may join (its code), what it covers, how many seats, until when. */
export interface WorkshopRecord {
  id: string;
  /** The instructor account that created it; only it and admins may see or change it. */
  ownerInstructorId: string;
  code: string;
  title: string;
  /** Lesson slugs, in the order the instructor chose. */
  lessons: string[];
  capacity: number;
  durationMs: number;
  /** Sandboxes the instructor asked to have started ahead of the class. */
  warmTarget: number;
  createdAt: number;
  /** When the first learner was let in: the workshop's clock starts then, not at creation. */
  startedAt: number | null;
  /** startedAt + durationMs, once started. */
  endsAt: number | null;
  endedAt: number | null;
  endedReason: string | null;
}

export interface MemberRecord {
  id: string;
  workshopId: string;
  ownerId: string;
  displayName: string;
  joinedAt: number;
  status: MemberStatus;
  /** When they last entered the queue: the queue is served in this order. */
  queuedAt: number;
  admittedAt: number | null;
  leftAt: number | null;
}

/** One check's verdict on one task, as the gradebook reads it. */
export interface WorkshopResult {
  ownerId: string;
  exerciseId: string;
  taskId: string;
  passed: boolean;
  at: number;
}

/** Workshops, rosters and announcements; the results of an ended workshop are frozen (see SqliteWorkshopStore). */
export interface WorkshopStore {
  readonly workshops: {
    /** A workshop written without an owner belongs to the built-in admin, as the column's default says. */
    insert(w: Omit<WorkshopRecord, "ownerInstructorId"> & { ownerInstructorId?: string }): Promise<void>;
    get(id: string): Promise<WorkshopRecord | undefined>;
    byCode(code: string): Promise<WorkshopRecord | undefined>;
    codeTaken(code: string): Promise<boolean>;
    all(): Promise<WorkshopRecord[]>;
    live(): Promise<WorkshopRecord[]>;
    update(id: string, change: { capacity?: number; warmTarget?: number }): Promise<void>;
    start(id: string, at: number): Promise<void>;
    end(id: string, at: number, reason: string): Promise<void>;
  };
  readonly members: {
    insert(m: MemberRecord): Promise<void>;
    get(id: string): Promise<MemberRecord | undefined>;
    of(workshopId: string, ownerId: string): Promise<MemberRecord | undefined>;
    nameTaken(workshopId: string, name: string): Promise<boolean>;
    /** The membership a browser is in now: in a workshop that has not ended, and not left. */
    currentOf(ownerId: string): Promise<MemberRecord | undefined>;
    /** The latest membership a browser has not left, ended workshops included ("the workshop has ended"). */
    latestOf(ownerId: string): Promise<MemberRecord | undefined>;
    ofWorkshop(workshopId: string): Promise<MemberRecord[]>;
    setStatus(id: string, status: MemberStatus, at: number): Promise<void>;
  };
  readonly messages: {
    insert(workshopId: string, message: string, at: number): Promise<void>;
    recent(workshopId: string, limit?: number): Promise<WorkshopMessage[]>;
  };
  /** Verdicts recorded for a workshop, oldest first; never any after it ended. */
  results(workshopId: string): Promise<WorkshopResult[]>;
  /** Cheap "did anything change" probe for the live dashboard: the newest result's id and the count. */
  resultsVersion(workshopId: string): Promise<string>;
  /**
   * Runs `fn` while no other server runs one under the same key (seats: two servers must not give
   * away the same last seat). One server has nobody to exclude: SQLite runs it at once.
   */
  exclusively<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

/**
 * Workshops, rosters and announcements, in the same SQLite file as sessions and results.
 * The results of an ended workshop are frozen by the database itself: a trigger drops any
 * verdict recorded for it after `ended_at` is set, whoever writes it.
 */
export class SqliteWorkshopStore implements WorkshopStore {
  private readonly db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    // Its tables are created with the others, by the store's migrations (migrations.ts).
  }

  readonly workshops = {
    /** A workshop written without an owner belongs to the built-in admin, as the column's default says. */
    insert: async (w: Omit<WorkshopRecord, "ownerInstructorId"> & { ownerInstructorId?: string }): Promise<void> => {
      this.db
        .prepare(
          `INSERT INTO workshops (id, owner_instructor_id, code, title, lessons, capacity, duration_ms, warm_target, created_at, started_at, ended_at, ended_reason)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(w.id, w.ownerInstructorId ?? "admin", w.code, w.title, JSON.stringify(w.lessons), w.capacity, w.durationMs, w.warmTarget, w.createdAt, w.startedAt, w.endedAt, w.endedReason);
    },
    get: async (id: string): Promise<WorkshopRecord | undefined> => {
      const row = this.db.prepare("SELECT * FROM workshops WHERE id = ?").get(id);
      return row ? toWorkshop(row) : undefined;
    },
    byCode: async (code: string): Promise<WorkshopRecord | undefined> => {
      const row = this.db.prepare("SELECT * FROM workshops WHERE code = ?").get(code);
      return row ? toWorkshop(row) : undefined;
    },
    codeTaken: async (code: string): Promise<boolean> => this.db.prepare("SELECT 1 FROM workshops WHERE code = ?").get(code) !== undefined,
    all: async (): Promise<WorkshopRecord[]> => this.db.prepare("SELECT * FROM workshops ORDER BY created_at DESC").all().map(toWorkshop),
    live: async (): Promise<WorkshopRecord[]> => this.db.prepare("SELECT * FROM workshops WHERE ended_at IS NULL").all().map(toWorkshop),
    update: async (id: string, change: { capacity?: number; warmTarget?: number }): Promise<void> => {
      const w = await this.workshops.get(id);
      if (!w) return;
      this.db
        .prepare("UPDATE workshops SET capacity = ?, warm_target = ? WHERE id = ?")
        .run(change.capacity ?? w.capacity, change.warmTarget ?? w.warmTarget, id);
    },
    start: async (id: string, at: number): Promise<void> => {
      this.db.prepare("UPDATE workshops SET started_at = ? WHERE id = ? AND started_at IS NULL").run(at, id);
    },
    end: async (id: string, at: number, reason: string): Promise<void> => {
      this.db.prepare("UPDATE workshops SET ended_at = ?, ended_reason = ? WHERE id = ? AND ended_at IS NULL").run(at, reason, id);
    },
  };

  readonly members = {
    insert: async (m: MemberRecord): Promise<void> => {
      this.db
        .prepare(
          `INSERT INTO workshop_members (id, workshop_id, owner_id, display_name, name_key, joined_at, status, queued_at, admitted_at, left_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(m.id, m.workshopId, m.ownerId, m.displayName, nameKey(m.displayName), m.joinedAt, m.status, m.queuedAt, m.admittedAt, m.leftAt);
    },
    get: async (id: string): Promise<MemberRecord | undefined> => {
      const row = this.db.prepare("SELECT * FROM workshop_members WHERE id = ?").get(id);
      return row ? toMember(row) : undefined;
    },
    of: async (workshopId: string, ownerId: string): Promise<MemberRecord | undefined> => {
      const row = this.db.prepare("SELECT * FROM workshop_members WHERE workshop_id = ? AND owner_id = ?").get(workshopId, ownerId);
      return row ? toMember(row) : undefined;
    },
    nameTaken: async (workshopId: string, name: string): Promise<boolean> =>
      this.db.prepare("SELECT 1 FROM workshop_members WHERE workshop_id = ? AND name_key = ?").get(workshopId, nameKey(name)) !== undefined,
    /** The membership a browser is in now: in a workshop that has not ended, and not left. */
    currentOf: async (ownerId: string): Promise<MemberRecord | undefined> => {
      const row = this.db
        .prepare(
          `SELECT m.* FROM workshop_members m JOIN workshops w ON w.id = m.workshop_id
            WHERE m.owner_id = ? AND m.status != 'left' AND w.ended_at IS NULL
            ORDER BY m.joined_at DESC LIMIT 1`,
        )
        .get(ownerId);
      return row ? toMember(row) : undefined;
    },
    /** The latest membership a browser has not left, ended workshops included ("the workshop has ended"). */
    latestOf: async (ownerId: string): Promise<MemberRecord | undefined> => {
      const row = this.db
        .prepare("SELECT * FROM workshop_members WHERE owner_id = ? AND status != 'left' ORDER BY joined_at DESC LIMIT 1")
        .get(ownerId);
      return row ? toMember(row) : undefined;
    },
    ofWorkshop: async (workshopId: string): Promise<MemberRecord[]> =>
      this.db.prepare("SELECT * FROM workshop_members WHERE workshop_id = ? ORDER BY joined_at, id").all(workshopId).map(toMember),
    setStatus: async (id: string, status: MemberStatus, at: number): Promise<void> => {
      const column = { admitted: "admitted_at", left: "left_at", queued: "queued_at", away: undefined }[status];
      if (column) this.db.prepare(`UPDATE workshop_members SET status = ?, ${column} = ? WHERE id = ?`).run(status, at, id);
      else this.db.prepare("UPDATE workshop_members SET status = ? WHERE id = ?").run(status, id);
    },
  };

  readonly messages = {
    insert: async (workshopId: string, message: string, at: number): Promise<void> => {
      this.db.prepare("INSERT INTO workshop_messages (workshop_id, message, at) VALUES (?, ?, ?)").run(workshopId, message, at);
    },
    recent: async (workshopId: string, limit = 20): Promise<WorkshopMessage[]> =>
      this.db
        .prepare("SELECT id, message, at FROM workshop_messages WHERE workshop_id = ? ORDER BY id DESC LIMIT ?")
        .all(workshopId, limit)
        .map((r) => ({ id: Number(r.id), message: String(r.message), at: Number(r.at) }))
        .reverse(),
  };

  /** Verdicts recorded for a workshop, oldest first; never any after it ended. */
  async results(workshopId: string): Promise<WorkshopResult[]> {
    return this.db
      .prepare(
        `SELECT r.owner_id, r.exercise_id, r.task_id, r.passed, r.at FROM results r JOIN workshops w ON w.id = r.workshop_id
          WHERE r.workshop_id = ? AND (w.ended_at IS NULL OR r.at <= w.ended_at)
          ORDER BY r.at, r.id`,
      )
      .all(workshopId)
      .map((r) => ({
        ownerId: String(r.owner_id),
        exerciseId: String(r.exercise_id),
        taskId: String(r.task_id),
        passed: Number(r.passed) === 1,
        at: Number(r.at),
      }));
  }

  /** Cheap "did anything change" probe for the live dashboard: the newest result's id and the count. */
  exclusively<T>(_key: string, fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  async resultsVersion(workshopId: string): Promise<string> {
    const row = this.db.prepare("SELECT MAX(id) AS last, COUNT(*) AS n FROM results WHERE workshop_id = ?").get(workshopId);
    return `${String(row?.last ?? 0)}:${String(row?.n ?? 0)}`;
  }
}

/** Names are unique per workshop regardless of case and spacing, so the gradebook is unambiguous. */
export function nameKey(name: string): string {
  return name.normalize("NFKC").toLowerCase().replace(/\s+/g, " ").trim();
}

function toWorkshop(row: Record<string, unknown>): WorkshopRecord {
  let lessons: string[] = [];
  try {
    const parsed: unknown = JSON.parse(String(row.lessons));
    if (Array.isArray(parsed)) lessons = parsed.map(String);
  } catch {
    // A damaged row shows as a workshop without lessons rather than breaking the list.
  }
  return {
    id: String(row.id),
    ownerInstructorId: row.owner_instructor_id == null ? "admin" : String(row.owner_instructor_id),
    code: String(row.code),
    title: String(row.title),
    lessons,
    capacity: Number(row.capacity),
    durationMs: Number(row.duration_ms),
    warmTarget: Number(row.warm_target),
    createdAt: Number(row.created_at),
    startedAt: row.started_at == null ? null : Number(row.started_at),
    endsAt: row.started_at == null ? null : Number(row.started_at) + Number(row.duration_ms),
    endedAt: row.ended_at == null ? null : Number(row.ended_at),
    endedReason: row.ended_reason == null ? null : String(row.ended_reason),
  };
}

function toMember(row: Record<string, unknown>): MemberRecord {
  return {
    id: String(row.id),
    workshopId: String(row.workshop_id),
    ownerId: String(row.owner_id),
    displayName: String(row.display_name),
    joinedAt: Number(row.joined_at),
    status: String(row.status) as MemberStatus,
    queuedAt: Number(row.queued_at),
    admittedAt: row.admitted_at == null ? null : Number(row.admitted_at),
    leftAt: row.left_at == null ? null : Number(row.left_at),
  };
}
