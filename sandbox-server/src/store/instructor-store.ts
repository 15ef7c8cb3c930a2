import type { DatabaseSync } from "node:sqlite";
import type { InstructorAccount, InstructorRole } from "../../../contracts/workshop-api.ts";

/** The built-in account the admin secret signs in as (migration 5 creates it). */
export const BUILT_IN_ADMIN_ID = "admin";

export interface InviteRecord {
  tokenHash: string;
  name: string;
  role: InstructorRole;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
  instructorId: string | null;
}

/** Named instructor accounts and the one-time invites that create them. */
export interface InstructorStore {
  get(id: string): Promise<InstructorAccount | undefined>;
  all(): Promise<InstructorAccount[]>;
  disable(id: string, at: number): Promise<boolean>;
  insertInvite(invite: InviteRecord): Promise<void>;
  invite(tokenHash: string): Promise<InviteRecord | undefined>;
  /**
   * Marks the invite used and creates its account (or, for a sign-in link, finds it) in one
   * transaction: of two simultaneous redemptions only one finds the invite unused.
   */
  redeem(tokenHash: string, accountId: string, at: number): Promise<InstructorAccount | undefined>;
}

/** The SQLite one (tables from migration 5). */
export class SqliteInstructorStore implements InstructorStore {
  private readonly db: DatabaseSync;

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  async get(id: string): Promise<InstructorAccount | undefined> {
    return this.getSync(id);
  }

  private getSync(id: string): InstructorAccount | undefined {
    const row = this.db.prepare("SELECT * FROM instructors WHERE id = ?").get(id);
    return row ? toAccount(row) : undefined;
  }

  async all(): Promise<InstructorAccount[]> {
    return this.db.prepare("SELECT * FROM instructors ORDER BY created_at, id").all().map(toAccount);
  }

  async disable(id: string, at: number): Promise<boolean> {
    return Number(this.db.prepare("UPDATE instructors SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL").run(at, id).changes) === 1;
  }

  async insertInvite(invite: InviteRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO instructor_invites (token_hash, name, role, created_by, created_at, expires_at, used_at, instructor_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(invite.tokenHash, invite.name, invite.role, invite.createdBy, invite.createdAt, invite.expiresAt, invite.usedAt, invite.instructorId);
  }

  async invite(tokenHash: string): Promise<InviteRecord | undefined> {
    return this.inviteSync(tokenHash);
  }

  private inviteSync(tokenHash: string): InviteRecord | undefined {
    const row = this.db.prepare("SELECT * FROM instructor_invites WHERE token_hash = ?").get(tokenHash);
    return row ? toInvite(row) : undefined;
  }

  /**
   * Marks the invite used and creates its account (or, for a sign-in link, finds it) in one transaction. BEGIN IMMEDIATE takes the
   * write lock first, so of two simultaneous redemptions only one finds the invite unused.
   */
  async redeem(tokenHash: string, accountId: string, at: number): Promise<InstructorAccount | undefined> {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const invite = this.inviteSync(tokenHash);
      // A sign-in link names its (existing) account; it is no good once that account is disabled.
      const existing = invite?.instructorId != null ? this.getSync(invite.instructorId) : undefined;
      if (!invite || invite.usedAt !== null || invite.expiresAt <= at || (invite.instructorId !== null && (!existing || existing.disabledAt !== null))) {
        this.db.exec("ROLLBACK");
        return undefined;
      }
      const id = existing?.id ?? accountId;
      if (!existing) this.db.prepare("INSERT INTO instructors (id, name, role, created_at) VALUES (?, ?, ?, ?)").run(id, invite.name, invite.role, at);
      this.db.prepare("UPDATE instructor_invites SET used_at = ?, instructor_id = ? WHERE token_hash = ? AND used_at IS NULL").run(at, id, tokenHash);
      this.db.exec("COMMIT");
      return this.getSync(id);
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }
}

function toAccount(row: Record<string, unknown>): InstructorAccount {
  return {
    id: String(row.id),
    name: String(row.name),
    role: String(row.role) === "admin" ? "admin" : "instructor",
    createdAt: Number(row.created_at),
    disabledAt: row.disabled_at == null ? null : Number(row.disabled_at),
  };
}

function toInvite(row: Record<string, unknown>): InviteRecord {
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
