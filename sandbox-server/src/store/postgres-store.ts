import { EventEmitter } from "node:events";
import pg from "pg";
import type { InstructorAccount, MemberStatus, WorkshopMessage } from "../../../contracts/workshop-api.ts";
import type { Logger } from "../log.ts";
import { parseBusEvent, type BusEvent, type EventBus } from "./bus.ts";
import type { RevokedSignInStore } from "./instructor-session-store.ts";
import type { InstructorStore, InviteRecord } from "./instructor-store.ts";
import { postgresMigrations, type PostgresMigration } from "./postgres-migrations.ts";
import type { Pruned } from "./retention.ts";
import type {
  BindRefusal,
  PoolMemberRecord,
  PoolRepository,
  ResultRepository,
  SessionRecord,
  SessionRepository,
  SetupRepository,
  Store,
  TaskProgress,
} from "./store.ts";
import { SchemaError } from "./migrations.ts";
import { nameKey, type MemberRecord, type WorkshopRecord, type WorkshopResult, type WorkshopStore } from "./workshop-store.ts";

type Row = Record<string, unknown>;
type Queryable = Pick<pg.PoolClient, "query">;

/** The NOTIFY channel every server listens on. */
const CHANNEL = "shipshape_events";
/** Advisory lock keys (any constant bigint; these spell "shipshape" roughly). */
export const MIGRATION_LOCK = 0x5348_4950_0001n;
export const LEADER_LOCK = 0x5348_4950_0002n;
/** A lost listener connection is retried this often. */
const RECONNECT_MS = 1_000;

/**
 * The store several servers share: Postgres through `pg`'s pool. The same repositories as
 * SqliteStore (store.ts), with transactions where SQLite had BEGIN IMMEDIATE, and the bus over
 * LISTEN/NOTIFY. A lost connection (Postgres restarted) costs the queries in flight; the pool
 * opens new connections for the next ones and the listener reconnects by itself.
 */
export class PostgresStore implements Store {
  readonly kind = "postgres";
  readonly schemaUpgrades: string[];
  readonly pool: PoolRepository;
  readonly sessions: SessionRepository;
  readonly results: ResultRepository;
  readonly setups: SetupRepository;
  readonly workshopStore: WorkshopStore;
  readonly instructorStore: InstructorStore;
  readonly revokedSignIns: RevokedSignInStore;
  readonly bus: PostgresBus;
  private readonly db: pg.Pool;

