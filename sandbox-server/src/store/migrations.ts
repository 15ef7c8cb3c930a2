import type { DatabaseSync } from "node:sqlite";

/**
 * The database schema as numbered steps. SQLite's `user_version` says which steps a file has had;
 * opening a store applies the missing ones in order, each in its own transaction, so an upgrade
 * from any earlier release reaches the same schema as a new file. Steps are never edited once
 * released: a change is a new step at the end.
 *
 * Release 0.1 wrote its tables with CREATE ... IF NOT EXISTS and no version (user_version 0);
 * step 1 is exactly that schema, so on such a file it changes nothing and only records version 1.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  /**
   * Runs after `sql` in the same transaction, for what SQL cannot say idempotently (SQLite has no
   * ADD COLUMN IF NOT EXISTS): every step must be safe on a file that already has its changes.
   */
  apply?: (db: DatabaseSync) => void;
}

/** Adds a column unless the table has it already. */
function addColumnOnce(db: DatabaseSync, table: string, column: string, definition: string): void {
  const columns = db.prepare(`PRAGMA table_info(${table})`).all().map((c) => String(c.name));
  if (!columns.includes(column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`);
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "release 0.1: sessions, results, workshops with their rosters and messages",
    sql: `
      CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        sandbox_id TEXT,
        workshop_id TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        last_active_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        ended_reason TEXT
      );
      CREATE INDEX IF NOT EXISTS sessions_owner ON sessions(owner_id, state);
      CREATE TABLE IF NOT EXISTS results (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        workshop_id TEXT,
        exercise_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        passed INTEGER NOT NULL,
        message TEXT NOT NULL,
        at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS results_owner ON results(owner_id, exercise_id, task_id);
      CREATE TABLE IF NOT EXISTS workshops (
        id TEXT PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        lessons TEXT NOT NULL,
        capacity INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        warm_target INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER,
        ended_reason TEXT
      );
      CREATE TABLE IF NOT EXISTS workshop_members (
        id TEXT PRIMARY KEY,
        workshop_id TEXT NOT NULL REFERENCES workshops(id),
        owner_id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        queued_at INTEGER NOT NULL,
        admitted_at INTEGER,
        left_at INTEGER,
        UNIQUE (workshop_id, owner_id),
        UNIQUE (workshop_id, name_key)
      );
      CREATE INDEX IF NOT EXISTS workshop_members_owner ON workshop_members(owner_id, status);
      CREATE TABLE IF NOT EXISTS workshop_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        workshop_id TEXT NOT NULL REFERENCES workshops(id),
        message TEXT NOT NULL,
        at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS results_workshop ON results(workshop_id, owner_id);
      -- The results of an ended workshop are frozen by the database itself, whoever writes them.
      CREATE TRIGGER IF NOT EXISTS results_frozen_after_workshop_end BEFORE INSERT ON results
        WHEN NEW.workshop_id IS NOT NULL
         AND EXISTS (SELECT 1 FROM workshops w WHERE w.id = NEW.workshop_id AND w.ended_at IS NOT NULL)
      BEGIN
        SELECT RAISE(IGNORE);
      END;
    `,
  },
  {
    version: 2,
    name: "warm-pool membership recorded by the server, one sandbox per session (issue 13)",
    sql: `
      CREATE INDEX IF NOT EXISTS sessions_sandbox ON sessions(sandbox_id);
      -- Warm sandboxes nobody has claimed. After a restart, pool membership comes from here and
      -- never from container labels: a claimed pool sandbox keeps its "pool" labels for life.
      CREATE TABLE IF NOT EXISTS pool_sandboxes (
        sandbox_id TEXT PRIMARY KEY,
        workshop_id TEXT,
        added_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
      -- The last line of defence: no write may bind one sandbox to a second session, or list a
      -- session's sandbox as free. Triggers rather than a unique index, so a database written by
      -- an older server with such a pair still opens (start() ends the later session of a pair).
      CREATE TRIGGER IF NOT EXISTS sessions_one_sandbox_insert BEFORE INSERT ON sessions
        WHEN NEW.sandbox_id IS NOT NULL AND EXISTS (SELECT 1 FROM sessions WHERE sandbox_id = NEW.sandbox_id)
        BEGIN SELECT RAISE(ABORT, 'sandbox already bound to a session'); END;
      CREATE TRIGGER IF NOT EXISTS sessions_one_sandbox_update BEFORE UPDATE OF sandbox_id ON sessions
        WHEN NEW.sandbox_id IS NOT NULL AND EXISTS (SELECT 1 FROM sessions WHERE sandbox_id = NEW.sandbox_id AND id != NEW.id)
        BEGIN SELECT RAISE(ABORT, 'sandbox already bound to a session'); END;
      CREATE TRIGGER IF NOT EXISTS pool_never_bound BEFORE INSERT ON pool_sandboxes
        WHEN EXISTS (SELECT 1 FROM sessions WHERE sandbox_id = NEW.sandbox_id)
        BEGIN SELECT RAISE(ABORT, 'sandbox already bound to a session'); END;
    `,
  },
  {
    version: 3,
    name: "instructor sign-outs remembered until the cookie expires",
    sql: `
      CREATE TABLE IF NOT EXISTS revoked_instructor_sessions (
        id TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: "exercise starting states run once per sandbox",
    sql: `
      CREATE TABLE IF NOT EXISTS sandbox_setups (
        sandbox_id TEXT NOT NULL,
        exercise_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (sandbox_id, exercise_id)
      );
    `,
  },
  {
    version: 5,
    name: "instructors as people: named accounts, one-time invites, workshops owned by one (issue 20)",
    sql: `
      CREATE TABLE IF NOT EXISTS instructors (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'instructor')),
        created_at INTEGER NOT NULL,
        disabled_at INTEGER
      );
      -- The built-in account the admin secret signs in as; it owns every workshop made before accounts.
      INSERT OR IGNORE INTO instructors (id, name, role, created_at) VALUES ('admin', 'Admin', 'admin', 0);
      -- Only the SHA-256 of an invite token is kept: a copy of the database does not sign anyone in.
      CREATE TABLE IF NOT EXISTS instructor_invites (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'instructor')),
        created_by TEXT NOT NULL REFERENCES instructors(id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        instructor_id TEXT REFERENCES instructors(id)
      );
    `,
    apply: (db) => {
      addColumnOnce(db, "workshops", "owner_instructor_id", "TEXT NOT NULL DEFAULT 'admin'");
      db.exec("CREATE INDEX IF NOT EXISTS workshops_owner ON workshops(owner_instructor_id)");
    },
  },
];

export const SCHEMA_VERSION = migrations[migrations.length - 1]!.version;

export class SchemaError extends Error {}

/** Brings a database to SCHEMA_VERSION; returns the steps it applied. */
export function migrate(db: DatabaseSync, steps: readonly Migration[] = migrations): Migration[] {
  const current = Number((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version);
  const latest = steps[steps.length - 1]?.version ?? 0;
  if (current > latest) {
    throw new SchemaError(
      `The database was written by a newer shipshape (schema ${current}; this one knows up to ${latest}). ` +
        `Run the newer version, or restore a backup made by this one (./shipshape restore <folder>).`,
    );
  }
  const applied: Migration[] = [];
  for (const step of steps) {
    if (step.version <= current) continue;
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(step.sql);
      step.apply?.(db);
      // PRAGMA takes no parameters; the version is a number from the list above.
      db.exec(`PRAGMA user_version = ${Math.trunc(step.version)}`);
      db.exec("COMMIT");
    } catch (e) {
      db.exec("ROLLBACK");
      throw new SchemaError(`Upgrading the database to schema ${step.version} (${step.name}) failed: ${String(e)}`);
    }
    applied.push(step);
  }
  return applied;
}
