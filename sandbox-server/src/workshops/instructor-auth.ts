import { randomBytes, timingSafeEqual, createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { newId, Signer } from "../common/signing.ts";
import type { RevokedSignIns } from "../store/instructor-session-store.ts";
import { BUILT_IN_ADMIN_ID, type InstructorStore, type InviteRecord } from "../store/instructor-store.ts";

export { BUILT_IN_ADMIN_ID };
import { ShipshapeError } from "../errors.ts";
import type { InstructorAccount, InstructorRole } from "../../../contracts/workshop-api.ts";

/** An instructor signs in again after this long. */
export const INSTRUCTOR_SESSION_MS = 12 * 3600_000;

export interface AdminSecret {
  secret: string;
  /** "env": SHIPSHAPE_ADMIN_SECRET; "file": read from the data dir; "generated": written there just now. */
  source: "env" | "file" | "generated";
  file: string;
}

/**
 * The instructors' shared secret. When the operator sets none, one is generated into the data
 * directory (mode 0600) on first start; the caller prints it once, then only says where it is.
 *
 * WARNING: never log the secret; it signs in as an instructor, who can watch every learner's terminal.
 */
export function loadAdminSecret(fromEnv: string | undefined, dataDir: string): AdminSecret {
  const file = path.join(dataDir, "admin-secret");
  if (fromEnv) return { secret: fromEnv, source: "env", file };
  if (existsSync(file)) {
    const secret = readFileSync(file, "utf8").trim();
    if (secret.length >= 16) return { secret, source: "file", file };
  }
  // Readable aloud and typeable: base32-like groups, 100 bits.
  const alphabet = "abcdefghjkmnpqrstuvwxyz23456789";
  const bytes = randomBytes(20);
  const secret = Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("").replace(/(.{5})(?=.)/g, "$1-");
  writeFileSync(file, secret + "\n", { mode: 0o600 });
  return { secret, source: "generated", file };
}

/** An invite link works for this long, once. */
export const INVITE_TTL_MS = 7 * 24 * 3600_000;

/** Where accounts and invites live: the store on the server (InstructorStore), an in-memory one in unit tests. */
export type InstructorAccounts = InstructorStore;

/** Who a valid cookie belongs to. */
export interface SignedInInstructor {
  id: string;
  name: string;
  role: InstructorRole;
}

/**
 * Instructor sign-in. The admin secret signs in as the built-in "admin" account; anyone else signs
 * in once through a one-time invite link an admin made for them. Either way the browser gets a
 * signed, expiring, HttpOnly cookie that names the account and one sign-in. The cookie's key is
 * derived from the admin secret itself, so changing the secret signs every instructor out; signing
 * out revokes that one sign-in on the server, and disabling an account refuses all of its cookies
 * at once (the account is looked up on every request), so a copy of a cookie kept elsewhere stops
 * working too, and open dashboard streams and viewers on it end.
 */
export class InstructorAuth {
  private readonly secretDigest: Buffer;
  private readonly signer: Signer;
  private readonly now: () => number;
  private readonly revoked: RevokedSignIns;
  private readonly accounts: InstructorAccounts;
  /** Open dashboard streams and viewers, per sign-in: ended when it is revoked or its account disabled. */
  private readonly watchers = new Map<string, { accountId: string; ends: Set<() => void> }>();

  constructor(
    adminSecret: string,
    now: () => number = Date.now,
    revoked: RevokedSignIns = new RevokedInMemory(),
    accounts: InstructorAccounts = new AccountsInMemory(now),
  ) {
    this.secretDigest = digest(adminSecret);
    this.signer = new Signer(adminSecret).derive("instructor-cookie");
    this.now = now;
    this.revoked = revoked;
    this.accounts = accounts;
  }

  /** Constant-time comparison (of digests, so the length of the secret does not leak either). */
  checkSecret(given: string): boolean {
    return timingSafeEqual(digest(given.trim()), this.secretDigest);
  }

  /** A cookie for one account (the admin secret's sign-in: BUILT_IN_ADMIN_ID). */
  issue(accountId: string = BUILT_IN_ADMIN_ID): { value: string; maxAgeSeconds: number } {
    if (!accountIdPattern.test(accountId)) throw new Error(`not an instructor account id: ${accountId}`);
    const expiresAt = this.now() + INSTRUCTOR_SESSION_MS;
    return { value: this.signer.sign(`instructor:${accountId}:${expiresAt}:${newId(16)}`), maxAgeSeconds: INSTRUCTOR_SESSION_MS / 1000 };
  }

  async verify(cookie: string | undefined): Promise<boolean> {
    return (await this.signIn(cookie)) !== undefined;
  }

  /** The account a cookie signs in as, while the cookie is valid, not revoked, and the account not disabled. */
  async whoIs(cookie: string | undefined): Promise<SignedInInstructor | undefined> {
    return (await this.signIn(cookie))?.account;
  }

  /** Whether this instructor may see and change this workshop: its owner, or any admin. */
  static mayManage(instructor: SignedInInstructor, ownerInstructorId: string): boolean {
    return instructor.role === "admin" || instructor.id === ownerInstructorId;
  }

  /**
   * A one-time invite for a named account. Returns the token for the link; only its SHA-256 is
   * stored, so the link is shown once and a copy of the database signs nobody in.
   */
  async createInvite(by: SignedInInstructor, name: string, role: InstructorRole): Promise<{ token: string; expiresAt: number }> {
    if (by.role !== "admin") throw new ShipshapeError("forbidden", "Only an admin can invite instructors.");
    const clean = name.normalize("NFKC").replace(/\s+/g, " ").trim();
    // Control and format characters would let a name forge lines in logs and lists.
    if (!clean || clean.length > 80 || /[\p{Cc}\p{Cf}]/u.test(name)) {
      throw new ShipshapeError("bad_request", "Give the instructor's name: 1 to 80 characters, no control characters.");
    }
    const token = randomBytes(32).toString("base64url");
    const now = this.now();
    const expiresAt = now + INVITE_TTL_MS;
    await this.accounts.insertInvite({ tokenHash: tokenHash(token), name: clean, role, createdBy: by.id, createdAt: now, expiresAt, usedAt: null, instructorId: null });
    return { token, expiresAt };
  }

  /**
   * A one-time sign-in link for an existing account (there are no passwords: a person whose
   * 12-hour cookie expired asks an admin for one). Same token rules as an invite.
   */
  async createSignInLink(by: SignedInInstructor, accountId: string): Promise<{ token: string; expiresAt: number; name: string; role: InstructorRole }> {
    if (by.role !== "admin") throw new ShipshapeError("forbidden", "Only an admin can make sign-in links.");
    if (accountId === BUILT_IN_ADMIN_ID) throw new ShipshapeError("bad_request", "The built-in admin signs in with the admin secret.");
    const account = await this.accounts.get(accountId);
    if (!account) throw new ShipshapeError("not_found", "There is no such instructor.");
    if (account.disabledAt !== null) throw new ShipshapeError("bad_request", `${account.name} is disabled; invite them again as a new account.`);
    const token = randomBytes(32).toString("base64url");
    const now = this.now();
    const expiresAt = now + INVITE_TTL_MS;
    await this.accounts.insertInvite({ tokenHash: tokenHash(token), name: account.name, role: account.role, createdBy: by.id, createdAt: now, expiresAt, usedAt: null, instructorId: account.id });
    return { token, expiresAt, name: account.name, role: account.role };
  }

  /** Who an invite would sign in as, without using it; the same refusal for every bad token. */
  async previewInvite(token: string): Promise<{ name: string; role: InstructorRole; expiresAt: number }> {
    const invite = tokenPattern.test(token) ? await this.accounts.invite(tokenHash(token)) : undefined;
    if (!invite || invite.usedAt !== null || invite.expiresAt <= this.now()) throw badInvite();
    if (invite.instructorId !== null && (await this.accounts.get(invite.instructorId))?.disabledAt !== null) throw badInvite();
    return { name: invite.name, role: invite.role, expiresAt: invite.expiresAt };
  }

  /** Uses an invite (once): creates its account and returns it, for the caller to issue a cookie. */
  async redeemInvite(token: string): Promise<SignedInInstructor> {
    if (!tokenPattern.test(token)) throw badInvite();
    const account = await this.accounts.redeem(tokenHash(token), newId(12), this.now());
    if (!account) throw badInvite();
    return { id: account.id, name: account.name, role: account.role };
  }

  async listAccounts(by: SignedInInstructor): Promise<InstructorAccount[]> {
    if (by.role !== "admin") throw new ShipshapeError("forbidden", "Only an admin can list instructors.");
    return this.accounts.all();
  }

  /** Disables an account: its cookies are refused from now on and what is open on them ends. */
  async disable(by: SignedInInstructor, accountId: string): Promise<InstructorAccount> {
    if (by.role !== "admin") throw new ShipshapeError("forbidden", "Only an admin can disable instructors.");
    if (accountId === BUILT_IN_ADMIN_ID) {
      throw new ShipshapeError("bad_request", "The built-in admin account cannot be disabled; change the admin secret to sign it out.");
    }
    if (accountId === by.id) throw new ShipshapeError("bad_request", "You cannot disable your own account.");
    const account = await this.accounts.get(accountId);
    if (!account) throw new ShipshapeError("not_found", "There is no such instructor.");
    await this.accounts.disable(accountId, this.now());
    for (const [signInId, entry] of [...this.watchers]) {
      if (entry.accountId !== accountId) continue;
      this.watchers.delete(signInId);
      for (const end of entry.ends) end();
    }
    return (await this.accounts.get(accountId))!;
  }

  /** Ends this cookie's sign-in on the server, and whatever is open on it. */
  async revoke(cookie: string | undefined): Promise<void> {
    const signIn = await this.signIn(cookie);
    if (!signIn) return;
    await this.revoked.revoke(signIn.id, signIn.expiresAt);
    const entry = this.watchers.get(signIn.id);
    this.watchers.delete(signIn.id);
    for (const end of entry?.ends ?? []) end();
  }

  /**
   * Calls `end` once when this cookie's sign-in is revoked, expires, or its account is disabled
   * (a stream must not outlive the cookie that opened it). Returns the unsubscribe function.
   */
  async watch(cookie: string | undefined, end: () => void): Promise<() => void> {
    const signIn = await this.signIn(cookie);
    if (!signIn) {
      end();
      return () => {};
    }
    let ended = false;
    const once = () => {
      if (ended) return;
      ended = true;
      unsubscribe();
      end();
    };
    const entry = this.watchers.get(signIn.id) ?? { accountId: signIn.account.id, ends: new Set<() => void>() };
    entry.ends.add(once);
    this.watchers.set(signIn.id, entry);
    // setTimeout holds at most 2^31-1 ms (24.8 days); a sign-in lasts 12 hours.
    const timer = setTimeout(once, Math.min(2 ** 31 - 1, Math.max(0, signIn.expiresAt - this.now())));
    timer.unref();
    const unsubscribe = () => {
      clearTimeout(timer);
      entry.ends.delete(once);
      if (entry.ends.size === 0 && this.watchers.get(signIn.id) === entry) this.watchers.delete(signIn.id);
    };
    return unsubscribe;
  }

  private async signIn(cookie: string | undefined): Promise<{ id: string; expiresAt: number; account: SignedInInstructor } | undefined> {
    const value = this.signer.verify(cookie);
    if (!value) return undefined;
    // Cookies from before accounts ("instructor:<expires>:<id>") came from the admin secret.
    const m = /^instructor:(?:([A-Za-z0-9_-]{1,64}):)?(\d+):([a-z0-9]{8,64})$/.exec(value);
    if (!m) return undefined;
    const expiresAt = Number(m[2]);
    const id = m[3]!;
    if (expiresAt <= this.now() || (await this.revoked.isRevoked(id))) return undefined;
    const account = await this.accounts.get(m[1] ?? BUILT_IN_ADMIN_ID);
    if (!account || account.disabledAt !== null) return undefined;
    return { id, expiresAt, account: { id: account.id, name: account.name, role: account.role } };
  }
}

const accountIdPattern = /^[A-Za-z0-9_-]{1,64}$/;
/** 32 random bytes in base64url: 43 characters. */
const tokenPattern = /^[A-Za-z0-9_-]{43}$/;

function badInvite(): ShipshapeError {
  // One answer for forged, used and expired links: a guesser learns nothing from the difference.
  return new ShipshapeError("unauthorized", "This invite link is not valid: it was already used, has expired, or was mistyped. Ask an admin for a new one.");
}

function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Accounts kept in memory only (unit tests); the server uses the database's InstructorStore. */
class AccountsInMemory implements InstructorAccounts {
  private readonly accounts = new Map<string, InstructorAccount>();
  private readonly invites = new Map<string, InviteRecord>();
  constructor(now: () => number) {
    this.accounts.set(BUILT_IN_ADMIN_ID, { id: BUILT_IN_ADMIN_ID, name: "Admin", role: "admin", createdAt: now(), disabledAt: null });
  }
  async get(id: string) {
    return this.accounts.get(id);
  }
  async all() {
    return [...this.accounts.values()];
  }
  async disable(id: string, at: number) {
    const a = this.accounts.get(id);
    if (!a || a.disabledAt !== null) return false;
    a.disabledAt = at;
    return true;
  }
  async insertInvite(invite: InviteRecord) {
    this.invites.set(invite.tokenHash, { ...invite });
  }
  async invite(hash: string) {
    return this.invites.get(hash);
  }
  async redeem(hash: string, accountId: string, at: number) {
    const invite = this.invites.get(hash);
    if (!invite || invite.usedAt !== null || invite.expiresAt <= at) return undefined;
    const existing = invite.instructorId !== null ? this.accounts.get(invite.instructorId) : undefined;
    if (invite.instructorId !== null && (!existing || existing.disabledAt !== null)) return undefined;
    invite.usedAt = at;
    if (existing) return existing;
    invite.instructorId = accountId;
    const account: InstructorAccount = { id: accountId, name: invite.name, role: invite.role, createdAt: at, disabledAt: null };
    this.accounts.set(accountId, account);
    return account;
  }
}

/** Revocations kept in memory only (unit tests); the server uses the database's. */
class RevokedInMemory implements RevokedSignIns {
  private readonly ids = new Map<string, number>();
  async revoke(id: string, expiresAt: number): Promise<void> {
    this.ids.set(id, expiresAt);
  }
  async isRevoked(id: string): Promise<boolean> {
    return this.ids.has(id);
  }
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
