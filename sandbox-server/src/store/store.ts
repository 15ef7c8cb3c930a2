import { DatabaseSync } from "node:sqlite";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { migrate } from "./migrations.ts";

/** A learner's session: one browser (owner) ↔ one sandbox ↔ its terminals. */
export interface SessionRecord {
  id: string;
  ownerId: string;
  sandboxId: string | null;
  workshopId: string | null;
  createdAt: number;
  expiresAt: number;
  lastActiveAt: number;
  state: "starting" | "ready" | "ended";
  endedReason: string | null;
}

/** A started sandbox waiting in a warm pool (a workshop's reserve when workshopId is set), claimed by nobody yet. */
export interface PoolMemberRecord {
  sandboxId: string;
  workshopId: string | null;
  addedAt: number;
  expiresAt: number;
}

/** Why a sandbox could not be bound to a session: each is a bug or a race the caller must log. */
export type BindRefusal = "bound to another session" | "not an unclaimed pool member";

export interface ResultRecord {
  id: number;
  ownerId: string;
  sessionId: string;
  workshopId: string | null;
  exerciseId: string;
  taskId: string;
  passed: boolean;
  message: string;
  at: number;
}

export interface TaskProgress {
  exerciseId: string;
  taskId: string;
  passed: boolean;
  attempts: number;
  lastAt: number;
  lastMessage: string;
}

/**
 * The embedded store: one SQLite file (node:sqlite, no native addon to build).
 * Each concept gets a small repository object; SQL stays in this folder.
 */
export class Store {
  readonly db: DatabaseSync;

  constructor(file: string) {
    if (file !== ":memory:") mkdirSync(path.dirname(file), { recursive: true });
    this.db = new DatabaseSync(file);
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
    this.migrate();
  }

  /** Every table of the file, workshops' and instructors' included (migrations.ts). */
  private migrate(): void {
    const applied = migrate(this.db);
    this.schemaUpgrades = applied.map((m) => `${m.version}: ${m.name}`);
  }

  /** The schema steps this open applied (empty when the file was current), for the start log. */
  schemaUpgrades: string[] = [];

