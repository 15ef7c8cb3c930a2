import type { DatabaseSync } from "node:sqlite";

/** Where revoked instructor sign-ins are remembered; the SQLite one survives restarts. */
export interface RevokedSignIns {
  revoke(id: string, expiresAt: number): void;
  isRevoked(id: string): boolean;
}

/**
 * Instructor sign-ins ended by "sign out" before their cookie expired. A signed cookie stays valid
 * until it expires wherever a copy of it lives, so signing out must be remembered by the server.
 * Rows are kept only until the cookie would have expired anyway.
 */
export class InstructorSessionStore implements RevokedSignIns {
  private readonly db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    // Its table comes from the store's migrations (migrations.ts).
  }

  revoke(id: string, expiresAt: number): void {
    this.db.prepare("INSERT OR IGNORE INTO revoked_instructor_sessions (id, expires_at) VALUES (?, ?)").run(id, expiresAt);
  }

  isRevoked(id: string): boolean {
    return this.db.prepare("SELECT 1 FROM revoked_instructor_sessions WHERE id = ?").get(id) !== undefined;
  }

  /** Forgets revocations of cookies that have expired by now. */
  prune(now: number): number {
    return Number(this.db.prepare("DELETE FROM revoked_instructor_sessions WHERE expires_at <= ?").run(now).changes);
  }
}
