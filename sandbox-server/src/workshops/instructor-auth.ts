import { randomBytes, timingSafeEqual, createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { newId, Signer } from "../common/signing.ts";
import type { RevokedSignIns } from "../store/instructor-session-store.ts";

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

/**
 * Instructor sign-in: the admin secret is exchanged for a signed, expiring, HttpOnly cookie that
 * names one sign-in. The cookie's key is derived from the admin secret itself, so changing the
 * secret signs every instructor out; signing out revokes that one sign-in on the server, so a copy
 * of the cookie kept elsewhere stops working too, and open dashboard streams on it end.
 */
export class InstructorAuth {
  private readonly secretDigest: Buffer;
  private readonly signer: Signer;
  private readonly now: () => number;
  private readonly revoked: RevokedSignIns;
  /** Open dashboard streams and viewers, per sign-in: ended when it is revoked. */
  private readonly watchers = new Map<string, Set<() => void>>();

  constructor(adminSecret: string, now: () => number = Date.now, revoked: RevokedSignIns = new RevokedInMemory()) {
    this.secretDigest = digest(adminSecret);
    this.signer = new Signer(adminSecret).derive("instructor-cookie");
    this.now = now;
    this.revoked = revoked;
  }

  /** Constant-time comparison (of digests, so the length of the secret does not leak either). */
  checkSecret(given: string): boolean {
    return timingSafeEqual(digest(given.trim()), this.secretDigest);
  }

  issue(): { value: string; maxAgeSeconds: number } {
    const expiresAt = this.now() + INSTRUCTOR_SESSION_MS;
    return { value: this.signer.sign(`instructor:${expiresAt}:${newId(16)}`), maxAgeSeconds: INSTRUCTOR_SESSION_MS / 1000 };
  }

  verify(cookie: string | undefined): boolean {
    return this.signIn(cookie) !== undefined;
  }

  /** Ends this cookie's sign-in on the server, and whatever is open on it. */
  revoke(cookie: string | undefined): void {
    const signIn = this.signIn(cookie);
    if (!signIn) return;
    this.revoked.revoke(signIn.id, signIn.expiresAt);
    const ends = this.watchers.get(signIn.id);
    this.watchers.delete(signIn.id);
    for (const end of ends ?? []) end();
  }

  /**
   * Calls `end` once when this cookie's sign-in is revoked or expires (a stream must not outlive
   * the cookie that opened it). Returns the unsubscribe function.
   */
  watch(cookie: string | undefined, end: () => void): () => void {
    const signIn = this.signIn(cookie);
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
    const set = this.watchers.get(signIn.id) ?? new Set();
    set.add(once);
    this.watchers.set(signIn.id, set);
    // setTimeout holds at most 2^31-1 ms (24.8 days); a sign-in lasts 12 hours.
    const timer = setTimeout(once, Math.min(2 ** 31 - 1, Math.max(0, signIn.expiresAt - this.now())));
    timer.unref();
    const unsubscribe = () => {
      clearTimeout(timer);
      set.delete(once);
      if (set.size === 0 && this.watchers.get(signIn.id) === set) this.watchers.delete(signIn.id);
    };
    return unsubscribe;
  }

  private signIn(cookie: string | undefined): { id: string; expiresAt: number } | undefined {
    const value = this.signer.verify(cookie);
    const m = value ? /^instructor:(\d+):([a-z0-9]{8,64})$/.exec(value) : null;
    if (!m) return undefined;
    const signIn = { expiresAt: Number(m[1]), id: m[2]! };
    if (signIn.expiresAt <= this.now() || this.revoked.isRevoked(signIn.id)) return undefined;
    return signIn;
  }
}

/** Revocations kept in memory only (unit tests); the server uses the database's. */
class RevokedInMemory implements RevokedSignIns {
  private readonly ids = new Map<string, number>();
  revoke(id: string, expiresAt: number): void {
    this.ids.set(id, expiresAt);
  }
  isRevoked(id: string): boolean {
    return this.ids.has(id);
  }
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
