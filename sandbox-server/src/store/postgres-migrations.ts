/**
 * The Postgres schema as numbered steps, the counterpart of migrations.ts for servers that share
 * one database (SHIPSHAPE_DATABASE_URL). The same tables and the same guarantees as the SQLite
 * file, written the Postgres way: times are BIGINT milliseconds, ids of appended rows are
 * identities, and the rules SQLite enforces with triggers are unique indexes or PL/pgSQL triggers.
 * Applied steps are recorded in schema_migrations; steps are never edited once released.
 */
export interface PostgresMigration {
  version: number;
  name: string;
  sql: string;
}

export const postgresMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    name: "sessions, pool, results, setups, workshops with rosters and messages, instructors (SQLite schema 5)",
    sql: `
      CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        sandbox_id TEXT,
        workshop_id TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        last_active_at BIGINT NOT NULL,
        state TEXT NOT NULL,
        ended_reason TEXT
      );
      CREATE INDEX sessions_owner ON sessions(owner_id, state);
      -- One sandbox is never bound to two sessions, live or ended (NULLs are many: starting sessions).
      CREATE UNIQUE INDEX sessions_one_sandbox ON sessions(sandbox_id);

      CREATE TABLE pool_sandboxes (
        sandbox_id TEXT PRIMARY KEY,
        workshop_id TEXT,
        added_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      );
      -- A sandbox a session ever held is never listed as free.
      CREATE FUNCTION pool_never_bound() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM sessions WHERE sandbox_id = NEW.sandbox_id) THEN
          RAISE EXCEPTION 'sandbox already bound to a session';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER pool_never_bound BEFORE INSERT ON pool_sandboxes FOR EACH ROW EXECUTE FUNCTION pool_never_bound();

      CREATE TABLE results (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        workshop_id TEXT,
        exercise_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        passed INTEGER NOT NULL,
        message TEXT NOT NULL,
        at BIGINT NOT NULL
      );
      CREATE INDEX results_owner ON results(owner_id, exercise_id, task_id);
      CREATE INDEX results_workshop ON results(workshop_id, owner_id);

      CREATE TABLE sandbox_setups (
        sandbox_id TEXT NOT NULL,
        exercise_id TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (sandbox_id, exercise_id)
      );

      CREATE TABLE revoked_instructor_sessions (
        id TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL
      );

      CREATE TABLE instructors (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'instructor')),
        created_at BIGINT NOT NULL,
        disabled_at BIGINT
      );
      INSERT INTO instructors (id, name, role, created_at) VALUES ('admin', 'Admin', 'admin', 0);
      -- Only the SHA-256 of an invite token is kept: a copy of the database does not sign anyone in.
      CREATE TABLE instructor_invites (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'instructor')),
        created_by TEXT NOT NULL REFERENCES instructors(id),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        instructor_id TEXT REFERENCES instructors(id)
      );

      CREATE TABLE workshops (
        id TEXT PRIMARY KEY,
        owner_instructor_id TEXT NOT NULL DEFAULT 'admin',
        code TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        lessons TEXT NOT NULL,
        capacity INTEGER NOT NULL,
        duration_ms BIGINT NOT NULL,
        warm_target INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        ended_at BIGINT,
        ended_reason TEXT
      );
      CREATE INDEX workshops_owner ON workshops(owner_instructor_id);
      CREATE TABLE workshop_members (
        id TEXT PRIMARY KEY,
        workshop_id TEXT NOT NULL REFERENCES workshops(id),
        owner_id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        joined_at BIGINT NOT NULL,
        status TEXT NOT NULL,
        queued_at BIGINT NOT NULL,
        admitted_at BIGINT,
        left_at BIGINT,
        UNIQUE (workshop_id, owner_id),
        UNIQUE (workshop_id, name_key)
      );
      CREATE INDEX workshop_members_owner ON workshop_members(owner_id, status);
      CREATE TABLE workshop_messages (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        workshop_id TEXT NOT NULL REFERENCES workshops(id),
        message TEXT NOT NULL,
        at BIGINT NOT NULL
      );
      -- The results of an ended workshop are frozen by the database itself, whoever writes them:
      -- the row is silently dropped, as SQLite's RAISE(IGNORE) does.
      CREATE FUNCTION results_frozen_after_workshop_end() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.workshop_id IS NOT NULL
           AND EXISTS (SELECT 1 FROM workshops w WHERE w.id = NEW.workshop_id AND w.ended_at IS NOT NULL) THEN
          RETURN NULL;
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER results_frozen_after_workshop_end BEFORE INSERT ON results
        FOR EACH ROW EXECUTE FUNCTION results_frozen_after_workshop_end();
    `,
  },
];