  private constructor(db: pg.Pool, bus: PostgresBus, applied: PostgresMigration[]) {
    this.db = db;
    this.bus = bus;
    this.schemaUpgrades = applied.map((m) => `${m.version}: ${m.name}`);
    const q = (text: string, values: unknown[] = []) => this.db.query(text, values);
    const one = async (text: string, values: unknown[] = []): Promise<Row | undefined> => (await q(text, values)).rows[0] as Row | undefined;
    const all = async (text: string, values: unknown[] = []): Promise<Row[]> => (await q(text, values)).rows as Row[];
    const tx = <T>(fn: (c: Queryable) => Promise<T>) => this.transaction(fn);

    const insertSession = (c: Queryable, s: SessionRecord) =>
      c.query(
        `INSERT INTO sessions (id, owner_id, sandbox_id, workshop_id, created_at, expires_at, last_active_at, state, ended_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [s.id, s.ownerId, s.sandboxId, s.workshopId, s.createdAt, s.expiresAt, s.lastActiveAt, s.state, s.endedReason],
      );
    const boundTo = async (c: Queryable, sandboxId: string) =>
      ((await c.query("SELECT * FROM sessions WHERE sandbox_id = $1 ORDER BY created_at", [sandboxId])).rows as Row[]).map(toSession);

    this.sessions = {
      insert: async (s) => {
        await insertSession(this.db, s).catch(rethrowBound);
      },
      get: async (id) => mapOne(await one("SELECT * FROM sessions WHERE id = $1", [id]), toSession),
      liveForOwner: async (ownerId) =>
        mapOne(await one("SELECT * FROM sessions WHERE owner_id = $1 AND state != 'ended' ORDER BY created_at DESC LIMIT 1", [ownerId]), toSession),
      live: async () => (await all("SELECT * FROM sessions WHERE state != 'ended'")).map(toSession),
      setSandbox: (id, sandboxId, state) =>
        tx(async (c): Promise<BindRefusal | undefined> => {
          // The unique index decides between two servers binding at once; this answers politely first.
          if ((await boundTo(c, sandboxId)).some((s) => s.id !== id)) return "bound to another session";
          await c.query("UPDATE sessions SET sandbox_id = $1, state = $2 WHERE id = $3", [sandboxId, state, id]).catch(rethrowBound);
          return undefined;
        }),
      insertClaimingPooled: (s) =>
        tx(async (c): Promise<BindRefusal | undefined> => {
          if ((await boundTo(c, s.sandboxId)).length > 0) return "bound to another session";
          // The row lock of the DELETE serialises two servers claiming the same sandbox: one finds it gone.
          const taken = await c.query("DELETE FROM pool_sandboxes WHERE sandbox_id = $1 AND workshop_id IS NOT DISTINCT FROM $2", [s.sandboxId, s.workshopId]);
          if (taken.rowCount !== 1) return "not an unclaimed pool member";
          await insertSession(c, s).catch(rethrowBound);
          return undefined;
        }),
      boundTo: (sandboxId) => boundTo(this.db, sandboxId),
      touch: async (id, at) => {
        await q("UPDATE sessions SET last_active_at = $1 WHERE id = $2", [at, id]);
      },
      end: async (id, reason) => {
        await q("UPDATE sessions SET state = 'ended', ended_reason = $1 WHERE id = $2", [reason, id]);
      },
    };

    this.pool = {
      add: async (m) => {
        await q("INSERT INTO pool_sandboxes (sandbox_id, workshop_id, added_at, expires_at) VALUES ($1, $2, $3, $4)", [m.sandboxId, m.workshopId, m.addedAt, m.expiresAt]);
      },
      remove: async (sandboxId) => {
        await q("DELETE FROM pool_sandboxes WHERE sandbox_id = $1", [sandboxId]);
      },
      members: async () =>
        (await all("SELECT * FROM pool_sandboxes ORDER BY added_at")).map(
          (row): PoolMemberRecord => ({
            sandboxId: String(row.sandbox_id),
            workshopId: row.workshop_id == null ? null : String(row.workshop_id),
            addedAt: Number(row.added_at),
            expiresAt: Number(row.expires_at),
          }),
        ),
    };

    this.results = {
      insert: async (r) => {
        await q(
          `INSERT INTO results (owner_id, session_id, workshop_id, exercise_id, task_id, passed, message, at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [r.ownerId, r.sessionId, r.workshopId, r.exerciseId, r.taskId, r.passed ? 1 : 0, r.message, r.at],
        );
        // Every server's dashboard of this workshop looks again.
        if (r.workshopId) this.bus.publish({ type: "workshop", workshopId: r.workshopId });
      },
      countOf: async (ownerId, exerciseId, taskId) =>
        Number((await one("SELECT COUNT(*) AS n FROM results WHERE owner_id = $1 AND exercise_id = $2 AND task_id = $3", [ownerId, exerciseId, taskId]))?.n ?? 0),
      progressOf: async (ownerId) =>
        (
          await all(
            `SELECT exercise_id, task_id, MAX(passed) AS passed, COUNT(*) AS attempts, MAX(at) AS last_at,
                    (SELECT message FROM results r2 WHERE r2.owner_id = r.owner_id AND r2.exercise_id = r.exercise_id
                       AND r2.task_id = r.task_id ORDER BY at DESC, id DESC LIMIT 1) AS last_message
               FROM results r WHERE owner_id = $1 GROUP BY owner_id, exercise_id, task_id`,
            [ownerId],
          )
        ).map(
          (row): TaskProgress => ({
            exerciseId: String(row.exercise_id),
            taskId: String(row.task_id),
            passed: Number(row.passed) === 1,
            attempts: Number(row.attempts),
            lastAt: Number(row.last_at),
            lastMessage: String(row.last_message),
          }),
        ),
    };

