import { DatabaseSync } from "node:sqlite";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { migrate } from "./migrations.ts";
import { LocalBus, type EventBus } from "./bus.ts";
import { InstructorSessionStore, type RevokedSignInStore } from "./instructor-session-store.ts";
import { SqliteInstructorStore, type InstructorStore } from "./instructor-store.ts";
import { pruneOlderThan, type Pruned } from "./retention.ts";
import { SqliteWorkshopStore, type WorkshopStore } from "./workshop-store.ts";

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

/** Sessions and the sandboxes bound to them. */
export interface SessionRepository {
  insert(s: SessionRecord): Promise<void>;
  get(id: string): Promise<SessionRecord | undefined>;
  liveForOwner(ownerId: string): Promise<SessionRecord | undefined>;
  live(): Promise<SessionRecord[]>;
  /** Binds a freshly started sandbox to its session; refused when any other session (live or ended) holds it. */
  setSandbox(id: string, sandboxId: string, state: SessionRecord["state"]): Promise<BindRefusal | undefined>;
  /**
   * Inserts a new session holding a pooled sandbox, and takes that sandbox out of the pool, in
   * one transaction: after a crash at any moment the sandbox is either still a free pool member
   * or this session's, never both. Refused (nothing written) unless the sandbox is an unclaimed
   * member of the pool `s.workshopId` names and no session, live or ended, ever held it.
   */
  insertClaimingPooled(s: SessionRecord & { sandboxId: string }): Promise<BindRefusal | undefined>;
  /** Every session, live or ended, that was ever bound to this sandbox (one at most, unless something is wrong). */
  boundTo(sandboxId: string): Promise<SessionRecord[]>;
  touch(id: string, at: number): Promise<void>;
  end(id: string, reason: string): Promise<void>;
}

/** Warm sandboxes claimed by no session yet (see `sessions.insertClaimingPooled`). */
export interface PoolRepository {
  add(m: PoolMemberRecord): Promise<void>;
  remove(sandboxId: string): Promise<void>;
  members(): Promise<PoolMemberRecord[]>;
}

/** Every check's verdict, as graded on the server; browsers only ever read these. */
export interface ResultRepository {
  insert(r: Omit<ResultRecord, "id">): Promise<void>;
  /** How many verdicts one owner has on one task (quiz attempts). */
  countOf(ownerId: string, exerciseId: string, taskId: string): Promise<number>;
  /** Per task, whether it was ever passed and its latest verdict. */
  progressOf(ownerId: string): Promise<TaskProgress[]>;
}

/**
 * Which exercise setups (starting states) ran in which sandbox. Kept here rather than as a file in
 * the sandbox: the learner is root there and could fake or delete a marker; a new sandbox (a
 * reset) has no rows, so its setups run again.
 */
export interface SetupRepository {
  ran(sandboxId: string, exerciseId: string): Promise<boolean>;
  record(sandboxId: string, exerciseId: string, at: number): Promise<void>;
}

/**
 * Everything a server keeps, behind one interface with two implementations: SQLite (one file, the
 * single-machine default, SqliteStore) and Postgres (shared by several servers, PostgresStore).
 * Every method is async because Postgres is; the SQLite one answers from a synchronous driver.
 */
export interface Store {
  readonly kind: "sqlite" | "postgres";
  /** The schema steps this open applied (empty when the database was current), for the start log. */
  readonly schemaUpgrades: string[];
  readonly sessions: SessionRepository;
  readonly pool: PoolRepository;
  readonly results: ResultRepository;
  readonly setups: SetupRepository;
  /** Workshops, rosters, announcements (workshop-store.ts). */
  readonly workshopStore: WorkshopStore;
  /** Named instructor accounts and invites (instructor-store.ts). */
  readonly instructorStore: InstructorStore;
  /** Instructor sign-outs remembered until the cookie expires (instructor-session-store.ts). */
  readonly revokedSignIns: RevokedSignInStore;
  /** Live updates between servers (in-process for SQLite, LISTEN/NOTIFY for Postgres). */
  readonly bus: EventBus;
  /**
   * Whether this server may reap orphan sandboxes and adopt pool members now: always for the one
   * SQLite server; for Postgres, the holder of an advisory lock (one server at a time).
   */
  tryLead(): Promise<boolean>;
  /** Deletes old verdicts, ended sessions and ended workshops (retention.ts). */
  prune(before: number): Promise<Pruned>;
  close(): Promise<void>;
}

/**
 * The embedded store: one SQLite file (node:sqlite, no native addon to build).
 * Each concept gets a small repository object; SQL stays in this folder. The driver is
 * synchronous, so each method's body, transactions included, runs without interleaving.
 */
