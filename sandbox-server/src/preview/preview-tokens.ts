import { randomBytes } from "node:crypto";
import type { Signer } from "../common/signing.ts";
import { sessionIdPattern } from "./preview-routes.ts";

/**
 * Signed preview grants. The host form cannot see the site's cookie, so access travels as a token:
 *
 *   open   - minted when the owner follows a preview link on the site; lives a minute, used once,
 *            exchanged on the preview host for that host's own cookie.
 *   share  - minted when the owner shares a preview; lives until its expiry, usable by anyone with it.
 *   access - the preview host's cookie, bound to that one host (session and port).
 *
 * Signed with a key derived for this purpose only, so no preview token is ever accepted as an
 * owner cookie or a session token, or the other way round.
 */
export type GrantPurpose = "open" | "share" | "access";

export interface Grant {
  purpose: GrantPurpose;
  sessionId: string;
  port: number;
  /** Who this acts as, decided when it was minted: "owner", "share", later "instructor". */
  role: string;
  /** The session's owner when it was minted; a grant outlives nothing but its own session. */
  ownerId: string;
  expiresAt: number;
  nonce: string;
}

const rolePattern = /^[a-z]{1,16}$/;
const ownerPattern = /^[a-z0-9]{1,64}$/;

export class PreviewTokens {
  private readonly signer: Signer;
  /** Open tokens already exchanged, until they expire: an open link works once. */
  private readonly usedNonces = new Map<string, number>();

  constructor(signer: Signer) {
    this.signer = signer.derive("preview-grants-v1");
  }

  issue(grant: Omit<Grant, "nonce">): string {
    const nonce = randomBytes(9).toString("base64url").replace(/[-_]/g, "x");
    return this.signer.sign(
      [grant.purpose, grant.sessionId, grant.port, grant.role, grant.ownerId, grant.expiresAt.toString(36), nonce].join(":"),
    );
  }

  /** The grant when the token is genuine, of one of these purposes, and not expired. */
  read(token: string | undefined | null, purposes: GrantPurpose[], now = Date.now()): Grant | undefined {
    if (!token || token.length > 512) return undefined;
    const value = this.signer.verify(token);
    if (!value) return undefined;
    const [purpose, sessionId, port, role, ownerId, expires, nonce, extra] = value.split(":");
    if (extra !== undefined || !purpose || !purposes.includes(purpose as GrantPurpose)) return undefined;
    if (!sessionId || !sessionIdPattern.test(sessionId) || !role || !rolePattern.test(role) || !ownerId || !ownerPattern.test(ownerId)) {
      return undefined;
    }
    const expiresAt = parseInt(expires ?? "", 36);
    if (!Number.isFinite(expiresAt) || expiresAt <= now || !nonce) return undefined;
    return { purpose: purpose as GrantPurpose, sessionId, port: Number(port), role, ownerId, expiresAt, nonce };
  }

  /** Marks an open token used; false when it was used before. */
  spend(grant: Grant, now = Date.now()): boolean {
    for (const [nonce, expiresAt] of this.usedNonces) if (expiresAt <= now) this.usedNonces.delete(nonce);
    if (this.usedNonces.has(grant.nonce)) return false;
    this.usedNonces.set(grant.nonce, grant.expiresAt);
    return true;
  }
}
