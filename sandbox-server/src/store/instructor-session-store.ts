import type { DatabaseSync } from "node:sqlite";

/** Where revoked instructor sign-ins are remembered; the SQLite one survives restarts. */
export interface RevokedSignIns {
  revoke(id: string, expiresAt: number): Promise<void>;
  isRevoked(id: string): Promise<boolean>;
}

/** The store's kind: it also forgets what has expired. */
export interface RevokedSignInStore extends RevokedSignIns {
  prune(now: number): Promise<number>;
}

/**
 * Instructor sign-ins ended by "sign out" before their cookie expired. A signed cookie stays valid
 * until it expires wherever a copy of it lives, so signing out must be remembered by the server.
 * Rows are kept only until the cookie would have expired anyway.
 */
export class InstructorSessionStore implements RevokedSignInStore {
  private readonly db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    // Its table comes from the store's migrations (migrations.ts).
  }

  async revoke(id: string, expiresAt: number): Promise<void> {
    this.db.prepare("INSERT OR IGNORE INTO revoked_instructor_sessions (id, expires_at) VALUES (?, ?)").run(id, expiresAt);
  }

  async isRevoked(id: string): Promise<boolean> {
    return this.db.prepare("SELECT 1 FROM revoked_instructor_sessions WHERE id = ?").get(id) !== undefined;
  }

  /** Forgets revocations of cookies that have expired by now. */
  async prune(now: number): Promise<number> {
    return Number(this.db.prepare("DELETE FROM revoked_instructor_sessions WHERE expires_at <= ?").run(now).changes);
  }
}