export class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly db: DatabaseSync;
  readonly workshopStore: SqliteWorkshopStore;
  readonly instructorStore: SqliteInstructorStore;
  readonly revokedSignIns: InstructorSessionStore;
  readonly bus: EventBus = new LocalBus();

  constructor(file: string) {
    if (file !== ":memory:") mkdirSync(path.dirname(file), { recursive: true });
    this.db = new DatabaseSync(file);
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
    this.migrate();
    this.workshopStore = new SqliteWorkshopStore(this.db);
    this.instructorStore = new SqliteInstructorStore(this.db);
    this.revokedSignIns = new InstructorSessionStore(this.db);
  }

  /** Every table of the file, workshops' and instructors' included (migrations.ts). */
  private migrate(): void {
    const applied = migrate(this.db);
    this.schemaUpgrades = applied.map((m) => `${m.version}: ${m.name}`);
  }

  schemaUpgrades: string[] = [];

  /** The synchronous bodies, wrapped below; a transaction calls these, never the async ones. */
  private readonly syncSessions = {
    insert: (s: SessionRecord): void => {
      this.db
        .prepare(
          `INSERT INTO sessions (id, owner_id, sandbox_id, workshop_id, created_at, expires_at, last_active_at, state, ended_reason)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(s.id, s.ownerId, s.sandboxId, s.workshopId, s.createdAt, s.expiresAt, s.lastActiveAt, s.state, s.endedReason);
    },
    boundTo: (sandboxId: string): SessionRecord[] =>
      this.db.prepare("SELECT * FROM sessions WHERE sandbox_id = ? ORDER BY created_at").all(sandboxId).map(toSession),
  };

  readonly sessions: SessionRepository = {
    insert: async (s) => this.syncSessions.insert(s),
    get: async (id) => {
      const row = this.db.prepare("SELECT * FROM sessions WHERE id = ?").get(id);
      return row ? toSession(row) : undefined;
    },
    liveForOwner: async (ownerId) => {
      const row = this.db
        .prepare("SELECT * FROM sessions WHERE owner_id = ? AND state != 'ended' ORDER BY created_at DESC LIMIT 1")
        .get(ownerId);
      return row ? toSession(row) : undefined;
    },
    live: async () => this.db.prepare("SELECT * FROM sessions WHERE state != 'ended'").all().map(toSession),
    setSandbox: async (id, sandboxId, state) => {
      return this.transaction(() => {
        if (this.syncSessions.boundTo(sandboxId).some((s) => s.id !== id)) return "bound to another session";
        this.db.prepare("UPDATE sessions SET sandbox_id = ?, state = ? WHERE id = ?").run(sandboxId, state, id);
        return undefined;
      });
    },
    insertClaimingPooled: async (s) => {
      return this.transaction(() => {
        if (this.syncSessions.boundTo(s.sandboxId).length > 0) return "bound to another session";
        const taken = this.db
          .prepare("DELETE FROM pool_sandboxes WHERE sandbox_id = ? AND workshop_id IS ?")
          .run(s.sandboxId, s.workshopId);
        if (Number(taken.changes) !== 1) return "not an unclaimed pool member";
        this.syncSessions.insert(s);
        return undefined;
      });
    },
    boundTo: async (sandboxId) => this.syncSessions.boundTo(sandboxId),
    touch: async (id, at) => {
      this.db.prepare("UPDATE sessions SET last_active_at = ? WHERE id = ?").run(at, id);
    },
    end: async (id, reason) => {
      this.db.prepare("UPDATE sessions SET state = 'ended', ended_reason = ? WHERE id = ?").run(reason, id);
    },
  };

  readonly pool: PoolRepository = {
    add: async (m) => {
      this.db
        .prepare("INSERT INTO pool_sandboxes (sandbox_id, workshop_id, added_at, expires_at) VALUES (?, ?, ?, ?)")
        .run(m.sandboxId, m.workshopId, m.addedAt, m.expiresAt);
    },
    remove: async (sandboxId) => {
      this.db.prepare("DELETE FROM pool_sandboxes WHERE sandbox_id = ?").run(sandboxId);
    },
    members: async () =>
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

  readonly results: ResultRepository = {
    insert: async (r) => {
      this.db
        .prepare(
          `INSERT INTO results (owner_id, session_id, workshop_id, exercise_id, task_id, passed, message, at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(r.ownerId, r.sessionId, r.workshopId, r.exerciseId, r.taskId, r.passed ? 1 : 0, r.message, r.at);
      if (r.workshopId) this.bus.publish({ type: "workshop", workshopId: r.workshopId });
    },
    countOf: async (ownerId, exerciseId, taskId) =>
      Number(
        this.db
          .prepare("SELECT COUNT(*) AS n FROM results WHERE owner_id = ? AND exercise_id = ? AND task_id = ?")
          .get(ownerId, exerciseId, taskId)?.n ?? 0,
      ),
    progressOf: async (ownerId) =>
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

  readonly setups: SetupRepository = {
    ran: async (sandboxId, exerciseId) =>
      this.db.prepare("SELECT 1 FROM sandbox_setups WHERE sandbox_id = ? AND exercise_id = ?").get(sandboxId, exerciseId) !== undefined,
    record: async (sandboxId, exerciseId, at) => {
      this.db.prepare("INSERT OR IGNORE INTO sandbox_setups (sandbox_id, exercise_id, at) VALUES (?, ?, ?)").run(sandboxId, exerciseId, at);
    },
  };

  async prune(before: number): Promise<Pruned> {
    return pruneOlderThan(this.db, before);
  }

  /** One server owns the file: it always leads. */
  async tryLead(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
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