  readonly sessions = {
    insert: (s: SessionRecord): void => {
      this.db
        .prepare(
          `INSERT INTO sessions (id, owner_id, sandbox_id, workshop_id, created_at, expires_at, last_active_at, state, ended_reason)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(s.id, s.ownerId, s.sandboxId, s.workshopId, s.createdAt, s.expiresAt, s.lastActiveAt, s.state, s.endedReason);
    },
    get: (id: string): SessionRecord | undefined => {
      const row = this.db.prepare("SELECT * FROM sessions WHERE id = ?").get(id);
      return row ? toSession(row) : undefined;
    },
    liveForOwner: (ownerId: string): SessionRecord | undefined => {
      const row = this.db
        .prepare("SELECT * FROM sessions WHERE owner_id = ? AND state != 'ended' ORDER BY created_at DESC LIMIT 1")
        .get(ownerId);
      return row ? toSession(row) : undefined;
    },
    live: (): SessionRecord[] =>
      this.db.prepare("SELECT * FROM sessions WHERE state != 'ended'").all().map(toSession),
    /** Binds a freshly started sandbox to its session; refused when any other session (live or ended) holds it. */
    setSandbox: (id: string, sandboxId: string, state: SessionRecord["state"]): BindRefusal | undefined => {
      return this.transaction(() => {
        if (this.sessions.boundTo(sandboxId).some((s) => s.id !== id)) return "bound to another session";
        this.db.prepare("UPDATE sessions SET sandbox_id = ?, state = ? WHERE id = ?").run(sandboxId, state, id);
        return undefined;
      });
    },
    /**
     * Inserts a new session holding a pooled sandbox, and takes that sandbox out of the pool, in
     * one transaction: after a crash at any moment the sandbox is either still a free pool member
     * or this session's, never both. Refused (nothing written) unless the sandbox is an unclaimed
     * member of the pool `s.workshopId` names and no session, live or ended, ever held it.
     */
    insertClaimingPooled: (s: SessionRecord & { sandboxId: string }): BindRefusal | undefined => {
      return this.transaction(() => {
        if (this.sessions.boundTo(s.sandboxId).length > 0) return "bound to another session";
        const taken = this.db
          .prepare("DELETE FROM pool_sandboxes WHERE sandbox_id = ? AND workshop_id IS ?")
          .run(s.sandboxId, s.workshopId);
        if (Number(taken.changes) !== 1) return "not an unclaimed pool member";
        this.sessions.insert(s);
        return undefined;
      });
    },
    /** Every session, live or ended, that was ever bound to this sandbox (one at most, unless something is wrong). */
    boundTo: (sandboxId: string): SessionRecord[] =>
      this.db.prepare("SELECT * FROM sessions WHERE sandbox_id = ? ORDER BY created_at").all(sandboxId).map(toSession),
    touch: (id: string, at: number): void => {
      this.db.prepare("UPDATE sessions SET last_active_at = ? WHERE id = ?").run(at, id);
    },
    end: (id: string, reason: string): void => {
      this.db.prepare("UPDATE sessions SET state = 'ended', ended_reason = ? WHERE id = ?").run(reason, id);
    },
  };

  /** Warm sandboxes started by this server and claimed by no session yet (see `sessions.insertClaimingPooled`). */
  readonly pool = {
    add: (m: PoolMemberRecord): void => {
      this.db
        .prepare("INSERT INTO pool_sandboxes (sandbox_id, workshop_id, added_at, expires_at) VALUES (?, ?, ?, ?)")
        .run(m.sandboxId, m.workshopId, m.addedAt, m.expiresAt);
    },
    remove: (sandboxId: string): void => {
      this.db.prepare("DELETE FROM pool_sandboxes WHERE sandbox_id = ?").run(sandboxId);
    },
    members: (): PoolMemberRecord[] =>
      this.db
        .prepare("SELECT * FROM pool_sandboxes ORDER BY added_at")
        .all()
        .map((row) => ({
          sandboxId: String(row.sandbox_id),
          workshopId: row.workshop_id == null ? null : String(row.workshop_id),
          addedAt: Number(row.added_at),
          expiresAt: Number(row.expires_at),
        })),
  };

  /** Runs `fn` in one write transaction: all of its writes land, or none. */
  private transaction<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.db.exec("COMMIT");
      return result;
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  /** Every check's verdict, as graded on the server; browsers only ever read these. */
  readonly results = {
    insert: (r: Omit<ResultRecord, "id">): void => {
      this.db
        .prepare(
          `INSERT INTO results (owner_id, session_id, workshop_id, exercise_id, task_id, passed, message, at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(r.ownerId, r.sessionId, r.workshopId, r.exerciseId, r.taskId, r.passed ? 1 : 0, r.message, r.at);
    },
    /** How many verdicts one owner has on one task (quiz attempts). */
    countOf: (ownerId: string, exerciseId: string, taskId: string): number =>
      Number(
        this.db
          .prepare("SELECT COUNT(*) AS n FROM results WHERE owner_id = ? AND exercise_id = ? AND task_id = ?")
          .get(ownerId, exerciseId, taskId)?.n ?? 0,
      ),
    /** Per task, whether it was ever passed and its latest verdict. */
    progressOf: (ownerId: string): TaskProgress[] =>
      this.db
        .prepare(
          `SELECT exercise_id, task_id, MAX(passed) AS passed, COUNT(*) AS attempts, MAX(at) AS last_at,
                  (SELECT message FROM results r2 WHERE r2.owner_id = r.owner_id AND r2.exercise_id = r.exercise_id
                     AND r2.task_id = r.task_id ORDER BY at DESC, id DESC LIMIT 1) AS last_message
             FROM results r WHERE owner_id = ? GROUP BY exercise_id, task_id`,
        )
        .all(ownerId)
        .map((row) => ({
          exerciseId: String(row.exercise_id),
          taskId: String(row.task_id),
          passed: Number(row.passed) === 1,
          attempts: Number(row.attempts),
          lastAt: Number(row.last_at),
          lastMessage: String(row.last_message),
        })),
  };

  /**
   * Which exercise setups (starting states) ran in which sandbox. Kept here rather than as a file in
   * the sandbox: the learner is root there and could fake or delete a marker; a new sandbox (a
   * reset) has no rows, so its setups run again.
   */
  readonly setups = {
    ran: (sandboxId: string, exerciseId: string): boolean =>
      this.db.prepare("SELECT 1 FROM sandbox_setups WHERE sandbox_id = ? AND exercise_id = ?").get(sandboxId, exerciseId) !== undefined,
    record: (sandboxId: string, exerciseId: string, at: number): void => {
      this.db.prepare("INSERT OR IGNORE INTO sandbox_setups (sandbox_id, exercise_id, at) VALUES (?, ?, ?)").run(sandboxId, exerciseId, at);
    },
  };

  close(): void {
    this.db.close();
  }
}

function toSession(row: Record<string, unknown>): SessionRecord {
  return {
    id: String(row.id),
    ownerId: String(row.owner_id),
    sandboxId: row.sandbox_id == null ? null : String(row.sandbox_id),
    workshopId: row.workshop_id == null ? null : String(row.workshop_id),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    lastActiveAt: Number(row.last_active_at),
    state: String(row.state) as SessionRecord["state"],
    endedReason: row.ended_reason == null ? null : String(row.ended_reason),
  };
}