    this.setups = {
      ran: async (sandboxId, exerciseId) => (await one("SELECT 1 FROM sandbox_setups WHERE sandbox_id = $1 AND exercise_id = $2", [sandboxId, exerciseId])) !== undefined,
      record: async (sandboxId, exerciseId, at) => {
        await q("INSERT INTO sandbox_setups (sandbox_id, exercise_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [sandboxId, exerciseId, at]);
      },
    };

    this.revokedSignIns = {
      revoke: async (id, expiresAt) => {
        await q("INSERT INTO revoked_instructor_sessions (id, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", [id, expiresAt]);
      },
      isRevoked: async (id) => (await one("SELECT 1 FROM revoked_instructor_sessions WHERE id = $1", [id])) !== undefined,
      prune: async (now) => (await q("DELETE FROM revoked_instructor_sessions WHERE expires_at <= $1", [now])).rowCount ?? 0,
    };

    const getAccount = async (c: Queryable, id: string) => mapOne((await c.query("SELECT * FROM instructors WHERE id = $1", [id])).rows[0] as Row | undefined, toAccount);
    const getInvite = async (c: Queryable, hash: string, lock = false) =>
      mapOne((await c.query(`SELECT * FROM instructor_invites WHERE token_hash = $1${lock ? " FOR UPDATE" : ""}`, [hash])).rows[0] as Row | undefined, toInvite);
    this.instructorStore = {
      get: (id) => getAccount(this.db, id),
      all: async () => (await all("SELECT * FROM instructors ORDER BY created_at, id")).map(toAccount),
      disable: async (id, at) => (await q("UPDATE instructors SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL", [at, id])).rowCount === 1,
      insertInvite: async (i) => {
        await q(
          `INSERT INTO instructor_invites (token_hash, name, role, created_by, created_at, expires_at, used_at, instructor_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [i.tokenHash, i.name, i.role, i.createdBy, i.createdAt, i.expiresAt, i.usedAt, i.instructorId],
        );
      },
      invite: (hash) => getInvite(this.db, hash),
      // FOR UPDATE: of two servers redeeming at once, the second waits and then finds it used.
      redeem: (hash, accountId, at) =>
        tx(async (c) => {
          const invite = await getInvite(c, hash, true);
          const existing = invite?.instructorId != null ? await getAccount(c, invite.instructorId) : undefined;
          if (!invite || invite.usedAt !== null || invite.expiresAt <= at || (invite.instructorId !== null && (!existing || existing.disabledAt !== null))) {
            return undefined;
          }
          const id = existing?.id ?? accountId;
          if (!existing) await c.query("INSERT INTO instructors (id, name, role, created_at) VALUES ($1, $2, $3, $4)", [id, invite.name, invite.role, at]);
          await c.query("UPDATE instructor_invites SET used_at = $1, instructor_id = $2 WHERE token_hash = $3 AND used_at IS NULL", [at, id, hash]);
          return getAccount(c, id);
        }),
    };

    const workshopsRepo: WorkshopStore["workshops"] = {
      insert: async (w) => {
        await q(
          `INSERT INTO workshops (id, owner_instructor_id, code, title, lessons, capacity, duration_ms, warm_target, created_at, started_at, ended_at, ended_reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
          [w.id, w.ownerInstructorId ?? "admin", w.code, w.title, JSON.stringify(w.lessons), w.capacity, w.durationMs, w.warmTarget, w.createdAt, w.startedAt, w.endedAt, w.endedReason],
        );
      },
      get: async (id) => mapOne(await one("SELECT * FROM workshops WHERE id = $1", [id]), toWorkshop),
      byCode: async (code) => mapOne(await one("SELECT * FROM workshops WHERE code = $1", [code]), toWorkshop),
      codeTaken: async (code) => (await one("SELECT 1 FROM workshops WHERE code = $1", [code])) !== undefined,
      all: async () => (await all("SELECT * FROM workshops ORDER BY created_at DESC")).map(toWorkshop),
      live: async () => (await all("SELECT * FROM workshops WHERE ended_at IS NULL")).map(toWorkshop),
      update: async (id, change) => {
        await q("UPDATE workshops SET capacity = COALESCE($1, capacity), warm_target = COALESCE($2, warm_target) WHERE id = $3", [
          change.capacity ?? null,
          change.warmTarget ?? null,
          id,
        ]);
      },
      start: async (id, at) => {
        await q("UPDATE workshops SET started_at = $1 WHERE id = $2 AND started_at IS NULL", [at, id]);
      },
      end: async (id, at, reason) => {
        await q("UPDATE workshops SET ended_at = $1, ended_reason = $2 WHERE id = $3 AND ended_at IS NULL", [at, reason, id]);
      },
    };
    const membersRepo: WorkshopStore["members"] = {
      insert: async (m) => {
        await q(
          `INSERT INTO workshop_members (id, workshop_id, owner_id, display_name, name_key, joined_at, status, queued_at, admitted_at, left_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
          [m.id, m.workshopId, m.ownerId, m.displayName, nameKey(m.displayName), m.joinedAt, m.status, m.queuedAt, m.admittedAt, m.leftAt],
        );
      },
      get: async (id) => mapOne(await one("SELECT * FROM workshop_members WHERE id = $1", [id]), toMember),
      of: async (workshopId, ownerId) => mapOne(await one("SELECT * FROM workshop_members WHERE workshop_id = $1 AND owner_id = $2", [workshopId, ownerId]), toMember),
      nameTaken: async (workshopId, name) => (await one("SELECT 1 FROM workshop_members WHERE workshop_id = $1 AND name_key = $2", [workshopId, nameKey(name)])) !== undefined,
      currentOf: async (ownerId) =>
        mapOne(
          await one(
            `SELECT m.* FROM workshop_members m JOIN workshops w ON w.id = m.workshop_id
              WHERE m.owner_id = $1 AND m.status != 'left' AND w.ended_at IS NULL
              ORDER BY m.joined_at DESC LIMIT 1`,
            [ownerId],
          ),
          toMember,
        ),
      latestOf: async (ownerId) =>
        mapOne(await one("SELECT * FROM workshop_members WHERE owner_id = $1 AND status != 'left' ORDER BY joined_at DESC LIMIT 1", [ownerId]), toMember),
      ofWorkshop: async (workshopId) => (await all("SELECT * FROM workshop_members WHERE workshop_id = $1 ORDER BY joined_at, id", [workshopId])).map(toMember),
      setStatus: async (id, status: MemberStatus, at) => {
        const column = { admitted: "admitted_at", left: "left_at", queued: "queued_at", away: undefined }[status];
        if (column) await q(`UPDATE workshop_members SET status = $1, ${column} = $2 WHERE id = $3`, [status, at, id]);
        else await q("UPDATE workshop_members SET status = $1 WHERE id = $2", [status, id]);
      },
    };
    this.workshopStore = {
      workshops: workshopsRepo,
      members: membersRepo,
      messages: {
        insert: async (workshopId, message, at) => {
          await q("INSERT INTO workshop_messages (workshop_id, message, at) VALUES ($1, $2, $3)", [workshopId, message, at]);
        },
        recent: async (workshopId, limit = 20): Promise<WorkshopMessage[]> =>
          (await all("SELECT id, message, at FROM workshop_messages WHERE workshop_id = $1 ORDER BY id DESC LIMIT $2", [workshopId, limit]))
            .map((r) => ({ id: Number(r.id), message: String(r.message), at: Number(r.at) }))
            .reverse(),
      },
      results: async (workshopId): Promise<WorkshopResult[]> =>
        (
          await all(
            `SELECT r.owner_id, r.exercise_id, r.task_id, r.passed, r.at FROM results r JOIN workshops w ON w.id = r.workshop_id
              WHERE r.workshop_id = $1 AND (w.ended_at IS NULL OR r.at <= w.ended_at)
              ORDER BY r.at, r.id`,
            [workshopId],
          )
        ).map((r) => ({ ownerId: String(r.owner_id), exerciseId: String(r.exercise_id), taskId: String(r.task_id), passed: Number(r.passed) === 1, at: Number(r.at) })),
      // A session advisory lock on a connection held for the duration; released however fn ends.
      exclusively: async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
        const client = await this.db.connect();
        try {
          await client.query("SELECT pg_advisory_lock(hashtext($1))", [key]);
          try {
            return await fn();
          } finally {
            await client.query("SELECT pg_advisory_unlock(hashtext($1))", [key]).catch(() => {});
          }
        } finally {
          client.release();
        }
      },
      resultsVersion: async (workshopId) => {
        const row = await one("SELECT MAX(id) AS last, COUNT(*) AS n FROM results WHERE workshop_id = $1", [workshopId]);
        return `${String(row?.last ?? 0)}:${String(row?.n ?? 0)}`;
      },
    };
  }

  /** Connects, brings the schema up to date (one server at a time) and starts listening. */
  static async open(url: string, log: Logger, options: { max?: number } = {}): Promise<PostgresStore> {
    const db = new pg.Pool({ connectionString: url, max: options.max ?? 10, connectionTimeoutMillis: 5_000 });
    // An idle connection that Postgres drops (a restart) must not crash the server: the pool forgets it.
    db.on("error", (e) => log.warn("a database connection was lost", { error: String(e) }));
    const applied = await migratePostgres(db);
    const bus = new PostgresBus(url, db, log);
    await bus.start();
    return new PostgresStore(db, bus, applied);
  }

  /** Runs `fn` in one transaction on one connection: all of its writes land, or none. */
  private async transaction<T>(fn: (c: Queryable) => Promise<T>): Promise<T> {
    const client = await this.db.connect();
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (e) {
      await client.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      client.release();
    }
  }

  async prune(before: number): Promise<Pruned> {
    return this.transaction(async (c) => {
      const results = (await c.query("DELETE FROM results WHERE at < $1", [before])).rowCount ?? 0;
      const sessions = (await c.query("DELETE FROM sessions WHERE state = 'ended' AND last_active_at < $1", [before])).rowCount ?? 0;
      const ended = "SELECT id FROM workshops WHERE ended_at IS NOT NULL AND ended_at < $1";
      await c.query(`DELETE FROM workshop_members WHERE workshop_id IN (${ended})`, [before]);
      await c.query(`DELETE FROM workshop_messages WHERE workshop_id IN (${ended})`, [before]);
      const workshops = (await c.query("DELETE FROM workshops WHERE ended_at IS NOT NULL AND ended_at < $1", [before])).rowCount ?? 0;
      return { results, sessions, workshops };
    });
  }

  /**
   * Holds a session-level advisory lock on a connection of its own while this server is the one
   * that reaps orphans and adopts pool members. Returns whether it holds it now; call again to
   * retry (a lost connection loses the lock, and another server may take it).
   */
  async tryLead(): Promise<boolean> {
    if (this.leader) return true;
    const client = await this.db.connect();
    try {
      const got = (await client.query("SELECT pg_try_advisory_lock($1) AS ok", [LEADER_LOCK.toString()])).rows[0] as { ok: boolean };
      if (!got.ok) {
        client.release();
        return false;
      }
    } catch (e) {
      client.release(e as Error);
      throw e;
    }
    this.leader = client;
    // The lock lives and dies with this connection: when it breaks, someone else may lead.
    client.on("error", () => {
      if (this.leader === client) this.leader = undefined;
      client.release(true);
    });
    return true;
  }

  private leader: pg.PoolClient | undefined;

  get leading(): boolean {
    return this.leader !== undefined;
  }

  async close(): Promise<void> {
    await this.bus.close();
    if (this.leader) {
      this.leader.release(true);
      this.leader = undefined;
    }
    await this.db.end();
  }
}

/** Applies the missing steps in order, each in its own transaction, under an advisory lock. */
export async function migratePostgres(db: pg.Pool, steps: readonly PostgresMigration[] = postgresMigrations): Promise<PostgresMigration[]> {
  const client = await db.connect();
  try {
    // Two servers starting at once: the second waits, then finds nothing left to do.
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK.toString()]);
    await client.query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)");
    const done = new Set(((await client.query("SELECT version FROM schema_migrations")).rows as Array<{ version: number }>).map((r) => Number(r.version)));
    const latest = steps[steps.length - 1]?.version ?? 0;
    const newest = Math.max(0, ...done);
    if (newest > latest) {
      throw new SchemaError(`The database was written by a newer shipshape (schema ${newest}; this one knows up to ${latest}). Run the newer version.`);
    }
    const applied: PostgresMigration[] = [];
    for (const step of steps) {
      if (done.has(step.version)) continue;
      await client.query("BEGIN");
      try {
        await client.query(step.sql);
        await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [step.version, step.name, Date.now()]);
        await client.query("COMMIT");
      } catch (e) {
        await client.query("ROLLBACK").catch(() => {});
        throw new SchemaError(`Upgrading the database to schema ${step.version} (${step.name}) failed: ${String(e)}`);
      }
      applied.push(step);
    }
    return applied;
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK.toString()]).catch(() => {});
    client.release();
  }
}

/**
 * LISTEN/NOTIFY on one dedicated connection (a pooled one would be handed to other queries).
 * When that connection is lost (Postgres restarted), it reconnects every second and then tells
 * every subscriber to `resync`: what was published meanwhile is gone.
 */
export class PostgresBus implements EventBus {
  private readonly url: string;
  private readonly db: pg.Pool;
  private readonly log: Logger;
  private readonly emitter = new EventEmitter();
  private client: pg.Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(url: string, db: pg.Pool, log: Logger) {
    this.url = url;
    this.db = db;
    this.log = log.child({ component: "bus" });
    this.emitter.setMaxListeners(0);
  }

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5_000 });
    const lost = (why: string) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.end().catch(() => {});
      if (this.closed) return;
      this.log.warn("lost the event connection; reconnecting", { error: why });
      this.scheduleReconnect();
    };
    client.on("error", (e) => lost(String(e)));
    client.on("end", () => lost("connection ended"));
    client.on("notification", (n) => {
      if (n.channel !== CHANNEL) return;
      const event = parseBusEvent(n.payload);
      if (event) this.emitter.emit("event", event);
    });
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (e) {
      lost(String(e));
      throw e;
    }
  }

  private scheduleReconnect(): void {
    if (this.retry || this.closed) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.connect().then(
        () => {
          this.log.info("event connection back");
          this.emitter.emit("event", { type: "resync" } satisfies BusEvent);
        },
        () => this.scheduleReconnect(),
      );
    }, RECONNECT_MS);
    this.retry.unref();
  }

  /** Sent through the pool; delivered to every listening server, this one included. */
  publish(event: BusEvent): void {
    this.db.query("SELECT pg_notify($1, $2)", [CHANNEL, JSON.stringify(event)]).catch((e: unknown) => {
      this.log.warn("could not publish an event", { type: event.type, error: String(e) });
    });
  }

  subscribe(listener: (event: BusEvent) => void): () => void {
    this.emitter.on("event", listener);
    return () => this.emitter.off("event", listener);
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }
}

/** The unique index and the pool trigger speak Postgres; callers expect SQLite's words. */
function rethrowBound(e: unknown): never {
  const err = e as { code?: string; constraint?: string };
  if (err.code === "23505" && err.constraint === "sessions_one_sandbox") throw new Error("sandbox already bound to a session", { cause: e });
  throw e;
}

function mapOne<T>(row: Row | undefined, map: (r: Row) => T): T | undefined {
  return row ? map(row) : undefined;
}

function toSession(row: Row): SessionRecord {
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

function toAccount(row: Row): InstructorAccount {
  return {
    id: String(row.id),
    name: String(row.name),
    role: String(row.role) === "admin" ? "admin" : "instructor",
    createdAt: Number(row.created_at),
    disabledAt: row.disabled_at == null ? null : Number(row.disabled_at),
  };
}

function toInvite(row: Row): InviteRecord {
  return {
    tokenHash: String(row.token_hash),
    name: String(row.name),
    role: String(row.role) === "admin" ? "admin" : "instructor",
    createdBy: String(row.created_by),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    usedAt: row.used_at == null ? null : Number(row.used_at),
    instructorId: row.instructor_id == null ? null : String(row.instructor_id),
  };
}

function toWorkshop(row: Row): WorkshopRecord {
  let lessons: string[] = [];
  try {
    const parsed: unknown = JSON.parse(String(row.lessons));
    if (Array.isArray(parsed)) lessons = parsed.map(String);
  } catch {
    // A damaged row shows as a workshop without lessons rather than breaking the list.
  }
  const startedAt = row.started_at == null ? null : Number(row.started_at);
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
    startedAt,
    endsAt: startedAt == null ? null : startedAt + Number(row.duration_ms),
    endedAt: row.ended_at == null ? null : Number(row.ended_at),
    endedReason: row.ended_reason == null ? null : String(row.ended_reason),
  };
}

function toMember(row: Row): MemberRecord {
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
