import { randomBytes, timingSafeEqual, createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Signer } from "../common/signing.ts";

export const INSTRUCTOR_COOKIE = "shipshape_instructor";
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
 * Instructor sign-in: the admin secret is exchanged for a signed, expiring, HttpOnly cookie.
 * The cookie's key is derived from the admin secret itself, so changing the secret signs every
 * instructor out.
 */
export class InstructorAuth {
  private readonly secretDigest: Buffer;
  private readonly signer: Signer;
  private readonly now: () => number;

  constructor(adminSecret: string, now: () => number = Date.now) {
    this.secretDigest = digest(adminSecret);
    this.signer = new Signer(adminSecret).derive("instructor-cookie");
    this.now = now;
  }

  /** Constant-time comparison (of digests, so the length of the secret does not leak either). */
  checkSecret(given: string): boolean {
    return timingSafeEqual(digest(given.trim()), this.secretDigest);
  }

  issue(): { value: string; maxAgeSeconds: number } {
    const expiresAt = this.now() + INSTRUCTOR_SESSION_MS;
    return { value: this.signer.sign(`instructor:${expiresAt}`), maxAgeSeconds: INSTRUCTOR_SESSION_MS / 1000 };
  }

  verify(cookie: string | undefined): boolean {
    const value = this.signer.verify(cookie);
    const m = value ? /^instructor:(\d+)$/.exec(value) : null;
    return m !== null && Number(m[1]) > this.now();
  }
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
